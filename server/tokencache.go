package server

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/ssogate/ssogate/token"
)

// verifiedCache remembers access tokens whose signature and claims were
// verified, until they expire, so that ValidateToken (the hot path) skips
// the signature check for a token it has seen. Revocation is still checked
// on every call, from memory. Keys are SHA-256 of the token: the cache
// holds no token. It is bounded: past maxEntries, about half the entries
// are dropped (Go's map order is random, so that is a random half).
type verifiedCache struct {
	mu         sync.RWMutex
	entries    map[[sha256.Size]byte]*token.Claims
	maxEntries int
}

func newVerifiedCache(maxEntries int) *verifiedCache {
	return &verifiedCache{entries: map[[sha256.Size]byte]*token.Claims{}, maxEntries: maxEntries}
}

func (c *verifiedCache) get(raw string, now time.Time) (*token.Claims, bool) {
	k := sha256.Sum256([]byte(raw))
	c.mu.RLock()
	claims, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok {
		return nil, false
	}
	if !now.Before(claims.ExpiresAt) {
		c.mu.Lock()
		delete(c.entries, k)
		c.mu.Unlock()
		return nil, false
	}
	return claims, true
}

func (c *verifiedCache) put(raw string, claims *token.Claims) {
	k := sha256.Sum256([]byte(raw))
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.maxEntries {
		n := 0
		for key := range c.entries {
			if n >= c.maxEntries/2 {
				break
			}
			delete(c.entries, key)
			n++
		}
	}
	c.entries[k] = claims
}
