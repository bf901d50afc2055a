package chaos

import (
	"reflect"
	"testing"
)

// TestHistoryScripts: a generated history is valid in every state it
// passes through, its script reads back to the same history, and bad
// scripts are refused with the line that is wrong. It needs no process,
// so it runs in every `go test`.
func TestHistoryScripts(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		h := generate(seed)
		if len(h.ops) < 10 || len(h.ops) > 21 {
			t.Fatalf("seed %d: %d ops, want 10 to 21", seed, len(h.ops))
		}
		if !reflect.DeepEqual(valid(h.ops), h.ops) {
			t.Fatalf("seed %d: generated an op its state does not allow:\n%s", seed, h.script())
		}
		back, err := parseHistory(h.script())
		if err != nil || !reflect.DeepEqual(back, h) {
			t.Fatalf("seed %d: script does not read back (%v):\n%s", seed, err, h.script())
		}
	}
	for _, bad := range []string{"start", "start disk", "post n=3", "post user=u1 n=x", "post user=u1 k=1", "kill now", "explode"} {
		if _, err := parseHistory("seed 1\n" + bad + "\n"); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
	// valid drops what a shrunk history can no longer do.
	got := valid([]op{{kind: opPost, user: "u1", n: 1}, {kind: opStart, bus: "log"}, {kind: opStart, bus: "kafka"}, {kind: opKill}, {kind: opDiskFree}})
	want := []op{{kind: opStart, bus: "log"}, {kind: opKill}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("valid: %v, want %v", got, want)
	}
}

// TestHistoriesAreDeterministic: a seed always makes the same history, so
// a logged seed replays a run.
func TestHistoriesAreDeterministic(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		if a, b := generate(seed).script(), generate(seed).script(); a != b {
			t.Fatalf("seed %d made two histories:\n%s\n%s", seed, a, b)
		}
	}
}
