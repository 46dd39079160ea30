package netguard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// fakeResolver answers every name from its table (a name missing is
// NXDOMAIN).
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestAllowed(t *testing.T) {
	refused := map[string][]string{
		"loopback":             {"127.0.0.1", "127.8.9.10", "::1"},
		"link-local":           {"169.254.169.254", "169.254.1.1", "fe80::1", "fe80::1%eth0"},
		"private":              {"10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.254", "192.168.1.1"},
		"cgnat":                {"100.64.0.1", "100.127.255.255"},
		"unique-local":         {"fd00::1", "fd12:3456::1", "fc00::1"},
		"ipv4-mapped":          {"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:192.168.0.1"},
		"ipv4-compatible":      {"::127.0.0.1", "::10.0.0.1", "::169.254.169.254"},
		"nat64 and 6to4":       {"64:ff9b::a00:1", "2002:7f00:1::1", "2002:a9fe:a9fe::1"},
		"multicast":            {"224.0.0.1", "239.255.255.250", "ff02::1", "ff05::2"},
		"unspecified":          {"0.0.0.0", "::", "0.1.2.3"},
		"broadcast + reserved": {"255.255.255.255", "240.0.0.1"},
		"documentation":        {"192.0.2.1", "198.51.100.7", "203.0.113.9", "2001:db8::1"},
	}
	for class, ips := range refused {
		for _, s := range ips {
			t.Run(class+"/"+s, func(t *testing.T) {
				ip, err := netip.ParseAddr(s)
				if err != nil {
					t.Fatal(err)
				}
				if Allowed(ip) {
					t.Errorf("Allowed(%s) = true, want refused (%s)", s, class)
				}
			})
		}
	}
	for _, s := range []string{"8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"} {
		if !Allowed(netip.MustParseAddr(s)) {
			t.Errorf("Allowed(%s) = false, want a public address admitted", s)
		}
	}
}

// tlsServer is an https server on loopback that answers 200 "ok".
func tlsServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	}
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func port(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	_, p, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func problem(t *testing.T, err error) string {
	t.Helper()
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *netguard.Error", err, err)
	}
	return fe.Problem
}

func TestFetchRefusesInternalTargets(t *testing.T) {
	srv := tlsServer(t, nil)
	p := port(t, srv)
	tlsConf := srv.Client().Transport.(*http.Transport).TLSClientConfig
	res := fakeResolver{
		"localhost.example.com":   {netip.MustParseAddr("127.0.0.1")},
		"metadata.example.com":    {netip.MustParseAddr("169.254.169.254")},
		"mapped.example.com":      {netip.MustParseAddr("::ffff:127.0.0.1")},
		"mixed.example.com":       {netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("127.0.0.1")},
		"uniquelocal.example.com": {netip.MustParseAddr("fd00::1")},
	}
	c := NewClient(Options{Resolver: res, TLSConfig: tlsConf, Timeout: 3 * time.Second})
	for _, u := range []string{
		"https://127.0.0.1:" + p + "/",
		"https://[::1]:" + p + "/",
		"https://[::ffff:127.0.0.1]:" + p + "/",
		"https://localhost.example.com:" + p + "/",
		"https://mapped.example.com:" + p + "/",
		"https://mixed.example.com:" + p + "/",
		"https://metadata.example.com/latest/meta-data/",
		"https://169.254.169.254/latest/meta-data/",
		"https://10.0.0.1/",
		"https://100.64.0.1/",
		"https://uniquelocal.example.com/",
		"https://[fd00::1]/",
		"https://0.0.0.0:" + p + "/",
	} {
		t.Run(u, func(t *testing.T) {
			_, err := Fetch(context.Background(), c, u, "", 1<<20)
			if got := problem(t, err); got != ProblemNotAllowed {
				t.Errorf("Fetch(%s) problem %q (%v), want %q", u, got, errors.Unwrap(err), ProblemNotAllowed)
			}
		})
	}
	// The same server is reachable when private targets are allowed: the
	// refusals above are the guard's, not a broken server's.
	body, err := Fetch(context.Background(), NewClient(Options{AllowPrivate: true, Resolver: res, TLSConfig: tlsConf}),
		"https://localhost.example.com:"+p+"/", "", 1<<20)
	if err != nil || string(body) != "ok" {
		t.Fatalf("AllowPrivate fetch: %q, %v", body, err)
	}
}

func TestFetchRefusesPlainHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	t.Cleanup(srv.Close)
	_, err := Fetch(context.Background(), NewClient(Options{}), srv.URL, "", 1<<20)
	if got := problem(t, err); got != ProblemPlainHTTP {
		t.Errorf("plain http: problem %q, want %q", got, ProblemPlainHTTP)
	}
	body, err := Fetch(context.Background(), NewClient(Options{AllowPrivate: true}), srv.URL, "", 1<<20)
	if err != nil || string(body) != "ok" {
		t.Fatalf("AllowPrivate plain http: %q, %v", body, err)
	}
}

