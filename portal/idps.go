package portal

// idp is one identity provider's guide: where its admin goes and the names
// its console gives each field, so the IT admin can match them one to one.
type idp struct {
	Key  string
	Name string
	// Where: how to reach the place where the app is made.
	Where []string
	// Fields map our values to the console's field names.
	EntityIDField, ACSField, SLOField, MetadataField string
	// NameID explains the NameID setting in the console's words.
	NameID string
	// Attributes are the attribute statements to add: name we read, the
	// console's value for it.
	Attributes []attribute
	// Groups explains the group claim.
	Groups []string
	// Signing is where the signature and algorithm settings live.
	Signing string
	// Logout describes the signed-logout setting, when the IdP has one.
	Logout string
	// Assign reminds the admin to give users access.
	Assign string
	// MetadataHint says where the IdP's metadata is found.
	MetadataHint string
}

type attribute struct{ Name, Value string }

var idps = []idp{
	{
		Key: "entra", Name: "Microsoft Entra ID (Azure AD)",
		Where: []string{"Microsoft Entra admin center → Identity → Applications → Enterprise applications → New application.",
			"Create your own application → \"Integrate any other application you don't find in the gallery (Non-gallery)\" → Create.",
			"Single sign-on → SAML → Basic SAML Configuration → Edit."},
		EntityIDField: "Identifier (Entity ID)", ACSField: "Reply URL (Assertion Consumer Service URL)",
		SLOField: "Logout Url (Optional)", MetadataField: "App Federation Metadata Url",
		NameID: "Attributes & Claims → Unique User Identifier (Name ID): keep user.userprincipalname, or choose user.mail with Name identifier format \"Email address\".",
		Attributes: []attribute{
			{"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "user.mail (present by default)"},
			{"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname", "user.givenname (present by default)"},
			{"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname", "user.surname (present by default)"},
			{"http://schemas.microsoft.com/identity/claims/displayname", "user.displayname (Add new claim)"},
		},
		Groups: []string{
			"Attributes & Claims → Add a group claim → \"Groups assigned to the application\" (recommended) or \"Security groups\".",
			"Source attribute: \"Group ID\" sends object IDs (GUIDs such as 8f2c1a2b-…), which is the default; access rules must then name those IDs. " +
				"Choose \"Cloud-only group display names\" (or \"sAMAccountName\" for groups synced from Active Directory) to send names instead.",
			"Entra ID puts at most 150 groups in a SAML token; a user in more groups gets none at all (a groups.link claim instead). " +
				"Choose \"Groups assigned to the application\" to stay under the limit.",
		},
		Signing:      "SAML Certificates → Edit: Signing Option \"Sign SAML response and assertion\", Signing Algorithm \"SHA-256\".",
		Logout:       "Put our Single Logout URL in \"Logout Url (Optional)\"; Entra ID signs its logout messages with the same certificate.",
		Assign:       "Users and groups → Add user/group: only assigned users can sign in (unless \"Assignment required?\" is No under Properties).",
		MetadataHint: "SAML Certificates → \"App Federation Metadata Url\" (copy), or \"Federation Metadata XML\" → Download.",
	},
	{
		Key: "okta", Name: "Okta",
		Where: []string{"Okta Admin Console → Applications → Applications → Create App Integration.",
			"Sign-in method: SAML 2.0 → Next; give the app a name → Next.", "Configure SAML: fill the fields below."},
		EntityIDField: "Audience URI (SP Entity ID)", ACSField: "Single sign-on URL",
		SLOField: "Single Logout URL (under Show Advanced Settings → Enable Single Logout)", MetadataField: "Metadata URL",
		NameID: "Name ID format: EmailAddress; Application username: Email.",
		Attributes: []attribute{
			{"email", "user.email"}, {"firstName", "user.firstName"}, {"lastName", "user.lastName"},
		},
		Groups:       []string{"Group Attribute Statements (optional): Name \"groups\", Filter \"Matches regex\" \".*\" (or a narrower filter naming the groups this app needs)."},
		Signing:      "Show Advanced Settings: Response \"Signed\", Assertion Signature \"Signed\", Signature Algorithm \"RSA-SHA256\", Digest Algorithm \"SHA256\".",
		Logout:       "Show Advanced Settings → Enable Single Logout → Single Logout URL (ours) and SP Issuer (our entity ID); upload our signing certificate as the \"Signature Certificate\" (it is in our SP metadata).",
		Assign:       "Assignments tab → Assign → Assign to People or Assign to Groups.",
		MetadataHint: "Sign On tab → SAML Signing Certificates → Actions → View IdP metadata (copy its address: the \"Metadata URL\").",
	},
	{
		Key: "google", Name: "Google Workspace",
		Where: []string{"Google Admin console → Apps → Web and mobile apps → Add app → Add custom SAML app.",
			"App details: name the app → Continue.",
			"Google Identity Provider details: click DOWNLOAD METADATA (you will upload it here in the next step) → Continue.",
			"Service provider details: fill the fields below."},
		EntityIDField: "Entity ID", ACSField: "ACS URL", MetadataField: "DOWNLOAD METADATA (file)",
		NameID: "Name ID format: EMAIL; Name ID: Basic Information > Primary email. Tick \"Signed response\".",
		Attributes: []attribute{
			{"email", "Primary email"}, {"firstName", "First name"}, {"lastName", "Last name"},
		},
		Groups:       []string{"Attribute mapping → Group membership (optional): choose the Google groups to send, App attribute \"groups\". Google sends only the groups you list here."},
		Signing:      "Google signs with SHA-256; tick \"Signed response\" so the whole response is signed.",
		Assign:       "After Finish: User access → ON for everyone (or for the organizational units that need it) → Save. It can take a few minutes to apply.",
		MetadataHint: "Google has no metadata URL: use DOWNLOAD METADATA and upload the file, or copy SSO URL, Entity ID and Certificate into the fields.",
	},
	{
		Key: "onelogin", Name: "OneLogin",
		Where:         []string{"OneLogin admin → Applications → Applications → Add App.", "Search \"SAML Custom Connector (Advanced)\" → Save.", "Configuration tab: fill the fields below."},
		EntityIDField: "Audience (EntityID)", ACSField: "ACS (Consumer) URL (also paste it into Recipient and ACS (Consumer) URL Validator)",
		SLOField: "Single Logout URL", MetadataField: "Issuer URL",
		NameID: "SSO tab → SAML nameID format: Email.",
		Attributes: []attribute{
			{"email", "Email (Parameters tab: add \"email\", value Email, tick Include in SAML assertion)"},
			{"firstName", "First Name"}, {"lastName", "Last Name"},
		},
		Groups:       []string{"Parameters tab → add \"groups\", value \"User Roles\" (or MemberOf for directory groups), tick \"Include in SAML assertion\" and \"Multi-value parameter\"."},
		Signing:      "Configuration tab: SAML signature element \"Both\"; SSO tab: SAML Signature Algorithm \"SHA-256\".",
		Logout:       "Configuration tab → Single Logout URL (ours); SAML initiator stays \"Service Provider\".",
		Assign:       "Users: give people a role that includes the app (Users → a user → Applications, or Roles).",
		MetadataHint: "SSO tab → Issuer URL (the metadata address), or More Actions → SAML Metadata to download it.",
	},
	{
		Key: "ping", Name: "PingOne / PingFederate",
		Where: []string{"PingOne: Applications → Applications → + (Add Application) → SAML Application → Configure → \"Manually Enter\".",
			"PingFederate: Applications → Integration → SP Connections → Create Connection (Browser SSO, SAML 2.0)."},
		EntityIDField: "Entity ID (PingFederate: Partner's Entity ID (Connection ID))", ACSField: "ACS URLs (PingFederate: Assertion Consumer Service URL, binding POST)",
		SLOField: "SLO Endpoint", MetadataField: "IDP Metadata URL",
		NameID: "Attribute Mappings: saml_subject ← Email Address; Subject NameID format urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress.",
		Attributes: []attribute{
			{"email", "Email Address"}, {"firstName", "Given Name"}, {"lastName", "Family Name"},
		},
		Groups:       []string{"Attribute Mappings → + Add: \"groups\" ← Group Names (PingFederate: add \"groups\" to the Attribute Contract, fulfilled from memberOf)."},
		Signing:      "Signing Key: the PingOne SSO certificate; Signing Algorithm RSA_SHA256; choose \"Sign Assertion & Response\".",
		Logout:       "SLO Endpoint and SLO Binding \"HTTP Redirect\"; PingOne signs logout messages with the signing key.",
		Assign:       "Access tab: choose the groups allowed to use the application; then switch the application on (toggle).",
		MetadataHint: "Configuration tab → IDP Metadata URL (copy) or Download Metadata.",
	},
	{
		Key: "workspaceone", Name: "VMware Workspace ONE Access",
		Where:         []string{"Workspace ONE Access console → Resources (Catalog) → Web Apps → New.", "Name the app → Next; Authentication Type: SAML 2.0; Configuration: Manual."},
		EntityIDField: "Application ID", ACSField: "Single Sign-On URL (and the same in Recipient URL)",
		SLOField: "Single Logout URL (Advanced Properties)", MetadataField: "SAML Metadata → Identity Provider (IdP) metadata",
		NameID: "Username Format: Email Address; Username Value: ${user.email}.",
		Attributes: []attribute{
			{"email", "${user.email}"}, {"firstName", "${user.firstName}"}, {"lastName", "${user.lastName}"},
		},
		Groups:       []string{"Advanced Properties → Custom Attribute Mapping: Name \"groups\", Format Basic, Value ${groupNames}."},
		Signing:      "Advanced Properties: Sign Response Yes, Sign Assertion Yes, Signature Algorithm SHA256 with RSA, Digest Algorithm SHA256.",
		Logout:       "Advanced Properties → Enable Single Logout; Single Logout URL (ours).",
		Assign:       "Assign the app to the users or groups who need it (Assign button on the app).",
		MetadataHint: "Resources → Web Apps → Settings → SAML Metadata → Identity Provider (IdP) metadata (a URL ending /SAAS/API/1.0/GET/metadata/idp.xml).",
	},
	{
		Key: "adfs", Name: "Microsoft AD FS",
		Where: []string{"AD FS Management → Relying Party Trusts → Add Relying Party Trust → Claims aware → Start.",
			"Select Data Source: \"Import data about the relying party published online\" with our SP metadata URL (simplest), or \"Enter data about the relying party manually\" with the fields below."},
		EntityIDField: "Relying party trust identifier", ACSField: "Relying party SAML 2.0 SSO service URL (\"Enable support for the SAML 2.0 WebSSO protocol\")",
		SLOField: "Endpoints tab → Add SAML → SAML Logout", MetadataField: "Federation metadata (https://<your AD FS host>/FederationMetadata/2007-06/FederationMetadata.xml)",
		NameID: "Edit Claim Issuance Policy → Add Rule → Transform an Incoming Claim: E-Mail Address → Name ID, format Email.",
		Attributes: []attribute{
			{"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "E-Mail-Addresses → E-Mail Address (Send LDAP Attributes as Claims)"},
			{"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname", "Given-Name → Given Name"},
			{"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname", "Surname → Surname"},
		},
		Groups:       []string{"Same rule: Token-Groups - Unqualified Names → Group (sends the group names as http://schemas.xmlsoap.org/claims/Group)."},
		Signing:      "Relying party Properties → Advanced → Secure hash algorithm: SHA-256. AD FS signs the assertion by default.",
		Logout:       "Endpoints tab → Add SAML → Endpoint type SAML Logout, Binding Redirect, URL (ours); Signature tab: add our signing certificate.",
		Assign:       "Access control policy: \"Permit everyone\" or a group-based policy.",
		MetadataHint: "The federation metadata address of your AD FS farm: https://<your AD FS host>/FederationMetadata/2007-06/FederationMetadata.xml.",
	},
	{
		Key: "other", Name: "Other SAML 2.0 IdP (Keycloak, Shibboleth, SimpleSAMLphp, …)",
		Where: []string{"In your IdP, add a SAML 2.0 service provider (also called relying party, client or application).",
			"If it can import SP metadata, give it our SP metadata URL or file; otherwise fill the fields below."},
		EntityIDField: "SP entity ID (Audience, Issuer of the SP, client ID)", ACSField: "Assertion Consumer Service URL (HTTP-POST binding)",
		SLOField: "Single Logout Service URL (HTTP-Redirect)", MetadataField: "IdP metadata URL",
		NameID: "NameID format urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress with the user's email, or a persistent identifier.",
		Attributes: []attribute{
			{"email (or mail / urn:oid:0.9.2342.19200300.100.1.3)", "the user's email"},
			{"givenName (or urn:oid:2.5.4.42)", "first name"}, {"sn (or urn:oid:2.5.4.4)", "last name"},
		},
		Groups:       []string{"Send group names in an attribute named \"groups\" (or memberOf / urn:oid:1.3.6.1.4.1.5923.1.5.1.1 isMemberOf), one value per group."},
		Signing:      "Sign the response or the assertion with RSA-SHA256 (SHA-1 is refused).",
		Logout:       "If your IdP supports Single Logout, give it our Single Logout URL; it must sign its logout messages.",
		Assign:       "Give the users who need the app access to it in your IdP.",
		MetadataHint: "Most IdPs publish their metadata at a URL (Keycloak: /realms/<realm>/protocol/saml/descriptor; Shibboleth: /idp/shibboleth).",
	},
}

func idpByKey(key string) (idp, bool) {
	for _, p := range idps {
		if p.Key == key {
			return p, true
		}
	}
	return idp{}, false
}
