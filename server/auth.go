package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/ssogate/ssogate/config"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// Scopes an API key may carry.
const (
	scopeLogin = "login"
	scopeAdmin = "admin"
	// scopeEvents reads the event stream and manages webhooks.
	scopeEvents = "events"
	// scopeDirectory reads what SCIM provisioned.
	scopeDirectory = "directory"
	// scopeAny admits any authenticated caller.
	scopeAny = "*"
)

// methodScopes names the scope each RPC needs. A method missing here is
// public only if its service is in publicServices; anything else is refused,
// so a new RPC cannot be exposed by forgetting it.
var methodScopes = func() map[string]string {
	m := map[string]string{}
	add := func(desc grpc.ServiceDesc, scope string) {
		for _, md := range desc.Methods {
			m["/"+desc.ServiceName+"/"+md.MethodName] = scope
		}
		for _, sd := range desc.Streams {
			m["/"+desc.ServiceName+"/"+sd.StreamName] = scope
		}
	}
	add(ssogatev1.LoginService_ServiceDesc, scopeLogin)
	add(ssogatev1.ConnectionService_ServiceDesc, scopeAdmin)
	add(ssogatev1.AuditService_ServiceDesc, scopeAdmin)
	add(ssogatev1.KeyService_ServiceDesc, scopeAdmin)
	add(ssogatev1.EventService_ServiceDesc, scopeEvents)
	add(ssogatev1.DirectoryService_ServiceDesc, scopeDirectory)
	m[ssogatev1.KeyService_GetJWKS_FullMethodName] = scopeAny
	return m
}()

// publicServices need no API key: health and reflection, as an operator
// expects from any gRPC server.
var publicServices = map[string]bool{
	"grpc.health.v1.Health":                    true,
	"grpc.reflection.v1.ServerReflection":      true,
	"grpc.reflection.v1alpha.ServerReflection": true,
}

// apiKey is a configured caller, with its hash decoded.
type apiKey struct {
	name   string
	hash   [sha256.Size]byte
	scopes map[string]bool
}

type authenticator struct {
	keys []apiKey
}

func newAuthenticator(keys []config.APIKey) (*authenticator, error) {
	a := &authenticator{}
	for _, k := range keys {
		raw, err := hex.DecodeString(strings.ToLower(k.SHA256))
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("api key %q: sha256 is not 64 hex digits", k.Name)
		}
		ak := apiKey{name: k.Name, scopes: map[string]bool{}}
		copy(ak.hash[:], raw)
		for _, s := range k.Scopes {
			ak.scopes[s] = true
		}
		a.keys = append(a.keys, ak)
	}
	return a, nil
}

// callerKey is the context key of the authenticated caller's name.
type callerKey struct{}

// caller returns the API key name that authenticated the request.
func caller(ctx context.Context) string {
	name, _ := ctx.Value(callerKey{}).(string)
	return name
}

// known reports whether presented is a configured API key, comparing every
// hash in constant time.
func (a *authenticator) known(presented string) bool {
	sum := sha256.Sum256([]byte(presented))
	found := 0
	for i := range a.keys {
		found |= subtle.ConstantTimeCompare(sum[:], a.keys[i].hash[:])
	}
	return found == 1
}

// authorize checks the bearer key of a call against the scope its method
// needs. Every configured hash is compared, in constant time, whatever
// matches, so timing tells nothing about which key is near.
func (a *authenticator) authorize(ctx context.Context, fullMethod string) (context.Context, error) {
	service, _ := splitMethod(fullMethod)
	if publicServices[service] {
		return ctx, nil
	}
	need, known := methodScopes[fullMethod]
	if !known {
		return nil, apiError(codes.PermissionDenied, reasonMethodNotOpen, "method is not open to API keys", "method", fullMethod)
	}
	var presented string
	if v := metadata.ValueFromIncomingContext(ctx, "authorization"); len(v) == 1 {
		if token, ok := strings.CutPrefix(v[0], "Bearer "); ok {
			presented = strings.TrimSpace(token)
		}
	}
	if presented == "" {
		return nil, apiError(codes.Unauthenticated, reasonAPIKeyMissing, `missing API key: send "authorization: Bearer <key>"`)
	}
	sum := sha256.Sum256([]byte(presented))
	match := -1
	for i := range a.keys {
		if subtle.ConstantTimeCompare(sum[:], a.keys[i].hash[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return nil, apiError(codes.Unauthenticated, reasonAPIKeyUnknown, "unknown API key")
	}
	k := a.keys[match]
	if need != scopeAny && !k.scopes[need] {
		return nil, apiError(codes.PermissionDenied, reasonScopeMissing, fmt.Sprintf("API key %q lacks the %q scope this method needs", k.name, need), "api_key", k.name, "scope", need, "method", fullMethod)
	}
	return context.WithValue(ctx, callerKey{}, k.name), nil
}
