package main

// The admin CLI: `ssogate connections|keys|audit …` call a running server
// over gRPC with an admin API key. Each command group is a method of cli,
// each subcommand has its own flag.FlagSet, and nothing is global, so tests
// drive it through run like any other command. The API key is read from a
// flag or SSOGATE_API_KEY and only ever sent in the authorization header:
// it is never a flag default (which -h would print) nor part of an error.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const defaultServer = "127.0.0.1:9090"

// cli runs the admin commands against the streams it was given.
type cli struct {
	env    func(string) (string, bool)
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time
}

// adminCommand runs `ssogate connections|keys|audit …`; args[0] names the
// group.
func adminCommand(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	c := &cli{env: env, stdin: os.Stdin, stdout: stdout, stderr: stderr, now: time.Now}
	return c.group(ctx, args[0], args[1:])
}

func (c *cli) group(ctx context.Context, name string, args []string) error {
	switch name {
	case "connections":
		return c.connections(ctx, args)
	case "keys":
		return c.keys(ctx, args)
	case "audit":
		return c.audit(ctx, args)
	case "webhooks":
		return c.webhooks(ctx, args)
	case "loadtest":
		return c.loadtestCmd(ctx, args)
	}
	return fmt.Errorf("unknown command %q", name)
}

// subcommand is one verb of a command group.
type subcommand struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

// dispatch runs the subcommand args[0] names, or prints the group's usage.
func (c *cli) dispatch(ctx context.Context, group string, subs []subcommand, args []string) error {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "usage: ssogate %s <command> [flags]\n\ncommands:\n", group)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, s := range subs {
			fmt.Fprintf(tw, "  %s\t%s\n", s.name, s.summary)
		}
		tw.Flush()
		fmt.Fprintf(w, "\nRun \"ssogate %s <command> -h\" for its flags.\n", group)
	}
	if len(args) == 0 {
		usage(c.stderr)
		return fmt.Errorf("%s: no command given", group)
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(ctx, args[1:])
		}
	}
	switch args[0] {
	case "help", "-h", "--help":
		usage(c.stdout)
		return nil
	}
	usage(c.stderr)
	return fmt.Errorf("%s: unknown command %q", group, args[0])
}

// clientFlags are the connection and output flags of every admin command.
type clientFlags struct {
	server, apiKey    string
	useTLS, plaintext bool
	caFile            string
	certFile, keyFile string
	output            string
	timeout           time.Duration
	name, usage       string // "connections get", "connections get ID [flags]"
}

// flagSet makes a subcommand's flag set with the client flags on it. name
// is the command ("connections get"), operands what follows it ("ID").
func (c *cli) flagSet(name, operands, summary string) (*flag.FlagSet, *clientFlags) {
	fs := flag.NewFlagSet("ssogate "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	cf := &clientFlags{name: name, usage: strings.TrimSpace(name+" "+operands) + " [flags]"}
	fs.StringVar(&cf.server, "server", "", "gRPC address host:port (default $SSOGATE_SERVER or "+defaultServer+")")
	fs.StringVar(&cf.apiKey, "api-key", "", "API key with the admin scope (default $SSOGATE_API_KEY; prefer the variable: flags show in ps)")
	fs.BoolVar(&cf.useTLS, "tls", false, "use TLS (the default for a non-loopback server)")
	fs.BoolVar(&cf.plaintext, "insecure", false, "no TLS even to a non-loopback server (the default on loopback)")
	fs.StringVar(&cf.caFile, "ca-file", "", "PEM CA bundle to verify the server with (implies --tls; default: system roots)")
	fs.StringVar(&cf.certFile, "cert-file", "", "PEM client certificate for mutual TLS (implies --tls)")
	fs.StringVar(&cf.keyFile, "key-file", "", "PEM private key of --cert-file")
	fs.StringVar(&cf.output, "output", "table", "output format: table or json (protojson, proto field names)")
	fs.StringVar(&cf.output, "o", "table", "shorthand for --output")
	fs.DurationVar(&cf.timeout, "timeout", 30*time.Second, "deadline of each call")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ssogate %s\n\n%s\n\nflags:\n", cf.usage, summary)
		fs.PrintDefaults()
	}
	return fs, cf
}

// parse reads flags placed before, between or after the want positional
// arguments (Go's flag package stops at the first one) and checks their
// number.
func parse(fs *flag.FlagSet, cf *clientFlags, args []string, want ...string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if len(pos) < len(want) {
		return nil, fmt.Errorf("%s: missing %s (usage: ssogate %s)", cf.name, strings.Join(want[len(pos):], " "), cf.usage)
	}
	if len(pos) > len(want) {
		return nil, fmt.Errorf("%s: unexpected argument %q (usage: ssogate %s)", cf.name, pos[len(want)], cf.usage)
	}
	if cf.output != "table" && cf.output != "json" {
		return nil, fmt.Errorf("--output %q: want table or json", cf.output)
	}
	return pos, nil
}

