package server

import (
	"cmp"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/saml"
	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/token"
)

// A connection's own SP keys live in the signing-key table beside the
// shared credential (spcreds.go), sealed the same way. A row's id is
// saml-sp:{connection}:{incarnation}:{random}, where the incarnation is
// the connection's create time, so that keys left by a deleted connection
// never serve a new one of the same id; its algorithm is saml-sp-{use}
// (both, signing or encryption), bound into the seal.
//
// Rows are never changed: a key's ActivateAt is its transition time. At
// any instant the current key of a use is the one of that use activated
// last; one activating later is NEXT (published, decrypting, not yet
// signing); one replaced by a later current key is retired and serves no
// more. Every replica computes this from the rows and its clock, so they
// agree without a background job, and the registry rebuilds a
// connection's SP when its version changes (a rotation bumps it) or when
// the next transition time passes.
const (
	spKeyIDPrefix       = "saml-sp:"
	spKeyAlgPrefix      = "saml-sp-"
	defaultSPKeyOverlap = 30 * 24 * time.Hour
	maxSPKeyOverlap     = 365 * 24 * time.Hour
	minSPKeyBits        = 2048
	// reasonSPKeyRotationPending refuses a rotation while another one of
	// the same use has not reached its transition time.
	reasonSPKeyRotationPending = "SP_KEY_ROTATION_PENDING"
)

var spKeyUses = map[ssogatev1.ServiceProviderKeyUse]string{
	ssogatev1.ServiceProviderKeyUse_SERVICE_PROVIDER_KEY_USE_UNSPECIFIED: "both",
	ssogatev1.ServiceProviderKeyUse_SERVICE_PROVIDER_KEY_USE_SIGNING:     "signing",
	ssogatev1.ServiceProviderKeyUse_SERVICE_PROVIDER_KEY_USE_ENCRYPTION:  "encryption",
}

// isSPKeyAlgorithm tells the SAML keys (shared and per connection) from
// token signing keys.
func isSPKeyAlgorithm(alg string) bool {
	return alg == spCredentialAlgorithm || strings.HasPrefix(alg, spKeyAlgPrefix)
}

// spKey is one SP key: a connection's own, or the shared credential.
type spKey struct {
	id       string
	alg      string
	use      ssogatev1.ServiceProviderKeyUse
	cert     *x509.Certificate
	sealed   []byte
	activate time.Time
	shared   bool
	priv     *rsa.PrivateKey // the shared key's; own keys are opened on use
}

func (k *spKey) signs() bool {
	return k.use != ssogatev1.ServiceProviderKeyUse_SERVICE_PROVIDER_KEY_USE_ENCRYPTION
}

func (k *spKey) decrypts() bool {
	return k.use != ssogatev1.ServiceProviderKeyUse_SERVICE_PROVIDER_KEY_USE_SIGNING
}

// incarnation names one life of a connection id: its create time.
func incarnation(c *ssogatev1.Connection) string {
	return strconv.FormatInt(c.GetCreateTime().AsTime().UnixNano(), 10)
}

func spKeyOwner(c *ssogatev1.Connection) string { return c.GetId() + ":" + incarnation(c) }

// parseSPKeyRow reads one stored own key; ok is false for any other row.
func parseSPKeyRow(row store.SigningKey) (owner string, k *spKey, ok bool) {
	rest, found := strings.CutPrefix(row.ID, spKeyIDPrefix)
	if !found || !strings.HasPrefix(row.Algorithm, spKeyAlgPrefix) {
		return "", nil, false
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 3 {
		return "", nil, false
	}
	use, known := ssogatev1.ServiceProviderKeyUse(-1), false
	for u, name := range spKeyUses {
		if row.Algorithm == spKeyAlgPrefix+name {
			use, known = u, true
		}
	}
	cert, err := x509.ParseCertificate(row.PublicJWK)
	if !known || err != nil {
		return "", nil, false
	}
	return parts[0] + ":" + parts[1], &spKey{id: row.ID, alg: row.Algorithm, use: use, cert: cert, sealed: row.PrivateSealed, activate: row.ActivateAt}, true
}

// listSPKeys reads every connection's own keys, by owner (spKeyOwner),
// oldest transition first.
func (s *Server) listSPKeys(ctx context.Context) (map[string][]*spKey, error) {
	rows, err := s.store.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list SP keys: %w", err)
	}
	out := map[string][]*spKey{}
	for _, row := range rows {
		if owner, k, ok := parseSPKeyRow(row); ok {
			out[owner] = append(out[owner], k)
		}
	}
	for _, keys := range out {
		slices.SortStableFunc(keys, func(a, b *spKey) int { return cmp.Or(a.activate.Compare(b.activate), strings.Compare(a.id, b.id)) })
	}
	return out, nil
}

