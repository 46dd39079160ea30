package saml

import (
	"fmt"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// checkValues checks what the verified elements say against this
// connection and this moment, and builds the Identity from the signed
// Assertion alone. It returns when the assertion stops being acceptable,
// which bounds its replay-cache entry.
func (sp *ServiceProvider) checkValues(v *verifiedResponse, now time.Time) (*Identity, time.Time, *Error) {
	c := valueChecker{sp: sp, now: now, skew: sp.cfg.ClockSkew}
	a := v.assertion

	if rerr := c.envelope(v); rerr != nil {
		return nil, time.Time{}, rerr
	}
	issuer, rerr := c.issuer(a, "Assertion", true)
	if rerr != nil {
		return nil, time.Time{}, rerr
	}
	assertionID := a.SelectAttrValue("ID", "")
	if assertionID == "" {
		return nil, time.Time{}, Rejectf(ReasonMalformedXML, "the Assertion has no ID")
	}
	if ver := a.SelectAttrValue("Version", ""); ver != "2.0" {
		return nil, time.Time{}, Rejectf(ReasonUnsupportedVersion, "Assertion Version was %q, expected \"2.0\"", truncate(ver, 32))
	}
	issued, rerr := c.issueInstant(a, "Assertion", true)
	if rerr != nil {
		return nil, time.Time{}, rerr
	}
	id := &Identity{AssertionID: assertionID, Issuer: issuer, Attributes: map[string][]string{}}
	scd, rerr := c.subject(a, id)
	if rerr != nil {
		return nil, time.Time{}, rerr
	}
	notBefore, notOnOrAfter, rerr := c.conditions(a)
	if rerr != nil {
		return nil, time.Time{}, rerr
	}
	if rerr := c.inResponseTo(v, scd, id); rerr != nil {
		return nil, time.Time{}, rerr
	}
	if rerr := c.authnStatement(a, id); rerr != nil {
		return nil, time.Time{}, rerr
	}
	if rerr := attributes(a, id.Attributes); rerr != nil {
		return nil, time.Time{}, rerr
	}
	id.Mapped = sp.cfg.Attributes.withNameIDEmail(sp.cfg.Attributes.Apply(id.Attributes), id.NameID, id.NameIDFormat)

	// The assertion is refused once any of its limits passes; until then
	// its ID must stay in the replay cache.
	expires := scd.notOnOrAfter
	if !notOnOrAfter.IsZero() && notOnOrAfter.Before(expires) {
		expires = notOnOrAfter
	}
	if limit := issued.Add(sp.cfg.MaxIssueAge); limit.Before(expires) {
		expires = limit
	}
	expires = expires.Add(c.skew)

	d := &id.Diagnostics
	d.ResponseSigned, d.AssertionSigned, d.Encrypted = v.responseSigned, v.assertionSigned, v.encrypted
	d.SignatureAlgorithm, d.DigestAlgorithm = v.sig.method, v.sig.digest
	d.CertificateSubject, d.CertificateNotAfter = v.sig.cert.Subject.String(), v.sig.cert.NotAfter
	d.IssueInstant, d.NotBefore, d.NotOnOrAfter, d.ClockSkew = issued, notBefore, notOnOrAfter, c.skew
	return id, expires, nil
}

type valueChecker struct {
	sp   *ServiceProvider
	now  time.Time
	skew time.Duration
}

// envelope checks the Response element: Issuer, Destination and
// IssueInstant. An unsigned envelope is checked too: it cannot vouch for
// anything, but a wrong value in it is still a reason to refuse.
func (c valueChecker) envelope(v *verifiedResponse) *Error {
	env := v.envelope
	if _, rerr := c.issuer(env, "Response", false); rerr != nil {
		return rerr
	}
	acs := c.sp.ACSURL()
	dest := env.SelectAttr("Destination")
	switch {
	case dest == nil && v.responseSigned:
		// saml-bindings 3.5.5.2: a signed message MUST carry Destination.
		return Rejectf(ReasonDestinationMismatch, "the signed Response has no Destination, expected %q", acs)
	case dest != nil && dest.Value != acs:
		return Rejectf(ReasonDestinationMismatch, "Response Destination was %q, expected %q", truncate(dest.Value, 256), acs)
	}
	_, rerr := c.issueInstant(env, "Response", false)
	return rerr
}

func (c valueChecker) issuer(el *etree.Element, what string, required bool) (string, *Error) {
	want := c.sp.cfg.IdP.EntityID
	iss := children(el, nsAssertion, "Issuer")
	switch {
	case len(iss) == 0 && !required:
		return "", nil
	case len(iss) == 0:
		return "", Rejectf(ReasonIssuerMismatch, "the %s has no Issuer, expected %q", what, want)
	case len(iss) > 1:
		return "", Rejectf(ReasonIssuerMismatch, "the %s has %d Issuers, expected one: %q", what, len(iss), want)
	}
	got, ok := textOf(iss[0])
	got = strings.TrimSpace(got)
	if !ok || got != want {
		return "", Rejectf(ReasonIssuerMismatch, "%s Issuer was %q, expected %q", what, truncate(got, 256), want)
	}
	return got, nil
}

func (c valueChecker) issueInstant(el *etree.Element, what string, required bool) (time.Time, *Error) {
	raw := el.SelectAttrValue("IssueInstant", "")
	if raw == "" {
		if required {
			return time.Time{}, Rejectf(ReasonIssueInstantInvalid, "the %s has no IssueInstant", what)
		}
		return time.Time{}, nil
	}
	t, rerr := parseInstant(raw, what+" IssueInstant")
	if rerr != nil {
		return time.Time{}, rerr
	}
	if t.After(c.now.Add(c.skew)) {
		return time.Time{}, Rejectf(ReasonIssueInstantInvalid, "%s IssueInstant %s is in the future (now %s, clock skew %s); %s",
			what, fmtTime(t), fmtTime(c.now), c.skew, aheadAdvice)
	}
	if age := c.now.Sub(t); age > c.sp.cfg.MaxIssueAge+c.skew {
		return time.Time{}, Rejectf(ReasonIssueInstantInvalid, "%s IssueInstant %s is %s old, the limit is %s plus %s clock skew",
			what, fmtTime(t), age.Round(time.Second), c.sp.cfg.MaxIssueAge, c.skew)
	}
	return t, nil
}

// confirmation is the bearer SubjectConfirmationData that was accepted.
type confirmation struct {
	inResponseTo string
	notOnOrAfter time.Time
}

// subject checks the NameID and finds a bearer SubjectConfirmation whose
// data binds the assertion to this ACS and this moment.
func (c valueChecker) subject(a *etree.Element, id *Identity) (confirmation, *Error) {
	var none confirmation
	subjects := children(a, nsAssertion, "Subject")
	if len(subjects) != 1 {
		return none, Rejectf(ReasonSubjectInvalid, "the Assertion has %d Subjects, expected 1", len(subjects))
	}
	s := subjects[0]
	if firstChild(s, nsAssertion, "EncryptedID") != nil {
		return none, Rejectf(ReasonSubjectInvalid, "the Subject carries an EncryptedID; configure the IdP to send a plain NameID inside the encrypted Assertion")
	}
	names := children(s, nsAssertion, "NameID")
	if len(names) != 1 {
		return none, Rejectf(ReasonSubjectInvalid, "the Subject has %d NameIDs, expected 1", len(names))
	}
	nameID, ok := textOf(names[0])
	nameID = strings.TrimSpace(nameID)
	if !ok || nameID == "" {
		return none, Rejectf(ReasonSubjectInvalid, "the NameID is empty or not plain text")
	}
	id.NameID = nameID
	id.NameIDFormat = names[0].SelectAttrValue("Format", "")

	var methods []string
	var first *Error
	for _, sc := range children(s, nsAssertion, "SubjectConfirmation") {
		method := sc.SelectAttrValue("Method", "")
		if method != bearerMethod {
			methods = append(methods, truncate(method, 128))
			continue
		}
		conf, rerr := c.bearer(sc)
		if rerr == nil {
			return conf, nil
		}
		if first == nil {
			first = rerr
		}
	}
	if first != nil {
		return none, first
	}
	return none, Rejectf(ReasonSubjectInvalid, "the Subject has no bearer SubjectConfirmation (methods: %s)", strings.Join(methods, ", "))
}

func (c valueChecker) bearer(sc *etree.Element) (confirmation, *Error) {
	var conf confirmation
	scd := firstChild(sc, nsAssertion, "SubjectConfirmationData")
	if scd == nil {
		return conf, Rejectf(ReasonSubjectInvalid, "the bearer SubjectConfirmation has no SubjectConfirmationData")
	}
	acs := c.sp.ACSURL()
	if got := scd.SelectAttrValue("Recipient", ""); got != acs {
		return conf, Rejectf(ReasonRecipientMismatch, "SubjectConfirmationData Recipient was %q, expected %q", truncate(got, 256), acs)
	}
	raw := scd.SelectAttrValue("NotOnOrAfter", "")
	if raw == "" {
		return conf, Rejectf(ReasonSubjectInvalid, "SubjectConfirmationData has no NotOnOrAfter")
	}
	noa, rerr := parseInstant(raw, "SubjectConfirmationData NotOnOrAfter")
	if rerr != nil {
		return conf, rerr
	}
	if rerr := c.notExpired(noa, "SubjectConfirmationData NotOnOrAfter"); rerr != nil {
		return conf, rerr
	}
	if raw := scd.SelectAttrValue("NotBefore", ""); raw != "" {
		nb, rerr := parseInstant(raw, "SubjectConfirmationData NotBefore")
		if rerr != nil {
			return conf, rerr
		}
		if rerr := c.started(nb, "SubjectConfirmationData NotBefore"); rerr != nil {
			return conf, rerr
		}
	}
	conf.notOnOrAfter = noa
	conf.inResponseTo = scd.SelectAttrValue("InResponseTo", "")
	return conf, nil
}

// conditions checks the validity window and that every AudienceRestriction
// names this SP (restrictions are conjunctive, saml-core 2.5.1.4).
func (c valueChecker) conditions(a *etree.Element) (notBefore, notOnOrAfter time.Time, rerr *Error) {
	entity := c.sp.EntityID()
	conds := children(a, nsAssertion, "Conditions")
	switch len(conds) {
	case 0:
		return notBefore, notOnOrAfter, Rejectf(ReasonAudienceMismatch, "the Assertion has no Conditions, expected an AudienceRestriction with %q", entity)
	case 1:
	default:
		return notBefore, notOnOrAfter, Rejectf(ReasonMalformedXML, "the Assertion has %d Conditions, expected 1", len(conds))
	}
	cond := conds[0]
	if raw := cond.SelectAttrValue("NotBefore", ""); raw != "" {
		if notBefore, rerr = parseInstant(raw, "Conditions NotBefore"); rerr != nil {
			return
		}
		if rerr = c.started(notBefore, "Conditions NotBefore"); rerr != nil {
			return
		}
	}
	if raw := cond.SelectAttrValue("NotOnOrAfter", ""); raw != "" {
		if notOnOrAfter, rerr = parseInstant(raw, "Conditions NotOnOrAfter"); rerr != nil {
			return
		}
		if rerr = c.notExpired(notOnOrAfter, "Conditions NotOnOrAfter"); rerr != nil {
			return
		}
	}
	restrictions := children(cond, nsAssertion, "AudienceRestriction")
	if len(restrictions) == 0 {
		return notBefore, notOnOrAfter, Rejectf(ReasonAudienceMismatch, "the Conditions have no AudienceRestriction, expected one with %q", entity)
	}
	for _, r := range restrictions {
		var seen []string
		matched := false
		for _, aud := range children(r, nsAssertion, "Audience") {
			t, _ := textOf(aud)
			t = strings.TrimSpace(t)
			if t == entity {
				matched = true
				break
			}
			seen = append(seen, truncate(t, 256))
		}
		if !matched {
			return notBefore, notOnOrAfter, Rejectf(ReasonAudienceMismatch, "Audience was %s, expected %q",
				quoteList(seen), entity)
		}
	}
	return notBefore, notOnOrAfter, nil
}

// inResponseTo takes the request ID only from signed data: the bearer
// SubjectConfirmationData, or a signed Response. An unsigned Response's
// InResponseTo may only agree; otherwise a stolen unsolicited assertion
// could be dressed up as the answer to an attacker's own login.
func (c valueChecker) inResponseTo(v *verifiedResponse, conf confirmation, id *Identity) *Error {
	env := v.envelope.SelectAttrValue("InResponseTo", "")
	switch {
	case env != "" && conf.inResponseTo != "" && env != conf.inResponseTo:
		return Rejectf(ReasonInResponseToUnknown, "Response InResponseTo %q differs from SubjectConfirmationData InResponseTo %q",
			truncate(env, 128), truncate(conf.inResponseTo, 128))
	case env != "" && conf.inResponseTo == "" && !v.responseSigned:
		return Rejectf(ReasonInResponseToUnknown,
			"the unsigned Response claims InResponseTo %q but the signed Assertion names no request", truncate(env, 128))
	}
	id.InResponseTo = conf.inResponseTo
	if id.InResponseTo == "" && v.responseSigned {
		id.InResponseTo = env
	}
	return nil
}

func (c valueChecker) authnStatement(a *etree.Element, id *Identity) *Error {
	st := firstChild(a, nsAssertion, "AuthnStatement")
	if st == nil {
		return Rejectf(ReasonAuthnStatementMissing,
			"the Assertion has no AuthnStatement; an assertion that logs a user in must say how and when they authenticated (SAML Profiles 4.1.4.2): configure the IdP to include an authentication statement")
	}
	id.SessionIndex = st.SelectAttrValue("SessionIndex", "")
	var rerr *Error
	if raw := st.SelectAttrValue("AuthnInstant", ""); raw != "" {
		if id.AuthnInstant, rerr = parseInstant(raw, "AuthnInstant"); rerr != nil {
			return rerr
		}
	}
	if raw := st.SelectAttrValue("SessionNotOnOrAfter", ""); raw != "" {
		if id.SessionNotOnOrAfter, rerr = parseInstant(raw, "SessionNotOnOrAfter"); rerr != nil {
			return rerr
		}
	}
	if ctx := firstChild(st, nsAssertion, "AuthnContext"); ctx != nil {
		if ref := firstChild(ctx, nsAssertion, "AuthnContextClassRef"); ref != nil {
			t, _ := textOf(ref)
			id.AuthnContextClassRef = strings.TrimSpace(t)
		}
	}
	return nil
}

// attributes collects every AttributeStatement's values by attribute Name.
// A value that is a NameID element (eduPersonTargetedID) yields its text;
// xsi:nil values are skipped.
func attributes(a *etree.Element, into map[string][]string) *Error {
	for _, st := range children(a, nsAssertion, "AttributeStatement") {
		for _, attr := range children(st, nsAssertion, "Attribute") {
			name := attr.SelectAttrValue("Name", "")
			if name == "" {
				return Rejectf(ReasonMalformedXML, "an Attribute has no Name")
			}
			for _, val := range children(attr, nsAssertion, "AttributeValue") {
				if isNil(val) {
					continue
				}
				t, ok := textOf(val)
				if !ok {
					n := firstChild(val, nsAssertion, "NameID")
					if n == nil {
						return Rejectf(ReasonMalformedXML, "attribute %q has a value that is neither text nor a NameID", truncate(name, 128))
					}
					t, _ = textOf(n)
				}
				into[name] = append(into[name], t)
			}
		}
	}
	return nil
}

func isNil(el *etree.Element) bool {
	for _, at := range el.Attr {
		if at.Key == "nil" && (at.Value == "true" || at.Value == "1") && el.NamespaceURI() != "" {
			return true
		}
	}
	return false
}

// aheadAdvice tells the IdP admin what to do about a time in the future.
const aheadAdvice = "check that the IdP's clock is synchronised (NTP); if it is and the IdP stamps NotBefore with no margin (ADFS, Entra ID), raise the connection's clock_skew (at most 10m)"

func (c valueChecker) started(t time.Time, what string) *Error {
	if c.now.Add(c.skew).Before(t) {
		return Rejectf(ReasonNotYetValid, "%s is %s, now is %s: %s ahead, beyond the clock skew of %s; %s",
			what, fmtTime(t), fmtTime(c.now), t.Sub(c.now).Round(time.Second), c.skew, aheadAdvice)
	}
	return nil
}

func (c valueChecker) notExpired(t time.Time, what string) *Error {
	if !c.now.Add(-c.skew).Before(t) {
		return Rejectf(ReasonExpired, "%s was %s, now is %s (clock skew %s)", what, fmtTime(t), fmtTime(c.now), c.skew)
	}
	return nil
}

// parseInstant reads an xs:dateTime. SAML requires UTC, but offsets are
// unambiguous and accepted; a value without a zone is not.
func parseInstant(raw, what string) (time.Time, *Error) {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(raw))
	if err != nil {
		return time.Time{}, &Error{Reason: ReasonMalformedXML, Err: err,
			Message: fmt.Sprintf("%s %q is not an xs:dateTime with a time zone", what, truncate(raw, 64))}
	}
	return t, nil
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func quoteList(vs []string) string {
	if len(vs) == 0 {
		return "empty"
	}
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}
