package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// connections runs `ssogate connections …`.
func (c *cli) connections(ctx context.Context, args []string) error {
	return c.dispatch(ctx, "connections", []subcommand{
		{"create", "add a connection from IdP metadata (file or URL) or a file", c.connCreate},
		{"import", "create connections from another SP's export (--from auth0|workos|jackson|ssoready|csv|json; --apply)", c.connImport},
		{"list", "list connections", c.connList},
		{"get", "show one connection", c.connGet},
		{"update", "change fields of a connection (--set, --state, --from-file)", c.connUpdate},
		{"activate", "move a connection to ACTIVE: its users sign in", c.connActivate},
		{"setup-link", "make a setup link for the customer's IT admin (--ttl 72h)", c.connSetupLink},
		{"sp-metadata", "print the SP metadata XML to give the IdP admin", c.connSPMetadata},
		{"refresh-metadata", "fetch the connection's IdP metadata URL now", c.connRefresh},
		{"rotate-sp-key", "give the connection a new SP key, published beside the current one for --overlap", c.connRotateSPKey},
		{"scim-token", "make a SCIM bearer token for the IdP's provisioning (shown once)", c.connScimToken},
		{"delete", "delete a connection and revoke its sessions (--yes)", c.connDelete},
	}, args)
}

// withConnections calls fn with a ConnectionService client.
func (c *cli) withConnections(cf *clientFlags, fn func(ssogatev1.ConnectionServiceClient) error) error {
	return withClient(c, cf, ssogatev1.NewConnectionServiceClient, fn)
}

// connectionResponse is a response that carries one connection.
type connectionResponse interface {
	proto.Message
	GetConnection() *ssogatev1.Connection
}

// emitConnection prints the connection of a response (or, with -o json,
// the response).
func (c *cli) emitConnection(cf *clientFlags, resp connectionResponse) error {
	return c.emit(cf, resp, func(w io.Writer) { printConnection(w, resp.GetConnection()) })
}

// createFlags are the flags of `connections create`.
type createFlags struct {
	id, tenant, display, defaultReturn, state *string
	metadataFile, metadataURL, entityID       *string
	spEntityID, acsURL                        *string
	fromFile                                  *string
	spKey, spCert                             *string
	domains, returnURLs                       stringList
}

func (c *cli) connCreate(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("connections create", "", "Add a connection, in DRAFT unless --state says otherwise. The IdP side comes from\n--metadata-file, --metadata-url, or the identity_provider of --from-file; flags override the file.")
	f := createFlags{
		id:            fs.String("id", "", "connection ID, [a-z0-9-]{1,63}; part of the SP entity ID and ACS URL"),
		tenant:        fs.String("tenant", "", "tenant ID: the customer, in the product's own terms"),
		display:       fs.String("display-name", "", `a human name, e.g. "Acme Corp (Okta)"`),
		metadataFile:  fs.String("metadata-file", "", "IdP metadata XML file (- reads stdin)"),
		metadataURL:   fs.String("metadata-url", "", "https URL of the IdP metadata: fetched now and refreshed"),
		entityID:      fs.String("entity-id", "", "the IdP to use when the metadata lists several (EntitiesDescriptor)"),
		defaultReturn: fs.String("default-return-url", "", "where IdP-initiated logins land; under an allowed return URL"),
		state:         fs.String("state", "", "draft (default), testing, active or disabled"),
		fromFile:      fs.String("from-file", "", "a Connection as YAML or JSON with the API's field names (- reads stdin)"),
		spEntityID:    fs.String("sp-entity-id", "", "keep this SP entity ID (a connection migrated from another SP; default: derived)"),
		acsURL:        fs.String("acs-url", "", "keep this ACS URL; its host must be external_url's or in public_hosts (default: derived)"),
		spKey:         fs.String("sp-key", "", "PEM private key (PKCS#8 or PKCS#1 RSA) to keep as this connection's SP key, e.g. when migrating from another SP"),
		spCert:        fs.String("sp-cert", "", "PEM certificate of --sp-key: the SP certificate the IdP pinned"),
	}
	fs.Var(&f.domains, "domain", "`domain`: email domain for discovery (repeatable; replaces the file's list)")
	fs.Var(&f.returnURLs, "return-url", "`URL`: allowed return URL (repeatable; replaces the file's list)")
	if _, err := parse(fs, cf, args); err != nil {
		return err
	}
	req, err := c.createRequest(f)
	if err != nil {
		return err
	}
	return c.withConnections(cf, func(client ssogatev1.ConnectionServiceClient) error {
		resp, err := call(ctx, cf, client.CreateConnection, req)
		if err != nil {
			return err
		}
		if err := c.emitConnection(cf, resp); err != nil {
			return err
		}
		if got := resp.Connection; got.State == ssogatev1.ConnectionState_CONNECTION_STATE_DRAFT {
			c.hint(cf, "\nNext: give the IdP admin the SP metadata (ssogate connections sp-metadata %[1]s),\nthen ssogate connections update %[1]s --state testing, and a test login at %[2]s.", got.Id, testLoginURL(got))
		}
		return nil
	})
}

