package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// apiMethod is one RPC, reachable over gRPC and over REST.
type apiMethod struct {
	grpc, rest string
	req, resp  func() proto.Message
}

var (
	methodStartLogin = apiMethod{"/ssogate.v1.LoginService/StartLogin", "/v1/login:start",
		func() proto.Message { return &ssogatev1.StartLoginRequest{} }, func() proto.Message { return &ssogatev1.StartLoginResponse{} }}
	methodExchangeCode = apiMethod{"/ssogate.v1.LoginService/ExchangeCode", "/v1/login:exchangeCode",
		func() proto.Message { return &ssogatev1.ExchangeCodeRequest{} }, func() proto.Message { return &ssogatev1.ExchangeCodeResponse{} }}
	methodRefreshToken = apiMethod{"/ssogate.v1.LoginService/RefreshToken", "/v1/tokens:refresh",
		func() proto.Message { return &ssogatev1.RefreshTokenRequest{} }, func() proto.Message { return &ssogatev1.RefreshTokenResponse{} }}
	methodCreateConnection = apiMethod{"/ssogate.v1.ConnectionService/CreateConnection", "/v1/connections",
		func() proto.Message { return &ssogatev1.CreateConnectionRequest{} }, func() proto.Message { return &ssogatev1.CreateConnectionResponse{} }}
)

// restErr is what a REST error body says, decoded independently of the
// server's own types.
type restErr struct {
	Code    int               `json:"code"`
	Status  string            `json:"status"`
	Message string            `json:"message"`
	Details []json.RawMessage `json:"details"`
	// from the details
	reason     string
	domain     string
	metadata   map[string]string
	violations []string
}

func callREST(t *testing.T, baseURL, key, path, body string) (int, http.Header, restErr) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, baseURL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e restErr
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("REST error body is not JSON: %v\n%s", err, raw)
		}
		for _, d := range e.Details {
			var m struct {
				Type            string            `json:"@type"`
				Reason          string            `json:"reason"`
				Domain          string            `json:"domain"`
				Metadata        map[string]string `json:"metadata"`
				FieldViolations []struct {
					Field string `json:"field"`
				} `json:"fieldViolations"`
			}
			if err := json.Unmarshal(d, &m); err != nil {
				t.Fatal(err)
			}
			switch m.Type {
			case "type.googleapis.com/google.rpc.ErrorInfo":
				e.reason, e.domain, e.metadata = m.Reason, m.Domain, m.Metadata
			case "type.googleapis.com/google.rpc.BadRequest":
				for _, v := range m.FieldViolations {
					e.violations = append(e.violations, v.Field)
				}
			}
		}
	}
	return resp.StatusCode, resp.Header, e
}

// grpcErrorInfo calls m over gRPC with the request given as JSON and
// returns the status and its ErrorInfo and field violations.
func grpcErrorInfo(t *testing.T, cc *grpc.ClientConn, m apiMethod, body string) (*status.Status, *errdetails.ErrorInfo, []string) {
	t.Helper()
	req := m.req()
	if err := protojson.Unmarshal([]byte(body), req); err != nil {
		t.Fatalf("request %s: %v", body, err)
	}
	err := cc.Invoke(context.Background(), m.grpc, req, m.resp())
	st := status.Convert(err)
	var info *errdetails.ErrorInfo
	var fields []string
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.BadRequest:
			for _, v := range d.FieldViolations {
				fields = append(fields, v.Field)
			}
		}
	}
	return st, info, fields
}

