package saml

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"io"
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
}

// guardXML scans raw XML bytes once, without building a tree, and refuses
// what no SAML message needs and what makes parsers or canonicalization
// expensive: DTDs and entity declarations, processing instructions other
// than the XML declaration, more than one root element, text outside the
// root, and element depth or namespace declarations over their bounds.
// Well-formedness in full is left to the parser that runs next; this scan
// only has to be strict enough that the parser never sees what it refuses.
func guardXML(b []byte) (xmlShape, *Error) {
	var shape xmlShape
	g := scanner{b: b}
	g.skipBOM()
	if g.hasPrefix("<?xml") && len(b) > g.i+5 && isSpace(b[g.i+5]) {
		end := bytes.Index(b[g.i:], []byte("?>"))
		if end < 0 {
			return shape, Rejectf(ReasonMalformedXML, "unterminated XML declaration")
		}
		g.i += end + 2
	}
	depth, roots := 0, 0
	// nsInScope[d] is the count of declarations visible at depth d.
	nsInScope := make([]int, 1, 16)
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
			if !g.skipPast("-->") {
				return shape, Rejectf(ReasonMalformedXML, "unterminated comment")
			}
		case g.hasPrefix("<![CDATA["):
			if depth == 0 {
				return shape, Rejectf(ReasonMalformedXML, "CDATA outside the root element")
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
			if !g.skipPast(">") {
				return shape, Rejectf(ReasonMalformedXML, "unterminated end tag")
			}
			depth--
			nsInScope = nsInScope[:depth+1]
		default:
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
			inScope := nsInScope[depth] + tag.nsDecls
			if inScope > maxNamespacesInScope {
				return shape, Rejectf(ReasonXMLTooComplex, "more than %d namespace declarations in scope at element depth %d", maxNamespacesInScope, depth+1)
			}
			if !tag.selfClosing {
				depth++
				if depth > maxElementDepth {
					return shape, Rejectf(ReasonXMLTooComplex, "elements nested deeper than %d levels", maxElementDepth)
				}
				nsInScope = append(nsInScope, inScope)
			}
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

type scanner struct {
	b []byte
	i int
}

type startTag struct {
	prefix, local string
	nsDecls       int
	selfClosing   bool
}

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

// startTag reads "<name attr='v' ...>" or "<name .../>" at s.i, counting
// namespace declarations. Attribute values may contain '>' and '/', so the
// tag is read attribute by attribute rather than up to the next '>'.
func (s *scanner) startTag() (startTag, *Error) {
	var t startTag
	s.i++ // '<'
	name := s.name()
	if name == "" {
		return t, Rejectf(ReasonMalformedXML, "invalid start tag at byte %d", s.i)
	}
	t.prefix, t.local = splitQName(name)
	for {
		sp := s.spaces()
		if s.i >= len(s.b) {
			return t, Rejectf(ReasonMalformedXML, "unterminated start tag <%s>", truncate(name, 64))
		}
		switch s.b[s.i] {
		case '>':
			s.i++
			return t, nil
		case '/':
			if !s.hasPrefix("/>") {
				return t, Rejectf(ReasonMalformedXML, "invalid start tag <%s>", truncate(name, 64))
			}
			s.i += 2
			t.selfClosing = true
			return t, nil
		}
		if sp == 0 {
			return t, Rejectf(ReasonMalformedXML, "invalid attribute in <%s>", truncate(name, 64))
		}
		attr := s.name()
		s.spaces()
		if attr == "" || s.i >= len(s.b) || s.b[s.i] != '=' {
			return t, Rejectf(ReasonMalformedXML, "invalid attribute in <%s>", truncate(name, 64))
		}
		s.i++
		s.spaces()
		if s.i >= len(s.b) || (s.b[s.i] != '"' && s.b[s.i] != '\'') {
			return t, Rejectf(ReasonMalformedXML, "unquoted attribute value in <%s>", truncate(name, 64))
		}
		q := s.b[s.i]
		end := bytes.IndexByte(s.b[s.i+1:], q)
		if end < 0 {
			return t, Rejectf(ReasonMalformedXML, "unterminated attribute value in <%s>", truncate(name, 64))
		}
		if bytes.IndexByte(s.b[s.i+1:s.i+1+end], '<') >= 0 {
			return t, Rejectf(ReasonMalformedXML, "'<' in an attribute value of <%s>", truncate(name, 64))
		}
		s.i += end + 2
		if attr == "xmlns" || len(attr) > 6 && attr[:6] == "xmlns:" {
			t.nsDecls++
		}
	}
}

func (s *scanner) name() string {
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if isSpace(c) || c == '>' || c == '/' || c == '=' || c == '<' || c == '"' || c == '\'' {
			break
		}
		s.i++
	}
	return string(s.b[start:s.i])
}

func (s *scanner) spaces() int {
	start := s.i
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
	return s.i - start
}

func splitQName(name string) (prefix, local string) {
	for i := 0; i < len(name); i++ {
		if name[i] == ':' {
			return name[:i], name[i+1:]
		}
	}
	return "", name
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
	root, err := parseXML(raw, maxXML)
	if err != nil {
		return ""
	}
	return root.SelectAttrValue("InResponseTo", "")
}