// createRequest builds CreateConnection from the file, then the flags.
func (c *cli) createRequest(f createFlags) (*ssogatev1.CreateConnectionRequest, error) {
	if *f.metadataFile != "" && *f.metadataURL != "" {
		return nil, errors.New("give --metadata-file or --metadata-url, not both")
	}
	if *f.metadataFile == "-" && *f.fromFile == "-" {
		return nil, errors.New("--metadata-file and --from-file cannot both read stdin")
	}
	conn := &ssogatev1.Connection{}
	if *f.fromFile != "" {
		file, err := c.readConnectionFile(*f.fromFile)
		if err != nil {
			return nil, err
		}
		conn = file.conn
		clearOutputOnly(conn.ProtoReflect())
		conn.Etag = ""
	}
	override(&conn.Id, *f.id)
	override(&conn.TenantId, *f.tenant)
	override(&conn.DisplayName, *f.display)
	override(&conn.DefaultReturnUrl, *f.defaultReturn)
	if len(f.domains) > 0 {
		conn.EmailDomains = f.domains
	}
	if len(f.returnURLs) > 0 {
		conn.AllowedReturnUrls = f.returnURLs
	}
	if *f.spEntityID != "" || *f.acsURL != "" {
		if conn.ServiceProvider == nil {
			conn.ServiceProvider = &ssogatev1.ServiceProviderInfo{}
		}
		override(&conn.ServiceProvider.EntityId, *f.spEntityID)
		override(&conn.ServiceProvider.AcsUrl, *f.acsURL)
	}
	if *f.state != "" {
		s, err := parseState(*f.state)
		if err != nil {
			return nil, err
		}
		conn.State = s
	}
	req := &ssogatev1.CreateConnectionRequest{Connection: conn, IdpMetadataUrl: *f.metadataURL, IdpEntityId: *f.entityID}
	if *f.metadataFile != "" {
		xml, err := c.readInput(*f.metadataFile, "--metadata-file")
		if err != nil {
			return nil, err
		}
		req.IdpMetadataXml = string(xml)
	}
	if (*f.spKey == "") != (*f.spCert == "") {
		return nil, errors.New("--sp-key and --sp-cert go together")
	}
	if *f.spKey != "" {
		if *f.metadataFile == "-" && (*f.spKey == "-" || *f.spCert == "-") {
			return nil, errors.New("--metadata-file and --sp-key/--sp-cert cannot both read stdin")
		}
		key, cert, err := c.readKeyPair(*f.spKey, *f.spCert, "--sp-key", "--sp-cert")
		if err != nil {
			return nil, err
		}
		req.ServiceProviderPrivateKeyPem, req.ServiceProviderCertificatePem = key, cert
	}
	return req, nil
}

