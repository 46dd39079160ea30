package token

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// FuzzVerify feeds Verify arbitrary tokens: it must not panic, must reject
// with ErrInvalid, and may accept only the signed header and payload of a
// genuine token.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f, ES256)
	genuine, _ := fx.mint(f)
	hdr, rest, _ := strings.Cut(genuine, ".")
	payload, _, _ := strings.Cut(rest, ".")
	f.Add(genuine)
	f.Add(hdr + "." + payload + ".")
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0." + payload + ".")
	f.Add("")
	f.Add("...")
	f.Add(`{"alg":"ES256"}.e30.`)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, tok string) {
		_, err := fx.iss.Verify(ctx, tok)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("rejection %v does not match ErrInvalid", err)
			}
			return
		}
		h, r, _ := strings.Cut(tok, ".")
		p, _, _ := strings.Cut(r, ".")
		if h != hdr || p != payload {
			t.Fatalf("accepted a token whose signed content differs from the genuine one: %q", tok)
		}
	})
}
