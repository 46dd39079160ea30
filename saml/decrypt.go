package saml

import (
	"bytes"
	"cmp"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"encoding/base64"
	"io"
	"strings"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// Encryption algorithm identifiers (XML Encryption 1.0 and 1.1).
const (
	encAES128GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
	encAES192GCM = "http://www.w3.org/2009/xmlenc11#aes192-gcm"
	encAES256GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
	encAES128CBC = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
	encAES192CBC = "http://www.w3.org/2001/04/xmlenc#aes192-cbc"
	encAES256CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"

	keyRSAOAEPMGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
	keyRSAOAEP11    = "http://www.w3.org/2009/xmlenc11#rsa-oaep"
	keyRSA15        = "http://www.w3.org/2001/04/xmlenc#rsa-1_5"
)

type blockCipher struct {
	keyLen int
	gcm    bool
}

var blockCiphers = map[string]blockCipher{
	encAES128GCM: {16, true}, encAES192GCM: {24, true}, encAES256GCM: {32, true},
	encAES128CBC: {16, false}, encAES192CBC: {24, false}, encAES256CBC: {32, false},
}

var oaepDigests = map[string]crypto.Hash{
	"":         crypto.SHA1,
	digestSHA1: crypto.SHA1,
	"http://www.w3.org/2001/04/xmlenc#sha256": crypto.SHA256,
	"http://www.w3.org/2001/04/xmlenc#sha512": crypto.SHA512,
}

var oaepMGFs = map[string]crypto.Hash{
	"": crypto.SHA1,
	"http://www.w3.org/2009/xmlenc11#mgf1sha1":   crypto.SHA1,
	"http://www.w3.org/2009/xmlenc11#mgf1sha256": crypto.SHA256,
	"http://www.w3.org/2009/xmlenc11#mgf1sha512": crypto.SHA512,
}

// decryptionFailedMessage is the one message every decryption failure
// gets: which step failed must not be visible to the sender.
const decryptionFailedMessage = "the EncryptedAssertion could not be decrypted with this connection's key; " +
	"check that the IdP encrypts to the certificate in this connection's SP metadata"

func errDecryption(cause error) *Error {
	return &Error{Reason: ReasonDecryptionFailed, Message: decryptionFailedMessage, Err: cause}
}

// encryptedParts is the public structure of an EncryptedAssertion.
type encryptedParts struct {
	dataAlg, keyAlg, oaepDigest, mgf string
	cipherValue, keyCipherValue      string
	// keyCert is the base64 certificate in the EncryptedKey's KeyInfo, if
	// any: which of our keys the sender encrypted to.
	keyCert string
}

// decryptAssertion decrypts an EncryptedAssertion and returns the
// Assertion element as the root of its own document. Algorithms are
// checked first, from public structure alone. Then every failure, from key
// transport to parsing the plaintext, returns the same *Error, and a
// failed key transport continues with a random key so that it costs the
// same time as a failed content decryption.
//
// AES-CBC has no integrity of its own: only a verified Response signature
// keeps a sender from feeding us altered ciphertext, so CBC content under
// an unsigned Response is refused before any key is used. Otherwise how
// long each altered ciphertext takes to refuse (bad padding, garbled XML,
// or an Assertion whose signature then fails, which costs the most) would
// tell the sender about the plaintext, the padding-oracle attack on XML
// Encryption. Equal messages cannot hide that; padding every failure to
// one time is fragile under load. The refusal depends only on what the
// sender already knows, so its message may say what to change.
func (sp *ServiceProvider) decryptAssertion(enc *etree.Element, responseSigned bool) (*etree.Element, *Error) {
	if len(sp.decKeys) == 0 {
		return nil, Rejectf(ReasonDecryptionFailed,
			"the IdP sent an EncryptedAssertion but connection %q has no decryption key; configure one or turn off encryption at the IdP", sp.cfg.ConnectionID)
	}
	p, rerr := encryptedStructure(enc)
	if rerr != nil {
		return nil, rerr
	}
	bc, ok := blockCiphers[p.dataAlg]
	if !ok {
		return nil, Rejectf(ReasonAlgorithmNotAllowed, "EncryptedData algorithm %q is not supported; use AES-GCM", truncate(p.dataAlg, 128))
	}
	if !bc.gcm && !sp.cfg.AllowLegacyEncryption {
		return nil, Rejectf(ReasonAlgorithmNotAllowed, "EncryptedData uses %s; AES-CBC is refused unless the connection allows legacy encryption (better: configure the IdP for AES-GCM)", p.dataAlg)
	}
	if !bc.gcm && !responseSigned {
		return nil, Rejectf(ReasonDecryptionFailed, "EncryptedData uses %s under an unsigned Response; AES-CBC is accepted only when the IdP signs the whole Response "+
			"(configure the IdP to sign the Response as well as the Assertion, or better, to encrypt with AES-GCM)", p.dataAlg)
	}
	var oaep *rsa.OAEPOptions
	switch p.keyAlg {
	case keyRSAOAEPMGF1P, keyRSAOAEP11:
		h, ok1 := oaepDigests[p.oaepDigest]
		mgf, ok2 := oaepMGFs[p.mgf]
		if p.keyAlg == keyRSAOAEPMGF1P {
			mgf, ok2 = crypto.SHA1, p.mgf == ""
		}
		if !ok1 || !ok2 {
			return nil, Rejectf(ReasonAlgorithmNotAllowed, "EncryptedKey RSA-OAEP digest %q / MGF %q is not supported", truncate(p.oaepDigest, 128), truncate(p.mgf, 128))
		}
		oaep = &rsa.OAEPOptions{Hash: h, MGFHash: mgf}
	case keyRSA15:
		if !sp.cfg.AllowLegacyEncryption {
			return nil, Rejectf(ReasonAlgorithmNotAllowed, "EncryptedKey uses RSA 1.5; it is refused unless the connection allows legacy encryption (better: RSA-OAEP)")
		}
	default:
		return nil, Rejectf(ReasonAlgorithmNotAllowed, "EncryptedKey algorithm %q is not supported; use RSA-OAEP", truncate(p.keyAlg, 128))
	}
	root, err := sp.decryptWithKeys(p, bc, oaep, sp.candidateKeys(p))
	if err != nil {
		return nil, errDecryption(err)
	}
	return root, nil
}

// candidateKeys are the keys to try: the one whose certificate the
// EncryptedKey's KeyInfo names, if any does (public information, so the
// choice tells the sender nothing it did not know), else all of them.
func (sp *ServiceProvider) candidateKeys(p encryptedParts) []DecryptionKey {
	if len(sp.decKeys) == 1 || p.keyCert == "" {
		return sp.decKeys
	}
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(p.keyCert), ""))
	if err != nil {
		return sp.decKeys
	}
	for _, dk := range sp.decKeys {
		if dk.Cert != nil && bytes.Equal(dk.Cert.Raw, der) {
			return []DecryptionKey{dk}
		}
	}
	return sp.decKeys
}

