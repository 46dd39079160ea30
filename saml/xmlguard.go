package saml

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"html"
	"io"
	"slices"
	"unicode"
	"unicode/utf8"
)

// Shape bounds checked before any XML parser or signature code sees a
// message. Genuine responses stay far below them: the deepest real shape
// (Response > EncryptedAssertion > EncryptedData > KeyInfo > EncryptedKey >
// KeyInfo > X509Data > X509Certificate) is 8 levels, and IdPs that declare
// namespaces on every AttributeValue (Okta) have 2 in scope there.
const (
	maxElementDepth = 48
	// maxNamespacesInScope bounds the namespace declarations visible at one
	// element (on it and its ancestors). Canonicalization copies that set
	// for every element, so this bound, not the total, is what keeps a
	// nested-declaration flood from costing seconds of CPU; the total is
	// linear work, bounded by the size limits (2,000 Okta-style attribute
	// values carry 4,000 declarations).
	maxNamespacesInScope = 64
)

// decodePOSTValue decodes a SAMLResponse form value: standard base64 with
// padding and canonical trailing bits. Line breaks are tolerated because
// some IdPs wrap at 76 columns; any other byte outside the alphabet is
// refused.
func decodePOSTValue(s string, maxBody, maxXML int) ([]byte, *Error) {
	if len(s) > maxBody {
		return nil, Rejectf(ReasonBodyTooLarge, "SAMLResponse is %d bytes, the limit is %d", len(s), maxBody)
	}
	if s == "" {
		return nil, Rejectf(ReasonMalformedEncoding, "SAMLResponse is empty")
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, &Error{Reason: ReasonMalformedEncoding,
			Message: "SAMLResponse is not valid base64 (standard alphabet, padded): " + err.Error(), Err: err}
	}
	if len(raw) > maxXML {
		return nil, Rejectf(ReasonBodyTooLarge, "decoded SAMLResponse is %d bytes, the limit is %d", len(raw), maxXML)
	}
	return raw, nil
}

// xmlShape is what guardXML learned about a document.
type xmlShape struct {
	rootPrefix, rootLocal string
	// commentsOrCDATA: the document holds a comment or a CDATA section.
	commentsOrCDATA bool
}

// xmlLimits bound the work a whole document may ask of the parser, the
// round-trip check and canonicalization, each of which costs about the
// same per element, attribute and namespace declaration. They are
// counted in guardXML's scan, so a document over them costs no more than
// that scan.
type xmlLimits struct {
	elements, attributes, nsDecls int
}