// readKeyPair reads a PEM key and its certificate from files (or one of
// them from stdin, "-").
func (c *cli) readKeyPair(keyPath, certPath, keyFlag, certFlag string) (key, cert string, _ error) {
	if keyPath == "-" && certPath == "-" {
		return "", "", fmt.Errorf("%s and %s cannot both read stdin", keyFlag, certFlag)
	}
	k, err := c.readInput(keyPath, keyFlag)
	if err != nil {
		return "", "", err
	}
	ce, err := c.readInput(certPath, certFlag)
	if err != nil {
		return "", "", err
	}
	return string(k), string(ce), nil
}

// override sets *field when the flag was given.
func override(field *string, flagValue string) {
	if flagValue != "" {
		*field = flagValue
	}
}

func (c *cli) connList(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("connections list", "", "List every connection, ordered by ID.")
	tenant := fs.String("tenant", "", "only this tenant's connections")
	if _, err := parse(fs, cf, args); err != nil {
		return err
	}
	all := &ssogatev1.ListConnectionsResponse{}
	err := c.withConnections(cf, func(client ssogatev1.ConnectionServiceClient) error {
		req := &ssogatev1.ListConnectionsRequest{TenantId: *tenant, PageSize: 500}
		for {
			page, err := call(ctx, cf, client.ListConnections, req)
			if err != nil {
				return err
			}
			all.Connections = append(all.Connections, page.Connections...)
			if page.NextPageToken == "" {
				return nil
			}
			req.PageToken = page.NextPageToken
		}
	})
	if err != nil {
		return err
	}
	return c.emit(cf, all, func(w io.Writer) {
		fmt.Fprintln(w, "ID\tTENANT\tSTATE\tDOMAINS\tIDP ENTITY ID\tUPDATED")
		for _, conn := range all.Connections {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", conn.Id, conn.TenantId, stateName(conn.State),
				orDash(strings.Join(conn.EmailDomains, ",")), orDash(conn.GetIdentityProvider().GetEntityId()), ts(conn.UpdateTime))
		}
	})
}

func (c *cli) connGet(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("connections get", "ID", "Show one connection.")
	pos, err := parse(fs, cf, args, "ID")
	if err != nil {
		return err
	}
	return c.withConnections(cf, func(client ssogatev1.ConnectionServiceClient) error {
		resp, err := call(ctx, cf, client.GetConnection, &ssogatev1.GetConnectionRequest{ConnectionId: pos[0]})
		if err != nil {
			return err
		}
		return c.emitConnection(cf, resp)
	})
}

func (c *cli) connUpdate(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("connections update", "ID", "Change the fields named by --set, --state and --from-file; the rest stay as they are.")
	var sets stringList
	fs.Var(&sets, "set", "`field=value` (repeatable; an empty value clears), e.g. display_name=Acme, allow_idp_initiated=true,\nidentity_provider.sso_url=https://…, email_domains=a.com,b.com, max_session_duration=8h")
	state := fs.String("state", "", "draft, testing, active or disabled")
	fromFile := fs.String("from-file", "", "`file`: set every field this Connection (YAML/JSON, e.g. edited get -o json output) has;\nits etag, if any, refuses the update when the connection changed since")
	etag := fs.String("etag", "", "refuse the update when the connection changed since this etag")
	pos, err := parse(fs, cf, args, "ID")
	if err != nil {
		return err
	}
	req, err := c.updateRequest(pos[0], *fromFile, sets, *state, *etag)
	if err != nil {
		return err
	}
	return c.withConnections(cf, func(client ssogatev1.ConnectionServiceClient) error {
		resp, err := call(ctx, cf, client.UpdateConnection, req)
		if err != nil {
			return err
		}
		return c.emitConnection(cf, resp)
	})
}