// ownSPKeys reads one connection's own keys.
func (s *Server) ownSPKeys(ctx context.Context, c *ssogatev1.Connection) ([]*spKey, error) {
	all, err := s.listSPKeys(ctx)
	if err != nil {
		return nil, err
	}
	return all[spKeyOwner(c)], nil
}

func (s *Server) sharedSPKey() *spKey {
	if s.spCreds == nil {
		return nil
	}
	return &spKey{id: spCredentialID, alg: spCredentialAlgorithm, cert: s.spCreds.signingCert, shared: true, priv: s.spCreds.decryptKey,
		use: ssogatev1.ServiceProviderKeyUse_SERVICE_PROVIDER_KEY_USE_UNSPECIFIED}
}

// spKeyState is which keys serve a connection at one instant.
type spKeyState struct {
	sign, enc         *spKey // current; the shared key unless the connection has its own
	nextSign, nextEnc *spKey // published ahead of their transition time
	// until is the next transition time; zero when none is pending.
	until time.Time
}

func (s *Server) spKeyStateAt(own []*spKey, now time.Time) spKeyState {
	shared := s.sharedSPKey()
	st := spKeyState{sign: shared, enc: shared}
	for _, k := range own {
		if !k.activate.After(now) {
			if k.signs() {
				st.sign = k
			}
			if k.decrypts() {
				st.enc = k
			}
			continue
		}
		if k.signs() && st.nextSign == nil {
			st.nextSign = k
		}
		if k.decrypts() && st.nextEnc == nil {
			st.nextEnc = k
		}
		if st.until.IsZero() || k.activate.Before(st.until) {
			st.until = k.activate
		}
	}
	return st
}

// publishesEncryptionKey: SP metadata offers an encryption key only when
// the connection wants encrypted assertions or asks for it, since some IdPs
// (crewjam's among them) encrypt whenever metadata offers a key, with
// defaults of their own.
func publishesEncryptionKey(c *ssogatev1.Connection) bool {
	return c.GetWantEncryptedAssertions() || c.GetPublishEncryptionKey()
}

// open returns the key's private half.
func (s *Server) openSPKey(k *spKey) (*rsa.PrivateKey, error) {
	if k.priv != nil {
		return k.priv, nil
	}
	if s.spCreds == nil {
		return nil, errors.New("no key-encryption key")
	}
	signer, err := token.OpenKey(s.spCreds.kek, k.id, k.alg, k.sealed, k.cert.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("SP key %s: %w", k.id, err)
	}
	priv, ok := signer.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("SP key %s is %T, want RSA", k.id, signer)
	}
	k.priv = priv
	return priv, nil
}

// applySPKeys puts the keys of st into a connection's SAML settings.
func (s *Server) applySPKeys(cfg *saml.Config, st spKeyState, publishEnc bool) error {
	cfg.SigningKey, cfg.SigningCert, cfg.DecryptionKey, cfg.EncryptionCert = nil, nil, nil, nil
	if st.sign != nil {
		priv, err := s.openSPKey(st.sign)
		if err != nil {
			return err
		}
		cfg.SigningKey, cfg.SigningCert = priv, st.sign.cert
	}
	if st.nextSign != nil {
		cfg.NextSigningCert = st.nextSign.cert
	}
	if st.enc != nil {
		priv, err := s.openSPKey(st.enc)
		if err != nil {
			return err
		}
		cfg.DecryptionKey = priv
		if publishEnc {
			cfg.EncryptionCert = st.enc.cert
		}
	}
	if st.nextEnc != nil {
		priv, err := s.openSPKey(st.nextEnc)
		if err != nil {
			return err
		}
		cfg.DecryptionKeys = append(cfg.DecryptionKeys, saml.DecryptionKey{Key: priv, Cert: st.nextEnc.cert})
		if publishEnc {
			cfg.NextEncryptionCert = st.nextEnc.cert
		}
	}
	return nil
}

