package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"gopkg.in/yaml.v3"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// maxInput bounds a file or stdin the CLI reads (IdP metadata of a large
// federation is a few MiB).
const maxInput = 32 << 20

// readInput reads a file, or stdin for "-".
func (c *cli) readInput(path, flagName string) ([]byte, error) {
	var r io.Reader = c.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flagName, err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flagName, path, err)
	}
	if len(data) > maxInput {
		return nil, fmt.Errorf("%s %s: larger than %d MiB", flagName, path, maxInput>>20)
	}
	return data, nil
}

// connectionFile is a Connection read from YAML or JSON, with the
// top-level fields it sets, as proto field names.
type connectionFile struct {
	conn   *ssogatev1.Connection
	fields []string
}

// readConnectionFile reads a Connection in protojson form (proto or JSON
// field names), from JSON or YAML. A {"connection": {…}} wrapper, as
// `connections get -o json` prints, is accepted too.
func (c *cli) readConnectionFile(path string) (connectionFile, error) {
	data, err := c.readInput(path, "--from-file")
	if err != nil {
		return connectionFile{}, err
	}
	if ext := filepath.Ext(path); ext != ".json" {
		var v any
		if err := yaml.Unmarshal(data, &v); err != nil {
			return connectionFile{}, fmt.Errorf("--from-file %s: %w", path, err)
		}
		if data, err = json.Marshal(v); err != nil {
			return connectionFile{}, fmt.Errorf("--from-file %s: YAML to JSON: %w", path, err)
		}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return connectionFile{}, fmt.Errorf("--from-file %s: want an object with the Connection's fields: %w", path, err)
	}
	if inner, ok := top["connection"]; ok && len(top) == 1 {
		data = inner
		top = nil
		if err := json.Unmarshal(data, &top); err != nil {
			return connectionFile{}, fmt.Errorf("--from-file %s: connection: %w", path, err)
		}
	}
	conn := &ssogatev1.Connection{}
	if err := protojson.Unmarshal(data, conn); err != nil {
		return connectionFile{}, fmt.Errorf("--from-file %s: %w", path, err)
	}
	return connectionFile{conn: conn, fields: settableFields(conn.ProtoReflect().Descriptor(), top)}, nil
}

// settableFields maps a file's top-level keys to the proto names an update
// mask may carry: neither output-only nor immutable fields, nor the etag.
func settableFields(md protoreflect.MessageDescriptor, top map[string]json.RawMessage) []string {
	var out []string
	for key := range top {
		fd := md.Fields().ByJSONName(key)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(key))
		}
		if fd == nil || fd.Name() == "etag" || hasBehavior(fd, annotations.FieldBehavior_OUTPUT_ONLY, annotations.FieldBehavior_IMMUTABLE) {
			continue
		}
		out = append(out, string(fd.Name()))
	}
	sort.Strings(out)
	return out
}

func hasBehavior(fd protoreflect.FieldDescriptor, want ...annotations.FieldBehavior) bool {
	got, _ := proto.GetExtension(fd.Options(), annotations.E_FieldBehavior).([]annotations.FieldBehavior)
	for _, b := range got {
		for _, w := range want {
			if b == w {
				return true
			}
		}
	}
	return false
}

// clearOutputOnly removes, at any depth, what the server computes (the SP
// side, times, certificate details), so a file saved from `get` can seed a
// new connection.
func clearOutputOnly(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case hasBehavior(fd, annotations.FieldBehavior_OUTPUT_ONLY):
			m.Clear(fd)
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				clearOutputOnly(v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				clearOutputOnly(mv.Message())
				return true
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			clearOutputOnly(v.Message())
		}
		return true
	})
}

// setField sets the field a dotted path names ("identity_provider.sso_url")
// from its text form: strings as they are, booleans, enums by short or full
// name, durations ("8h"), string lists comma-separated. An empty value
// clears the field. Maps and other messages need --from-file.
func setField(m protoreflect.Message, path, value string) error {
	names := strings.Split(path, ".")
	for i, name := range names {
		fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			return fmt.Errorf("%s has no field %q", m.Descriptor().Name(), name)
		}
		if i < len(names)-1 {
			if fd.Message() == nil || fd.IsList() || fd.IsMap() {
				return fmt.Errorf("%q has no fields", name)
			}
			m = m.Mutable(fd).Message()
			continue
		}
		if value == "" {
			m.Clear(fd)
			return nil
		}
		v, err := parseFieldValue(m, fd, value)
		if err != nil {
			return err
		}
		m.Set(fd, v)
	}
	return nil
}

