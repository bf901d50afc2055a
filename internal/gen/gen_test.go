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
	for _, typ := range schema.Types {
		if typ != schema.TypeIdentify && types[typ] == 0 {
			t.Errorf("no %s in 5000 events", typ)
		}
	}
}
