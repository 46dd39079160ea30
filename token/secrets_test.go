package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// secretForms are the encodings in which a secret could leak.
func secretForms(name string, secret []byte) map[string]string {
	return map[string]string{
		name + " base64":    base64.StdEncoding.EncodeToString(secret),
		name + " base64url": base64.RawURLEncoding.EncodeToString(secret),
		name + " hex":       hex.EncodeToString(secret),
	}
}

// privateForms lists the private key's PKCS #8 DER and its secret scalar
// or seed in each encoding.
func privateForms(t *testing.T, k *loadedKey) map[string]string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k.signer)
	if err != nil {
		t.Fatal(err)
	}
	forms := secretForms("PKCS#8", der)
	var scalar []byte
	switch p := k.signer.(type) {
	case *ecdsa.PrivateKey:
		if scalar, err = p.Bytes(); err != nil {
			t.Fatal(err)
		}
	case ed25519.PrivateKey:
		scalar = p.Seed()
	case *rsa.PrivateKey:
		scalar = p.D.Bytes()
	}
	for k, v := range secretForms("private scalar", scalar) {
		forms[k] = v
	}
	return forms
}

// TestNoKeyMaterialInErrorsOrLogs drives every path that reports errors
// or logs (rotation, a wrong KEK, rejections, refresh failures) and looks
// for the private keys and the KEK in what came out.
func TestNoKeyMaterialInErrorsOrLogs(t *testing.T) {
	for _, alg := range supportedAlgorithms {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, alg)
			var out []string
			note := func(err error) {
				if err != nil {
					out = append(out, err.Error())
				}
			}
			first := f.signingKey(t)
			secrets := privateForms(t, first)
			for k, v := range secretForms("KEK", f.kek) {
				secrets[k] = v
			}

			// Rotation with its log lines, through a handover and a removal.
			f.clock.Set(first.RetireAt.Add(-DefaultPublishLead))
			note(f.set.Rotate(ctx))
			info, err := f.set.RotateNow(ctx)
			note(err)
			f.clock.Set(info.ActivateAt)
			note(f.set.Rotate(ctx))
			for k, v := range privateForms(t, f.signingKey(t)) {
				secrets["successor "+k] = v
			}
			f.clock.Advance(time.Hour)
			note(f.set.Rotate(ctx))

			// A replica with a wrong KEK, reloading and maintaining.
			wrong := make([]byte, KEKSize)
			bad, badLogs := f.replica(t, alg, wrong)
			note(bad.Reload(ctx))
			mctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
			t.Cleanup(cancel)
			note(bad.Maintain(mctx, time.Millisecond))

			// Rejected tokens and refresh tokens.
			tok, _ := f.mint(t)
			_, err = f.iss.Verify(ctx, tok[:len(tok)-2]+"xx")
			note(err)
			_, err = f.iss.Verify(ctx, strings.Replace(tok, ".", "x.", 1))
			note(err)
			f.refresh.addSession("sess-1", f.clock.Now().Add(time.Hour))
			rt, err := f.iss.IssueRefreshToken(ctx, "sess-1", f.clock.Now().Add(time.Hour))
			note(err)
			_, err = f.iss.RotateRefreshToken(ctx, rt.Token)
			note(err)
			_, err = f.iss.RotateRefreshToken(ctx, rt.Token)
			note(err)
			secrets["refresh token"] = rt.Token

			all := strings.Join(out, "\n") + "\n" + f.logs.String() + "\n" + badLogs.String()
			if !strings.Contains(all, "wrong key-encryption key?") || !strings.Contains(all, "signing key published ahead of use") {
				t.Fatalf("the test did not capture the expected errors and logs:\n%s", all)
			}
			for name, s := range secrets {
				if strings.Contains(all, s) {
					t.Errorf("%s appears in errors or logs", name)
				}
			}
		})
	}
}
