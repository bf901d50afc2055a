package chserver

import (
	"testing"
	"time"
)

// TestSessionsExpireOnlyWhenIdle: a session ends timeout after its last
// request ended, without another request coming, and never while a
// request runs in it.
func TestSessionsExpireOnlyWhenIdle(t *testing.T) {
	var ss sessions
	t0 := time.Now()
	idle, _, _, err := ss.use("idle", time.Second, false, t0)
	if err != nil {
		t.Fatal(err)
	}
	ss.release(idle, t0)
	if _, _, _, err := ss.use("busy", time.Second, false, t0); err != nil {
		t.Fatal(err)
	}
	ss.expire(t0.Add(time.Second))
	if len(ss.byID) != 2 {
		t.Fatalf("expired at its timeout, not past it: %v", ss.byID)
	}
	ss.expire(t0.Add(2 * time.Second))
	if _, ok := ss.byID["idle"]; ok {
		t.Error("the idle session outlived its timeout")
	}
	if _, ok := ss.byID["busy"]; !ok {
		t.Error("the session expired while a request ran in it")
	}
	if _, _, _, err := ss.use("idle", time.Second, true, t0.Add(2*time.Second)); err == nil {
		t.Error("session_check found the expired session")
	}
}