// decryptWithKeys unwraps the content key with each of keys and decrypts
// the content with each result, always all of them, and returns the
// Assertion the first one yields. A key that does not unwrap is replaced
// by a random one (implicit rejection), so every key costs one unwrap, one
// content decryption and, unless the content fails to decrypt, one parse,
// whether it fits or not.
//
// With RSA 1.5 (legacy) a wrong key or an altered EncryptedKey does not
// show as an error at all: the unwrap always "succeeds", and only the
// content decryption (AES-GCM's tag) or, for AES-CBC, which only a signed
// Response reaches, parsing the plaintext tells the right key from the
// others. No step depends on whether the padding was valid, so there is no
// Bleichenbacher oracle, with one key or several.
func (sp *ServiceProvider) decryptWithKeys(p encryptedParts, bc blockCipher, oaep *rsa.OAEPOptions, keys []DecryptionKey) (*etree.Element, error) {
	wrapped, err1 := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(p.keyCipherValue), ""))
	data, err2 := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(p.cipherValue), ""))
	var found *etree.Element
	var firstFail error
	for _, dk := range keys {
		root, err := sp.decryptOne(dk.Key, wrapped, data, firstErr(err1, err2), bc, oaep)
		if err != nil {
			firstFail = cmp.Or(firstFail, err)
			continue
		}
		if found == nil {
			found = root
		}
	}
	if found == nil {
		return nil, cmp.Or(firstFail, error(errKeyUnwrap))
	}
	return found, nil
}

