package loadtest

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestCodeFrom: the code is taken only from a redirect to our return_to
// that carries our state.
func TestCodeFrom(t *testing.T) {
	for _, tc := range []struct{ location, code, reason string }{
		{returnURL + "?code=c1&state=s", "c1", ""},
		{returnURL + "?state=s", "", "NO_CODE"},
		{returnURL + "?code=c1&state=other", "", "STATE_MISMATCH"},
		{"https://evil.example/callback?code=c1&state=s", "", "REDIRECT_NOT_RETURN_TO"},
		{returnURL + "-x?code=c1&state=s", "", "REDIRECT_NOT_RETURN_TO"},
		{"", "", "REDIRECT_NOT_RETURN_TO"},
	} {
		code, reason := codeFrom(tc.location, "s")
		if code != tc.code || reason != tc.reason {
			t.Errorf("%q: code %q reason %q, want %q %q", tc.location, code, reason, tc.code, tc.reason)
		}
	}
}

// TestReasonsBounded: a step keeps at most maxReasons distinct reasons;
// the rest are counted under OTHER, none lost.
func TestReasonsBounded(t *testing.T) {
	s := &stepStats{reasons: map[string]uint64{}}
	for i := range 3 * maxReasons {
		s.fail(fmt.Sprintf("R%d", i))
	}
	s.fail("R0")
	if len(s.reasons) != maxReasons+1 || s.reasons["OTHER"] != 2*maxReasons || s.reasons["R0"] != 2 || s.errs != 3*maxReasons+1 {
		t.Errorf("%d reasons, OTHER %d, R0 %d, errors %d", len(s.reasons), s.reasons["OTHER"], s.reasons["R0"], s.errs)
	}
}

// TestParseRedirectBoundsInflation: a SAMLRequest that inflates past the
// bound is refused, not read whole.
func TestParseRedirectBoundsInflation(t *testing.T) {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	w.Write([]byte(`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x" ` + strings.Repeat(" ", maxAuthnRequestBytes) + `/>`))
	w.Close()
	u := "https://idp.loadtest.invalid/sso?SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(buf.Bytes()))
	if _, err := (&IdP{}).ParseRedirect(u); err == nil || !strings.Contains(err.Error(), "inflates beyond") {
		t.Errorf("err = %v", err)
	}
}