// updateRequest builds an UpdateConnection whose mask names exactly the
// fields the user gave.
func (c *cli) updateRequest(id, fromFile string, sets []string, state, etag string) (*ssogatev1.UpdateConnectionRequest, error) {
	conn := &ssogatev1.Connection{}
	var paths []string
	if fromFile != "" {
		f, err := c.readConnectionFile(fromFile)
		if err != nil {
			return nil, err
		}
		if f.conn.Id != "" && f.conn.Id != id {
			return nil, fmt.Errorf("--from-file %s is connection %q, not %q", fromFile, f.conn.Id, id)
		}
		conn, paths = f.conn, f.fields
	}
	conn.Id = id
	override(&conn.Etag, etag)
	for _, s := range sets {
		path, value, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("--set %q: want field=value", s)
		}
		if err := checkSettable(path); err != nil {
			return nil, err
		}
		if err := setField(conn.ProtoReflect(), path, value); err != nil {
			return nil, fmt.Errorf("--set %s: %w", path, err)
		}
		paths = append(paths, path)
	}
	if state != "" {
		s, err := parseState(state)
		if err != nil {
			return nil, err
		}
		conn.State = s
		paths = append(paths, "state")
	}
	if len(paths) == 0 {
		return nil, errors.New("nothing to update: give --set field=value, --state or --from-file")
	}
	slices.Sort(paths)
	return &ssogatev1.UpdateConnectionRequest{Connection: conn, UpdateMask: &fieldmaskpb.FieldMask{Paths: slices.Compact(paths)}}, nil
}

// checkSettable refuses --set on what an update cannot change: the ID
// (it names the connection to update), output-only fields and the etag.
func checkSettable(path string) error {
	md := (&ssogatev1.Connection{}).ProtoReflect().Descriptor()
	names := strings.Split(path, ".")
	for i, name := range names {
		fd := md.Fields().ByName(protoreflect.Name(name))
		switch {
		case fd == nil:
			return nil // setField names the unknown field
		case i == 0 && fd.Name() == "etag":
			return errors.New("--set etag: use --etag")
		case hasBehavior(fd, annotations.FieldBehavior_IMMUTABLE, annotations.FieldBehavior_OUTPUT_ONLY):
			// service_provider.slo_url is output-only though
			// service_provider.entity_id is not: check every part.
			return fmt.Errorf("--set %s: %s cannot be changed", path, strings.Join(names[:i+1], "."))
		}
		if fd.Message() == nil {
			return nil
		}
		md = fd.Message()
	}
	return nil
}

func (c *cli) connActivate(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("connections activate", "ID", "Move a connection to ACTIVE: its users sign in. It needs a test login that passed since the\nIdP settings last changed, unless --force.")
	force := fs.Bool("force", false, "activate without a passing test login (force_activation)")
	pos, err := parse(fs, cf, args, "ID")
	if err != nil {
		return err
	}
	return c.withConnections(cf, func(client ssogatev1.ConnectionServiceClient) error {
		return c.activate(ctx, cf, client, pos[0], *force)
	})
}

func (c *cli) connSetupLink(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("connections setup-link", "ID", "Make a setup link: send it to the customer's IT admin, who configures, tests and activates\nthis one connection in the setup portal without an API key. The link is shown once.")
	ttl := fs.Duration("ttl", 7*24*time.Hour, "how long the link works (at most 720h)")
	pos, err := parse(fs, cf, args, "ID")
	if err != nil {
		return err
	}
	return c.withConnections(cf, func(client ssogatev1.ConnectionServiceClient) error {
		resp, err := call(ctx, cf, client.CreateSetupLink, &ssogatev1.CreateSetupLinkRequest{ConnectionId: pos[0], Ttl: durationpb.New(*ttl)})
		if err != nil {
			return err
		}
		return c.emit(cf, resp, func(w io.Writer) {
			l := resp.SetupLink
			fmt.Fprintf(w, "%s\n\nSend this link to the IT admin of %q; it works until %s and is not shown again.\nRevoke it with: DELETE /v1/connections/%s/setupLinks/%s\n",
				l.Url, pos[0], l.ExpireTime.AsTime().UTC().Format(time.RFC3339), pos[0], l.Id)
		})
	})
}

