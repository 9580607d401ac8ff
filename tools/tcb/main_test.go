package main

import (
	"go/parser"
	"go/token"
	"testing"
)

// TestCount: blank lines and comment lines are not counted, code with a
// trailing comment is, within the range asked for.
func TestCount(t *testing.T) {
	src := []byte("package p\n\n// doc\nfunc f() { // here\n\t// inside\n\n\treturn\n}\n")
	if n := count(src, 1, -1); n != 4 {
		t.Errorf("whole file: %d lines, want 4", n)
	}
	if n := count(src, 4, 8); n != 3 {
		t.Errorf("lines 4 to 8: %d, want 3", n)
	}
}

// TestMarker: only declarations whose doc comment holds the marker line
// are on the request path, named with their receiver's type.
func TestMarker(t *testing.T) {
	src := `package p

// a is marked.
//
//tcb:request-path
func (x *T) a() {}

// b says tcb:request-path in its text, which is not the marker.
func b() {}

//tcb:request-path
var table = map[int]int{}

type T struct{}
`
	f, err := parser.ParseFile(token.NewFileSet(), "p.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range f.Decls {
		if doc, name := declDoc(d); doc != nil && hasMarker(doc) {
			got = append(got, name)
		}
	}
	if len(got) != 2 || got[0] != "T.a" || got[1] != "table" {
		t.Errorf("marked: %q, want T.a and table", got)
	}
}
