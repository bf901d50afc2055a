package schema_test

// The contract tests prove that the JSON Schema documents embedded by
// schema.JSONSchema agree with the Go types (Event, Properties, Context,
// Enriched), the enumerations, the limits and schema.Validate. They fail
// when a Go field is added or renamed, an enum or bound changes, or a type
// gains a required property without the schema being updated, and the other
// way round.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/sora3web/telemetry/schema"
)

// ---- loading ---------------------------------------------------------------

var (
	loadOnce sync.Once
	loaded   struct {
		docs     map[string]map[string]any // file name -> parsed document
		compiled map[string]*jsonschema.Schema
		err      error
	}
)

// schemas compiles every embedded document once, with format assertion on
// (draft 2020-12 treats format as an annotation by default).
func schemas(t testing.TB) (map[string]map[string]any, map[string]*jsonschema.Schema) {
	t.Helper()
	loadOnce.Do(func() {
		loaded.docs, loaded.compiled, loaded.err = compileAll()
	})
	if loaded.err != nil {
		t.Fatal(loaded.err)
	}
	return loaded.docs, loaded.compiled
}

func compileAll() (map[string]map[string]any, map[string]*jsonschema.Schema, error) {
	fsys := schema.JSONSchema()
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	docs := map[string]map[string]any{}
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		if err := c.AddResource(schema.SchemaID+name, doc); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		var raw map[string]any
		if err := json.Unmarshal(b, &raw); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		docs[name] = raw
	}
	compiled := map[string]*jsonschema.Schema{}
	for _, name := range names {
		s, err := c.Compile(schema.SchemaID + name)
		if err != nil {
			return nil, nil, fmt.Errorf("compile %s: %w", name, err)
		}
		compiled[name] = s
	}
	return docs, compiled, nil
}

// verdict is what both validators say about one JSON document.
type verdict struct {
	decodeErr error               // json.Unmarshal into the Go type failed
	goErrs    []schema.FieldError // schema.Validate's errors
	schemaErr error               // JSON Schema validation error
}

func (v verdict) goOK() bool { return v.decodeErr == nil && len(v.goErrs) == 0 }

// judgeEvent validates b as a client event with the Go validator and with
// event.json.
func judgeEvent(t testing.TB, b []byte) verdict {
	t.Helper()
	_, compiled := schemas(t)
	var v verdict
	var ev schema.Event
	if v.decodeErr = json.Unmarshal(b, &ev); v.decodeErr == nil {
		v.goErrs = schema.Validate(&ev, schema.DefaultLimits())
	}
	v.schemaErr = validateJSON(t, compiled[schema.SchemaEvent], b)
	return v
}

func validateJSON(t testing.TB, s *jsonschema.Schema, b []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	return s.Validate(inst)
}

// schemaErrorFields returns the dotted instance locations the leaf errors
// of a JSON Schema validation error point at. A "required" error points at
// each missing property rather than at its parent object.
func schemaErrorFields(err error) []string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var out []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		loc := strings.Join(e.InstanceLocation, ".")
		if r, ok := e.ErrorKind.(*kind.Required); ok {
			for _, m := range r.Missing {
				out = append(out, strings.TrimPrefix(loc+"."+m, "."))
			}
			return
		}
		out = append(out, loc)
	}
	walk(ve)
	return out
}

// pointsAt reports whether one of the schema error locations is field or
// one of its (non-root) ancestors.
func pointsAt(locs []string, field string) bool {
	for _, l := range locs {
		if l != "" && (l == field || strings.HasPrefix(field, l+".")) {
			return true
		}
	}
	return false
}

// ---- raw JSON helpers ------------------------------------------------------

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeMap(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// setPath sets (or, with del, deletes) the dotted path in m, creating
// intermediate objects.
func setPath(m map[string]any, path string, v any, del bool) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	if del {
		delete(m, parts[len(parts)-1])
	} else {
		m[parts[len(parts)-1]] = v
	}
}

