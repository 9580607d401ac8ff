package test

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// manPages are the installed manual pages, relative to the module root.
var manPages = []string{"doc/spawnd.8", "doc/spawnd-listener.8"}

// manParameters are the parameters of SPEC section 3 (and the per-service
// peer_environment switch), each of which spawnd's manual documents with
// its default, as Postfix's check-postconf-undocumented demands of its own.
var manParameters = []string{
	"mail_owner", "command_time_limit", "<service>_time_limit",
	"export_environment", "default_process_limit", "syslog_name",
	"syslog_facility", "maillog_file", "queue_directory", "max_use",
	"max_idle", "<service>_peer_environment", "peer_environment",
}

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(), name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestManPageGenerated: each page is what make man makes of its binary's
// doc.go, so that go doc and man say the same.
func TestManPageGenerated(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command("go", "run", "./doc/mkman", "-d", out)
	cmd.Dir = moduleRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run ./doc/mkman: %v\n%s", err, b)
	}
	for _, page := range manPages {
		got, err := os.ReadFile(filepath.Join(out, filepath.Base(page)))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != readRepoFile(t, page) {
			t.Errorf("%s is older than its doc.go in cmd/: run make man", page)
		}
	}
}

// TestManPagesLint: both linters accept both pages without a word.
func TestManPagesLint(t *testing.T) {
	for _, tool := range []struct {
		name string
		args []string
	}{
		{"mandoc", []string{"-T", "lint", "-W", "all"}},
		{"groff", []string{"-man", "-ww", "-z"}},
	} {
		t.Run(tool.name, func(t *testing.T) {
			if _, err := exec.LookPath(tool.name); err != nil {
				t.Skipf("%s not installed (apt-get install %s): %v", tool.name, tool.name, err)
			}
			for _, page := range manPages {
				cmd := exec.Command(tool.name, append(tool.args, page)...)
				cmd.Dir = moduleRoot()
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				err := cmd.Run()
				if err != nil || out.Len() != 0 {
					t.Errorf("%s %s %s: %v\n%s", tool.name, strings.Join(tool.args, " "), page, err, out.String())
				}
			}
		})
	}
}

// TestManSections: the manuals have Postfix's sections, in the Go source
// as headings and in the pages as .SH.
func TestManSections(t *testing.T) {
	spawnd := []string{"Synopsis", "Description", "Standalone mode", "Postfix mode",
		"Command attributes", "Security", "Diagnostics", "Configuration parameters",
		"Files", "See also"}
	src := readRepoFile(t, "cmd/spawnd/doc.go")
	page := readRepoFile(t, "doc/spawnd.8")
	if !strings.Contains(page, "\n.SH NAME\nspawnd \\- ") {
		t.Error("doc/spawnd.8: no NAME section")
	}
	for _, s := range spawnd {
		if !strings.Contains(src, "\n// # "+s+"\n") {
			t.Errorf("cmd/spawnd/doc.go: no heading # %s", s)
		}
		if !strings.Contains(page, "\n.SH \""+strings.ToUpper(s)+"\"\n") {
			t.Errorf("doc/spawnd.8: no section %s", strings.ToUpper(s))
		}
	}
	listener := readRepoFile(t, "doc/spawnd-listener.8")
	if !strings.Contains(listener, "\n.SH NAME\nspawnd-listener \\- ") {
		t.Error("doc/spawnd-listener.8: no NAME section")
	}
	for _, s := range []string{"SYNOPSIS", "DESCRIPTION", "OPTIONS", "SECURITY", "DIAGNOSTICS", "SEE ALSO"} {
		if !strings.Contains(listener, "\n.SH \""+s+"\"\n") {
			t.Errorf("doc/spawnd-listener.8: no section %s", s)
		}
	}
}

// TestManParameters: every parameter is documented, with its default, in
// the Go manual and in the page, and the options and attributes are too.
func TestManParameters(t *testing.T) {
	src := readRepoFile(t, "cmd/spawnd/doc.go")
	page := strings.ReplaceAll(readRepoFile(t, "doc/spawnd.8"), `\-`, "-")
	for _, p := range manParameters {
		if !strings.Contains(src, p) {
			t.Errorf("cmd/spawnd/doc.go does not document %s", p)
		}
		if !strings.Contains(page, p) {
			t.Errorf("doc/spawnd.8 does not document %s", p)
		}
	}
	// Each parameter entry shows its default, Postfix's "name (default)".
	for _, p := range manParameters {
		if p == "peer_environment" {
			continue
		}
		if !strings.Contains(page, "\n\\fB"+p+" (") {
			t.Errorf("doc/spawnd.8: no entry \"%s (default)\" under CONFIGURATION PARAMETERS", p)
		}
	}
	for _, w := range []string{"user=", "argv=", "serve", "check", "version", "-c DIR", "-v",
		"LISTEN_FDNAMES", "MAIL_CONFIG"} {
		if !strings.Contains(page, w) {
			t.Errorf("doc/spawnd.8 does not mention %s", w)
		}
	}
}

// policyDefaults reads the defaults table of policy/policy.go, name to
// default value, from the source: the parameters spawnd really has.
func policyDefaults(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(moduleRoot(), "policy/policy.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "defaults" || len(vs.Values) != 1 {
			return true
		}
		lit, ok := vs.Values[0].(*ast.CompositeLit)
		if !ok {
			return true
		}
		for _, e := range lit.Elts {
			kv, ok := e.(*ast.KeyValueExpr)
			k, kok := kv.Key.(*ast.BasicLit)
			v, vok := kv.Value.(*ast.BasicLit)
			if !ok || !kok || !vok {
				t.Fatalf("policy/policy.go: defaults entry %T is not \"name\": \"value\"", e)
			}
			name, _ := strconv.Unquote(k.Value)
			value, _ := strconv.Unquote(v.Value)
			out[name] = value
		}
		return false
	})
	if len(out) == 0 {
		t.Fatal("policy/policy.go: no defaults table found")
	}
	return out
}

// TestManPolicyDefaults: every parameter in policy's defaults table is in
// the Go manual and in the page, with the same default ("empty" for "").
func TestManPolicyDefaults(t *testing.T) {
	src := readRepoFile(t, "cmd/spawnd/doc.go")
	page := strings.ReplaceAll(readRepoFile(t, "doc/spawnd.8"), `\-`, "-")
	for name, value := range policyDefaults(t) {
		if value == "" {
			value = "empty"
		}
		entry := name + " (" + value + ")"
		if !strings.Contains(src, "//   - "+entry+": ") {
			t.Errorf("cmd/spawnd/doc.go: no entry %q (the default in policy/policy.go)", entry)
		}
		if !strings.Contains(page, "\n\\fB"+entry+"\\fR\n") {
			t.Errorf("doc/spawnd.8: no entry %q (the default in policy/policy.go)", entry)
		}
	}
}
