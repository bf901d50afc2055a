package gen

import (
	"testing"

	"github.com/sora3web/telemetry/schema"
)

func TestGeneratedEventsAreValidAndDeterministic(t *testing.T) {
	a, b := New(7, 1000), New(7, 1000)
	types := map[string]int{}
	for i := 0; i < 5000; i++ {
		ea, eb := a.Event(), b.Event()
		if ea.EventID != eb.EventID || ea.Type != eb.Type {
			t.Fatalf("event %d differs for the same seed", i)
		}
		if errs := schema.Validate(&ea, schema.DefaultLimits()); errs != nil {
			t.Fatalf("generated event %d invalid: %v (%+v)", i, errs, ea)
		}
		types[ea.Type]++
	}
	// The identity events (identify, alias, group) are not part of the
	// product mix the generator makes.
	identity := map[string]bool{schema.TypeIdentify: true, schema.TypeAlias: true, schema.TypeGroup: true}
	for _, typ := range schema.Types {
		if !identity[typ] && types[typ] == 0 {
			t.Errorf("no %s in 5000 events", typ)
		}
	}
}