func getPath(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, p := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// mutate returns the JSON of the valid corpus file name with path set to v
// (or deleted when v is del).
func mutate(t testing.TB, name, path string, v any) []byte {
	t.Helper()
	m := decodeMap(t, readFile(t, filepath.Join("testdata", "valid", name+".json")))
	setPath(m, path, v, v == del)
	return encode(t, m)
}

type deleteMarker struct{}

// del as a mutate value deletes the path.
var del any = deleteMarker{}

// ---- schema walking ---------------------------------------------------------

// node is a subschema and the document it belongs to (for resolving refs).
type node struct {
	file string
	v    any // map[string]any or bool
}

type walker struct{ docs map[string]map[string]any }

// resolve follows a $ref (or $dynamicRef, resolved statically) from file.
func (w walker) resolve(t testing.TB, file, ref string) node {
	t.Helper()
	target, frag, _ := strings.Cut(ref, "#")
	if target == "" {
		target = file
	}
	doc, ok := w.docs[target]
	if !ok {
		t.Fatalf("%s: $ref %q: no document %q", file, ref, target)
	}
	if frag == "" {
		return node{target, doc}
	}
	if !strings.HasPrefix(frag, "/") { // anchor
		var found any
		var find func(v any)
		find = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				if v["$anchor"] == frag || v["$dynamicAnchor"] == frag {
					found = v
				}
				for _, c := range v {
					find(c)
				}
			case []any:
				for _, c := range v {
					find(c)
				}
			}
		}
		find(doc)
		if found == nil {
			t.Fatalf("%s: $ref %q: no anchor", file, ref)
		}
		return node{target, found}
	}
	var cur any = doc
	for _, tok := range strings.Split(frag[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		obj, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("%s: $ref %q: bad pointer", file, ref)
		}
		if cur, ok = obj[tok]; !ok {
			t.Fatalf("%s: $ref %q: bad pointer", file, ref)
		}
	}
	return node{target, cur}
}

// expand returns n and every subschema that applies to the same instance
// through $ref, $dynamicRef and allOf; with branches, also through anyOf,
// oneOf, if, then and else (where a property may be mentioned, not
// necessarily required).
func (w walker) expand(t testing.TB, n node, branches bool) []node {
	t.Helper()
	seen := map[uintptr]bool{}
	var out []node
	var visit func(n node)
	visit = func(n node) {
		obj, ok := n.v.(map[string]any)
		if !ok {
			return
		}
		p := reflect.ValueOf(obj).Pointer()
		if seen[p] {
			return
		}
		seen[p] = true
		out = append(out, n)
		for _, k := range []string{"$ref", "$dynamicRef"} {
			if ref, ok := obj[k].(string); ok {
				visit(w.resolve(t, n.file, ref))
			}
		}
		lists := []string{"allOf"}
		singles := []string{}
		if branches {
			lists = append(lists, "anyOf", "oneOf")
			singles = append(singles, "if", "then", "else")
		}
		for _, k := range lists {
			list, _ := obj[k].([]any)
			for _, s := range list {
				visit(node{n.file, s})
			}
		}
		for _, k := range singles {
			if s, ok := obj[k]; ok {
				visit(node{n.file, s})
			}
		}
	}
	visit(n)
	return out
}

// properties merges the "properties" of every subschema of nodes.
func (w walker) properties(t testing.TB, nodes []node) map[string][]node {
	t.Helper()
	props := map[string][]node{}
	for _, n := range nodes {
		for _, e := range w.expand(t, n, true) {
			obj := e.v.(map[string]any)
			ps, _ := obj["properties"].(map[string]any)
			for name, s := range ps {
				props[name] = append(props[name], node{e.file, s})
			}
		}
	}
	return props
}

// keywords returns every value of keyword kw that applies to nodes
// (following $ref and allOf only).
func (w walker) keywords(t testing.TB, nodes []node, kw string) []any {
	t.Helper()
	var out []any
	for _, n := range nodes {
		for _, e := range w.expand(t, n, false) {
			if v, ok := e.v.(map[string]any)[kw]; ok {
				out = append(out, v)
			}
		}
	}
	return out
}

