package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ssogate/ssogate/internal/testenv"
)

const docPath = "../../gen/openapi/ssogate.openapi.json"

func loadDoc(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// The document says what generated clients need: OpenAPI 3, a title and
// version, servers, the bearer scheme on every operation, the error body.
func TestDocumentShape(t *testing.T) {
	doc := loadDoc(t)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Errorf("openapi = %q, want 3.x", v)
	}
	info := doc["info"].(map[string]any)
	if info["title"] != "ssogate API" || info["version"] == "" || info["version"] == "version not set" {
		t.Errorf("info = %v", info)
	}
	if servers, _ := doc["servers"].([]any); len(servers) == 0 {
		t.Error("no servers")
	}
	scheme := doc["components"].(map[string]any)["securitySchemes"].(map[string]any)[securityScheme].(map[string]any)
	if scheme["type"] != "http" || scheme["scheme"] != "bearer" {
		t.Errorf("security scheme %v, want http bearer", scheme)
	}
	ops := 0
	for path, item := range doc["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			ops++
			o := op.(map[string]any)
			sec, _ := o["security"].([]any)
			if len(sec) != 1 || sec[0].(map[string]any)[securityScheme] == nil {
				t.Errorf("%s %s: security %v, want the API key", method, path, o["security"])
			}
			def, _ := o["responses"].(map[string]any)["default"].(map[string]any)
			if !strings.Contains(mustJSON(def), "#/components/schemas/Status") {
				t.Errorf("%s %s: no error response", method, path)
			}
		}
	}
	if ops < 17 {
		t.Errorf("%d operations, want every RPC", ops)
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	for schema, field := range map[string]string{"ExchangeCodeRequest": "code", "ValidateTokenResponse": "valid", "Connection": "tenantId"} {
		req, _ := schemas[schema].(map[string]any)["required"].([]any)
		if !strings.Contains(mustJSON(req), `"`+field+`"`) {
			t.Errorf("%s.required = %v, want %s", schema, req, field)
		}
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// swagger-parser validates the document and openapi-typescript generates a
// client from it without a warning; the client type-checks with
// ValidateTokenResponse.valid as a required boolean.
func TestDocumentWithNodeTools(t *testing.T) {
	nm := testenv.NodeModules(t)
	abs, err := filepath.Abs(docPath)
	if err != nil {
		t.Fatal(err)
	}
	node := func(t *testing.T, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "NODE_PATH="+nm, "NO_COLOR=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	t.Run("swagger-parser", func(t *testing.T) {
		out := node(t, "node", "-e", `require("@apidevtools/swagger-parser").validate(process.argv[1]).then(a => console.log("valid " + a.openapi), e => { console.error(e.message); process.exit(1) })`, abs)
		if !strings.Contains(out, "valid 3.") {
			t.Fatalf("swagger-parser: %s", out)
		}
	})
	t.Run("openapi-typescript", func(t *testing.T) {
		dir := t.TempDir()
		out := node(t, filepath.Join(nm, ".bin", "openapi-typescript"), abs, "-o", filepath.Join(dir, "ssogate.ts"))
		if regexp.MustCompile(`(?i)warn|⚠|error|✘`).MatchString(out) {
			t.Fatalf("openapi-typescript warned:\n%s", out)
		}
		use := `import type { components, paths } from "./ssogate";
type Validate = components["schemas"]["ValidateTokenResponse"];
const r: Validate = { valid: false, reason: "revoked" };
const valid: boolean = r.valid;
type StartLogin = paths["/v1/login:start"]["post"];
const body: StartLogin["requestBody"]["content"]["application/json"] = { connectionId: "acme" };
type Err = components["schemas"]["Status"];
const e: Err = { code: 9, status: "FAILED_PRECONDITION", message: "m", details: [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "CONNECTION_IN_TESTING" }] };
console.log(valid, body, e);
`
		if err := os.WriteFile(filepath.Join(dir, "use.ts"), []byte(use), 0o644); err != nil {
			t.Fatal(err)
		}
		node(t, filepath.Join(nm, ".bin", "tsc"), "--noEmit", "--strict", "--skipLibCheck", "--target", "es2020", "--module", "esnext", "--moduleResolution", "bundler", filepath.Join(dir, "use.ts"))
	})
}
