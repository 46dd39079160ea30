package saml

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkAgainstPython3SAML sets ValidateResponse beside python3-saml
// (OneLogin's toolkit on libxml2 and xmlsec1, Debian's
// python3-onelogin-saml2) on the same bytes: 5 KB and 50, 500 and 2,000
// Okta-style groups. Each round times one batch of python3-saml and then
// one batch of ours, both as process CPU time per validation (Python's
// measured inside its process, so interpreter start-up is not counted;
// ours includes the garbage collector), so load from other processes
// does not count; it reports the median over rounds and python/ours per
// size, with its lowest and highest round. It skips when /usr/bin/python3 lacks the toolkit.
//
//	go test ./saml -run '^$' -bench AgainstPython3SAML -benchtime 5x
func BenchmarkAgainstPython3SAML(b *testing.B) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import onelogin.saml2.response").Run(); err != nil {
		b.Skipf("python3-saml is not installed for %s (Debian: apt-get install python3-onelogin-saml2): %v", python, err)
	}
	f := newFixture(b, nil)
	sizes := []struct {
		name string
		form string
	}{
		{"5KB", f.issue(b, issue{requestID: f.pend("id-r"), session: smallSession()})},
		{"groups=50", f.oktaStyle(b, 50)},
		{"groups=500", f.oktaStyle(b, 500)},
		{"groups=2000", f.oktaStyle(b, 2000)},
	}
	dir := b.TempDir()
	var names []string
	for _, s := range sizes {
		names = append(names, s.name)
		if err := os.WriteFile(filepath.Join(dir, s.name+".b64"), []byte(s.form), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	certB64 := strings.Join(strings.Split(strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.idpCert.Raw}))), "\n"), "")
	params, err := json.Marshal(map[string]any{
		"now": testNow.Unix(), "sp_entity_id": f.sp.EntityID(), "acs_url": f.sp.ACSURL(),
		"host": "sso.example.com", "acs_path": "/saml/acme/acs", "idp_entity_id": testIdPEntityID,
		"idp_cert": certB64, "request_id": "id-r", "names": names,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "params.json"), params, 0o600); err != nil {
		b.Fatal(err)
	}
	const perRound = 20
	pyRounds := map[string][]float64{}
	ourRounds := map[string][]float64{}
	for b.Loop() {
		out, err := exec.Command(python, "testdata/python3saml_bench.py", dir, strconv.Itoa(perRound)).CombinedOutput()
		if err != nil {
			b.Fatalf("python3-saml: %v\n%s", err, out)
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			var name string
			var us float64
			var n int
			if _, err := fmt.Sscan(sc.Text(), &name, &us, &n); err != nil {
				b.Fatalf("python3-saml output %q: %v", sc.Text(), err)
			}
			pyRounds[name] = append(pyRounds[name], us)
		}
		for _, s := range sizes {
			start := processCPU(b)
			for range perRound {
				if _, err := f.sp.ValidateResponse(context.Background(), ResponseInput{SAMLResponse: s.form, Requests: nopStore{}, Replay: nopStore{}}); err != nil {
					b.Fatalf("ours, %s: %v", s.name, err)
				}
			}
			ourRounds[s.name] = append(ourRounds[s.name], float64((processCPU(b)-start).Microseconds())/perRound)
		}
	}
	for _, s := range sizes {
		py, ours := pyRounds[s.name], ourRounds[s.name]
		if len(py) != len(ours) || len(py) == 0 {
			b.Fatalf("%s: %d python rounds, %d of ours", s.name, len(py), len(ours))
		}
		ratios := make([]float64, len(py))
		for i := range py {
			ratios[i] = py[i] / ours[i]
		}
		slices.Sort(ratios)
		b.ReportMetric(median(py), s.name+"-python-µs")
		b.ReportMetric(median(ours), s.name+"-ours-µs")
		b.ReportMetric(median(ratios), s.name+"-python/ours")
		b.Logf("%s: python/ours %.2f (rounds %.2f–%.2f)", s.name, median(ratios), ratios[0], ratios[len(ratios)-1])
	}
}

// processCPU is the CPU time this process has used (user + system, every
// thread, the garbage collector's included).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