// dig returns the value at the keys of nested objects, or nil.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		obj, _ := v.(map[string]any)
		v = obj[k]
	}
	return v
}

// at returns the subschema at a JSON pointer of a document.
func (w walker) at(t testing.TB, file, pointer string) node {
	t.Helper()
	return w.resolve(t, file, "#"+pointer)
}

// ---- Go type walking --------------------------------------------------------

var timeType = reflect.TypeFor[time.Time]()

// jsonFields returns the JSON names of t's fields and their types,
// flattening embedded structs like encoding/json does.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// jsonType is the JSON Schema type a Go type encodes as.
func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType {
		return "string"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Struct:
		return "object"
	}
	return "unsupported " + t.String()
}

// checkObject asserts that the schema nodes describe exactly the JSON
// fields of Go type gt, with compatible types, recursively.
func (w walker) checkObject(t *testing.T, path string, gt reflect.Type, nodes []node) {
	t.Helper()
	for gt.Kind() == reflect.Pointer {
		gt = gt.Elem()
	}
	fields := jsonFields(gt)
	props := w.properties(t, nodes)
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		ft := fields[name]
		pn := props[name]
		if len(pn) == 0 {
			t.Errorf("Go field %s%s (%s) is missing from the JSON Schema", path, name, ft)
			continue
		}
		w.checkType(t, path+name, ft, pn)
	}
	for _, name := range slices.Sorted(maps.Keys(props)) {
		if _, ok := fields[name]; !ok {
			t.Errorf("JSON Schema property %s%s has no field in Go type %s", path, name, gt)
		}
	}
}

func (w walker) checkType(t *testing.T, path string, ft reflect.Type, nodes []node) {
	t.Helper()
	want := jsonType(ft)
	got := map[string]bool{}
	for _, v := range w.keywords(t, nodes, "type") {
		switch v := v.(type) {
		case string:
			got[v] = true
		case []any:
			for _, s := range v {
				got[fmt.Sprint(s)] = true
			}
		}
	}
	if len(got) != 1 || !got[want] {
		t.Errorf("%s: Go %s encodes as JSON %s, schema says type %v", path, ft, want, slices.Sorted(maps.Keys(got)))
	}
	if ft == timeType {
		formats := w.keywords(t, nodes, "format")
		if !slices.Contains(formats, any("date-time")) {
			t.Errorf("%s: Go time.Time needs format date-time, schema has %v", path, formats)
		}
	}
	for ft.Kind() == reflect.Pointer {
		ft = ft.Elem()
	}
	if ft.Kind() == reflect.Struct && ft != timeType {
		w.checkObject(t, path+".", ft, nodes)
	}
}

// ---- tests -----------------------------------------------------------------

// TestSchemaFiles checks the set of documents, their $schema and $id, and
// that SchemaID names the current Version.
func TestSchemaFiles(t *testing.T) {
	docs, _ := schemas(t)
	want := []string{schema.SchemaEnriched, schema.SchemaEnvelope, schema.SchemaEvent, schema.SchemaProperties}
	for _, typ := range schema.Types {
		want = append(want, schema.TypeSchema(typ))
	}
	sort.Strings(want)
	got := slices.Sorted(maps.Keys(docs))
	if !slices.Equal(got, want) {
		t.Errorf("jsonschema/ holds %v, want %v (one file per entry of schema.Types plus the shared ones)", got, want)
	}
	if suffix := fmt.Sprintf("/v%d/", schema.Version); !strings.HasSuffix(schema.SchemaID, suffix) {
		t.Errorf("SchemaID %q does not end in %q: bump it with schema.Version", schema.SchemaID, suffix)
	}
	for name, doc := range docs {
		if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema = %v, want draft 2020-12", name, doc["$schema"])
		}
		if doc["$id"] != schema.SchemaID+name {
			t.Errorf("%s: $id = %v, want %s", name, doc["$id"], schema.SchemaID+name)
		}
		if b, _ := json.Marshal(doc); bytes.Contains(b, []byte(`"$dynamic`)) {
			t.Errorf("%s: avoid $dynamicRef/$dynamicAnchor: ajv supports them only at a document's root", name)
		}
		if doc["additionalProperties"] != nil || doc["unevaluatedProperties"] != nil {
			t.Errorf("%s: unknown fields must stay allowed (the collector ignores them)", name)
		}
	}
}

