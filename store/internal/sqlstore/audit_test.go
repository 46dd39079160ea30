package sqlstore

import "testing"

// FuzzAuditCursor: a page token comes from the API caller. Parsing never
// panics, and what parses prints back to a token that parses to the same
// position.
func FuzzAuditCursor(f *testing.F) {
	f.Add(auditCursor{micros: 1772600767123456, seq: 42}.String())
	f.Add(auditCursor{micros: -1, seq: 0}.String())
	f.Add("")
	f.Add("MTIz")                           // "123": no separator
	f.Add("YS5i")                           // "a.b"
	f.Add("OTk5OTk5OTk5OTk5OTk5OTk5OTkuMQ") // overflow
	f.Fuzz(func(t *testing.T, token string) {
		c, err := parseAuditCursor(token)
		if err != nil {
			return
		}
		again, err := parseAuditCursor(c.String())
		if err != nil || again != c {
			t.Fatalf("token %q -> %+v -> %q -> %+v, %v", token, c, c.String(), again, err)
		}
	})
}