// Every documented error of StartLogin, ExchangeCode, RefreshToken and
// CreateConnection carries its ErrorInfo reason (domain ssogate.dev, the
// ids involved) over gRPC and over REST, where the body also names the
// status.
func TestErrorReasons(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	f := newWireFixture(t, []wireConn{
		{id: "acme"},
		{id: "trial", set: map[string]any{"state": "CONNECTION_STATE_TESTING"}},
		{id: "draft", set: map[string]any{"state": "CONNECTION_STATE_DRAFT"}},
		{id: "mail", set: map[string]any{"email_domains": []any{"mail.example"}, "default_return_url": wireReturnTo}},
	}, WithClock(clock.now))
	ctx := context.Background()
	login := f.ts.dial(t, testLoginKey)
	admin := f.ts.dial(t, testAdminKey)
	tokenSet := func(t *testing.T) *ssogatev1.TokenSet {
		res, err := f.login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: f.loginCode(t, "acme", "alice")})
		if err != nil {
			t.Fatal(err)
		}
		return res.TokenSet
	}
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	type errCase struct {
		name     string
		m        apiMethod
		key      string
		body     func(t *testing.T) string
		code     codes.Code
		reason   string
		metadata map[string]string
		fields   []string
	}
	fixed := func(s string) func(*testing.T) string { return func(*testing.T) string { return s } }
	cases := []errCase{
		{"api key missing", methodStartLogin, "", fixed(`{"connectionId":"acme"}`), codes.Unauthenticated, "API_KEY_MISSING", nil, nil},
		{"api key unknown", methodStartLogin, "not-a-key", fixed(`{"connectionId":"acme"}`), codes.Unauthenticated, "API_KEY_UNKNOWN", nil, nil},
		{"scope missing", methodStartLogin, testAdminKey, fixed(`{"connectionId":"acme"}`), codes.PermissionDenied, "SCOPE_MISSING", map[string]string{"scope": "login"}, nil},
		{"start: neither id nor email", methodStartLogin, testLoginKey, fixed(`{}`), codes.InvalidArgument, "FIELD_REQUIRED", nil, []string{"connection_id"}},
		{"start: email without domain", methodStartLogin, testLoginKey, fixed(`{"email":"alice"}`), codes.InvalidArgument, "FIELD_INVALID", nil, []string{"email"}},
		{"start: state too long", methodStartLogin, testLoginKey, fixed(js(map[string]any{"connectionId": "acme", "state": strings.Repeat("s", maxStateBytes+1)})), codes.InvalidArgument, "FIELD_INVALID", nil, []string{"state"}},
		{"start: unknown connection", methodStartLogin, testLoginKey, fixed(`{"connectionId":"nope"}`), codes.NotFound, "CONNECTION_NOT_FOUND", map[string]string{"connection_id": "nope"}, nil},
		{"start: unknown domain", methodStartLogin, testLoginKey, fixed(`{"email":"a@nowhere.example"}`), codes.NotFound, "DOMAIN_NOT_FOUND", map[string]string{"domain": "nowhere.example"}, nil},
		{"start: testing", methodStartLogin, testLoginKey, fixed(`{"connectionId":"trial","returnTo":"` + wireReturnTo + `"}`), codes.FailedPrecondition, "CONNECTION_IN_TESTING", map[string]string{"connection_id": "trial"}, nil},
		{"start: draft", methodStartLogin, testLoginKey, fixed(`{"connectionId":"draft"}`), codes.FailedPrecondition, "CONNECTION_NOT_ACTIVE", map[string]string{"connection_id": "draft", "state": "CONNECTION_STATE_DRAFT"}, nil},
		{"start: return_to elsewhere", methodStartLogin, testLoginKey, fixed(`{"connectionId":"acme","returnTo":"https://evil.example/cb"}`), codes.InvalidArgument, "RETURN_TO_NOT_ALLOWED", map[string]string{"connection_id": "acme"}, nil},
		{"start: no return_to", methodStartLogin, testLoginKey, fixed(`{"connectionId":"acme"}`), codes.InvalidArgument, "RETURN_TO_REQUIRED", map[string]string{"connection_id": "acme"}, nil},

		{"exchange: no code", methodExchangeCode, testLoginKey, fixed(`{}`), codes.InvalidArgument, "FIELD_REQUIRED", nil, []string{"code"}},
		{"exchange: unknown code", methodExchangeCode, testLoginKey, fixed(`{"code":"no-such-code"}`), codes.InvalidArgument, "CODE_UNKNOWN", nil, nil},
		{"exchange: used code", methodExchangeCode, testLoginKey, func(t *testing.T) string {
			code := f.loginCode(t, "acme", "alice")
			if _, err := f.login.ExchangeCode(ctx, &ssogatev1.ExchangeCodeRequest{Code: code}); err != nil {
				t.Fatal(err)
			}
			return js(map[string]string{"code": code})
		}, codes.InvalidArgument, "CODE_USED", nil, nil},
		{"exchange: expired code", methodExchangeCode, testLoginKey, func(t *testing.T) string {
			code := f.loginCode(t, "acme", "alice")
			clock.add(codeTTL + time.Second)
			t.Cleanup(func() { clock.add(-codeTTL - time.Second) })
			return js(map[string]string{"code": code})
		}, codes.InvalidArgument, "CODE_EXPIRED", nil, nil},

		{"refresh: no token", methodRefreshToken, testLoginKey, fixed(`{}`), codes.InvalidArgument, "FIELD_REQUIRED", nil, []string{"refresh_token"}},
		{"refresh: junk", methodRefreshToken, testLoginKey, fixed(`{"refreshToken":"junk"}`), codes.Unauthenticated, "REFRESH_TOKEN_INVALID", nil, nil},
		{"refresh: reused", methodRefreshToken, testLoginKey, func(t *testing.T) string {
			// Reuse once the successor is spent too: within the retry
			// window an unused successor would be handed out again.
			set := tokenSet(t)
			next, err := f.login.RefreshToken(ctx, &ssogatev1.RefreshTokenRequest{RefreshToken: set.RefreshToken})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.login.RefreshToken(ctx, &ssogatev1.RefreshTokenRequest{RefreshToken: next.TokenSet.RefreshToken}); err != nil {
				t.Fatal(err)
			}
			// Past the retry window, in which a lost answer may be asked again.
			d := f.ts.srv.cfg.Token.RefreshRetryWindow + time.Second
			clock.add(d)
			t.Cleanup(func() { clock.add(-d) })
			return js(map[string]string{"refreshToken": set.RefreshToken})
		}, codes.Unauthenticated, "REFRESH_TOKEN_REUSED", nil, nil},
		{"refresh: session revoked", methodRefreshToken, testLoginKey, func(t *testing.T) string {
			set := tokenSet(t)
			if _, err := f.login.RevokeSession(ctx, &ssogatev1.RevokeSessionRequest{SessionId: set.Identity.SessionId}); err != nil {
				t.Fatal(err)
			}
			return js(map[string]string{"refreshToken": set.RefreshToken})
		}, codes.Unauthenticated, "REFRESH_TOKEN_REVOKED", nil, nil},
		{"refresh: expired", methodRefreshToken, testLoginKey, func(t *testing.T) string {
			set := tokenSet(t)
			d := time.Until(set.RefreshExpiresAt.AsTime()) + time.Minute
			clock.add(d)
			t.Cleanup(func() { clock.add(-d) })
			return js(map[string]string{"refreshToken": set.RefreshToken})
		}, codes.Unauthenticated, "REFRESH_TOKEN_EXPIRED", nil, nil},

		{"create: no connection", methodCreateConnection, testAdminKey, fixed(`{}`), codes.InvalidArgument, "FIELD_REQUIRED", nil, []string{"connection"}},
		{"create: invalid fields", methodCreateConnection, testAdminKey, fixed(`{"connection":{"id":"Not A Slug"}}`), codes.InvalidArgument, "CONNECTION_INVALID", nil, []string{"connection.id", "connection.tenant_id"}},
		{"create: two metadata sources", methodCreateConnection, testAdminKey, fixed(`{"connection":{"id":"x","tenantId":"t"},"idpMetadataXml":"<x/>","idpMetadataUrl":"https://idp.example/md"}`), codes.InvalidArgument, "METADATA_SOURCE_CONFLICT", nil, nil},
		{"create: bad metadata xml", methodCreateConnection, testAdminKey, fixed(`{"connection":{"id":"x","tenantId":"t"},"idpMetadataXml":"<nope"}`), codes.InvalidArgument, "IDP_METADATA_INVALID", nil, []string{"idp_metadata_xml"}},
		{"create: metadata url unreachable", methodCreateConnection, testAdminKey, fixed(`{"connection":{"id":"x","tenantId":"t"},"idpMetadataUrl":"https://127.0.0.1:1/md"}`), codes.InvalidArgument, "IDP_METADATA_FETCH_FAILED", nil, []string{"idp_metadata_url"}},
		{"create: taken", methodCreateConnection, testAdminKey, fixed(`{"connection":{"id":"acme","tenantId":"t"}}`), codes.AlreadyExists, "CONNECTION_ALREADY_EXISTS", map[string]string{"connection_id": "acme"}, nil},
	}
	check := func(t *testing.T, code codes.Code, reason, domain string, md map[string]string, fields []string, tc errCase) {
		t.Helper()
		if code != tc.code || reason != tc.reason || domain != errorDomain {
			t.Errorf("got %v %q (domain %q), want %v %q", code, reason, domain, tc.code, tc.reason)
		}
		for k, v := range tc.metadata {
			if md[k] != v {
				t.Errorf("metadata[%q] = %q, want %q (all: %v)", k, md[k], v, md)
			}
		}
		for _, want := range tc.fields {
			found := false
			for _, got := range fields {
				found = found || got == want
			}
			if !found {
				t.Errorf("field violations %v lack %q", fields, want)
			}
		}
	}
	for _, tc := range cases {
		t.Run(tc.name+"/grpc", func(t *testing.T) {
			cc := login
			switch tc.key {
			case testAdminKey:
				cc = admin
			case "":
				cc = f.ts.dial(t)
			case testLoginKey:
			default:
				cc = f.ts.dial(t, tc.key)
			}
			st, info, fields := grpcErrorInfo(t, cc, tc.m, tc.body(t))
			if info == nil {
				t.Fatalf("%v %q: no ErrorInfo", st.Code(), st.Message())
			}
			check(t, st.Code(), info.Reason, info.Domain, info.Metadata, fields, tc)
		})
		t.Run(tc.name+"/rest", func(t *testing.T) {
			httpStatus, hdr, e := callREST(t, f.ts.httpURL, tc.key, tc.m.rest, tc.body(t))
			check(t, codes.Code(e.Code), e.reason, e.domain, e.metadata, e.violations, tc)
			if e.Status != codeName(tc.code) || httpStatus == http.StatusOK {
				t.Errorf("REST status %d body status %q, want %s", httpStatus, e.Status, codeName(tc.code))
			}
			if tc.code == codes.Unauthenticated && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %q", hdr.Get("WWW-Authenticate"))
			}
		})
	}
}