// decryptOne tries one key. Its error texts are for the audit trail only;
// the caller replaces them with one message.
func (sp *ServiceProvider) decryptOne(priv *rsa.PrivateKey, wrapped, data []byte, decodeErr error, bc blockCipher, oaep *rsa.OAEPOptions) (*etree.Element, error) {
	// A random key stands in for one that does not unwrap (implicit
	// rejection), so both failures run the content decryption.
	key := make([]byte, bc.keyLen)
	if _, err := io.ReadFull(sp.cfg.Rand, key); err != nil {
		return nil, err
	}
	keyErr := decodeErr
	if keyErr == nil {
		if oaep != nil {
			k, err := priv.Decrypt(nil, wrapped, oaep)
			if err == nil && len(k) == bc.keyLen {
				key = k
			} else {
				keyErr = errKeyUnwrap
			}
		} else if err := rsa.DecryptPKCS1v15SessionKey(nil, priv, wrapped, key); err != nil {
			keyErr = err
		}
	}
	plain, err := decryptContent(key, data, bc)
	if keyErr != nil {
		return nil, keyErr
	}
	if err != nil {
		return nil, err
	}
	if len(plain) > sp.cfg.MaxXMLBytes {
		return nil, errTooLarge
	}
	root, perr := parseGuarded(plain, sp.xmlLimits())
	if perr != nil {
		return nil, perr
	}
	if root.Tag != "Assertion" || root.NamespaceURI() != nsAssertion {
		return nil, errNotAssertion
	}
	return root, nil
}

func decryptContent(key, data []byte, bc blockCipher) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if bc.gcm {
		g, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		if len(data) < g.NonceSize()+g.Overhead() {
			return nil, errShortCiphertext
		}
		return g.Open(nil, data[:g.NonceSize()], data[g.NonceSize():], nil)
	}
	bs := block.BlockSize()
	if len(data) < 2*bs || len(data)%bs != 0 {
		return nil, errShortCiphertext
	}
	out := make([]byte, len(data)-bs)
	cipher.NewCBCDecrypter(block, data[:bs]).CryptBlocks(out, data[bs:])
	// XML Encryption padding (ISO 10126): only the last byte is defined.
	pad := int(out[len(out)-1])
	if pad < 1 || pad > bs {
		return nil, errBadPadding
	}
	return out[:len(out)-pad], nil
}

type decryptError string

func (e decryptError) Error() string { return string(e) }

const (
	errKeyUnwrap       = decryptError("key transport failed")
	errShortCiphertext = decryptError("ciphertext too short")
	errBadPadding      = decryptError("bad padding")
	errTooLarge        = decryptError("plaintext too large")
	errNotAssertion    = decryptError("plaintext is not an Assertion")
)

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// encryptedStructure reads the algorithms and cipher values of an
// EncryptedAssertion. The EncryptedKey may sit in EncryptedData's KeyInfo
// or beside EncryptedData (saml-core 6.2).
func encryptedStructure(enc *etree.Element) (encryptedParts, *Error) {
	var p encryptedParts
	malformed := Rejectf(ReasonDecryptionFailed, "the EncryptedAssertion is not EncryptedData with an RSA EncryptedKey")
	eds := children(enc, nsXMLEnc, "EncryptedData")
	if len(eds) != 1 {
		return p, malformed
	}
	ed := eds[0]
	if m := firstChild(ed, nsXMLEnc, "EncryptionMethod"); m != nil {
		p.dataAlg = m.SelectAttrValue("Algorithm", "")
	}
	p.cipherValue = cipherValue(ed)
	var ek *etree.Element
	if ki := firstChild(ed, dsig.Namespace, "KeyInfo"); ki != nil {
		ek = firstChild(ki, nsXMLEnc, "EncryptedKey")
	}
	if ek == nil {
		ek = firstChild(enc, nsXMLEnc, "EncryptedKey")
	}
	if ek == nil || p.cipherValue == "" {
		return p, malformed
	}
	if m := firstChild(ek, nsXMLEnc, "EncryptionMethod"); m != nil {
		p.keyAlg = m.SelectAttrValue("Algorithm", "")
		if d := firstChild(m, dsig.Namespace, "DigestMethod"); d != nil {
			p.oaepDigest = d.SelectAttrValue("Algorithm", "")
		}
		if mgf := firstChild(m, nsXMLEnc11, "MGF"); mgf != nil {
			p.mgf = mgf.SelectAttrValue("Algorithm", "")
		}
	}
	p.keyCipherValue = cipherValue(ek)
	p.keyCert = keyInfoCert(ek)
	if p.keyCipherValue == "" {
		return p, malformed
	}
	return p, nil
}

func cipherValue(el *etree.Element) string {
	cd := firstChild(el, nsXMLEnc, "CipherData")
	if cd == nil {
		return ""
	}
	cv := firstChild(cd, nsXMLEnc, "CipherValue")
	if cv == nil {
		return ""
	}
	t, _ := textOf(cv)
	return t
}
