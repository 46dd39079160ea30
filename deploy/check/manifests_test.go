package check

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// kinds are the objects the chart may render, by apiVersion/kind.
var kinds = map[string]func() any{
	"apps/v1/Deployment":                 func() any { return &appsv1.Deployment{} },
	"v1/Service":                         func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                  func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                       func() any { return &corev1.ConfigMap{} },
	"policy/v1/PodDisruptionBudget":      func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy": func() any { return &networkingv1.NetworkPolicy{} },
}

// manifestFiles are the files named by SSOGATE_MANIFESTS (space-separated
// files or folders; CI passes freshly rendered charts) or, by default, the
// committed deploy/kubernetes/.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	roots := strings.Fields(os.Getenv("SSOGATE_MANIFESTS"))
	if len(roots) == 0 {
		roots = []string{"../kubernetes"}
	}
	var files []string
	for _, r := range roots {
		fi, err := os.Stat(r)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() {
			files = append(files, r)
			continue
		}
		m, _ := filepath.Glob(filepath.Join(r, "*.yaml"))
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatalf("no manifests under %v", roots)
	}
	return files
}

type object struct {
	file string
	kind string
	obj  any
	meta metav1.ObjectMeta
}

func decodeAll(t *testing.T, file string) []object {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []object
	for i, doc := range bytes.Split(data, []byte("\n---")) {
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Errorf("%s document %d: not YAML: %v", file, i, err)
			continue
		}
		if string(js) == "null" {
			continue // empty document (comments only)
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			t.Errorf("%s document %d: %v", file, i, err)
			continue
		}
		key := tm.APIVersion + "/" + tm.Kind
		mk, ok := kinds[key]
		if !ok {
			t.Errorf("%s document %d: unexpected kind %s", file, i, key)
			continue
		}
		// As the API server decodes: field names case-sensitive, no
		// unknown or duplicate fields.
		obj := mk()
		strict, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowUnknownFields, kjson.DisallowDuplicateFields)
		if err != nil {
			t.Errorf("%s: %s: %v", file, key, err)
			continue
		}
		for _, e := range strict {
			t.Errorf("%s: %s: %v", file, key, e)
		}
		var meta struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		_ = json.Unmarshal(js, &meta)
		out = append(out, object{file: file, kind: tm.Kind, obj: obj, meta: meta.Metadata})
	}
	return out
}

func TestKubernetesManifests(t *testing.T) {
	for _, file := range manifestFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			objs := decodeAll(t, file)
			var deploy *appsv1.Deployment
			for _, o := range objs {
				checkMeta(t, o)
				if d, ok := o.obj.(*appsv1.Deployment); ok {
					deploy = d
				}
			}
			if deploy == nil {
				t.Fatal("no Deployment")
			}
			ports := checkDeployment(t, deploy)
			for _, o := range objs {
				switch v := o.obj.(type) {
				case *corev1.Service:
					for _, p := range v.Spec.Ports {
						if p.TargetPort.StrVal != "" && !ports[p.TargetPort.StrVal] {
							t.Errorf("Service port %s targets %q, which no container port is named", p.Name, p.TargetPort.StrVal)
						}
					}
					wantSelects(t, "Service", v.Spec.Selector, deploy)
				case *policyv1.PodDisruptionBudget:
					wantSelects(t, "PodDisruptionBudget", v.Spec.Selector.MatchLabels, deploy)
					if v.Spec.MinAvailable == nil && v.Spec.MaxUnavailable == nil {
						t.Error("PodDisruptionBudget sets neither minAvailable nor maxUnavailable")
					}
				case *networkingv1.NetworkPolicy:
					wantSelects(t, "NetworkPolicy", v.Spec.PodSelector.MatchLabels, deploy)
					for _, rule := range v.Spec.Ingress {
						for _, p := range rule.Ports {
							if p.Port != nil && p.Port.StrVal != "" && !ports[p.Port.StrVal] {
								t.Errorf("NetworkPolicy admits port %q, which no container port is named", p.Port.StrVal)
							}
						}
					}
				}
			}
		})
	}
}

func checkMeta(t *testing.T, o object) {
	t.Helper()
	for _, msg := range validation.IsDNS1123Subdomain(o.meta.Name) {
		t.Errorf("%s name %q: %s", o.kind, o.meta.Name, msg)
	}
	for k, v := range o.meta.Labels {
		for _, msg := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
			t.Errorf("%s label %s=%s: %s", o.kind, k, v, msg)
		}
	}
}

func wantSelects(t *testing.T, what string, sel map[string]string, d *appsv1.Deployment) {
	t.Helper()
	if len(sel) == 0 {
		t.Errorf("%s selects every pod", what)
	}
	for k, v := range sel {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("%s selects %s=%s, which the pods do not carry", what, k, v)
		}
	}
}

// checkDeployment checks what a rolling update and a hardened pod need,
// and returns the named container ports.
func checkDeployment(t *testing.T, d *appsv1.Deployment) map[string]bool {
	t.Helper()
	wantSelects(t, "Deployment", d.Spec.Selector.MatchLabels, d)
	pod := d.Spec.Template.Spec
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	ports := map[string]bool{}
	if len(pod.Containers) == 0 {
		t.Fatal("no containers")
	}
	for _, c := range pod.Containers {
		if c.Image == "" || strings.HasSuffix(c.Image, ":latest") {
			t.Errorf("container %s image %q: want a tag or digest, not latest", c.Name, c.Image)
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: want readOnlyRootFilesystem and no privilege escalation", c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			t.Errorf("container %s: no CPU or memory request", c.Name)
		}
		for _, p := range c.Ports {
			ports[p.Name] = true
		}
		for what, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
			if p == nil || p.HTTPGet == nil {
				t.Errorf("container %s: no HTTP %s probe", c.Name, what)
				continue
			}
			want := map[string]string{"readiness": "/readyz", "liveness": "/healthz"}[what]
			if p.HTTPGet.Path != want || !ports[p.HTTPGet.Port.StrVal] {
				t.Errorf("container %s %s probe %s on port %v, want %s on a named port", c.Name, what, p.HTTPGet.Path, p.HTTPGet.Port.String(), want)
			}
		}
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
			t.Errorf("container %s has a preStop hook: shutdown_delay does its work", c.Name)
		}
		// The grace period must cover shutdown_delay + shutdown_timeout.
		var total time.Duration
		for _, e := range c.Env {
			if e.Name == "SSOGATE_SHUTDOWN_DELAY" || e.Name == "SSOGATE_SHUTDOWN_TIMEOUT" {
				d, err := time.ParseDuration(e.Value)
				if err != nil {
					t.Errorf("%s=%q: %v", e.Name, e.Value, err)
				}
				total += d
			}
		}
		grace := time.Duration(30) * time.Second
		if pod.TerminationGracePeriodSeconds != nil {
			grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
		}
		if total == 0 || grace <= total {
			t.Errorf("terminationGracePeriodSeconds %s does not exceed shutdown_delay + shutdown_timeout = %s", grace, total)
		}
	}
	if len(ports) == 0 {
		t.Error("no named container ports")
	}
	return ports
}
