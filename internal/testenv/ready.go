package testenv

import (
	"net/http"
	"testing"
	"time"
)

// WaitReady waits until GET base+"/readyz" answers 200, failing the test
// after 30 seconds.
func WaitReady(t testing.TB, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 30s: %v", base, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
