package check

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/opencontainers/go-digest"
)

// offlineImages answers BuildKit's base-image lookups without a registry
// (CI has none): every base image is an empty linux/amd64 image with PATH
// set. The lint rules that read base images (e.g. UndefinedVar) see only
// that; the rest do not need them.
type offlineImages struct{}

func (offlineImages) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg := []byte(`{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},"rootfs":{"type":"layers","diff_ids":[]}}`)
	return ref, digest.FromBytes(cfg), cfg, nil
}

// TestDockerfile lints the Dockerfile with BuildKit's own checks (those of
// `docker build --check`) and ours.
func TestDockerfile(t *testing.T) {
	dt, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	src := llb.NewSourceMap(nil, "Dockerfile", "Dockerfile", dt)
	src.Definition = &llb.Definition{} // a source without an LLB definition: lint only
	res, err := dockerfile2llb.DockerfileLint(context.Background(), dt, dockerfile2llb.ConvertOpt{SourceMap: src, MetaResolver: offlineImages{}})
	if err != nil {
		t.Fatalf("lint: %v", err)
	}
	if res.Error != nil {
		t.Errorf("Dockerfile does not build: %s", res.Error.Message)
	}
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil && len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line)
		}
		t.Errorf("Dockerfile:%d: %s: %s (%s)", line, w.RuleName, w.Detail, w.URL)
	}

	ast, err := parser.Parse(strings.NewReader(string(dt)))
	if err != nil {
		t.Fatal(err)
	}
	stages, _, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range stages {
		if strings.HasSuffix(st.BaseName, ":latest") || !strings.Contains(st.BaseName, ":") && !strings.Contains(st.BaseName, "@") {
			t.Errorf("FROM %s: want a tag or digest, not latest", st.BaseName)
		}
	}
	final := stages[len(stages)-1]
	var user string
	labels := map[string]bool{}
	var healthcheck bool
	for _, cmd := range final.Commands {
		switch c := cmd.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.LabelCommand:
			for _, kv := range c.Labels {
				labels[kv.Key] = kv.Value != ""
			}
		case *instructions.HealthCheckCommand:
			healthcheck = len(c.Health.Test) > 0 && c.Health.Test[0] != "NONE"
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				t.Error("ENTRYPOINT in shell form: signals would go to the shell, not ssogate")
			}
		case *instructions.CmdCommand:
			if c.PrependShell {
				t.Error("CMD in shell form")
			}
		case *instructions.AddCommand:
			t.Errorf("ADD %v: use COPY", c.SourcePaths)
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("final stage runs as %q, want a non-root USER", user)
	}
	if !healthcheck {
		t.Error("final stage has no HEALTHCHECK")
	}
	for _, l := range []string{"org.opencontainers.image.source", "org.opencontainers.image.licenses", "org.opencontainers.image.version"} {
		if !labels[l] {
			t.Errorf("final stage lacks LABEL %s", l)
		}
	}
}
