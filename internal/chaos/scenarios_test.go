package chaos

import (
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
)

// loadFor lets s run for d.
func loadFor(d time.Duration) { time.Sleep(d) }

// waitAcked waits until s has had more than n events acknowledged, so a
// fault always hits a pipeline that is taking load.
func waitAcked(t *testing.T, s *sender, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for s.acknowledged() <= n {
		if time.Now().After(deadline) {
			t.Fatalf("no event acknowledged for %v (answers %s)", timeout, statusLine(s.statusCounts()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSigkillCollector: all-in-one on the local log (fsync always). The
// serve process is SIGKILLed six times at random moments under load and
// started again on the same data directory; the sender keeps going (and
// resends what was refused or cut off). Every acknowledged event must be
// stored exactly once: the log's fsync-before-2xx, its recovery and the
// consumer's stored offsets are what this proves.
func TestSigkillCollector(t *testing.T) {
	requireChaos(t)
	const name = "sigkill-collector"
	n := newNode(t, "serve", filepath.Join(t.TempDir(), "data"), chaosArgs("serve")...)
	n.start()
	s := newSender(t, n.IngestAddr, 8, 50)
	s.start()
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for i := 0; i < 6; i++ {
		waitAcked(t, s, s.acknowledged(), 30*time.Second)
		loadFor(300*time.Millisecond + time.Duration(rnd.Int64N(int64(2*time.Second))))
		n.kill()
		time.Sleep(time.Duration(rnd.Int64N(int64(300 * time.Millisecond))))
		n.start()
	}
	waitAcked(t, s, s.acknowledged(), 30*time.Second)
	loadFor(time.Second)
	s.finish(20 * time.Second)
	settle(t, name, n.ClickHouseAddr(), s)
}