// guardXML scans raw XML bytes once, without building a tree, and refuses
// what no SAML message needs and what makes parsers or canonicalization
// expensive: DTDs and entity declarations, processing instructions other
// than the XML declaration, an encoding other than UTF-8, more than one
// root element, text outside the root, element depth or namespace
// declarations in scope over their bounds, and more elements, attributes
// or namespace declarations in the document than lim allows. It also
// refuses an element with two attributes of one name (the same qualified
// name, or prefixes bound to one namespace), which XML forbids and which
// would let a signature and a reader see different values, names that
// are not QNames, and end tags that do not close the open element.
//
// Together with the parser's own checks this keeps the round-trip
// property: nothing passes that encoding/xml would not write back token
// for token. Those are the documents whose signed form (canonicalized from
// the tree) and read form could differ; FuzzGuardRoundTrip checks the
// property against mattermost's xml-roundtrip-validator, which tokenises
// the document a second time to find out.
// Well-formedness in full is left to the parser that runs next; this scan
// only has to be strict enough that the parser never sees what it refuses.
func guardXML(b []byte, lim xmlLimits) (xmlShape, *Error) {
	var shape xmlShape
	g := scanner{b: b}
	g.skipBOM()
	if g.hasPrefix("<?xml") && len(b) > g.i+5 && isSpace(b[g.i+5]) {
		if rerr := g.xmlDecl(); rerr != nil {
			return shape, rerr
		}
	}
	depth, roots := 0, 0
	elements, attributes, nsDecls := 0, 0, 0
	// nsStart[d] is where the bindings declared at depth d begin in
	// g.bindings; len(g.bindings) is the count in scope.
	nsStart := make([]int, 1, 16)
	for g.i < len(b) {
		lt := bytes.IndexByte(b[g.i:], '<')
		if lt < 0 {
			lt = len(b) - g.i
		}
		if depth == 0 && !allSpace(b[g.i:g.i+lt]) {
			return shape, Rejectf(ReasonMalformedXML, "text outside the root element")
		}
		g.i += lt
		if g.i >= len(b) {
			break
		}
		switch {
		case g.hasPrefix("<!--"):
			shape.commentsOrCDATA = true
			if !g.skipPast("-->") {
				return shape, Rejectf(ReasonMalformedXML, "unterminated comment")
			}
		case g.hasPrefix("<![CDATA["):
			shape.commentsOrCDATA = true
			if depth == 0 {
				return shape, Rejectf(ReasonMalformedXML, "CDATA outside the root element")
			}
			// encoding/xml reads an empty section as no token at all, so
			// its round trip would not reproduce the document.
			if g.hasPrefix("<![CDATA[]]>") {
				return shape, Rejectf(ReasonMalformedXML, "empty CDATA section")
			}
			if !g.skipPast("]]>") {
				return shape, Rejectf(ReasonMalformedXML, "unterminated CDATA section")
			}
		case g.hasPrefix("<!"):
			return shape, Rejectf(ReasonForbiddenXML, "document type or entity declarations are not allowed")
		case g.hasPrefix("<?"):
			return shape, Rejectf(ReasonForbiddenXML, "processing instructions are not allowed")
		case g.hasPrefix("</"):
			if depth == 0 {
				return shape, Rejectf(ReasonMalformedXML, "end tag without a start tag")
			}
			g.i += 2
			name := g.name()
			g.spaces()
			if g.i >= len(b) || b[g.i] != '>' {
				return shape, Rejectf(ReasonMalformedXML, "unterminated end tag")
			}
			g.i++
			if open := g.open[len(g.open)-1]; !bytes.Equal(name, open) {
				return shape, Rejectf(ReasonMalformedXML, "the XML is not well-formed: end tag </%s> closes <%s>", truncate(string(name), 64), truncate(string(open), 64))
			}
			g.open = g.open[:len(g.open)-1]
			g.bindings = g.bindings[:nsStart[depth]]
			depth--
			nsStart = nsStart[:depth+1]
		default:
			elements++
			if elements > lim.elements {
				return shape, Rejectf(ReasonXMLTooComplex, "the XML has more than %d elements", lim.elements)
			}
			tag, err := g.startTag()
			if err != nil {
				return shape, err
			}
			if depth == 0 {
				roots++
				if roots > 1 {
					return shape, Rejectf(ReasonMalformedXML, "more than one root element")
				}
				shape.rootPrefix, shape.rootLocal = tag.prefix, tag.local
			}
			attributes += len(g.attrs) - tag.nsDecls
			nsDecls += tag.nsDecls
			if attributes > lim.attributes {
				return shape, Rejectf(ReasonXMLTooComplex, "the XML has more than %d attributes", lim.attributes)
			}
			if nsDecls > lim.nsDecls {
				return shape, Rejectf(ReasonXMLTooComplex, "the XML has more than %d namespace declarations", lim.nsDecls)
			}
			mark := len(g.bindings)
			if len(g.bindings)+tag.nsDecls > maxNamespacesInScope {
				return shape, Rejectf(ReasonXMLTooComplex, "more than %d namespace declarations in scope at element depth %d", maxNamespacesInScope, depth+1)
			}
			g.bind()
			if rerr := g.checkDuplicateAttrs(tag.name); rerr != nil {
				return shape, rerr
			}
			if tag.selfClosing {
				g.bindings = g.bindings[:mark]
				continue
			}
			depth++
			if depth > maxElementDepth {
				return shape, Rejectf(ReasonXMLTooComplex, "elements nested deeper than %d levels", maxElementDepth)
			}
			nsStart = append(nsStart, mark)
			g.open = append(g.open, tag.name)
		}
	}
	if roots == 0 {
		return shape, Rejectf(ReasonMalformedXML, "no root element")
	}
	if depth != 0 {
		return shape, Rejectf(ReasonMalformedXML, "document ends inside an element")
	}
	return shape, nil
}

