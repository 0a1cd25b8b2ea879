package sseproxy

import (
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "sse-proxy",
		Usage: `--to <addr> [--from <addr>] [--cors-origin <origin>]... [--credentials] [--heartbeat <interval>|off] [--retry <duration>] [--auth-header "Field: value"]... [--internal-certs] [--disable-redirects] [--access-log] [--debug]`,
		Short: "Put a legacy Server-Sent-Events backend behind Caddy, with no config file",
		Long: `
Runs Caddy with the sse_proxy directive in front of an existing SSE backend,
the way 'caddy reverse-proxy' does for any backend: useful as a sidecar next
to a legacy service.

--from is the address to serve (default localhost, over HTTPS). As with the
Caddyfile, an address with a host name is served over HTTPS; ":8080" or
"http://..." is served over plain HTTP. --to names the backend; repeat it
to load-balance.

  --cors-origin   an allowed origin (exact, https://*.example.com, or *);
                  repeat for more
  --credentials   allow credentialed requests (EventSource withCredentials)
  --heartbeat     idle interval for heartbeat comments (default 15s), or off
  --retry         send "retry: <ms>" first on every stream
  --auth-header   "Field: value" set on every upstream request; the value
                  may use placeholders such as {cookie.session} or
                  {query.token}; repeatable

  --internal-certs    issue the certificate from Caddy's internal CA
  --disable-redirects do not redirect HTTP to HTTPS
  --access-log        enable the access log
  --debug             verbose logs

The generated Caddyfile is printed with --debug.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().StringP("from", "f", "localhost", "Address on which to receive traffic")
			cmd.Flags().StringSliceP("to", "t", nil, "Upstream address(es) of the SSE backend")
			cmd.Flags().StringArray("cors-origin", nil, "Allowed CORS origin (repeatable)")
			cmd.Flags().Bool("credentials", false, "Allow credentialed CORS requests")
			cmd.Flags().String("heartbeat", "", "Heartbeat interval, or off (default 15s)")
			cmd.Flags().String("retry", "", "Reconnection delay sent to clients as retry:")
			cmd.Flags().StringArrayP("auth-header", "H", nil, `Header set on upstream requests, "Field: value" (repeatable)`)
			cmd.Flags().BoolP("internal-certs", "i", false, "Use the internal CA for certificates")
			cmd.Flags().BoolP("disable-redirects", "r", false, "Disable HTTP->HTTPS redirects")
			cmd.Flags().Bool("access-log", false, "Enable the access log")
			cmd.Flags().BoolP("debug", "v", false, "Enable debug logs")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdSSEProxy)
		},
	})
}

// SidecarOptions are the flags of `caddy sse-proxy`.
type SidecarOptions struct {
	From, Heartbeat, Retry                      string
	To, CORSOrigins, AuthHeaders                []string
	Credentials, InternalCerts, DisableRedirect bool
	AccessLog, Debug                            bool
}

func cmdSSEProxy(fs caddycmd.Flags) (int, error) {
	caddy.TrapSignals()
	to, err := fs.GetStringSlice("to")
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	origins, _ := fs.GetStringArray("cors-origin")
	auth, _ := fs.GetStringArray("auth-header")
	opts := SidecarOptions{
		From: fs.String("from"), Heartbeat: fs.String("heartbeat"), Retry: fs.String("retry"),
		To: to, CORSOrigins: origins, AuthHeaders: auth,
		Credentials: fs.Bool("credentials"), InternalCerts: fs.Bool("internal-certs"),
		DisableRedirect: fs.Bool("disable-redirects"), AccessLog: fs.Bool("access-log"), Debug: fs.Bool("debug"),
	}
	cf, err := SidecarCaddyfile(opts)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": "sse-proxy"})
	if err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("sse-proxy: %v", err)
	}
	if opts.Debug {
		caddy.Log().Debug("generated Caddyfile", zap.String("caddyfile", cf))
	}
	if err := caddy.Load(cfgJSON, true); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	caddy.Log().Info("caddy proxying server-sent events", zap.String("from", opts.From), zap.Strings("to", opts.To))
	select {}
}

// SidecarCaddyfile writes the Caddyfile that `caddy sse-proxy` runs. Going
// through the Caddyfile, rather than building JSON by hand, gives the
// one-liner exactly the directive's parsing, validation and error messages.
// Every value is a backtick-quoted token, so no flag value can add
// directives of its own.
func SidecarCaddyfile(o SidecarOptions) (string, error) {
	if len(o.To) == 0 {
		return "", fmt.Errorf("sse-proxy: --to is required")
	}
	from := o.From
	if from == "" {
		from = "localhost"
	}
	var b strings.Builder
	tok := func(s string) string { return "`" + s + "`" }
	for _, v := range append(append(append([]string{from, o.Heartbeat, o.Retry}, o.To...), o.CORSOrigins...), o.AuthHeaders...) {
		if strings.ContainsAny(v, "`\r\n") {
			return "", fmt.Errorf("sse-proxy: %q: backticks and line breaks are not allowed in flag values", v)
		}
	}

	b.WriteString("{\n\tadmin off\n\tpersist_config off\n")
	if o.Debug {
		b.WriteString("\tdebug\n")
	}
	if o.InternalCerts {
		b.WriteString("\tlocal_certs\n")
	}
	if o.DisableRedirect {
		b.WriteString("\tauto_https disable_redirects\n")
	}
	b.WriteString("}\n\n")

	fmt.Fprintf(&b, "%s {\n", tok(from))
	if o.AccessLog {
		b.WriteString("\tlog\n")
	}
	b.WriteString("\tsse_proxy")
	for _, u := range o.To {
		b.WriteString(" " + tok(u))
	}
	b.WriteString(" {\n")
	if o.Heartbeat != "" {
		fmt.Fprintf(&b, "\t\theartbeat %s\n", tok(o.Heartbeat))
	}
	if o.Retry != "" {
		fmt.Fprintf(&b, "\t\tretry %s\n", tok(o.Retry))
	}
	if len(o.CORSOrigins) > 0 {
		b.WriteString("\t\tcors")
		for _, origin := range o.CORSOrigins {
			b.WriteString(" " + tok(origin))
		}
		b.WriteString(" {\n")
		if o.Credentials {
			b.WriteString("\t\t\tcredentials\n")
		}
		b.WriteString("\t\t}\n")
	} else if o.Credentials {
		return "", fmt.Errorf("sse-proxy: --credentials needs at least one --cors-origin")
	}
	for _, h := range o.AuthHeaders {
		field, value, ok := strings.Cut(h, ":")
		field, value = strings.TrimSpace(field), strings.TrimSpace(value)
		if !ok || field == "" || value == "" {
			return "", fmt.Errorf("sse-proxy: --auth-header %q: want \"Field: value\"", h)
		}
		fmt.Fprintf(&b, "\t\tauth_header %s %s\n", tok(field), tok(value))
	}
	b.WriteString("\t}\n}\n")
	return b.String(), nil
}
