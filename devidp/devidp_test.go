package devidp

import (
	"encoding/base64"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/crewjam/saml"
)

func TestMetadataPublishesSigningCertificate(t *testing.T) {
	idp, err := New("http://127.0.0.1:1/idp", DefaultUsers, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := idp.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(raw, &ed); err != nil {
		t.Fatalf("metadata does not parse: %v", err)
	}
	if ed.EntityID != "http://127.0.0.1:1/idp/metadata" {
		t.Errorf("entityID = %q", ed.EntityID)
	}
	want := base64.StdEncoding.EncodeToString(idp.Certificate.Raw)
	if !strings.Contains(strings.Join(strings.Fields(string(raw)), ""), want) {
		t.Error("metadata lacks the signing certificate")
	}
	if len(ed.IDPSSODescriptors) != 1 || len(ed.IDPSSODescriptors[0].SingleSignOnServices) == 0 {
		t.Fatalf("metadata has no SSO service: %+v", ed.IDPSSODescriptors)
	}
}

func TestAdminRoutesAreNotExposed(t *testing.T) {
	idp, err := New("http://127.0.0.1:1/idp", DefaultUsers, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/users/", "/users/alice", "/services/", "/sessions/"} {
		rec := httptest.NewRecorder()
		idp.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, rec.Code)
		}
	}
}

func TestStaleMetadataNamesAnotherCertificate(t *testing.T) {
	idp, err := New("http://127.0.0.1:1/idp", DefaultUsers, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := idp.StaleMetadata()
	if err != nil {
		t.Fatal(err)
	}
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(raw, &ed); err != nil {
		t.Fatalf("stale metadata does not parse: %v", err)
	}
	if strings.Contains(string(raw), base64.StdEncoding.EncodeToString(idp.Certificate.Raw)) ||
		!strings.Contains(string(raw), base64.StdEncoding.EncodeToString(idp.stale.Raw)) {
		t.Error("stale metadata still names the signing certificate, or not the retired one")
	}
}