// scanner walks a document for guardXML. Its slices are reused from
// element to element, so the scan allocates only as they grow.
type scanner struct {
	b []byte
	i int
	// attrs are the current start tag's attributes; keys their expanded
	// names, for the duplicate check.
	attrs []rawAttr
	keys  []attrKey
	// bindings are the prefix declarations in scope, innermost last.
	bindings []nsBinding
	// open are the names of the elements not yet closed, innermost last.
	open [][]byte
}

type startTag struct {
	name          []byte
	prefix, local string
	nsDecls       int
	selfClosing   bool
}

// rawAttr is one attribute as written: name and value are views into the
// document, the value without its quotes.
type rawAttr struct {
	name, value []byte
}

type nsBinding struct {
	prefix, uri []byte
}

// attrKey is an attribute's expanded name: XML forbids two on one element
// with the same qualified name and Namespaces in XML two with the same
// namespace and local name, whatever their prefixes.
type attrKey struct {
	kind      byte // keyPlain, keyDecl, keyNS or keyUnbound
	ns, local []byte
}

const (
	keyPlain   byte = iota // no prefix: no namespace
	keyDecl                // xmlns or xmlns:p, keyed by the declared prefix
	keyNS                  // prefix bound to ns
	keyUnbound             // prefix bound to nothing (ns holds the prefix)
)

var nsXMLPrefix = []byte("http://www.w3.org/XML/1998/namespace")

func (s *scanner) skipBOM() {
	if bytes.HasPrefix(s.b, []byte("\xef\xbb\xbf")) {
		s.i = 3
	}
}

func (s *scanner) hasPrefix(p string) bool {
	return len(s.b)-s.i >= len(p) && string(s.b[s.i:s.i+len(p)]) == p
}

func (s *scanner) skipPast(end string) bool {
	k := bytes.Index(s.b[s.i:], []byte(end))
	if k < 0 {
		return false
	}
	s.i += k + len(end)
	return true
}

// xmlDecl reads the XML declaration at s.i. Only UTF-8 is accepted: SAML
// bindings carry UTF-8, and a document that declares another encoding
// over UTF-8 bytes is not well-formed; decoders that honour the
// declaration and ones that ignore it would read different text.
func (s *scanner) xmlDecl() *Error {
	s.i += len("<?xml")
	for {
		sp := s.spaces()
		if s.hasPrefix("?>") {
			s.i += 2
			return nil
		}
		if sp == 0 {
			return Rejectf(ReasonMalformedXML, "malformed XML declaration")
		}
		name := s.name()
		s.spaces()
		if s.i >= len(s.b) || s.b[s.i] != '=' {
			return Rejectf(ReasonMalformedXML, "malformed XML declaration")
		}
		s.i++
		s.spaces()
		value, ok := s.quoted()
		if !ok {
			return Rejectf(ReasonMalformedXML, "malformed XML declaration")
		}
		switch string(name) {
		case "version", "standalone":
		case "encoding":
			if !bytes.EqualFold(value, []byte("UTF-8")) {
				return Rejectf(ReasonMalformedXML, "the XML declares encoding %q; SAML messages must be UTF-8", truncate(string(value), 32))
			}
		default:
			return Rejectf(ReasonMalformedXML, "the XML declaration has an unknown attribute %q", truncate(string(name), 32))
		}
	}
}

// quoted reads a quoted value at s.i and returns it without the quotes.
func (s *scanner) quoted() ([]byte, bool) {
	if s.i >= len(s.b) || (s.b[s.i] != '"' && s.b[s.i] != '\'') {
		return nil, false
	}
	q := s.b[s.i]
	end := bytes.IndexByte(s.b[s.i+1:], q)
	if end < 0 {
		return nil, false
	}
	v := s.b[s.i+1 : s.i+1+end]
	s.i += end + 2
	return v, true
}