// Errors the REST gateway makes itself while reading a request are in our
// words, with a reason, not the JSON decoder's.
func TestRESTDecoderErrorsReworded(t *testing.T) {
	ts := startTestServer(t)
	for _, tc := range []struct {
		name, body, reason, field string
	}{
		{"unknown field", `{"connectionId":"acme","bogus":1}`, "UNKNOWN_FIELD", "bogus"},
		{"bad JSON", `{"connectionId":`, "INVALID_JSON", ""},
		{"wrong type", `{"connectionId":5}`, "INVALID_JSON", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, e := callREST(t, ts.httpURL, testLoginKey, "/v1/login:start", tc.body)
			checkReworded(t, code, e, tc.reason, tc.field)
		})
	}
	t.Run("query parameter of the wrong type", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, ts.httpURL+"/v1/connections?page_size=many", nil)
		req.Header.Set("Authorization", "Bearer "+testAdminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e restErr
		_ = json.NewDecoder(resp.Body).Decode(&e)
		var info struct {
			Reason string `json:"reason"`
		}
		if len(e.Details) > 0 {
			_ = json.Unmarshal(e.Details[0], &info)
		}
		if resp.StatusCode != http.StatusBadRequest || info.Reason != "FIELD_INVALID" || strings.Contains(e.Message, "strconv") {
			t.Errorf("%d %q %q, want 400 FIELD_INVALID in our words", resp.StatusCode, info.Reason, e.Message)
		}
	})
}

func checkReworded(t *testing.T, code int, e restErr, reason, field string) {
	t.Helper()
	if code != http.StatusBadRequest || e.Status != "INVALID_ARGUMENT" || e.reason != reason {
		t.Fatalf("%d %s %q, want 400 INVALID_ARGUMENT %s: %s", code, e.Status, e.reason, reason, e.Message)
	}
	if strings.Contains(e.Message, "proto:") || strings.Contains(e.Message, "syntax error") {
		t.Errorf("message leaks the decoder's wording: %q", e.Message)
	}
	if field != "" && (len(e.violations) != 1 || e.violations[0] != field) {
		t.Errorf("field violations %v, want [%s]", e.violations, field)
	}
}

// ValidateToken's valid=false is present in REST answers, never left out.
func TestRESTEmitsFalseBooleans(t *testing.T) {
	ts := startTestServer(t)
	req, _ := http.NewRequest(http.MethodPost, ts.httpURL+"/v1/tokens:validate", strings.NewReader(`{"accessToken":"not.a.jwt"}`))
	req.Header.Set("Authorization", "Bearer "+testLoginKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if v, ok := body["valid"]; !ok || v != false {
		t.Fatalf("ValidateToken over REST = %v, want valid:false present", body)
	}
}
