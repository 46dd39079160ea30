package server

import (
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/store"
)

// Sessions written as protojson (before the identity was stored as binary
// protobuf) still decode, and a new session's identity round-trips.
func TestSessionIdentityEncodings(t *testing.T) {
	want := &ssogatev1.Identity{
		Subject: "sub-1", Email: "ada@example.com", SessionId: "sid-1",
		Groups: []string{"eng", "admins"},
	}
	asJSON, err := protojson.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	asProto, err := proto.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string][]byte{"protojson": asJSON, "binary": asProto} {
		got, err := sessionIdentity(store.Session{Identity: raw})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !proto.Equal(got, want) {
			t.Errorf("%s: decoded %v, want %v", name, got, want)
		}
	}
	if _, err := sessionIdentity(store.Session{Identity: []byte("{not json")}); err == nil {
		t.Error("a corrupt protojson identity decoded without an error")
	}
}