// TestFieldsMatchGoTypes walks the Go types by reflection and checks that
// every JSON field exists in the schema with a compatible type, and that
// every schema property exists in the Go types.
func TestFieldsMatchGoTypes(t *testing.T) {
	docs, _ := schemas(t)
	w := walker{docs}
	tests := []struct {
		file string
		typ  reflect.Type
	}{
		{schema.SchemaEnvelope, reflect.TypeFor[schema.Event]()},
		{schema.SchemaEvent, reflect.TypeFor[schema.Event]()},
		{schema.SchemaProperties, reflect.TypeFor[schema.Properties]()},
		{schema.SchemaEnriched, reflect.TypeFor[schema.Enriched]()},
	}
	for _, typ := range schema.Types {
		tests = append(tests, struct {
			file string
			typ  reflect.Type
		}{schema.TypeSchema(typ), reflect.TypeFor[schema.Event]()})
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			root := node{tt.file, docs[tt.file]}
			if got := w.keywords(t, []node{root}, "type"); !slices.Contains(got, any("object")) {
				t.Errorf("root type = %v, want object", got)
			}
			w.checkObject(t, "", tt.typ, []node{root})
		})
	}
}

// TestEnums checks every enum of the schema against the Go variables, and
// that no enum of the schema is left unchecked.
func TestEnums(t *testing.T) {
	docs, _ := schemas(t)
	w := walker{docs}
	tests := []struct {
		file, pointer string
		want          []string
	}{
		{schema.SchemaEnvelope, "/$defs/fields/properties/type", schema.Types},
		{schema.SchemaEnvelope, "/$defs/fields/properties/plan", schema.Plans},
		{schema.SchemaProperties, "/properties/quality", schema.Qualities},
		{schema.SchemaProperties, "/properties/resolution", schema.Resolutions},
		{schema.SchemaProperties, "/properties/aspect_ratio", schema.AspectRatios},
		{schema.SchemaProperties, "/properties/format", schema.Formats},
		// Device classes have no Go variable; the list is Device.Class's doc.
		{schema.SchemaEnriched, "/properties/device/properties/class", []string{"desktop", "mobile", "tablet", "bot", "other"}},
	}
	checked := map[string]bool{}
	for _, tt := range tests {
		checked[tt.file+"#"+tt.pointer] = true
		t.Run(tt.file+"#"+tt.pointer, func(t *testing.T) {
			n := w.at(t, tt.file, tt.pointer)
			enum, _ := n.v.(map[string]any)["enum"].([]any)
			var got []string
			for _, v := range enum {
				got = append(got, fmt.Sprint(v))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("enum = %v, want %v (same values, same order)", got, tt.want)
			}
		})
	}
	// Every enum keyword in any document must be in the table above.
	for file, doc := range docs {
		var find func(ptr string, v any)
		find = func(ptr string, v any) {
			switch v := v.(type) {
			case map[string]any:
				if _, ok := v["enum"]; ok && !checked[file+"#"+ptr] {
					t.Errorf("%s#%s: enum not compared with a Go variable; add it to TestEnums", file, ptr)
				}
				for k, c := range v {
					find(ptr+"/"+k, c)
				}
			case []any:
				for i, c := range v {
					find(fmt.Sprintf("%s/%d", ptr, i), c)
				}
			}
		}
		find("", doc)
	}
}

