package importer

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// The plain formats, csv and json, have one record per connection with
// these columns (json: these keys; lists as arrays, attribute_mapping as
// an object of claim → list of attribute names):
//
//	id                  connection ID ([a-z0-9-]{1,63}; made from display_name if empty)
//	tenant_id           the customer, in the product's terms
//	display_name        a human name
//	idp_metadata_xml    the IdP's metadata XML, or
//	idp_metadata_url    its https URL (fetched now and refreshed), or
//	idp_entity_id, idp_sso_url, idp_certificate (PEM or base64 DER), idp_slo_url
//	sp_entity_id        the SP entity ID the IdP knows (kept)
//	acs_url             the ACS URL the IdP posts to (kept; its host must be ssogate's)
//	email_domains       discovery domains (csv: separated by spaces, commas or semicolons)
//	return_urls         allowed return URLs (csv: as email_domains)
//	default_return_url  where IdP-initiated logins land
//	attr_email, attr_name, attr_given_name, attr_family_name, attr_groups
//	                    csv only: attribute names per claim, separated by |
//	allow_idp_initiated, sign_requests   true or false
var tableColumns = []string{"id", "tenant_id", "display_name", "idp_metadata_xml", "idp_metadata_url", "idp_entity_id", "idp_sso_url",
	"idp_certificate", "idp_slo_url", "sp_entity_id", "acs_url", "email_domains", "return_urls", "default_return_url",
	"attr_email", "attr_name", "attr_given_name", "attr_family_name", "attr_groups", "allow_idp_initiated", "sign_requests"}

func parseCSV(data []byte) (*Plan, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	known := map[string]bool{}
	for _, c := range tableColumns {
		known[c] = true
	}
	for i, h := range header {
		header[i] = strings.ToLower(strings.TrimSpace(h))
		if !known[header[i]] {
			return nil, fmt.Errorf("unknown column %q (columns: %s)", h, strings.Join(tableColumns, ", "))
		}
	}
	var recs []map[string]any
	for line := 2; ; line++ {
		row, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(row) != len(header) {
			return nil, fmt.Errorf("line %d has %d fields, the header %d", line, len(row), len(header))
		}
		m := map[string]any{}
		mapping := map[string]any{}
		for i, v := range row {
			v = strings.TrimSpace(v)
			switch col := header[i]; {
			case v == "":
			case col == "email_domains" || col == "return_urls":
				m[col] = toAny(strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == ';' }))
			case strings.HasPrefix(col, "attr_"):
				mapping[strings.TrimPrefix(col, "attr_")] = toAny(strings.Split(v, "|"))
			case col == "allow_idp_initiated" || col == "sign_requests":
				m[col] = strings.EqualFold(v, "true")
			default:
				m[col] = v
			}
		}
		if len(mapping) > 0 {
			m["attribute_mapping"] = mapping
		}
		recs = append(recs, m)
	}
	return planFromTable(recs), nil
}

func parseJSON(data []byte) (*Plan, error) {
	recs, err := records(data, "connections")
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		for k := range r {
			if k != "attribute_mapping" && !slices.Contains(tableColumns, k) {
				return nil, fmt.Errorf("record %v: unknown key %q", r["id"], k)
			}
		}
	}
	return planFromTable(recs), nil
}

func planFromTable(recs []map[string]any) *Plan {
	p := &Plan{}
	for i, r := range recs {
		id := cmp.Or(str(r, "id"), str(r, "display_name"))
		it := newItem(cmp.Or(id, fmt.Sprintf("record %d", i+1)), id, str(r, "tenant_id"), str(r, "display_name"))
		c, idp := it.Connection, it.Connection.IdentityProvider
		it.MetadataXML, it.MetadataURL = str(r, "idp_metadata_xml"), str(r, "idp_metadata_url")
		if it.MetadataXML != "" && it.MetadataURL != "" {
			it.MetadataURL = ""
			it.lost("both idp_metadata_xml and idp_metadata_url: the XML is used")
		}
		if it.MetadataXML == "" && it.MetadataURL == "" {
			idp.EntityId, idp.SsoUrl, idp.SloUrl = str(r, "idp_entity_id"), str(r, "idp_sso_url"), str(r, "idp_slo_url")
			it.addCertificate("idp_certificate", str(r, "idp_certificate"))
		}
		it.setSP(str(r, "sp_entity_id"), str(r, "acs_url"))
		if it.Connection.ServiceProvider == nil {
			it.lost("no sp_entity_id or acs_url: the connection gets ssogate's own, which the IdP must be given")
		}
		for _, d := range strs(r["email_domains"]) {
			c.EmailDomains = append(c.EmailDomains, strings.ToLower(d))
		}
		c.AllowedReturnUrls = strs(r["return_urls"])
		c.DefaultReturnUrl = str(r, "default_return_url")
		c.AllowIdpInitiated, c.SignRequests = boolean(r, "allow_idp_initiated"), boolean(r, "sign_requests")
		mapping := obj(r, "attribute_mapping")
		for _, claim := range slices.Sorted(maps.Keys(mapping)) {
			it.mapAttribute(claim, strs(mapping[claim]))
		}
		p.Items = append(p.Items, it)
	}
	return p
}

func toAny(ss []string) []any {
	out := make([]any, 0, len(ss))
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
