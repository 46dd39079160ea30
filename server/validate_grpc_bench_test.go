package server

import (
	"context"
	"testing"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// BenchmarkValidateTokenGRPC is ValidateToken on a cached token over a
// real loopback gRPC connection (client and server in this process), from
// 16 goroutines: with -cpuprofile it shows where the server's share of a
// call goes (interceptors, transport, handler).
//
//	go test ./server -run '^$' -bench ValidateTokenGRPC -cpuprofile cpu.out
func BenchmarkValidateTokenGRPC(b *testing.B) {
	ts := startTestServerWith(b, nil)
	login := ssogatev1.NewLoginServiceClient(ts.dial(b, testLoginKey))
	req := &ssogatev1.ValidateTokenRequest{AccessToken: mint(b, ts.srv, "sess-bench")}
	ctx := context.Background()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v, err := login.ValidateToken(ctx, req); err != nil || !v.Valid {
				b.Errorf("ValidateToken: %v %v", v, err)
				return
			}
		}
	})
}
