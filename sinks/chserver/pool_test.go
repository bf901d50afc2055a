package chserver_test

import (
	"strings"
	"testing"
)

// TestSlowQueryDoesNotHoldBackOtherClients: while one client's slow query
// runs, another client's queries (the process list, a SELECT) answer
// before it ends: sessionless statements run on connections of their own,
// not queued behind one shared connection.
func TestSlowQueryDoesNotHoldBackOtherClients(t *testing.T) {
	const marker = "pool_test_slow_query"
	slowDone := make(chan []byte)
	go func() {
		_, _, b := call(t, "POST", "SELECT '"+marker+"', sum(sleepEachRow(0.25)) FROM numbers(12) SETTINGS max_block_size = 1, max_execution_time = 0", nil, nil, nil)
		slowDone <- b
	}()
	for seen := false; !seen; {
		select {
		case b := <-slowDone:
			t.Fatalf("the slow query ended (%q) before another client could see it running", b)
		default:
		}
		procs := mustOK(t, "POST", "SELECT query FROM system.processes", nil, nil)
		seen = strings.Contains(string(procs), marker)
	}
	if got := mustOK(t, "POST", "SELECT 40 + 2", nil, nil); string(got) != "42\n" {
		t.Fatalf("SELECT 40 + 2 beside a slow query: %q", got)
	}
	select {
	case b := <-slowDone:
		t.Fatalf("the slow query ended (%q) before the quick one answered", b)
	default:
	}
	if b := <-slowDone; !strings.HasPrefix(string(b), marker) {
		t.Fatalf("slow query: %q", b)
	}
}
