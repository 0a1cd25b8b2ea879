package sseproxy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// The table of subdirectives is the one list of them: parseCaddyfile's doc
// comment and the README's directive reference show exactly its lines, in
// its order.
func TestSubdirectiveTableIsTheDocumentedList(t *testing.T) {
	want := tableLines()

	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "caddyfile.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var doc string
	for _, decl := range f.Decls {
		if fn, ok := decl.(*ast.FuncDecl); ok && fn.Name.Name == "parseCaddyfile" {
			doc = fn.Doc.Text()
		}
	}
	if got := directiveBlock(doc); !slices.Equal(got, want) {
		t.Errorf("parseCaddyfile's doc lists\n%s\nthe table\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if got := directiveBlock(string(readme)); !slices.Equal(got, want) {
		t.Errorf("README's directive reference lists\n%s\nthe table\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// tableLines renders the table as the docs show it, each line trimmed.
func tableLines() []string {
	var lines []string
	for _, s := range subdirectives {
		if len(s.block) == 0 {
			lines = append(lines, s.syntax)
			continue
		}
		lines = append(lines, s.syntax+" {")
		lines = append(lines, s.block...)
		lines = append(lines, "}")
	}
	return lines
}

// directiveBlock returns the trimmed lines inside the first
// "sse_proxy [<matcher>] [<upstreams...>] {" block of text, without
// comment lines.
func directiveBlock(text string) []string {
	var lines []string
	depth := 0
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case depth == 0 && l == "sse_proxy [<matcher>] [<upstreams...>] {":
			depth = 1
			continue
		case depth == 0 || strings.HasPrefix(l, "#"):
			continue
		case l == "}":
			if depth--; depth == 0 {
				return lines
			}
		case strings.HasSuffix(l, "{"):
			depth++
		}
		lines = append(lines, l)
	}
	return lines
}

// Each subdirective is named once, in each table.
func TestSubdirectiveNamesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range subdirectives {
		if seen[s.name()] {
			t.Errorf("%s is in the table twice", s.name())
		}
		seen[s.name()] = true
	}
	seen = map[string]bool{}
	for _, s := range corsSubdirectives {
		if seen[s.name()] {
			t.Errorf("cors %s is in the table twice", s.name())
		}
		seen[s.name()] = true
	}
}

// UnmarshalCaddyfile takes the table's subdirectives and nothing else:
// reverse_proxy's are parseCaddyfile's business.
func TestUnmarshalCaddyfileTakesTheTable(t *testing.T) {
	var h Handler
	d := caddyfile.NewTestDispenser("sse_proxy {\n\theartbeat 5s\n\tshare k\n\tcors https://a.com {\n\t\tcredentials\n\t}\n}")
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if h.Heartbeat != caddy.Duration(5*time.Second) || h.Share == nil || h.Share.Key != "k" || h.CORS == nil || !h.CORS.Credentials {
		t.Errorf("parsed %+v", h)
	}
	err := new(Handler).UnmarshalCaddyfile(caddyfile.NewTestDispenser("sse_proxy {\n\tlb_policy first\n}"))
	if err == nil || !strings.Contains(err.Error(), `sse_proxy: unrecognized subdirective "lb_policy"`) {
		t.Errorf("lb_policy: %v", err)
	}
}
