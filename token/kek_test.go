package token

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseKEK(t *testing.T) {
	kek := bytes.Repeat([]byte{0xfb, 0xef, 0x01}, 11)[:KEKSize]
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"hex", hex.EncodeToString(kek), true},
		{"hex upper with newline", strings.ToUpper(hex.EncodeToString(kek)) + "\n", true},
		{"base64", base64.StdEncoding.EncodeToString(kek), true},
		{"base64 unpadded", base64.RawStdEncoding.EncodeToString(kek), true},
		{"base64url", base64.URLEncoding.EncodeToString(kek), true},
		{"base64url unpadded", base64.RawURLEncoding.EncodeToString(kek), true},
		{"empty", "  ", false},
		{"16 bytes", base64.StdEncoding.EncodeToString(kek[:16]), false},
		{"33 bytes", base64.StdEncoding.EncodeToString(append(kek, 0)), false},
		{"not an encoding", "correct horse battery staple!!", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKEK(tc.in)
			if !tc.ok {
				if err == nil {
					t.Fatal("accepted")
				}
				if s := strings.TrimSpace(tc.in); s != "" && strings.Contains(err.Error(), s) {
					t.Fatalf("error repeats the input: %v", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, kek) {
				t.Fatalf("ParseKEK = %x, %v", got, err)
			}
		})
	}
}

func TestLoadKEK(t *testing.T) {
	kek, encoded, err := GenerateKEK(nil)
	if err != nil || len(kek) != KEKSize {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	textFile := write("kek.txt", []byte(encoded+"\n"))
	rawFile := write("kek.bin", kek)
	badFile := write("bad.txt", []byte("short\n"))

	tests := []struct {
		name, value, path string
		want              string // error substring; "" for success
	}{
		{"env", encoded, "", ""},
		{"text file", "", textFile, ""},
		{"raw file", "", rawFile, ""},
		{"both", encoded, textFile, "both"},
		{"neither", "", "", "no key-encryption key"},
		{"bad env", "short", "", KEKEnv},
		{"bad file", "", badFile, badFile},
		{"missing file", "", filepath.Join(dir, "nope"), "key-encryption key file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := LoadKEK(tc.value, tc.path)
			if tc.want == "" {
				if err != nil || !bytes.Equal(got, kek) {
					t.Fatalf("LoadKEK = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadKEK error = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), encoded) {
				t.Fatal("error contains the key")
			}
		})
	}
}

func TestSealKeyRoundTrip(t *testing.T) {
	kek, _, _ := GenerateKEK(nil)
	other, _, _ := GenerateKEK(nil)
	key, err := generateKey(ES256, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := SealKey(kek, "sp-1", "saml-sp", key, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenKey(kek, "sp-1", "saml-sp", sealed, key.Public())
	if err != nil || !got.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
		t.Fatalf("round trip: %v", err)
	}
	for name, open := range map[string]func() error{
		"wrong kek":  func() error { _, err := OpenKey(other, "sp-1", "saml-sp", sealed, key.Public()); return err },
		"other id":   func() error { _, err := OpenKey(kek, "sp-2", "saml-sp", sealed, key.Public()); return err },
		"other kind": func() error { _, err := OpenKey(kek, "sp-1", "ES256", sealed, key.Public()); return err },
	} {
		if err := open(); !errors.Is(err, ErrWrongKEK) {
			t.Errorf("%s: %v, want ErrWrongKEK", name, err)
		}
	}
}
