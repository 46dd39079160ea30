package main

import (
	"context"
	"fmt"
	"io"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// keys runs `ssogate keys …`.
func (c *cli) keys(ctx context.Context, args []string) error {
	return c.dispatch(ctx, "keys", []subcommand{
		{"list", "list the token signing keys and their lifecycle times", c.keysList},
		{"rotate", "create a new signing key now", c.keysRotate},
	}, args)
}

func (c *cli) keysList(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("keys list", "", "List the token signing keys, newest first. No private material is shown.")
	if _, err := parse(fs, cf, args); err != nil {
		return err
	}
	return withClient(c, cf, ssogatev1.NewKeyServiceClient, func(client ssogatev1.KeyServiceClient) error {
		resp, err := call(ctx, cf, client.ListSigningKeys, &ssogatev1.ListSigningKeysRequest{})
		if err != nil {
			return err
		}
		return c.emit(cf, resp, func(w io.Writer) { printKeys(w, resp.Keys...) })
	})
}

func (c *cli) keysRotate(ctx context.Context, args []string) error {
	fs, cf := c.flagSet("keys rotate", "", "Create a new signing key now. It is published in the JWKS at once and signs\nafter the publication lead time; the current key retires then.")
	alg := fs.String("algorithm", "", "ES256, EdDSA or RS256 (default: the server's token.algorithm)")
	if _, err := parse(fs, cf, args); err != nil {
		return err
	}
	return withClient(c, cf, ssogatev1.NewKeyServiceClient, func(client ssogatev1.KeyServiceClient) error {
		resp, err := call(ctx, cf, client.RotateSigningKey, &ssogatev1.RotateSigningKeyRequest{Algorithm: *alg})
		if err != nil {
			return err
		}
		if err := c.emit(cf, resp, func(w io.Writer) { printKeys(w, resp.Key) }); err != nil {
			return err
		}
		c.hint(cf, "\nNew key %s is in the JWKS now and signs from %s.", resp.Key.GetKid(), ts(resp.Key.GetActivateTime()))
		return nil
	})
}

func printKeys(w io.Writer, keys ...*ssogatev1.SigningKey) {
	fmt.Fprintln(w, "KID\tALGORITHM\tSTATUS\tPUBLISHED\tSIGNS FROM\tRETIRES\tEXPIRES")
	for _, k := range keys {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.Kid, k.Algorithm, orDash(k.Status),
			ts(k.PublishTime), ts(k.ActivateTime), ts(k.RetireTime), ts(k.ExpireTime))
	}
}