func (c *cli) activate(ctx context.Context, cf *clientFlags, client ssogatev1.ConnectionServiceClient, id string, force bool) error {
	cur, err := call(ctx, cf, client.GetConnection, &ssogatev1.GetConnectionRequest{ConnectionId: id})
	if err != nil {
		return err
	}
	was := cur.Connection.State
	if was == ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE {
		c.hint(cf, "connection %q is already ACTIVE", id)
		return c.emitConnection(cf, cur)
	}
	// The etag makes this refuse if someone changed the connection since
	// we read its state.
	resp, err := call(ctx, cf, client.UpdateConnection, &ssogatev1.UpdateConnectionRequest{
		Connection:      &ssogatev1.Connection{Id: id, State: ssogatev1.ConnectionState_CONNECTION_STATE_ACTIVE, Etag: cur.Connection.Etag},
		UpdateMask:      &fieldmaskpb.FieldMask{Paths: []string{"state"}},
		ForceActivation: force,
	})
	if ce := (*cliError)(nil); errors.As(err, &ce) && ce.code == codes.FailedPrecondition {
		c.hint(cf, "Run a test login first (%s, or the setup portal), or pass --force to activate without one.", testLoginURL(cur.Connection))
	}
	if err != nil {
		return err
	}
	if err := c.emitConnection(cf, resp); err != nil {
		return err
	}
	if was == ssogatev1.ConnectionState_CONNECTION_STATE_DRAFT {
		c.hint(cf, "\nNote: %q went from DRAFT to ACTIVE without a test login. Next time: --state testing,\nthen sign in at %s and check the diagnostic page before activating.", id, testLoginURL(resp.Connection))
	}
	return nil
}

func (c *cli) connSPMetadata(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("connections sp-metadata", "ID", "Print the SP metadata XML for the IdP admin (-o json: the XML and the entity ID, ACS, SLO and metadata URLs).")
	pos, err := parse(fs, cf, args, "ID")
	if err != nil {
		return err
	}
	return c.withConnections(cf, func(client ssogatev1.ConnectionServiceClient) error {
		resp, err := call(ctx, cf, client.GetServiceProviderMetadata, &ssogatev1.GetServiceProviderMetadataRequest{ConnectionId: pos[0]})
		if err != nil {
			return err
		}
		if cf.output == "json" {
			return c.printJSON(resp, true)
		}
		_, err = io.WriteString(c.stdout, strings.TrimSuffix(resp.MetadataXml, "\n")+"\n")
		return err
	})
}

func (c *cli) connRotateSPKey(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("connections rotate-sp-key", "ID", "Give the connection its own new SP key (generated, or --key and --cert to import one). It is\n"+
		"published in the SP metadata beside the current one for --overlap, decrypting but not yet\n"+
		"signing; then it becomes current and the old one leaves the metadata.")
	overlap := fs.Duration("overlap", 720*time.Hour, "how long both keys are published; 0 makes the new key current at once")
	keyFile := fs.String("key", "", "PEM private key to import (PKCS#8 or PKCS#1 RSA, at least 2048 bits)")
	certFile := fs.String("cert", "", "PEM certificate of --key")
	use := fs.String("use", "", "signing or encryption; unset rotates one key for both")
	pos, err := parse(fs, cf, args, "ID")
	if err != nil {
		return err
	}
	req := &ssogatev1.RotateServiceProviderKeyRequest{ConnectionId: pos[0], Overlap: durationpb.New(*overlap)}
	switch *use {
	case "":
	case "signing":
		req.Use = ssogatev1.ServiceProviderKeyUse_SERVICE_PROVIDER_KEY_USE_SIGNING
	case "encryption":
		req.Use = ssogatev1.ServiceProviderKeyUse_SERVICE_PROVIDER_KEY_USE_ENCRYPTION
	default:
		return fmt.Errorf("--use %q: want signing or encryption (or leave it unset for both)", *use)
	}
	if (*keyFile == "") != (*certFile == "") {
		return errors.New("--key and --cert go together: give both to import a key, or neither to generate one")
	}
	if *keyFile != "" {
		key, cert, err := c.readKeyPair(*keyFile, *certFile, "--key", "--cert")
		if err != nil {
			return err
		}
		req.PrivateKeyPem, req.CertificatePem = key, cert
	}
	return c.withConnections(cf, func(client ssogatev1.ConnectionServiceClient) error {
		resp, err := call(ctx, cf, client.RotateServiceProviderKey, req)
		if err != nil {
			return err
		}
		if err := c.emitConnection(cf, resp); err != nil {
			return err
		}
		for _, cert := range resp.Connection.GetServiceProvider().GetCertificates() {
			if cert.State == ssogatev1.ServiceProviderKeyState_SERVICE_PROVIDER_KEY_STATE_NEXT {
				c.hint(cf, "\nThe new certificate (SHA-256 %s) is in the SP metadata now and becomes current at %s.\n"+
					"IdPs that pinned our certificate need it before then: ssogate connections sp-metadata %s",
					cert.Sha256Fingerprint, ts(cert.TransitionTime), pos[0])
			}
		}
		return nil
	})
}