// spCertificates lists what the connection's SP metadata publishes: one
// entry per key and state, its use UNSPECIFIED when metadata offers it for
// both signing and encryption.
func spCertificates(st spKeyState, publishEnc bool) []*ssogatev1.ServiceProviderCertificate {
	type entry struct {
		k     *spKey
		use   ssogatev1.ServiceProviderKeyUse
		state ssogatev1.ServiceProviderKeyState
	}
	cur, next := ssogatev1.ServiceProviderKeyState_SERVICE_PROVIDER_KEY_STATE_CURRENT, ssogatev1.ServiceProviderKeyState_SERVICE_PROVIDER_KEY_STATE_NEXT
	signing, encryption := ssogatev1.ServiceProviderKeyUse_SERVICE_PROVIDER_KEY_USE_SIGNING, ssogatev1.ServiceProviderKeyUse_SERVICE_PROVIDER_KEY_USE_ENCRYPTION
	entries := []entry{{st.sign, signing, cur}, {st.nextSign, signing, next}}
	if publishEnc {
		entries = append(entries, entry{st.enc, encryption, cur}, entry{st.nextEnc, encryption, next})
	}
	var out []*ssogatev1.ServiceProviderCertificate
	for _, e := range entries {
		if e.k == nil || e.k.cert == nil {
			continue
		}
		if i := slices.IndexFunc(out, func(c *ssogatev1.ServiceProviderCertificate) bool { return c.KeyId == e.k.id && c.State == e.state }); i >= 0 {
			out[i].Use = ssogatev1.ServiceProviderKeyUse_SERVICE_PROVIDER_KEY_USE_UNSPECIFIED
			continue
		}
		c := &ssogatev1.ServiceProviderCertificate{KeyId: e.k.id, Use: e.use, State: e.state,
			Pem:      string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.k.cert.Raw})),
			NotAfter: timestamppb.New(e.k.cert.NotAfter), Sha256Fingerprint: fingerprint(e.k.cert.Raw), Shared: e.k.shared}
		if e.state == next {
			c.TransitionTime = timestamppb.New(e.k.activate)
		}
		out = append(out, c)
	}
	return out
}

// withSPCertificates fills out's ServiceProviderInfo.certificates from the
// connection's own keys (own) at the current time.
func (s *Server) withSPCertificates(out *ssogatev1.Connection, own []*spKey) *ssogatev1.Connection {
	if out.ServiceProvider == nil {
		out.ServiceProvider = &ssogatev1.ServiceProviderInfo{}
	}
	out.ServiceProvider.Certificates = spCertificates(s.spKeyStateAt(own, s.now()), publishesEncryptionKey(out))
	return out
}

// parseSPKeyPair reads an imported SP key and its certificate: PEM, the
// key PKCS#8 or PKCS#1 RSA of at least 2048 bits, the certificate of that
// key. Errors name the field and never echo key material.
func parseSPKeyPair(keyPEM, certPEM, keyField, certField string) (*rsa.PrivateKey, *x509.Certificate, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &fieldError{field, fmt.Sprintf(format, args...)})
	}
	var key *rsa.PrivateKey
	block, rest := pem.Decode([]byte(strings.TrimSpace(keyPEM)))
	switch {
	case block == nil:
		bad(keyField, "not a PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)")
	case len(strings.TrimSpace(string(rest))) > 0:
		bad(keyField, "holds more than one PEM block; give the private key alone")
	case block.Type == "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			bad(keyField, "the PKCS#1 RSA private key does not parse")
		}
		key = k
	case block.Type == "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			bad(keyField, "the PKCS#8 private key does not parse")
		} else if rk, ok := k.(*rsa.PrivateKey); ok {
			key = rk
		} else {
			bad(keyField, "the key is %s; SAML SP keys must be RSA", strings.TrimPrefix(fmt.Sprintf("%T", k), "*"))
		}
	case strings.Contains(block.Type, "ENCRYPTED"):
		bad(keyField, "the private key is encrypted; give it unencrypted (openssl pkey -in key.pem -out plain.pem)")
	default:
		bad(keyField, "a PEM %q block is not a private key; want PRIVATE KEY (PKCS#8) or RSA PRIVATE KEY (PKCS#1)", block.Type)
	}
	if key != nil && key.N.BitLen() < minSPKeyBits {
		bad(keyField, "the RSA key has %d bits; at least %d are required", key.N.BitLen(), minSPKeyBits)
		key = nil
	}
	cert, err := parseCertificatePEM(certPEM)
	if err != nil {
		bad(certField, "%v", err)
	}
	if key != nil && cert != nil && !key.PublicKey.Equal(cert.PublicKey) {
		bad(certField, "the certificate (SHA-256 %s) is not the certificate of the given private key", fingerprint(cert.Raw))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return key, cert, nil
}

