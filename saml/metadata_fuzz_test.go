package saml

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseIdPMetadata feeds metadata shapes to the parser: it must never
// panic, and whatever it accepts must be usable (an entity ID, at least
// one SSO endpoint, at least one certificate).
func FuzzParseIdPMetadata(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "metadata", "*.xml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "")
		f.Add(b, "https://idp.uni.example/idp/shibboleth")
	}
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>`), "")
	f.Add([]byte(`<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"><md:EntitiesDescriptor/></md:EntitiesDescriptor>`), "x")
	f.Fuzz(func(t *testing.T, data []byte, entityID string) {
		idp, err := ParseIdPMetadataAt(data, entityID, metadataNow)
		if err != nil {
			return
		}
		if idp.EntityID == "" || (idp.SSORedirectURL == "" && idp.SSOPostURL == "") || len(idp.Certificates) == 0 {
			t.Fatalf("accepted unusable metadata: %+v", idp)
		}
		if want := strings.TrimSpace(entityID); want != "" && idp.EntityID != want {
			t.Fatalf("asked for %q, got %q", entityID, idp.EntityID)
		}
	})
}
