package client_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ssogate/ssogate/client"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// flakyLogin answers UNAVAILABLE to the first call of each method: the
// one thing a real server cannot be made to do on cue.
type flakyLogin struct {
	ssogatev1.UnimplementedLoginServiceServer
	validate, refresh atomic.Int32
	key               atomic.Value
}

func (f *flakyLogin) ValidateToken(ctx context.Context, _ *ssogatev1.ValidateTokenRequest) (*ssogatev1.ValidateTokenResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.key.Store(md.Get("authorization"))
	if f.validate.Add(1) == 1 {
		return nil, status.Error(codes.Unavailable, "going away")
	}
	return &ssogatev1.ValidateTokenResponse{Valid: true}, nil
}

func (f *flakyLogin) RefreshToken(context.Context, *ssogatev1.RefreshTokenRequest) (*ssogatev1.RefreshTokenResponse, error) {
	if f.refresh.Add(1) == 1 {
		return nil, status.Error(codes.Unavailable, "going away")
	}
	return &ssogatev1.RefreshTokenResponse{}, nil
}

// Dial sends the API key, retries UNAVAILABLE on an idempotent call
// (ValidateToken) and never on one that spends something (RefreshToken).
func TestDialRetriesOnlyIdempotentCalls(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	f := &flakyLogin{}
	ssogatev1.RegisterLoginServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	api, err := client.Dial(context.Background(), lis.Addr().String(), "the-key")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	ctx := context.Background()
	if _, err := api.Login.ValidateToken(ctx, &ssogatev1.ValidateTokenRequest{}); err != nil {
		t.Errorf("ValidateToken after one UNAVAILABLE: %v, want retried", err)
	}
	if n := f.validate.Load(); n != 2 {
		t.Errorf("ValidateToken reached the server %d times, want 2", n)
	}
	if got, _ := f.key.Load().([]string); len(got) != 1 || got[0] != "Bearer the-key" {
		t.Errorf("authorization %v, want the API key as bearer", got)
	}
	if _, err := api.Login.RefreshToken(ctx, &ssogatev1.RefreshTokenRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("RefreshToken: %v, want UNAVAILABLE passed through", err)
	}
	if n := f.refresh.Load(); n != 1 {
		t.Errorf("RefreshToken reached the server %d times, want 1 (never retried)", n)
	}
}