// stringLimits maps every length-limited string field of Event (JSON path)
// to its maximum under DefaultLimits, as schema.Validate applies it.
func stringLimits() map[string]int {
	l := schema.DefaultLimits()
	return map[string]int{
		"anonymous_id":             l.MaxIDLen,
		"user_id":                  l.MaxIDLen,
		"session_id":               l.MaxIDLen,
		"group_id":                 l.MaxIDLen,
		"previous_id":              l.MaxIDLen,
		"context.page_url":         l.MaxURLLen,
		"context.referrer":         l.MaxURLLen,
		"context.locale":           l.MaxStringLen,
		"context.app_version":      l.MaxStringLen,
		"context.user_agent":       l.MaxMessageLen,
		"properties.prompt":        l.MaxPromptLen,
		"properties.model":         l.MaxStringLen,
		"properties.generation_id": l.MaxIDLen,
		"properties.error_code":    l.MaxStringLen,
		"properties.error_message": l.MaxMessageLen,
		"properties.error_stack":   l.MaxStackLen,
		"properties.setting":       l.MaxStringLen,
		"properties.value":         l.MaxStringLen,
	}
}

// numericBounds lists every bounded number of Event with the schema's
// bounds. zeroAbsent marks fields the Go validator treats as absent when 0
// (the schema rejects 0 there; see TestKnownDivergences).
var numericBounds = []struct {
	path       string
	min, max   float64
	zeroAbsent bool
}{
	{"schema_version", 1, schema.Version, true},
	{"context.screen.width", 1, schema.MaxScreenPx, true},
	{"context.screen.height", 1, schema.MaxScreenPx, true},
	{"properties.width", 1, schema.MaxPixels, true},
	{"properties.height", 1, schema.MaxPixels, true},
	{"properties.duration_s", schema.MinDurationS, schema.MaxDurationS, true},
	{"properties.latency_ms", 0, schema.MaxLatencyMS, false},
}

// schemaNodeOf returns the envelope.json subschemas of a dotted Event path.
func schemaNodeOf(t testing.TB, w walker, path string) []node {
	t.Helper()
	nodes := []node{{schema.SchemaEnvelope, w.docs[schema.SchemaEnvelope]}}
	for _, p := range strings.Split(path, ".") {
		nodes = w.properties(t, nodes)[p]
		if len(nodes) == 0 {
			t.Fatalf("%s: not in envelope.json", path)
		}
	}
	return nodes
}

func number(v any) float64 {
	f, _ := v.(float64)
	return f
}

