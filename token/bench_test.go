package token

import (
	"context"
	"testing"
)

// Mint and verify per algorithm; compare each against ES256 Mint of the
// same run.

func BenchmarkMint(b *testing.B) {
	for _, alg := range supportedAlgorithms {
		b.Run(alg, func(b *testing.B) {
			f := newFixture(b, alg)
			c := testClaims()
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := f.iss.Mint(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, alg := range supportedAlgorithms {
		b.Run(alg, func(b *testing.B) {
			f := newFixture(b, alg)
			tok, _ := f.mint(b)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.iss.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
