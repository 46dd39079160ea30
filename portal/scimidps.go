package portal

// scimIdP is one IdP's SCIM provisioning steps, in the words of its
// admin console.
type scimIdP struct {
	Key, Name string
	Steps     []string
}

// scimIdPs are the SCIM steps per IdP. Field names come from:
//   - Entra ID: Microsoft's SaaS provisioning tutorials (MicrosoftDocs
//     entra-docs, docs/identity/saas-apps/*-provisioning-tutorial.md:
//     "Provisioning Mode" Automatic, "Admin Credentials", "Tenant URL",
//     "Secret Token", "Test Connection", "Mappings") and Stytch's Entra
//     SCIM guide (Enterprise applications → Provisioning → Get started,
//     Manual → Automatic).
//   - Okta: scim.dev's Okta guide (https://scim.dev/guide/applications/okta.html)
//     and Okta's own SCIM app wizard as quoted there: General → Edit →
//     Provisioning SCIM ("Enable SCIM provisioning"); Provisioning →
//     Settings → Integration: "SCIM connector base URL", "Unique identifier
//     field for users", "Supported provisioning actions", "Authentication
//     Mode" HTTP Header, Bearer token.
var scimIdPs = []scimIdP{
	{Key: "entra", Name: "Microsoft Entra ID", Steps: []string{
		"In the Microsoft Entra admin center, open Enterprise applications and the application you made for single sign-on.",
		"Open Provisioning, choose Get started (or New configuration) and set Provisioning Mode to Automatic.",
		"Under Admin Credentials, paste the SCIM base URL above into Tenant URL and the token into Secret Token.",
		"Choose Test Connection; it should report that the credentials are authorized. Then Save.",
		"Under Mappings, keep Provision Microsoft Entra ID Users (userName from userPrincipalName, active from Switch([IsSoftDeleted]…)) and turn on Provision Microsoft Entra ID Groups if you want group sync.",
		"Under Settings, set Scope to Sync only assigned users and groups, assign the users and groups under Users and groups, and set Provisioning Status to On.",
	}},
	{Key: "okta", Name: "Okta", Steps: []string{
		"In the Okta Admin Console, open Applications → Applications and the SAML app you made for single sign-on.",
		"On the General tab choose Edit, tick Enable SCIM provisioning (Provisioning: SCIM) and Save.",
		"On the Provisioning tab, under Settings → Integration, choose Edit.",
		"Paste the SCIM base URL above into SCIM connector base URL, and enter userName in Unique identifier field for users.",
		"Under Supported provisioning actions tick Push New Users, Push Profile Updates and Push Groups (and Import New Users and Profile Updates if you like).",
		"Set Authentication Mode to HTTP Header and paste the token into Authorization (Bearer). Choose Test Connector Configuration, then Save.",
		"Under Provisioning → To App choose Edit and enable Create Users, Update User Attributes and Deactivate Users; then assign users and push groups.",
	}},
	{Key: "other", Name: "Other SCIM 2.0 clients", Steps: []string{
		"Use the SCIM base URL above as the SCIM 2.0 endpoint (the client adds /Users, /Groups, /ServiceProviderConfig).",
		"Send the token as an HTTP header: Authorization: Bearer followed by the token.",
		"Use userName as the unique user identifier, and deactivate leavers with active: false (or DELETE).",
	}},
}