// dial connects to the server; calls carry the API key.
func (c *cli) dial(cf *clientFlags) (*grpc.ClientConn, error) {
	if cf.server == "" {
		cf.server = defaultServer
		if v, ok := c.env("SSOGATE_SERVER"); ok && v != "" {
			cf.server = v
		}
	}
	key := cf.apiKey
	if key == "" {
		key, _ = c.env("SSOGATE_API_KEY")
	}
	if key == "" {
		return nil, errors.New("no API key: set SSOGATE_API_KEY (or --api-key) to a key with the admin scope")
	}
	creds, err := cf.transportCredentials()
	if err != nil {
		return nil, err
	}
	cc, err := grpc.NewClient(cf.server, grpc.WithTransportCredentials(creds), grpc.WithPerRPCCredentials(bearerKey(key)))
	if err != nil {
		return nil, fmt.Errorf("--server %q: %w", cf.server, err)
	}
	return cc, nil
}

// withClient dials, runs fn with the service client newClient makes, and
// hangs up.
func withClient[C any](c *cli, cf *clientFlags, newClient func(grpc.ClientConnInterface) C, fn func(C) error) error {
	cc, err := c.dial(cf)
	if err != nil {
		return err
	}
	defer cc.Close()
	return fn(newClient(cc))
}

// transportCredentials picks plaintext for loopback and TLS elsewhere,
// unless --tls or --insecure say otherwise: an API key should not cross a
// network in clear text by default.
func (cf *clientFlags) transportCredentials() (credentials.TransportCredentials, error) {
	host, _, err := net.SplitHostPort(cf.server)
	if err != nil {
		return nil, fmt.Errorf("--server %q: want host:port: %w", cf.server, err)
	}
	useTLS := cf.useTLS || cf.caFile != "" || cf.certFile != "" || cf.keyFile != ""
	if useTLS && cf.plaintext {
		return nil, errors.New("--insecure contradicts --tls, --ca-file and --cert-file")
	}
	if !useTLS && (cf.plaintext || isLoopbackHost(host)) {
		return insecure.NewCredentials(), nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cf.caFile != "" {
		pem, err := os.ReadFile(cf.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", cf.caFile)
		}
	}
	if (cf.certFile == "") != (cf.keyFile == "") {
		return nil, errors.New("--cert-file and --key-file go together")
	}
	if cf.certFile != "" {
		cert, err := tls.LoadX509KeyPair(cf.certFile, cf.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert-file/--key-file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg), nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// call runs one RPC under the --timeout deadline and turns a gRPC status
// into "CODE: message".
func call[Req, Resp any](ctx context.Context, cf *clientFlags, rpc func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	resp, err := rpc(ctx, req)
	if err != nil {
		return resp, rpcError(err, cf.server)
	}
	return resp, nil
}

// rpcError names the status code as the gRPC spec spells it
// (PERMISSION_DENIED) before the server's message. A connection that
// failed (not an UNAVAILABLE the server sent) gets a hint.
func rpcError(err error, server string) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	name := upperSnake(st.Code().String())
	if st.Code() == codes.Canceled {
		name = "CANCELLED" // the spec's spelling; grpc-go says Canceled
	}
	msg := name + ": " + st.Message()
	if st.Code() == codes.Unavailable && strings.HasPrefix(st.Message(), "connection error") {
		msg += fmt.Sprintf(" (is ssogate serving gRPC at %s? see --server, --tls)", server)
	}
	return &cliError{code: st.Code(), msg: msg}
}

// cliError is a failed call; code lets callers tell transient failures.
type cliError struct {
	code codes.Code
	msg  string
}

func (e *cliError) Error() string { return e.msg }

// upperSnake turns CamelCase into UPPER_SNAKE: PermissionDenied →
// PERMISSION_DENIED, ConnectionState → CONNECTION_STATE.
func upperSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' && s[i-1] >= 'a' && s[i-1] <= 'z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// emit prints msg as indented protojson with -o json, or else the table.
func (c *cli) emit(cf *clientFlags, msg proto.Message, table func(w io.Writer)) error {
	if cf.output == "json" {
		return c.printJSON(msg, true)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// printJSON writes one protojson object, indented or on one line.
func (c *cli) printJSON(msg proto.Message, indent bool) error {
	opts := protojson.MarshalOptions{UseProtoNames: true}
	if indent {
		opts.Multiline, opts.Indent = true, "  "
	}
	b, err := opts.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encode %s: %w", msg.ProtoReflect().Descriptor().Name(), err)
	}
	_, err = fmt.Fprintf(c.stdout, "%s\n", b)
	return err
}

// hint tells a person what to do next; it goes to stderr so stdout stays
// machine-readable, and is left out with -o json.
func (c *cli) hint(cf *clientFlags, format string, args ...any) {
	if cf.output != "json" {
		fmt.Fprintf(c.stderr, format+"\n", args...)
	}
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// ts formats a timestamp for tables: UTC, to the second; "-" when unset.
func ts(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

// orDash shows empty values in tables as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
