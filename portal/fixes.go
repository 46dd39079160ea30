package portal

import "github.com/ssogate/ssogate/saml"

// fix says what to change, in the IT admin's IdP console, for one refusal
// reason: a general fix, and per IdP where the console differs.
type fix struct {
	General string
	PerIdP  map[string]string
}

// fixFor returns the fix for a reason at an IdP (general when the IdP has
// no own wording).
func fixFor(reason saml.Reason, idpKey string) string {
	f, ok := fixes[reason]
	if !ok {
		return "Check the message above against your IdP settings, or send the reference to support."
	}
	if s, ok := f.PerIdP[idpKey]; ok {
		return s
	}
	return f.General
}

// fixes covers every reason saml.Reasons lists (a test keeps it so).
var fixes = map[saml.Reason]fix{
	saml.ReasonBodyTooLarge: {General: "The response is larger than we accept, usually because it lists very many groups. Send only the groups this app needs (a group filter).",
		PerIdP: map[string]string{
			"entra": "Attributes & Claims → edit the group claim → choose \"Groups assigned to the application\" so only the app's groups are sent.",
			"okta":  "Group Attribute Statements: narrow the filter (for example Starts with \"app-\") instead of \".*\".",
		}},
	saml.ReasonMalformedEncoding:  {General: "The browser did not deliver a SAML response we can read. Start the test from this portal again; if it repeats, check that the IdP posts to our ACS URL with the HTTP-POST binding."},
	saml.ReasonMalformedXML:       {General: "The IdP sent XML we cannot read, or something else than a SAML Response. Check that our ACS URL is the Assertion Consumer Service URL (not a logout or metadata URL)."},
	saml.ReasonForbiddenXML:       {General: "The response contains a DTD or entity declaration, which we refuse for safety. No standard IdP does this: check for a proxy that rewrites the response."},
	saml.ReasonXMLTooComplex:      {General: "The response is nested or namespaced far beyond what any IdP sends. Check for a proxy that rewrites it."},
	saml.ReasonUnsupportedVersion: {General: "The IdP answered with SAML 1.1 or WS-Federation. Configure the application as SAML 2.0."},
	saml.ReasonSignatureMissing: {General: "Sign the response or the assertion (or both).",
		PerIdP: map[string]string{
			"okta":         "Show Advanced Settings: set Response to \"Signed\" and Assertion Signature to \"Signed\".",
			"entra":        "SAML Certificates → Edit → Signing Option: \"Sign SAML response and assertion\".",
			"google":       "Service provider details: tick \"Signed response\".",
			"onelogin":     "Configuration tab: SAML signature element \"Both\".",
			"workspaceone": "Advanced Properties: Sign Response Yes and Sign Assertion Yes.",
		}},
	saml.ReasonSignatureInvalid: {General: "The signature does not verify: something changed the response after the IdP signed it, or the IdP signs with a key that does not match the certificate it publishes. Remove any proxy that rewrites responses, and give us the IdP's current metadata."},
	saml.ReasonCertificateNotTrusted: {General: "The IdP signed with a certificate we were not given. Give us the IdP's current metadata again (step 3): the certificate it signs with must be in it. After a certificate rollover, the new one must be active in the IdP and present here.",
		PerIdP: map[string]string{
			"entra": "SAML Certificates: the certificate marked Active is the one Entra ID signs with. Download \"Federation Metadata XML\" again (or use the App Federation Metadata Url) and give it to us in step 3.",
			"okta":  "Sign On tab → SAML Signing Certificates: the Active certificate signs. Use its \"View IdP metadata\" address in step 3.",
			"adfs":  "AD FS → Service → Certificates: the primary Token-signing certificate signs. Give us the federation metadata again after a rollover.",
		}},
	saml.ReasonAlgorithmNotAllowed: {General: "The IdP signs with SHA-1, which we refuse. Switch the signature and digest algorithm to SHA-256.",
		PerIdP: map[string]string{
			"okta":         "Show Advanced Settings: Signature Algorithm \"RSA-SHA256\", Digest Algorithm \"SHA256\".",
			"entra":        "SAML Certificates → Edit → Signing Algorithm: SHA-256.",
			"adfs":         "Relying party Properties → Advanced → Secure hash algorithm: SHA-256.",
			"onelogin":     "SSO tab: SAML Signature Algorithm \"SHA-256\".",
			"ping":         "Signing Algorithm: RSA_SHA256.",
			"workspaceone": "Advanced Properties: Signature Algorithm SHA256 with RSA, Digest Algorithm SHA256.",
		}},
	saml.ReasonAssertionCount:     {General: "The response must hold exactly one assertion. Check that no second assertion (or an empty response) is configured."},
	saml.ReasonEncryptionRequired: {General: "This connection requires encrypted assertions. Turn on assertion encryption in your IdP with our encryption certificate (it is in our SP metadata)."},
	saml.ReasonDecryptionFailed:   {General: "We could not decrypt the assertion. Encrypt it with our current encryption certificate (download our SP metadata again) using AES-GCM (or AES-CBC only if the connection allows legacy encryption) and RSA-OAEP."},
	saml.ReasonIdPAuthnFailed:     {General: "Your IdP did not authenticate the user (wrong password, MFA failed or cancelled). Try again with a working account."},
	saml.ReasonIdPRequestDenied: {General: "Your IdP refused to sign this user in to the app, usually because the user is not assigned to it.",
		PerIdP: map[string]string{
			"entra":  "Users and groups → Add user/group: assign the user (or one of their groups) to the application.",
			"okta":   "Assignments tab → Assign → Assign to People: assign the user.",
			"google": "User access: turn the app ON for the user's organizational unit or group.",
		}},
	saml.ReasonIdPNoPassive: {General: "Your IdP could not sign the user in without asking them. Start the test again and sign in when asked."},
	saml.ReasonIdPStatus:    {General: "Your IdP answered with an error status (shown above). Its own sign-in logs say why."},
	saml.ReasonIssuerMismatch: {General: "The IdP's entity ID (Issuer) differs from the one you gave us. Give us the IdP's metadata again in step 3, or correct the IdP entity ID there.",
		PerIdP: map[string]string{
			"entra": "Entra ID's Issuer is https://sts.windows.net/<tenant-id>/. Use this application's App Federation Metadata Url in step 3 so it matches.",
			"okta":  "Okta's Issuer is http://www.okta.com/<id>, different for every app: use this app's metadata URL in step 3.",
		}},
	saml.ReasonDestinationMismatch: {General: "The IdP sent the response to another address than our ACS URL. Paste our ACS URL exactly (copy button in step 2).",
		PerIdP: map[string]string{
			"okta":     "Tick \"Use this for Recipient URL and Destination URL\" under Single sign-on URL, or set Destination URL to our ACS URL.",
			"onelogin": "Set Recipient and ACS (Consumer) URL to our ACS URL.",
		}},
	saml.ReasonRecipientMismatch: {General: "The assertion's Recipient is not our ACS URL. Paste our ACS URL exactly where the IdP asks for the recipient.",
		PerIdP: map[string]string{
			"okta":         "Tick \"Use this for Recipient URL and Destination URL\", or set Recipient URL to our ACS URL.",
			"onelogin":     "Recipient: our ACS URL.",
			"workspaceone": "Recipient URL: our ACS URL.",
		}},
	saml.ReasonAudienceMismatch: {General: "The assertion is meant for another application (its Audience is not our entity ID). Paste our entity ID exactly (copy button in step 2).",
		PerIdP: map[string]string{
			"entra":        "Basic SAML Configuration → Identifier (Entity ID): our entity ID, marked Default.",
			"okta":         "Audience URI (SP Entity ID): our entity ID.",
			"google":       "Service provider details → Entity ID: our entity ID.",
			"onelogin":     "Configuration tab → Audience (EntityID): our entity ID.",
			"ping":         "Entity ID: our entity ID.",
			"workspaceone": "Application ID: our entity ID.",
			"adfs":         "Relying party Properties → Identifiers: our entity ID.",
		}},
	saml.ReasonSubjectInvalid:        {General: "The assertion has no usable subject (NameID). Configure a NameID, preferably the user's email with format emailAddress."},
	saml.ReasonNotYetValid:           {General: "The assertion is valid only from a time in the future: the IdP's clock is ahead of ours. Fix the IdP server's clock (NTP); cloud IdPs are rarely wrong."},
	saml.ReasonExpired:               {General: "The assertion had already expired when it arrived. Check the IdP server's clock (NTP), and that the assertion lifetime is a few minutes, not seconds."},
	saml.ReasonIssueInstantInvalid:   {General: "The response was issued too long ago or in the future. Check the IdP server's clock, then start a new test (do not reuse an old tab)."},
	saml.ReasonInResponseToUnknown:   {General: "The response answers a sign-in we did not start. Start the test from this portal (not from the IdP's app dashboard), in the same browser."},
	saml.ReasonInResponseToUsed:      {General: "This sign-in was already completed (the page was reloaded or resubmitted). Start a new test from this portal."},
	saml.ReasonInResponseToExpired:   {General: "The sign-in took more than 10 minutes. Start a new test from this portal."},
	saml.ReasonIdPInitiatedForbidden: {General: "The sign-in was started from the IdP (app dashboard or tile), which this connection refuses. Start the test from this portal."},
	saml.ReasonAssertionReplayed:     {General: "This exact assertion was used before (a reload or a copied response). Start a new test from this portal."},
	saml.ReasonConnectionNotFound:    {General: "The response went to a connection that does not exist. Paste our ACS URL exactly (copy button in step 2)."},
	saml.ReasonConnectionInactive:    {General: "Test logins work once the connection has its IdP settings. Give us your IdP's metadata in step 3 first, then start the test again."},
	saml.ReasonAuthnStatementMissing: {General: "The assertion says nothing about how the user signed in (no AuthnStatement), which SAML web sign-in requires. Use a SAML 2.0 web SSO application (not an attribute query or a custom token template)."},
	saml.ReasonEmailDomainMismatch: {General: "The user's email is outside the email domains this connection serves. Send the user's company email (for example the mail attribute instead of a personal or onmicrosoft.com address), or ask the product to add the domain.",
		PerIdP: map[string]string{
			"entra": "Attributes & Claims → emailaddress: source attribute user.mail (not user.userprincipalname when UPNs use another domain).",
		}},
	saml.ReasonGroupOverage: {General: "The user is in more groups than the IdP puts in a token, so it sent a link to them instead, and this connection's access rules depend on groups. Send only the groups that matter, or let directory sync (SCIM) bring the groups.",
		PerIdP: map[string]string{
			"entra": "Attributes & Claims → the groups claim: choose \"Groups assigned to the application\" and assign the groups the product needs to the application (Entra sends at most 150 groups in a SAML token), or provision groups over SCIM and ask the product to take groups from the directory.",
		}},
	saml.ReasonUserDeprovisioned:  {General: "Directory sync (SCIM) marked this user inactive or removed them, so sign-in is refused. Re-activate or re-assign the user in your IdP and let it sync."},
	saml.ReasonUserNotProvisioned: {General: "This connection admits only users that directory sync (SCIM) has created, and this user was not. Assign the user to the app in your IdP and wait for the sync (or push it)."},
	saml.ReasonPolicyDenied:       {General: "Your IdP signed the user in, but this application's access rules do not admit them (for example a required group). Check the groups sent (above) against what the product expects, or ask the product's support which group is required."},
	saml.ReasonInternal:           {General: "Something went wrong on our side; nothing in your IdP needs changing. Try again in a minute; if it repeats, send the reference to support."},
}
