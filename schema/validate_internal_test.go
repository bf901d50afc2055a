package schema

import (
	"reflect"
	"strings"
	"testing"
)

// TestPresenceIsKnownForEveryRequiredProperty keeps Properties.has in step
// with requiredProps: each required name must be absent on zero Properties
// and present once its field (found by JSON name) is set.
func TestPresenceIsKnownForEveryRequiredProperty(t *testing.T) {
	byName := map[string]int{}
	pt := reflect.TypeFor[Properties]()
	for i := range pt.NumField() {
		name, _, _ := strings.Cut(pt.Field(i).Tag.Get("json"), ",")
		byName[name] = i
	}
	for typ, names := range requiredProps {
		for _, name := range names {
			i, ok := byName[name]
			if !ok {
				t.Fatalf("%s requires %q, which is not a field of Properties", typ, name)
			}
			var p Properties
			if p.has(name) {
				t.Errorf("%q is present on zero Properties", name)
			}
			f := reflect.ValueOf(&p).Elem().Field(i)
			switch f.Kind() {
			case reflect.String:
				f.SetString("x")
			case reflect.Int, reflect.Int64:
				f.SetInt(1)
			case reflect.Float64:
				f.SetFloat(1)
			default:
				t.Fatalf("%q: unexpected kind %s", name, f.Kind())
			}
			if !p.has(name) {
				t.Errorf("%q is not present once set", name)
			}
		}
	}
}