// startTag reads "<name attr='v' ...>" or "<name .../>" at s.i into
// s.attrs, counting namespace declarations. Attribute values may contain
// '>' and '/', so the tag is read attribute by attribute rather than up to
// the next '>'.
func (s *scanner) startTag() (startTag, *Error) {
	var t startTag
	s.attrs = s.attrs[:0]
	s.i++ // '<'
	t.name = s.name()
	if len(t.name) == 0 {
		return t, Rejectf(ReasonMalformedXML, "invalid start tag at byte %d", s.i)
	}
	if !isQName(t.name) {
		return t, Rejectf(ReasonMalformedXML, "element name %q is not a prefix and a local name", truncate(string(t.name), 64))
	}
	prefix, local := splitQName(t.name)
	t.prefix, t.local = string(prefix), string(local)
	name := func() string { return truncate(string(t.name), 64) }
	for {
		sp := s.spaces()
		if s.i >= len(s.b) {
			return t, Rejectf(ReasonMalformedXML, "unterminated start tag <%s>", name())
		}
		switch s.b[s.i] {
		case '>':
			s.i++
			return t, nil
		case '/':
			if !s.hasPrefix("/>") {
				return t, Rejectf(ReasonMalformedXML, "invalid start tag <%s>", name())
			}
			s.i += 2
			t.selfClosing = true
			return t, nil
		}
		if sp == 0 {
			return t, Rejectf(ReasonMalformedXML, "invalid attribute in <%s>", name())
		}
		attr := s.name()
		s.spaces()
		if len(attr) == 0 || s.i >= len(s.b) || s.b[s.i] != '=' {
			return t, Rejectf(ReasonMalformedXML, "invalid attribute in <%s>", name())
		}
		if !isQName(attr) {
			return t, Rejectf(ReasonMalformedXML, "attribute name %q in <%s> is not a prefix and a local name", truncate(string(attr), 64), name())
		}
		s.i++
		s.spaces()
		if s.i >= len(s.b) || (s.b[s.i] != '"' && s.b[s.i] != '\'') {
			return t, Rejectf(ReasonMalformedXML, "unquoted attribute value in <%s>", name())
		}
		value, ok := s.quoted()
		if !ok {
			return t, Rejectf(ReasonMalformedXML, "unterminated attribute value in <%s>", name())
		}
		if bytes.IndexByte(value, '<') >= 0 {
			return t, Rejectf(ReasonMalformedXML, "'<' in an attribute value of <%s>", name())
		}
		if isNSDecl(attr) {
			t.nsDecls++
		}
		s.attrs = append(s.attrs, rawAttr{name: attr, value: value})
	}
}

// isQName reports whether name is a QName of Namespaces in XML as far as
// encoding/xml's round trip needs: a local name, or a prefix, one colon
// and a local name that could start a name by itself. encoding/xml splits
// other names (":a", "a:", "a:b:c") in ways that do not survive a round
// trip, and writes "a:0" back as a tag named "0", which it then cannot
// read, so what etree reads and what canonicalization writes could
// differ. The local name must start with a letter (modifier letters
// aside) or '_': a little stricter than XML, never looser. The other
// characters of a name are left to the parser, which refuses what XML
// does not allow.
func isQName(name []byte) bool {
	i := bytes.IndexByte(name, ':')
	if i < 0 {
		return true
	}
	if i == 0 || i == len(name)-1 || bytes.IndexByte(name[i+1:], ':') >= 0 {
		return false
	}
	r, _ := utf8.DecodeRune(name[i+1:])
	return r == '_' || unicode.IsLetter(r) && !unicode.Is(unicode.Lm, r)
}

func isNSDecl(attr []byte) bool {
	return string(attr) == "xmlns" || len(attr) > 6 && string(attr[:6]) == "xmlns:"
}

// bind pushes the current start tag's namespace declarations: they are in
// scope for its own attributes too. A default declaration is pushed with
// an empty prefix, which no attribute resolves to, so that the count in
// scope includes it.
func (s *scanner) bind() {
	for _, a := range s.attrs {
		if isNSDecl(a.name) {
			s.bindings = append(s.bindings, nsBinding{prefix: a.name[min(len(a.name), 6):], uri: unescapeAttr(a.value)})
		}
	}
}

// resolve returns the namespace bound to prefix, innermost first.
func (s *scanner) resolve(prefix []byte) ([]byte, bool) {
	if string(prefix) == "xml" {
		return nsXMLPrefix, true
	}
	for i := len(s.bindings) - 1; i >= 0; i-- {
		if bytes.Equal(s.bindings[i].prefix, prefix) {
			return s.bindings[i].uri, true
		}
	}
	return nil, false
}