func parseFieldValue(m protoreflect.Message, fd protoreflect.FieldDescriptor, value string) (protoreflect.Value, error) {
	switch {
	case fd.IsMap():
		return protoreflect.Value{}, fmt.Errorf("%s is a map: set it with --from-file", fd.Name())
	case fd.IsList():
		if fd.Kind() != protoreflect.StringKind {
			return protoreflect.Value{}, fmt.Errorf("%s is a list of messages: set it with --from-file", fd.Name())
		}
		list := m.NewField(fd).List()
		for _, item := range strings.Split(value, ",") {
			if item = strings.TrimSpace(item); item != "" {
				list.Append(protoreflect.ValueOfString(item))
			}
		}
		return protoreflect.ValueOfList(list), nil
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(value), nil
	case protoreflect.BoolKind:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return protoreflect.Value{}, fmt.Errorf("want true or false, got %q", value)
		}
		return protoreflect.ValueOfBool(b), nil
	case protoreflect.EnumKind:
		n, err := parseEnum(fd.Enum(), value)
		return protoreflect.ValueOfEnum(n), err
	case protoreflect.MessageKind:
		if fd.Message().FullName() == "google.protobuf.Duration" {
			d, err := time.ParseDuration(value)
			if err != nil {
				return protoreflect.Value{}, fmt.Errorf("want a duration such as 8h or 90m: %w", err)
			}
			return protoreflect.ValueOfMessage(durationpb.New(d).ProtoReflect()), nil
		}
	}
	return protoreflect.Value{}, fmt.Errorf("%s cannot be set from text: use --from-file", fd.Name())
}

// parseEnum accepts a value's full name (CONNECTION_STATE_ACTIVE) or its
// short name (active), in any case.
func parseEnum(ed protoreflect.EnumDescriptor, value string) (protoreflect.EnumNumber, error) {
	values := ed.Values()
	upper := strings.ToUpper(value)
	prefix := upperSnake(string(ed.Name())) + "_"
	for _, name := range []string{upper, prefix + upper} {
		if v := values.ByName(protoreflect.Name(name)); v != nil && !strings.HasSuffix(name, "_UNSPECIFIED") {
			return v.Number(), nil
		}
	}
	var names []string
	for i := range values.Len() {
		if n := string(values.Get(i).Name()); !strings.HasSuffix(n, "_UNSPECIFIED") {
			names = append(names, strings.ToLower(strings.TrimPrefix(n, prefix)))
		}
	}
	return 0, fmt.Errorf("%q is not one of %s", value, strings.Join(names, ", "))
}

func parseState(v string) (ssogatev1.ConnectionState, error) {
	n, err := parseEnum(ssogatev1.ConnectionState(0).Descriptor(), v)
	if err != nil {
		return 0, fmt.Errorf("--state: %w", err)
	}
	return ssogatev1.ConnectionState(n), nil
}

// stateName is the state as people say it: ACTIVE.
func stateName(s ssogatev1.ConnectionState) string {
	return strings.TrimPrefix(s.String(), "CONNECTION_STATE_")
}

