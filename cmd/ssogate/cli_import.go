package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/importer"
)

// connImport runs `ssogate connections import --from FORMAT FILE [--apply]`.
func (c *cli) connImport(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("connections import", "FILE", "Create connections from another SP's export, keeping the SP entity ID and ACS URL each IdP\n"+
		"knows, the IdP metadata, domains and attribute mapping. Without --apply, prints what would be\n"+
		"created and what cannot be carried over, and creates nothing. Formats: "+strings.Join(importer.Formats(), ", ")+
		"\n(docs/migrating.md says what each reads). FILE - reads stdin.")
	from := fs.String("from", "", "the export's format: "+strings.Join(importer.Formats(), ", "))
	apply := fs.Bool("apply", false, "create the connections (through the admin API); default: a dry run")
	state := fs.String("state", "", "state of connections whose IdP side is complete: active (default: the IdP is live), testing or draft")
	var o importer.Options
	fs.StringVar(&o.Auth0Tenant, "auth0-tenant", "", "auth0: the tenant name, for entity IDs urn:auth0:{tenant}:{connection}")
	fs.StringVar(&o.Auth0Domain, "auth0-domain", "", "auth0: the host IdPs post to (tenant or custom domain), for ACS URLs https://{domain}/login/callback?connection={name}")
	fs.StringVar(&o.JacksonAudience, "jackson-audience", "", "jackson/polis: the deployment's SAML_AUDIENCE (SP entity ID)")
	fs.StringVar(&o.JacksonACSURL, "jackson-acs-url", "", "jackson/polis: the deployment's ACS URL ({EXTERNAL_URL}/api/oauth/saml by default)")
	var returnURLs stringList
	fs.Var(&returnURLs, "return-url", "`URL`: allowed return URL for connections whose export has none (repeatable)")
	pos, err := parse(fs, cf, args, "FILE")
	if err != nil {
		return err
	}
	if *from == "" {
		return fmt.Errorf("connections import: --from is required (%s)", strings.Join(importer.Formats(), ", "))
	}
	o.ReturnURLs = returnURLs
	if *state != "" {
		if o.State, err = parseState(*state); err != nil {
			return err
		}
	}
	data, err := c.readInput(pos[0], "FILE")
	if err != nil {
		return err
	}
	plan, err := importer.Parse(*from, data, o)
	if err != nil {
		return err
	}
	printPlan(c.stdout, plan)
	if !*apply {
		c.hint(cf, "\nDry run: nothing created. Run again with --apply to create %d connection(s).", len(plan.Items))
		return nil
	}
	return c.withConnections(cf, func(client ssogatev1.ConnectionServiceClient) error {
		var failed []string
		fmt.Fprintln(c.stdout)
		for _, it := range plan.Items {
			resp, err := call(ctx, cf, client.CreateConnection, it.Request())
			if err != nil {
				fmt.Fprintf(c.stdout, "%s: not created: %v\n", it.Connection.Id, err)
				failed = append(failed, it.Connection.Id)
				continue
			}
			sp := resp.Connection.GetServiceProvider()
			fmt.Fprintf(c.stdout, "%s: created (%s), entity ID %s, ACS %s\n", resp.Connection.Id, stateName(resp.Connection.State), sp.GetEntityId(), sp.GetAcsUrl())
		}
		if len(failed) > 0 {
			return fmt.Errorf("connections import: %d of %d not created: %s", len(failed), len(plan.Items), strings.Join(failed, ", "))
		}
		return nil
	})
}

// printPlan writes the table of connections to create, then per
// connection what is not carried over, then the skipped records.
func printPlan(out io.Writer, plan *importer.Plan) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTENANT\tSTATE\tSP ENTITY ID\tACS URL\tIDP\tDOMAINS\tSOURCE")
	for _, it := range plan.Items {
		c := it.Connection
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Id, c.TenantId, stateName(c.State),
			cmp.Or(c.GetServiceProvider().GetEntityId(), "(ssogate's)"), cmp.Or(c.GetServiceProvider().GetAcsUrl(), "(ssogate's)"),
			idpSummary(it), orDash(strings.Join(c.EmailDomains, ",")), it.Source)
	}
	_ = tw.Flush()
	for _, it := range plan.Items {
		if len(it.Lost) == 0 {
			continue
		}
		fmt.Fprintf(out, "\n%s — not carried over / to do:\n", it.Connection.Id)
		for _, l := range it.Lost {
			fmt.Fprintf(out, "  - %s\n", l)
		}
	}
	if len(plan.Skipped) > 0 {
		fmt.Fprintln(out, "\nskipped:")
		for _, s := range plan.Skipped {
			fmt.Fprintf(out, "  - %s: %s\n", s.Source, s.Why)
		}
	}
}

func idpSummary(it importer.Item) string {
	switch {
	case it.MetadataURL != "":
		return "metadata URL " + it.MetadataURL
	case it.MetadataXML != "":
		return "metadata XML"
	}
	idp := it.Connection.GetIdentityProvider()
	parts := []string{}
	if idp.GetEntityId() != "" {
		parts = append(parts, idp.GetEntityId())
	}
	if n := len(idp.GetCertificates()); n > 0 {
		parts = append(parts, fmt.Sprintf("%d cert", n))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}