// TestFetchRefusesRedirectToPrivate: a "public" server (one loopback port
// admitted by the test's address check) redirects to internal addresses;
// the guard refuses the second hop, by name or literal.
func TestFetchRefusesRedirectToPrivate(t *testing.T) {
	internal := tlsServer(t, nil)
	ip := port(t, internal)
	var target string
	public := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/self" {
			_, _ = w.Write([]byte("public ok"))
			return
		}
		http.Redirect(w, r, target, http.StatusFound)
	}))
	pp := port(t, public)
	o := Options{
		Resolver:  fakeResolver{"idp.example.com": {netip.MustParseAddr("127.0.0.1")}, "internal.example.com": {netip.MustParseAddr("127.0.0.1")}},
		TLSConfig: public.Client().Transport.(*http.Transport).TLSClientConfig,
		allow:     func(ap netip.AddrPort) bool { return ap.Port() == mustPort(pp) },
	}
	c := NewClient(o)
	if body, err := Fetch(context.Background(), c, "https://idp.example.com:"+pp+"/self", "", 1<<20); err != nil || string(body) != "public ok" {
		t.Fatalf("the admitted public server: %q, %v", body, err)
	}
	for _, tc := range []struct{ name, to, want string }{
		{"by name", "https://internal.example.com:" + ip + "/", ProblemNotAllowed},
		{"literal", "https://127.0.0.1:" + ip + "/", ProblemNotAllowed},
		{"metadata address", "https://169.254.169.254/", ProblemNotAllowed},
		{"plain http", "http://idp.example.com:" + pp + "/self", ProblemPlainHTTP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target = tc.to
			_, err := Fetch(context.Background(), c, "https://idp.example.com:"+pp+"/go", "", 1<<20)
			if got := problem(t, err); got != tc.want {
				t.Errorf("redirect to %s: problem %q (%v), want %q", tc.to, got, errors.Unwrap(err), tc.want)
			}
		})
	}
}

func mustPort(s string) uint16 {
	var p uint16
	for _, c := range s {
		p = p*10 + uint16(c-'0')
	}
	return p
}

// TestErrorsDoNotTellOpenFromClosed: the text a caller sees is the same
// for a port that listens (speaking no TLS) and one that does not, with
// and without AllowPrivate.
func TestErrorsDoNotTellOpenFromClosed(t *testing.T) {
	open, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { open.Close() })
	go func() {
		for {
			c, err := open.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
			c.Close()
		}
	}()
	closedLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := closedLis.Addr().String()
	closedLis.Close()
	for _, allow := range []bool{false, true} {
		c := NewClient(Options{AllowPrivate: allow, Timeout: 3 * time.Second})
		_, errOpen := Fetch(context.Background(), c, "https://"+open.Addr().String()+"/", "", 1<<20)
		_, errClosed := Fetch(context.Background(), c, "https://"+closed+"/", "", 1<<20)
		if errOpen == nil || errClosed == nil {
			t.Fatalf("AllowPrivate=%v: want both to fail: %v, %v", allow, errOpen, errClosed)
		}
		if errOpen.Error() != errClosed.Error() {
			t.Errorf("AllowPrivate=%v: open port says %q, closed port says %q", allow, errOpen, errClosed)
		}
		if strings.Contains(errOpen.Error(), "SSH") || strings.Contains(errOpen.Error(), "refused") {
			t.Errorf("error %q leaks detail", errOpen)
		}
	}
}

func TestFetchStatusAndSize(t *testing.T) {
	srv := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.Error(w, "<secret>internal body</secret>", http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte(strings.Repeat("x", 2048)))
	}))
	c := NewClient(Options{AllowPrivate: true, TLSConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig})
	_, err := Fetch(context.Background(), c, srv.URL+"/missing", "", 1<<20)
	if err == nil || err.Error() != "HTTP status 404" {
		t.Errorf("404: %v, want exactly %q", err, "HTTP status 404")
	}
	_, err = Fetch(context.Background(), c, srv.URL+"/big", "", 1024)
	if got := problem(t, err); !strings.HasPrefix(got, ProblemTooLarge) {
		t.Errorf("too large: %q", got)
	}
}

func TestFetchTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	t.Cleanup(func() { close(release) })
	c := NewClient(Options{AllowPrivate: true, Timeout: 200 * time.Millisecond, TLSConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig})
	_, err := Fetch(context.Background(), c, srv.URL, "", 1<<20)
	if got := problem(t, err); got != ProblemTimeout {
		t.Errorf("slow server: %q, want %q", got, ProblemTimeout)
	}
}