// printConnection shows one connection as "field: value" rows.
func printConnection(w io.Writer, conn *ssogatev1.Connection) {
	row := func(k, v string) { fmt.Fprintf(w, "%s:\t%s\n", k, orDash(v)) }
	list := func(l []string) string { return strings.Join(l, ", ") }
	row("ID", conn.Id)
	row("Tenant", conn.TenantId)
	row("Display name", conn.DisplayName)
	row("State", stateName(conn.State))
	idp := conn.GetIdentityProvider()
	row("IdP entity ID", idp.GetEntityId())
	if idp.GetSsoUrl() == "" && idp.GetSsoPostUrl() != "" {
		row("IdP SSO URL", idp.GetSsoPostUrl()+" (HTTP-POST)")
	} else {
		row("IdP SSO URL", idp.GetSsoUrl())
	}
	row("IdP SLO URL", idp.GetSloUrl())
	if idp.GetMetadataUrl() != "" {
		row("IdP metadata URL", idp.GetMetadataUrl())
		refreshed := ts(idp.GetMetadataRefreshTime())
		if e := idp.GetMetadataRefreshError(); e != "" {
			refreshed += "; last refresh failed: " + e
		}
		row("Metadata refreshed", refreshed)
	}
	for i, cert := range idp.GetCertificates() {
		row(fmt.Sprintf("IdP certificate %d", i+1), fmt.Sprintf("%s, expires %s, SHA-256 %s", orDash(cert.Subject), ts(cert.NotAfter), orDash(cert.Sha256Fingerprint)))
	}
	row("Email domains", list(conn.EmailDomains))
	row("Allowed return URLs", list(conn.AllowedReturnUrls))
	row("Default return URL", conn.DefaultReturnUrl)
	if len(conn.AttributeMapping) > 0 {
		row("Attribute mapping", attributeMapping(conn.AttributeMapping))
	}
	printPolicy(row, list, conn.GetAccessPolicy())
	row("Options", list(enabledFlags(conn)))
	if conn.NameIdFormat != "" {
		row("NameID format", conn.NameIdFormat)
	}
	if conn.MaxSessionDuration != nil {
		row("Max session", conn.MaxSessionDuration.AsDuration().String())
	}
	if conn.ClockSkew != nil {
		row("Clock skew", conn.ClockSkew.AsDuration().String())
	}
	if n := len(conn.GroupNames); n > 0 {
		row("Group names", fmt.Sprintf("%d group value%s renamed", n, map[bool]string{true: "", false: "s"}[n == 1]))
	}
	sp := conn.GetServiceProvider()
	row("SP entity ID", sp.GetEntityId())
	row("SP ACS URL", sp.GetAcsUrl())
	row("SP SLO URL", sp.GetSloUrl())
	row("SP metadata URL", sp.GetMetadataUrl())
	for _, cert := range sp.GetCertificates() {
		row("SP certificate", spCertificateLine(cert))
	}
	row("Created", ts(conn.CreateTime))
	row("Updated", ts(conn.UpdateTime))
	row("Etag", conn.Etag)
}

// spCertificateLine describes one SP certificate of the metadata: its
// state and use, whose key, expiry, fingerprint and, for a NEXT one, when
// it takes over.
func spCertificateLine(cert *ssogatev1.ServiceProviderCertificate) string {
	use := map[ssogatev1.ServiceProviderKeyUse]string{
		ssogatev1.ServiceProviderKeyUse_SERVICE_PROVIDER_KEY_USE_SIGNING:    "signing",
		ssogatev1.ServiceProviderKeyUse_SERVICE_PROVIDER_KEY_USE_ENCRYPTION: "encryption",
	}[cert.Use]
	if use == "" {
		use = "signing and encryption"
	}
	owner := "own key " + cert.KeyId
	if cert.Shared {
		owner = "shared key"
	}
	line := fmt.Sprintf("%s, %s, %s, expires %s, SHA-256 %s", strings.ToLower(strings.TrimPrefix(cert.State.String(), "SERVICE_PROVIDER_KEY_STATE_")),
		use, owner, ts(cert.NotAfter), cert.Sha256Fingerprint)
	if cert.TransitionTime != nil {
		line += ", current from " + ts(cert.TransitionTime)
	}
	return line
}

func attributeMapping(m map[string]*ssogatev1.AttributeNames) string {
	var parts []string
	for claim, names := range m {
		parts = append(parts, claim+"="+strings.Join(names.GetNames(), "|"))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func printPolicy(row func(k, v string), list func([]string) string, p *ssogatev1.AccessPolicy) {
	if len(p.GetAllowedGroups()) > 0 {
		row("Allowed groups", list(p.GetAllowedGroups()))
	}
	if len(p.GetRequiredAttributes()) > 0 {
		row("Required attributes", attributeMapping(p.GetRequiredAttributes()))
	}
	var roles []string
	for _, rm := range p.GetRoleMappings() {
		roles = append(roles, rm.Group+"→"+strings.Join(rm.Roles, "|"))
	}
	if len(roles) > 0 {
		row("Role mappings", list(roles))
	}
}

// enabledFlags names the connection's boolean options that are on.
func enabledFlags(conn *ssogatev1.Connection) []string {
	var on []string
	fields := conn.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Kind() == protoreflect.BoolKind && conn.ProtoReflect().Get(fd).Bool() {
			on = append(on, string(fd.Name()))
		}
	}
	return on
}