// checkDuplicateAttrs refuses two attributes of the current start tag
// with one expanded name.
func (s *scanner) checkDuplicateAttrs(tag []byte) *Error {
	if len(s.attrs) < 2 {
		return nil
	}
	s.keys = s.keys[:0]
	for _, a := range s.attrs {
		prefix, local := splitQName(a.name)
		k := attrKey{kind: keyPlain, local: local}
		switch {
		case isNSDecl(a.name):
			k = attrKey{kind: keyDecl, local: a.name}
		case len(prefix) > 0:
			if uri, ok := s.resolve(prefix); ok {
				k.kind, k.ns = keyNS, uri
			} else {
				k.kind, k.ns = keyUnbound, prefix
			}
		}
		s.keys = append(s.keys, k)
	}
	dup := -1
	if len(s.keys) <= 8 {
	outer:
		for i := range s.keys {
			for j := i + 1; j < len(s.keys); j++ {
				if compareKeys(s.keys[i], s.keys[j]) == 0 {
					dup = i
					break outer
				}
			}
		}
	} else {
		slices.SortFunc(s.keys, compareKeys)
		for i := 1; i < len(s.keys); i++ {
			if compareKeys(s.keys[i-1], s.keys[i]) == 0 {
				dup = i
				break
			}
		}
	}
	if dup < 0 {
		return nil
	}
	return Rejectf(ReasonMalformedXML, "<%s> has the attribute %q twice (attribute names must be unique per element, also across prefixes of one namespace)",
		truncate(string(tag), 64), truncate(string(s.keys[dup].local), 64))
}

func compareKeys(a, b attrKey) int {
	if a.kind != b.kind {
		return int(a.kind) - int(b.kind)
	}
	if c := bytes.Compare(a.local, b.local); c != 0 {
		return c
	}
	return bytes.Compare(a.ns, b.ns)
}

// unescapeAttr resolves character and entity references in an attribute
// value, so that two spellings of one namespace name compare equal. Values
// without '&' are returned as they are, without copying.
func unescapeAttr(v []byte) []byte {
	if bytes.IndexByte(v, '&') < 0 {
		return v
	}
	return []byte(html.UnescapeString(string(v)))
}

func (s *scanner) name() []byte {
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if isSpace(c) || c == '>' || c == '/' || c == '=' || c == '<' || c == '"' || c == '\'' {
			break
		}
		s.i++
	}
	return s.b[start:s.i]
}

func (s *scanner) spaces() int {
	start := s.i
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
	return s.i - start
}

func splitQName(name []byte) (prefix, local []byte) {
	if i := bytes.IndexByte(name, ':'); i >= 0 {
		return name[:i], name[i+1:]
	}
	return nil, name
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func allSpace(b []byte) bool {
	for _, c := range b {
		if !isSpace(c) {
			return false
		}
	}
	return true
}

// looksDeflated reports whether b is a raw DEFLATE stream that inflates to
// something starting like XML: the HTTP-Redirect encoding, which the POST
// binding must not carry. Only a few bytes are inflated, so a deflate bomb
// costs nothing here.
func looksDeflated(b []byte) bool {
	r := flate.NewReader(bytes.NewReader(b))
	defer r.Close()
	head := make([]byte, 64)
	n, _ := io.ReadFull(r, head)
	head = bytes.TrimLeft(head[:n], " \t\r\n\xef\xbb\xbf")
	return len(head) > 0 && head[0] == '<'
}

// truncate shortens s for a message, so attacker-sized values never flood
// an audit log.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// PeekInResponseTo reads the InResponseTo of a posted SAMLResponse without
// verifying anything, under the same size and shape bounds as validation.
// The value is unauthenticated: use it only to look up which request a
// response claims to answer (to choose how to explain a refusal), never to
// decide anything about the login.
func PeekInResponseTo(samlResponse string, maxBody, maxXML int) string {
	raw, rerr := decodePOSTValue(samlResponse, maxBody, maxXML)
	if rerr != nil {
		return ""
	}
	root, err := parseXML(raw, maxXML, defaultXMLLimits)
	if err != nil {
		return ""
	}
	return root.SelectAttrValue("InResponseTo", "")
}
