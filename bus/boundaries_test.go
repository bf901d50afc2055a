package bus

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPackageBoundaries: kafka-go is imported only by the bus (bus/broker),
// and ingest (collector) and the sink side (sinks/...) never import each
// other: both import the bus. Test files may use anything.
func TestPackageBoundaries(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	const module = "github.com/sora3web/telemetry/"
	rules := []struct {
		from, imports, why string
	}{
		{"", "github.com/segmentio/kafka-go", "kafka-go belongs to bus/broker"},
		{"collector", module + "sinks", "ingest must not import the sink side"},
		{"sinks", module + "collector", "the sink side must not import ingest"},
	}
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		files++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, r := range rules {
				if !strings.HasPrefix(rel, r.from) || !strings.HasPrefix(p, r.imports) {
					continue
				}
				if r.from == "" && strings.HasPrefix(rel, "bus/broker/") {
					continue
				}
				t.Errorf("%s imports %s: %s", rel, p, r.why)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("read only %d files from %s: the walk missed the tree", files, root)
	}
}