// TestLimits checks that the schema's maxLength, minimum and maximum equal
// DefaultLimits and the bounds constants, that every string field of Event
// is bounded, enumerated or a UUID, and, at each bound, that both
// validators agree (limit accepted, limit+1 rejected naming the field).
func TestLimits(t *testing.T) {
	docs, _ := schemas(t)
	w := walker{docs}
	limits := stringLimits()

	// Every string field of Event must have a rule in the schema.
	var strs []string
	var collect func(prefix string, gt reflect.Type)
	collect = func(prefix string, gt reflect.Type) {
		for name, ft := range jsonFields(gt) {
			switch {
			case ft.Kind() == reflect.String:
				strs = append(strs, prefix+name)
			case ft.Kind() == reflect.Struct && ft != timeType:
				collect(prefix+name+".", ft)
			}
		}
	}
	collect("", reflect.TypeFor[schema.Event]())
	for _, path := range strs {
		nodes := schemaNodeOf(t, w, path)
		_, limited := limits[path]
		enum := len(w.keywords(t, nodes, "enum")) > 0
		pattern := len(w.keywords(t, nodes, "pattern")) > 0
		if !limited && !enum && !pattern {
			t.Errorf("%s: Go string field without maxLength, enum or pattern in the schema (add it to stringLimits)", path)
		}
	}

	for _, path := range slices.Sorted(maps.Keys(limits)) {
		max := limits[path]
		t.Run(path, func(t *testing.T) {
			got := w.keywords(t, schemaNodeOf(t, w, path), "maxLength")
			if len(got) != 1 || number(got[0]) != float64(max) {
				t.Fatalf("schema maxLength = %v, want %d", got, max)
			}
			base := "generation_requested"
			switch path {
			case "properties.error_code":
				base = "generation_failed"
			case "properties.error_message", "properties.error_stack":
				base = "client_error"
			case "properties.setting", "properties.value":
				base = "settings_changed"
			}
			atLimit := judgeEvent(t, mutate(t, base, path, strings.Repeat("a", max)))
			if !atLimit.goOK() || atLimit.schemaErr != nil {
				t.Errorf("%d characters: Go %v %v, schema %v; want both to accept", max, atLimit.decodeErr, atLimit.goErrs, atLimit.schemaErr)
			}
			over := judgeEvent(t, mutate(t, base, path, strings.Repeat("a", max+1)))
			if len(over.goErrs) != 1 || over.goErrs[0].Field != path {
				t.Errorf("%d characters: Go errors %v, want one naming %s", max+1, over.goErrs, path)
			}
			if over.schemaErr == nil {
				t.Errorf("%d characters: schema accepted", max+1)
			}
		})
	}

	for _, b := range numericBounds {
		t.Run(b.path, func(t *testing.T) {
			nodes := schemaNodeOf(t, w, b.path)
			mins, maxs := w.keywords(t, nodes, "minimum"), w.keywords(t, nodes, "maximum")
			if len(mins) != 1 || number(mins[0]) != b.min || len(maxs) != 1 || number(maxs[0]) != b.max {
				t.Fatalf("schema bounds = %v..%v, want %v..%v", mins, maxs, b.min, b.max)
			}
			base := "generation_completed" // has every numeric field
			if b.path == "properties.latency_ms" {
				base = "generation_failed" // where latency_ms is optional, so 0 is valid
			}
			for _, c := range []struct {
				v      float64
				goOK   bool
				schema bool
			}{
				{b.min, true, true},
				{b.max, true, true},
				{b.max + 1, false, false},
				{b.min - 1, b.zeroAbsent && b.min-1 == 0, false},
			} {
				v := judgeEvent(t, mutate(t, base, b.path, c.v))
				if v.goOK() != c.goOK || (v.schemaErr == nil) != c.schema {
					t.Errorf("%v: Go ok=%v %v, schema ok=%v; want Go %v, schema %v",
						c.v, v.goOK(), v.goErrs, v.schemaErr == nil, c.goOK, c.schema)
				}
				if !c.goOK && (len(v.goErrs) != 1 || v.goErrs[0].Field != b.path) {
					t.Errorf("%v: Go errors %v, want one naming %s", c.v, v.goErrs, b.path)
				}
			}
		})
	}
}

// TestRequiredProperties checks each type's schema requires exactly
// schema.RequiredProperties, and that event.json dispatches every type.
func TestRequiredProperties(t *testing.T) {
	docs, _ := schemas(t)
	dispatched := map[string]string{}
	branches, _ := docs[schema.SchemaEvent]["allOf"].([]any)
	for _, s := range branches {
		typ := fmt.Sprint(dig(s, "if", "properties", "type", "const"))
		dispatched[typ] = fmt.Sprint(dig(s, "then", "$ref"))
	}
	for _, typ := range schema.Types {
		t.Run(typ, func(t *testing.T) {
			if got := dispatched[typ]; got != schema.TypeSchema(typ) {
				t.Errorf("event.json dispatches %s to %q, want %q", typ, got, schema.TypeSchema(typ))
			}
			file := schema.TypeSchema(typ)
			if c := dig(docs[file], "properties", "type", "const"); c != typ {
				t.Errorf("%s: type const = %v, want %s", file, c, typ)
			}
			var got []string
			req, _ := dig(docs[file], "properties", "properties", "required").([]any)
			for _, r := range req {
				got = append(got, fmt.Sprint(r))
			}
			if want := schema.RequiredProperties(typ); !slices.Equal(got, want) {
				t.Errorf("%s requires properties %v, schema.RequiredProperties says %v", file, got, want)
			}
		})
	}
	if len(dispatched) != len(schema.Types) {
		t.Errorf("event.json dispatches %d types, schema.Types has %d", len(dispatched), len(schema.Types))
	}
}