// newSPKeyRow seals key for the connection: its own key of use, current
// at activate.
func (s *Server) newSPKeyRow(c *ssogatev1.Connection, use ssogatev1.ServiceProviderKeyUse, key *rsa.PrivateKey, cert *x509.Certificate, activate time.Time) (store.SigningKey, error) {
	if s.spCreds == nil {
		return store.SigningKey{}, errors.New("no key-encryption key")
	}
	b := make([]byte, 8)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return store.SigningKey{}, fmt.Errorf("SP key id: %w", err)
	}
	id := spKeyIDPrefix + spKeyOwner(c) + ":" + hex.EncodeToString(b)
	alg := spKeyAlgPrefix + spKeyUses[use]
	sealed, err := token.SealKey(s.spCreds.kek, id, alg, key, s.rand)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("seal SP key: %w", err)
	}
	now := s.now()
	return store.SigningKey{ID: id, Algorithm: alg, PublicJWK: cert.Raw, PrivateSealed: sealed,
		CreatedAt: now, PublishAt: now, ActivateAt: activate, ExpireAt: cert.NotAfter}, nil
}

// generateSPKey makes an RSA key and a self-signed certificate for a
// connection's own SP key.
func (s *Server) generateSPKey(c *ssogatev1.Connection) (*rsa.PrivateKey, *x509.Certificate, error) {
	return s.selfSignedSPKey(c.Id)
}

