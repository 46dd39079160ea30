package server

import (
	"context"
	"encoding/json"
	"slices"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// BenchmarkValidateTokenCost sets, interleaved in one loop, the three
// ways a token gets checked beside each other: a bare go-jose ES256
// verification (parse, verify with the key from our JWKS, decode the
// claims: the least any verifier does), our fresh verification
// (tokens.Verify: the same plus the claim and key-state checks), and
// ValidateToken on a token it has seen (the cache hit, revocation check
// included). Each sample is process CPU time; it reports medians and the
// ratio fresh/go-jose.
//
//	go test ./server -run '^$' -bench ValidateTokenCost -count 5
func BenchmarkValidateTokenCost(b *testing.B) {
	s := newValidateServer(b)
	ctx := context.Background()
	login := loginService{s: s}
	tok := mint(b, s, "sess-bench")
	doc, err := s.jwks(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(doc, &set); err != nil {
		b.Fatal(err)
	}
	parsed, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		b.Fatal(err)
	}
	keys := set.Key(parsed.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		b.Fatalf("JWKS has %d keys for kid %q", len(keys), parsed.Signatures[0].Header.KeyID)
	}
	key := keys[0].Key
	ways := []struct {
		name    string
		check   func() error
		samples []time.Duration
	}{
		{name: "go-jose", check: func() error {
			obj, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				return err
			}
			payload, err := obj.Verify(key)
			if err != nil {
				return err
			}
			var claims map[string]any
			return json.Unmarshal(payload, &claims)
		}},
		{name: "fresh", check: func() error { _, err := s.tokens.Verify(ctx, tok); return err }},
		{name: "cached", check: func() error {
			v, err := login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{AccessToken: tok})
			if err == nil && !v.Valid {
				b.Fatalf("ValidateToken: %v", v)
			}
			return err
		}},
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	const batch = 50 // getrusage's cost and resolution want batches
	for i := 0; b.Loop(); i++ {
		for k := range ways {
			w := &ways[(i+k)%len(ways)]
			start := cpu()
			for range batch {
				if err := w.check(); err != nil {
					b.Fatalf("%s: %v", w.name, err)
				}
			}
			w.samples = append(w.samples, (cpu()-start)/batch)
		}
	}
	med := map[string]float64{}
	for _, w := range ways {
		slices.Sort(w.samples)
		med[w.name] = float64(w.samples[len(w.samples)/2].Nanoseconds()) / 1e3
		b.ReportMetric(med[w.name], w.name+"-µs")
	}
	b.ReportMetric(med["fresh"]/med["go-jose"], "fresh/go-jose")
}
