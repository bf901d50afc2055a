package consumer

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sora3web/telemetry/internal/testenv"
)

// The two processes of a BenchmarkAuditCostSideBySide round each run on
// half of the machine's CPUs, and trade halves every BENCH_AUDIT_SWAP_MS
// (default 500 ms).
//
// Unpinned, the processes' threads shared the cores as the scheduler
// chose, and the side with more runnable threads (the audit's own insert
// and merges) was given more CPU: rounds of one build swung from -21.7%
// to +20.1% (2026-12-03). Pinned for a whole round, each side's speed was
// its core's: on this machine (a VM whose host takes about 10% of each
// core, more or less from second to second), two identical consumers on
// two cores differed by up to 9% in a round. Trading cores twice a
// second gives each side the same share of each core's time, so what
// is left between the sides is the cost of what they do differently.
// BENCH_AUDIT_PIN=0, fewer than two CPUs or no taskset: unpinned.

// coreHalves returns the machine's CPUs in two halves, or pinned false
// when the sides are to run unpinned.
func coreHalves(b *testing.B) (halves [2][]int, pinned bool) {
	b.Helper()
	cpus := runtime.NumCPU()
	if os.Getenv("BENCH_AUDIT_PIN") == "0" || cpus < 2 {
		return halves, false
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		b.Logf("taskset not found: the two sides run unpinned")
		return halves, false
	}
	for c := range cpus / 2 * 2 {
		halves[c/(cpus/2)] = append(halves[c/(cpus/2)], c)
	}
	return halves, true
}

// cpuList is cpus as taskset's list.
func cpuList(cpus []int) string {
	s := ""
	for i, c := range cpus {
		if i > 0 {
			s += ","
		}
		s += strconv.Itoa(c)
	}
	return s
}

// swapCores trades the halves between the processes pids every
// BENCH_AUDIT_SWAP_MS, from process i on half (i+start)%2 (as started),
// until the returned stop is called.
func swapCores(b *testing.B, pids [2]int, halves [2][]int, start int) (stop func()) {
	b.Helper()
	every := time.Duration(testenv.EnvInt(b, "BENCH_AUDIT_SWAP_MS", 500)) * time.Millisecond
	var sets [2]unix.CPUSet
	for i, h := range halves {
		for _, c := range h {
			sets[i].Set(c)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for k := start + 1; ; k++ {
			select {
			case <-done:
				return
			case <-t.C:
			}
			for i, pid := range pids {
				pinAll(pid, &sets[(i+k)%2])
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// pinAll sets the affinity of every thread of process pid. A thread that
// ends meanwhile, or a process that has ended, is skipped; a thread
// started meanwhile keeps its creator's set until the next trade.
func pinAll(pid int, set *unix.CPUSet) {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		_ = unix.SchedSetaffinity(tid, set) // ESRCH: the thread ended
	}
}