// selfSignedSPKey makes an RSA key of minSPKeyBits and its self-signed
// certificate (CN cn), valid for spCredentialLifetime: the deployment's
// shared SAML credential and a connection's generated SP keys alike.
func (s *Server) selfSignedSPKey(cn string) (*rsa.PrivateKey, *x509.Certificate, error) {
	key, err := rsa.GenerateKey(s.rand, minSPKeyBits)
	if err != nil {
		return nil, nil, fmt.Errorf("SP key: %w", err)
	}
	serial, err := randInt(s.rand)
	if err != nil {
		return nil, nil, err
	}
	now := s.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: []string{"ssogate SAML SP"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(spCredentialLifetime),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(s.rand, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("SP certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("SP certificate: %w", err)
	}
	return key, cert, nil
}

// deleteSPKeys removes every own key of connection id (all incarnations).
func (s *Server) deleteSPKeys(ctx context.Context, id string) error {
	rows, err := s.store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("list SP keys: %w", err)
	}
	for _, row := range rows {
		if owner, _, ok := parseSPKeyRow(row); ok && strings.HasPrefix(owner, id+":") {
			if err := s.store.DeleteSigningKey(ctx, row.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("delete SP key: %w", err)
			}
		}
	}
	return nil
}

// importSPKey is CreateConnection's part: a key given with the new
// connection becomes its own, current at once. It is stored before the
// connection, which then sees it from its first version; the returned
// undo removes it if the connection is not created.
func (s *Server) importSPKey(ctx context.Context, c *ssogatev1.Connection, req *ssogatev1.CreateConnectionRequest) (undo func(), err error) {
	if req.ServiceProviderPrivateKeyPem == "" && req.ServiceProviderCertificatePem == "" {
		return func() {}, nil
	}
	if req.ServiceProviderPrivateKeyPem == "" || req.ServiceProviderCertificatePem == "" {
		field := "service_provider_private_key_pem"
		if req.ServiceProviderCertificatePem == "" {
			field = "service_provider_certificate_pem"
		}
		return nil, badField(reasonFieldRequired, field, "service_provider_private_key_pem and service_provider_certificate_pem go together: give both or neither")
	}
	key, cert, err := parseSPKeyPair(req.ServiceProviderPrivateKeyPem, req.ServiceProviderCertificatePem,
		"service_provider_private_key_pem", "service_provider_certificate_pem")
	if err != nil {
		return nil, invalidFields(reasonConnectionInvalid, "", err, "connection_id", c.Id)
	}
	if c.CreateTime == nil {
		c.CreateTime = timestamppb.New(s.now())
	}
	row, err := s.newSPKeyRow(c, ssogatev1.ServiceProviderKeyUse_SERVICE_PROVIDER_KEY_USE_UNSPECIFIED, key, cert, s.now())
	if err != nil {
		return nil, internalError(err)
	}
	if err := s.store.PutSigningKey(ctx, row); err != nil {
		return nil, s.storeErr("SP key", err)
	}
	return func() {
		if err := s.store.DeleteSigningKey(context.WithoutCancel(ctx), row.ID); err != nil {
			s.log.WarnContext(ctx, "remove the SP key of a connection not created", "connection_id", c.Id, "error", err)
		}
	}, nil
}

// RotateServiceProviderKey gives the connection a new own key of one use
// (or both), NEXT for the overlap and CURRENT after it.
func (cs connectionService) RotateServiceProviderKey(ctx context.Context, req *ssogatev1.RotateServiceProviderKeyRequest) (*ssogatev1.RotateServiceProviderKeyResponse, error) {
	s := cs.s
	if req.ConnectionId == "" {
		return nil, badField(reasonFieldRequired, "connection_id", "connection_id is required")
	}
	if _, ok := spKeyUses[req.Use]; !ok {
		return nil, badField(reasonFieldInvalid, "use", fmt.Sprintf("use %d is not a ServiceProviderKeyUse", req.Use))
	}
	overlap := defaultSPKeyOverlap
	if req.Overlap != nil {
		if err := req.Overlap.CheckValid(); err != nil {
			return nil, badField(reasonFieldInvalid, "overlap", fmt.Sprintf("overlap: %v", err))
		}
		overlap = req.Overlap.AsDuration()
		if overlap < 0 || overlap > maxSPKeyOverlap {
			return nil, badField(reasonFieldInvalid, "overlap", fmt.Sprintf("overlap %v must be between 0 (the new key is current at once) and %v", overlap, maxSPKeyOverlap))
		}
	}
	if (req.PrivateKeyPem == "") != (req.CertificatePem == "") {
		field := "private_key_pem"
		if req.CertificatePem == "" {
			field = "certificate_pem"
		}
		return nil, badField(reasonFieldRequired, field, "private_key_pem and certificate_pem go together: give both to import a key, or neither to generate one")
	}
	cur, err := s.rpcConnection(ctx, req.ConnectionId)
	if err != nil {
		return nil, err
	}
	own, err := s.ownSPKeys(ctx, cur.msg)
	if err != nil {
		return nil, s.storeErr("SP keys", err)
	}
	now := s.now()
	st := s.spKeyStateAt(own, now)
	probe := &spKey{use: req.Use}
	for _, pending := range []*spKey{st.nextSign, st.nextEnc} {
		if pending != nil && ((probe.signs() && pending.signs()) || (probe.decrypts() && pending.decrypts())) {
			return nil, apiError(codes.FailedPrecondition, reasonSPKeyRotationPending, fmt.Sprintf("connection %q is already rotating its SP %s key: key %s becomes current at %s; "+
				"rotate again after that", cur.msg.Id, spKeyUses[pending.use], pending.id, pending.activate.UTC().Format(time.RFC3339)),
				"connection_id", cur.msg.Id, "key_id", pending.id, "transition_time", pending.activate.UTC().Format(time.RFC3339))
		}
	}
	var key *rsa.PrivateKey
	var cert *x509.Certificate
	if req.PrivateKeyPem != "" {
		if key, cert, err = parseSPKeyPair(req.PrivateKeyPem, req.CertificatePem, "private_key_pem", "certificate_pem"); err != nil {
			return nil, invalidFields(reasonConnectionInvalid, "", err, "connection_id", cur.msg.Id)
		}
	} else if key, cert, err = s.generateSPKey(cur.msg); err != nil {
		return nil, internalError(err)
	}
	row, err := s.newSPKeyRow(cur.msg, req.Use, key, cert, now.Add(overlap))
	if err != nil {
		return nil, internalError(err)
	}
	if err := s.store.PutSigningKey(ctx, row); err != nil {
		return nil, s.storeErr("SP key", err)
	}
	stored, err := s.bumpConnection(ctx, cur, map[string]any{"caller": caller(ctx), "fields": []string{"service_provider.certificates"},
		"sp_key_id": row.ID, "use": spKeyUses[req.Use], "transition_time": row.ActivateAt.UTC().Format(time.RFC3339),
		"sha256_fingerprint": fingerprint(cert.Raw)})
	if err != nil {
		// Unpublished (no replica rebuilt for it), the key must not become
		// current at some later rebuild: take it back.
		if derr := s.store.DeleteSigningKey(context.WithoutCancel(ctx), row.ID); derr != nil {
			s.log.ErrorContext(ctx, "SP key of a failed rotation not removed", "connection_id", cur.msg.Id, "key_id", row.ID, "error", derr)
		}
		return nil, err
	}
	s.log.InfoContext(ctx, "SP key rotation started", "connection_id", cur.msg.Id, "key_id", row.ID, "use", spKeyUses[req.Use],
		"transition_time", row.ActivateAt.UTC().Format(time.RFC3339))
	return &ssogatev1.RotateServiceProviderKeyResponse{Connection: stored}, nil
}

// bumpConnection stores the connection unchanged under a new version, so
// that every replica rebuilds its SP (with the new key), and audits the
// change; a concurrent update is retried on the newer version.
func (s *Server) bumpConnection(ctx context.Context, cur *conn, detail map[string]any) (*ssogatev1.Connection, error) {
	for attempt := 0; ; attempt++ {
		next := proto.Clone(cur.msg).(*ssogatev1.Connection)
		ev := auditEvent{Type: auditConnectionUpdated, ConnectionID: next.Id, TenantID: next.TenantId, Detail: detail}
		stored, err := s.saveConnection(s.withAudit(ctx, ev), next, saveOptions{prev: cur.msg, version: cur.version})
		if err == nil || attempt == 2 || errorReason(err) != reasonConnectionChanged {
			return stored, err
		}
		if cur, err = s.rpcConnection(ctx, cur.msg.Id); err != nil {
			return nil, err
		}
	}
}

const auditSPCertExpiring = "sp_certificate.expiring"

// checkSPCertificates announces each current SP certificate of the
// connection's metadata at 30, 7 and 1 days before it expires, once each
// across replicas (as checkCertificates does for IdP certificates), unless
// a successor is already published that takes over before then.
func (s *Server) checkSPCertificates(ctx context.Context, c *ssogatev1.Connection, own []*spKey) {
	now := s.now()
	certs := spCertificates(s.spKeyStateAt(own, now), publishesEncryptionKey(c))
	for _, pc := range certs {
		if pc.State != ssogatev1.ServiceProviderKeyState_SERVICE_PROVIDER_KEY_STATE_CURRENT {
			continue
		}
		notAfter := pc.NotAfter.AsTime()
		if slices.ContainsFunc(certs, func(n *ssogatev1.ServiceProviderCertificate) bool {
			return n.State == ssogatev1.ServiceProviderKeyState_SERVICE_PROVIDER_KEY_STATE_NEXT && !n.TransitionTime.AsTime().After(notAfter) &&
				(n.Use == pc.Use || n.Use == ssogatev1.ServiceProviderKeyUse_SERVICE_PROVIDER_KEY_USE_UNSPECIFIED)
		}) {
			continue
		}
		remaining := notAfter.Sub(now)
		if remaining <= 0 {
			continue
		}
		i := slices.IndexFunc(certExpiryNotices, func(days int) bool { return remaining <= time.Duration(days)*24*time.Hour })
		if i < 0 {
			continue
		}
		days := certExpiryNotices[i]
		key := fmt.Sprintf("sp/%s/%s/%d", c.Id, pc.Sha256Fingerprint, days)
		if !s.warnOnce(key) {
			continue
		}
		sum := sha256.Sum256([]byte(key))
		what := "this connection's own SP certificate"
		if pc.Shared {
			what = "the deployment's shared SP certificate"
		}
		e := s.auditRecord(ctx, auditEvent{Type: auditSPCertExpiring, ConnectionID: c.Id, TenantID: c.TenantId,
			Message: fmt.Sprintf("%s (SHA-256 %s) in SP metadata expires %s (in %s); rotate it (ssogate connections rotate-sp-key %s) "+
				"so that the IdP can take the next one from the metadata before then", what, pc.Sha256Fingerprint,
				notAfter.UTC().Format(time.RFC3339), remaining.Round(time.Hour), c.Id),
			Detail: map[string]any{"fingerprint": pc.Sha256Fingerprint, "not_after": notAfter.UTC().Format(time.RFC3339), "days": days,
				"key_id": pc.KeyId, "shared": pc.Shared}})
		e.ID = "sp-cert-expiring-" + hex.EncodeToString(sum[:16])
		if err := s.store.AppendAudit(ctx, e); err != nil && !errors.Is(err, store.ErrConflict) {
			s.log.ErrorContext(ctx, "audit append failed", "type", e.Type, "error", err)
		}
	}
}