func (c *cli) connScimToken(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("connections scim-token", "ID", "Make a SCIM bearer token for the connection and print it with the SCIM base URL. The token is shown only now.")
	pos, err := parse(fs, cf, args, "ID")
	if err != nil {
		return err
	}
	return c.withConnections(cf, func(client ssogatev1.ConnectionServiceClient) error {
		resp, err := call(ctx, cf, client.CreateScimToken, &ssogatev1.CreateScimTokenRequest{ConnectionId: pos[0]})
		if err != nil {
			return err
		}
		return c.emit(cf, resp, func(w io.Writer) {
			fmt.Fprintf(w, "SCIM base URL: %s\nSCIM token:    %s\n", resp.ScimBaseUrl, resp.Secret)
			c.hint(cf, "\nPaste both into the IdP's provisioning settings (Entra ID: Tenant URL and Secret Token; Okta: SCIM connector base URL and HTTP Header bearer token). The token is not shown again.")
		})
	})
}

func (c *cli) connRefresh(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("connections refresh-metadata", "ID", "Fetch the connection's IdP metadata URL now; a failed fetch keeps the last good metadata.")
	pos, err := parse(fs, cf, args, "ID")
	if err != nil {
		return err
	}
	return c.withConnections(cf, func(client ssogatev1.ConnectionServiceClient) error {
		resp, err := call(ctx, cf, client.RefreshIdentityProviderMetadata, &ssogatev1.RefreshIdentityProviderMetadataRequest{ConnectionId: pos[0]})
		if err != nil {
			return err
		}
		return c.emitConnection(cf, resp)
	})
}

func (c *cli) connDelete(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("connections delete", "ID --yes", "Delete a connection and revoke its sessions. There is no undo.")
	yes := fs.Bool("yes", false, "confirm the deletion")
	pos, err := parse(fs, cf, args, "ID")
	if err != nil {
		return err
	}
	if !*yes {
		return fmt.Errorf("refusing to delete connection %q without --yes: its sessions are revoked and its settings are gone for good", pos[0])
	}
	return c.withConnections(cf, func(client ssogatev1.ConnectionServiceClient) error {
		resp, err := call(ctx, cf, client.DeleteConnection, &ssogatev1.DeleteConnectionRequest{ConnectionId: pos[0]})
		if err != nil {
			return err
		}
		return c.emit(cf, resp, func(w io.Writer) { fmt.Fprintf(w, "deleted connection %q\n", pos[0]) })
	})
}

// testLoginURL is the browser route that starts a test login; it sits
// beside the SP entity ID ({external_url}/saml/{id}).
func testLoginURL(conn *ssogatev1.Connection) string {
	// The metadata URL is always ssogate's own ({external_url}/saml/{id}/metadata),
	// also when the entity ID is a migrated connection's foreign one.
	if m, ok := strings.CutSuffix(conn.GetServiceProvider().GetMetadataUrl(), "/metadata"); ok {
		return m + "/login?test=1"
	}
	return "/saml/" + conn.Id + "/login?test=1"
}