// TestCorpus validates every file of testdata/valid and testdata/invalid
// with both validators. Valid files must pass both; invalid files must fail
// both, the Go side with exactly one error naming the field in the file's
// "_expect_field" key, the schema side pointing at that field.
func TestCorpus(t *testing.T) {
	schemas(t)
	for _, dir := range []string{"valid", "invalid"} {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no files in testdata/%s: %v", dir, err)
		}
		for _, file := range files {
			t.Run(dir+"/"+strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
				b := readFile(t, file)
				v := judgeEvent(t, b)
				if dir == "valid" {
					if !v.goOK() {
						t.Errorf("Go rejects: %v %v", v.decodeErr, v.goErrs)
					}
					if v.schemaErr != nil {
						t.Errorf("JSON Schema rejects: %v", v.schemaErr)
					}
					return
				}
				m := decodeMap(t, b)
				field, _ := m["_expect_field"].(string)
				if field == "" {
					t.Fatal(`invalid file without "_expect_field"`)
				}
				checkGoRejects(t, m, field, v)
				if v.schemaErr == nil {
					t.Error("JSON Schema accepts")
				} else if locs := schemaErrorFields(v.schemaErr); !pointsAt(locs, field) {
					t.Errorf("JSON Schema errors point at %q, want %s: %v", locs, field, v.schemaErr)
				}
			})
		}
	}
}

// checkGoRejects asserts the Go side rejected the document because of field:
// a decode error on that field, or exactly one FieldError naming it.
func checkGoRejects(t *testing.T, m map[string]any, field string, v verdict) {
	t.Helper()
	if v.decodeErr != nil {
		var te *json.UnmarshalTypeError
		var pe *time.ParseError
		switch {
		case errors.As(v.decodeErr, &te):
			if te.Field != field {
				t.Errorf("decode error on %q, want %s: %v", te.Field, field, v.decodeErr)
			}
		case errors.As(v.decodeErr, &pe):
			if got, _ := getPath(m, field); got != pe.Value {
				t.Errorf("time parse error on %q, which is not %s (%v): %v", pe.Value, field, got, v.decodeErr)
			}
		default:
			t.Errorf("unexpected decode error: %v", v.decodeErr)
		}
		return
	}
	if len(v.goErrs) != 1 || v.goErrs[0].Field != field {
		t.Errorf("Go errors %v, want exactly one naming %s", v.goErrs, field)
	}
}

// TestGoEncodingMatchesSchema decodes each valid file into schema.Event,
// encodes it again and checks the JSON the Go types produce is schema-valid:
// omitempty and the schema's optional fields agree.
func TestGoEncodingMatchesSchema(t *testing.T) {
	_, compiled := schemas(t)
	files, _ := filepath.Glob(filepath.Join("testdata", "valid", "*.json"))
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			var ev schema.Event
			if err := json.Unmarshal(readFile(t, file), &ev); err != nil {
				t.Fatal(err)
			}
			if err := validateJSON(t, compiled[schema.SchemaEvent], encode(t, ev)); err != nil {
				t.Errorf("re-encoded event rejected: %v", err)
			}
		})
	}
}

