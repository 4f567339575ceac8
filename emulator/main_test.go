package emulator

import (
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/azcredkit/azcredkit/internal/testguard"
)

// This is the only test file of package emulator; every other test is in package emulator_test
// and uses the public API alone, as a user's module would.

func TestMain(m *testing.M) {
	testguard.VerifyTestMain(m)
}

// TestUserTestsImportOnlyPublicPackages fails when a test of package emulator_test imports an
// internal package of this module: those tests stand for a user's module, which cannot.
func TestUserTestsImportOnlyPublicPackages(t *testing.T) {
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		if f.Name.Name != "emulator_test" {
			continue
		}
		checked++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if isInternal(path) {
				t.Errorf("%s imports %s: the tests of package emulator_test must use only public packages", name, path)
			}
		}
	}
	if checked < 3 {
		t.Fatalf("found %d files of package emulator_test; expected the user tests and examples", checked)
	}
}

func isInternal(path string) bool {
	return strings.HasPrefix(path, "github.com/azcredkit/azcredkit/") &&
		(strings.Contains(path, "/internal/") || strings.HasSuffix(path, "/internal"))
}

func TestIsInternal(t *testing.T) {
	for path, want := range map[string]bool{
		"github.com/azcredkit/azcredkit/internal/emulator": true,
		"github.com/azcredkit/azcredkit/internal":          true,
		"github.com/azcredkit/azcredkit/emulator":          false,
		"github.com/azcredkit/azcredkit/credential":        false,
		"github.com/Azure/azure-sdk-for-go/sdk/azidentity": false,
	} {
		if got := isInternal(path); got != want {
			t.Errorf("isInternal(%q) = %v, want %v", path, got, want)
		}
	}
}

// TestEveryExportedNameHasAnExample fails when an exported function, type or method of the
// package has no documentation or no Example.
func TestEveryExportedNameHasAnExample(t *testing.T) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") {
			continue
		}
		f, err := parser.ParseFile(fset, e.Name(), nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	p, err := doc.NewFromFiles(fset, files, "github.com/azcredkit/azcredkit/emulator")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	need := func(name, docText string, examples []*doc.Example) {
		if strings.TrimSpace(docText) == "" {
			missing = append(missing, name+" (no doc comment)")
		}
		if len(examples) == 0 {
			missing = append(missing, name+" (no Example)")
		}
	}
	for _, f := range p.Funcs {
		need(f.Name, f.Doc, f.Examples)
	}
	for _, typ := range p.Types {
		need(typ.Name, typ.Doc, typ.Examples)
		for _, f := range typ.Funcs {
			need(f.Name, f.Doc, f.Examples)
		}
		for _, m := range typ.Methods {
			need(typ.Name+"."+m.Name, m.Doc, m.Examples)
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Error(m)
	}
}
