// Command tcb counts the trusted base: the code of this module that is
// linked into the root binary, and within it the request path. It prints
// both and fails when either is over its budget, or when the root binary
// links the listener or a module other than the standard library, x/sys
// and msgpack.
//
//	go run ./tools/tcb [-root 2000] [-request 800] [-main ./cmd/spawnd]
//
// A line counts when it is neither blank nor a comment line (a line whose
// first non-blank characters are //); test files are not counted. The
// packages are those `go list -deps` names for the root binary's main
// package, with their non-test Go files (cgo files included) and C files
// as the build selects them.
//
// The request path is every function reachable from a message received
// from the listener until the reply is sent. Each such declaration says
// so with a line `//tcb:request-path` at the end of its doc comment (a
// directive, which go doc leaves out of the text), and its lines,
// from the keyword to the closing brace, are counted. A function added to
// the path needs the marker; one that leaves it loses it.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// marker marks a declaration on the request path.
const marker = "//tcb:request-path"

// allowed are the modules the root binary may link besides its own.
var allowed = regexp.MustCompile(`^(golang\.org/x/sys/|github\.com/vmihailenco/(msgpack/v5|tagparser/v2))`)

type pkg struct {
	ImportPath, Dir, Module string
	Files                   []string
}

func main() {
	rootBudget := flag.Int("root", 2000, "most lines of the module linked into the root binary")
	reqBudget := flag.Int("request", 800, "most lines on the request path")
	mainPkg := flag.String("main", "./cmd/spawnd", "the root binary's main package")
	flag.Parse()
	pkgs, module, err := deps(*mainPkg)
	if err != nil {
		fatal(err)
	}
	failed := false
	fset := token.NewFileSet()
	total, request := 0, 0
	var path []string // "file:function lines" on the request path
	fmt.Printf("trusted base: module %s linked into %s\n", module, *mainPkg)
	for _, p := range pkgs {
		if p.Module != module {
			if !allowed.MatchString(p.ImportPath) {
				fmt.Printf("tcb: %s links %s, outside the standard library, x/sys and msgpack\n", *mainPkg, p.ImportPath)
				failed = true
			}
			continue
		}
		if p.ImportPath == module+"/listener" || strings.HasPrefix(p.ImportPath, module+"/listener/") {
			fmt.Printf("tcb: %s links the listener (%s)\n", *mainPkg, p.ImportPath)
			failed = true
		}
		n := 0
		for _, f := range p.Files {
			name := filepath.Join(p.Dir, f)
			src, err := os.ReadFile(name)
			if err != nil {
				fatal(err)
			}
			n += count(src, 1, -1)
			if !strings.HasSuffix(f, ".go") {
				continue
			}
			file, err := parser.ParseFile(fset, name, src, parser.ParseComments)
			if err != nil {
				fatal(err)
			}
			rel := filepath.Join(strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/"), f)
			for _, d := range file.Decls {
				doc, name := declDoc(d)
				if doc == nil || !hasMarker(doc) {
					continue
				}
				lines := count(src, fset.Position(d.Pos()).Line, fset.Position(d.End()).Line)
				request += lines
				path = append(path, fmt.Sprintf("%s:%s %d", rel, name, lines))
			}
		}
		fmt.Printf("  %-24s %5d\n", strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/"), n)
		total += n
	}
	fmt.Printf("  %-24s %5d (budget %d)\n", "root binary", total, *rootBudget)
	sort.Strings(path)
	fmt.Printf("request path (%s):\n", marker)
	for _, l := range path {
		fmt.Printf("  %s\n", l)
	}
	fmt.Printf("  %-24s %5d (budget %d)\n", "request path", request, *reqBudget)
	if total > *rootBudget {
		fmt.Printf("tcb: the root binary's code is %d lines, over its budget of %d\n", total, *rootBudget)
		failed = true
	}
	if request > *reqBudget {
		fmt.Printf("tcb: the request path is %d lines, over its budget of %d\n", request, *reqBudget)
		failed = true
	}
	if len(path) == 0 {
		fmt.Printf("tcb: no declaration is marked %q\n", marker)
		failed = true
	}
	if failed {
		os.Exit(1)
	}
}

// deps returns the packages mainPkg links, other than the standard
// library's, and the module mainPkg belongs to.
func deps(mainPkg string) ([]pkg, string, error) {
	out, err := exec.Command("go", "list", "-deps", "-f",
		`{{if not .Standard}}{{.ImportPath}}|{{.Dir}}|{{with .Module}}{{.Path}}{{end}}|{{join .GoFiles " "}} {{join .CgoFiles " "}} {{join .CFiles " "}}{{end}}`,
		mainPkg).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			err = fmt.Errorf("go list -deps %s: %v\n%s", mainPkg, err, ee.Stderr)
		}
		return nil, "", err
	}
	var pkgs []pkg
	module := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), "|", 4)
		if len(f) != 4 {
			continue
		}
		p := pkg{ImportPath: f[0], Dir: f[1], Module: f[2], Files: strings.Fields(f[3])}
		pkgs = append(pkgs, p)
		module = p.Module // go list -deps lists the main package last
	}
	return pkgs, module, nil
}

// count returns the lines from first to last (1-based, inclusive; -1: to
// the end) of src that are neither blank nor comment lines.
func count(src []byte, first, last int) int {
	n := 0
	for i, l := range strings.Split(string(src), "\n") {
		if i+1 < first || (last >= 0 && i+1 > last) {
			continue
		}
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "//") {
			n++
		}
	}
	return n
}

// declDoc returns a declaration's doc comment and its name.
func declDoc(d ast.Decl) (*ast.CommentGroup, string) {
	switch d := d.(type) {
	case *ast.FuncDecl:
		name := d.Name.Name
		if d.Recv != nil && len(d.Recv.List) == 1 {
			t := d.Recv.List[0].Type
			if s, ok := t.(*ast.StarExpr); ok {
				t = s.X
			}
			if id, ok := t.(*ast.Ident); ok {
				name = id.Name + "." + name
			}
		}
		return d.Doc, name
	case *ast.GenDecl:
		var names []string
		for _, s := range d.Specs {
			switch s := s.(type) {
			case *ast.ValueSpec:
				for _, n := range s.Names {
					names = append(names, n.Name)
				}
			case *ast.TypeSpec:
				names = append(names, s.Name.Name)
			}
		}
		return d.Doc, strings.Join(names, ",")
	}
	return nil, ""
}

func hasMarker(doc *ast.CommentGroup) bool {
	for _, c := range doc.List {
		if strings.TrimSpace(c.Text) == marker {
			return true
		}
	}
	return false
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "tcb:", err)
	os.Exit(2)
}