// TestEnriched validates the published-message examples of
// testdata/enriched with enriched.json, decodes them into schema.Enriched
// (whose Event must pass Validate unless opted out) and checks mutations
// that break the enrichment rules are rejected.
func TestEnriched(t *testing.T) {
	_, compiled := schemas(t)
	s := compiled[schema.SchemaEnriched]
	files, _ := filepath.Glob(filepath.Join("testdata", "enriched", "*.json"))
	if len(files) == 0 {
		t.Fatal("no files in testdata/enriched")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			b := readFile(t, file)
			if err := validateJSON(t, s, b); err != nil {
				t.Errorf("enriched.json rejects: %v", err)
			}
			var en schema.Enriched
			if err := json.Unmarshal(b, &en); err != nil {
				t.Fatal(err)
			}
			if errs := schema.Validate(&en.Event, schema.DefaultLimits()); len(errs) > 0 && !en.OptedOut {
				t.Errorf("embedded event fails Validate: %v", errs)
			}
			if err := validateJSON(t, s, encode(t, en)); err != nil {
				t.Errorf("re-encoded message rejected: %v", err)
			}
		})
	}

	base := func(t *testing.T, name string) map[string]any {
		return decodeMap(t, readFile(t, filepath.Join("testdata", "enriched", name+".json")))
	}
	tests := []struct {
		name, file, path string
		v                any
		field            string
	}{
		{"opted_out_with_user_id", "page_view_opted_out", "user_id", "usr_01J0AXK7Q3M8ZT4N2VEXB9R5HD", "user_id"},
		{"opted_out_with_anonymous_id", "page_view_opted_out", "anonymous_id", "f2d8b4a6-0c1e-4a73-95b2-7e3c9d1f6a80", "anonymous_id"},
		{"opted_out_with_ip", "page_view_opted_out", "ip", "203.0.113.0", "ip"},
		{"no_consent_not_opted_out", "page_view_opted_out", "opted_out", del, "opted_out"},
		{"under_13_published", "generation_completed", "under_13", true, "under_13"},
		{"missing_received_at", "generation_completed", "received_at", del, "received_at"},
		{"missing_schema_version", "generation_completed", "schema_version", del, "schema_version"},
		{"user_agent_published", "generation_completed", "context.user_agent", "Mozilla/5.0", "context.user_agent"},
		{"missing_device_class", "generation_completed", "device.class", del, "device.class"},
		{"bad_device_class", "generation_completed", "device.class", "smart_fridge", "device.class"},
		{"ip_not_an_address", "generation_completed", "ip", "203.0.113.x", "ip"},
		{"identified_without_identity", "generation_completed", "anonymous_id", del, "anonymous_id"},
		{"bad_event_rule_still_checked", "generation_completed", "properties.latency_ms", del, "properties.latency_ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base(t, tt.file)
			setPath(m, tt.path, tt.v, tt.v == del)
			if tt.name == "identified_without_identity" {
				setPath(m, "user_id", nil, true)
			}
			err := validateJSON(t, s, encode(t, m))
			if err == nil {
				t.Fatal("enriched.json accepts")
			}
			if locs := schemaErrorFields(err); !pointsAt(locs, tt.field) {
				t.Errorf("errors point at %q, want %s: %v", locs, tt.field, err)
			}
		})
	}
}

// TestKnownDivergences pins the few documents on which the two validators
// disagree, all documented in README.md ("Where the schema and the
// collector differ"). The schema is stricter about spelling a value as
// absent; the collector about what JSON can express only loosely. If one of
// these changes, update the README.
func TestKnownDivergences(t *testing.T) {
	tests := []struct {
		name         string
		file, path   string
		v            any
		goOK, schema bool
	}{
		// The collector treats zero values as absent; the schema wants them omitted.
		{"empty_optional_enum", "page_view", "properties.quality", "", true, false},
		{"zero_width", "generation_requested", "properties.width", 0, true, false},
		{"zero_screen", "page_view", "context.screen.height", 0, true, false},
		{"schema_version_zero", "page_view", "schema_version", 0, true, false},
		{"null_optional_field", "page_view", "session_id", nil, true, false},
		{"null_context", "session_start", "context", nil, true, false},
		// Go decodes keys case-insensitively: "Plan" fills Plan.
		{"miscased_key", "session_start", "Plan", "free", true, false},
		// Go counts bytes for identifiers, JSON Schema counts characters.
		{"multibyte_id_over_byte_limit", "page_view", "session_id", strings.Repeat("é", 100), false, true},
		// Go rejects the zero time as absent and integers spelled with a fraction.
		{"zero_time", "page_view", "occurred_at", "0001-01-01T00:00:00Z", false, true},
		{"integer_with_fraction", "generation_requested", "properties.width", json.Number("3840.0"), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mutate(t, tt.file, tt.path, tt.v)
			if tt.name == "miscased_key" {
				m := decodeMap(t, b)
				delete(m, "plan")
				b = encode(t, m)
			}
			v := judgeEvent(t, b)
			if v.goOK() != tt.goOK || (v.schemaErr == nil) != tt.schema {
				t.Errorf("Go ok=%v (%v %v), schema ok=%v (%v); want Go %v, schema %v",
					v.goOK(), v.decodeErr, v.goErrs, v.schemaErr == nil, v.schemaErr, tt.goOK, tt.schema)
			}
		})
	}
}
