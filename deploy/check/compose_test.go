package check

import (
	"context"
	"slices"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
)

// TestCompose loads compose.yaml as docker compose would (compose-go,
// validated against the Compose specification's schema) and checks the
// shape: PostgreSQL, two ssogate replicas on it, a proxy in front.
func TestCompose(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{"../../compose.yaml"},
		cli.WithWorkingDirectory("../.."),
		cli.WithEnv([]string{"SSOGATE_KEK=dGVzdC1rZWstMzItYnl0ZXMtbG9uZy0tLS0tLS0tLS0="}),
		cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	names := p.ServiceNames()
	slices.Sort(names)
	if want := []string{"postgres", "proxy", "ssogate-1", "ssogate-2"}; !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	for _, name := range []string{"ssogate-1", "ssogate-2"} {
		s := p.Services[name]
		if s.Environment["SSOGATE_STORE"] == nil || s.Environment["SSOGATE_KEK"] == nil {
			t.Errorf("%s lacks SSOGATE_STORE or SSOGATE_KEK", name)
		}
		if _, ok := s.DependsOn["postgres"]; !ok {
			t.Errorf("%s does not wait for postgres", name)
		}
		if s.HealthCheck == nil || s.StopGracePeriod == nil || !s.ReadOnly {
			t.Errorf("%s: want a healthcheck, a stop grace period and a read-only root", name)
		}
	}
	if len(p.Services["proxy"].Ports) == 0 {
		t.Error("the proxy publishes no port")
	}
	if _, err := p.MarshalYAML(); err != nil {
		t.Fatal(err)
	}
}

// Without a KEK, compose refuses to start rather than run with none.
func TestComposeNeedsKEK(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{"../../compose.yaml"}, cli.WithWorkingDirectory("../.."), cli.WithEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := opts.LoadProject(context.Background()); err == nil {
		t.Fatal("compose.yaml loaded without SSOGATE_KEK")
	}
}
