package wal

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	crashChildEnv  = "WAL_CRASH_CHILD_DIR"
	crashRoundEnv  = "WAL_CRASH_ROUND"
	crashPolicyEnv = "WAL_CRASH_FSYNC"
)

func crashConfig(dir, policy string) Config {
	return Config{Dir: dir, SegmentBytes: 8 << 10, Fsync: policy, FsyncInterval: time.Millisecond}
}

// crashPayload is the payload of record i of append c of goroutine g in
// round r: unique, checkable, of varying length.
func crashPayload(r, g, c, i int) []byte {
	return fmt.Appendf(nil, "r%d-g%d-c%d-i%d-%s", r, g, c, i, strings.Repeat("p", (g*7+c*13+i*31)%300))
}

// crashChild appends forever from several goroutines, printing one line
// "first round g c n" per acknowledged Append, until it is killed.
func crashChild(dir, policy string, round int) {
	l, err := Open(crashConfig(dir, policy), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := 0; ; c++ {
				n := 1 + (g+c)%5
				payloads := make([][]byte, n)
				for i := range payloads {
					payloads[i] = crashPayload(round, g, c, i)
				}
				first, _, err := l.Append(context.Background(), payloads)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(3)
				}
				out.Lock()
				// One write per line, straight to the fd: a line is printed
				// only after its Append returned nil.
				os.Stdout.WriteString(fmt.Sprintf("%d %d %d %d %d\n", first, round, g, c, n))
				out.Unlock()
			}
		}()
	}
	wg.Wait()
}

type ack struct {
	first          uint64
	round, g, c, n int
}

// TestCrashKill runs a child process that appends in a loop and SIGKILLs it
// at random moments, several times; after each kill every acknowledged
// record must be in the reopened log, intact, and numbering contiguous.
func TestCrashKill(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		round, _ := strconv.Atoi(os.Getenv(crashRoundEnv))
		crashChild(dir, os.Getenv(crashPolicyEnv), round)
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	for _, policy := range []string{FsyncAlways, FsyncInterval} {
		t.Run(policy, func(t *testing.T) {
			dir := t.TempDir()
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
			var acks []ack
			for round := 0; round < 6; round++ {
				got := runAndKill(t, dir, policy, round, time.Duration(20+rng.IntN(200))*time.Millisecond)
				if len(got) == 0 {
					t.Fatalf("round %d: child acknowledged nothing", round)
				}
				acks = append(acks, got...)
				verifyAcks(t, dir, policy, acks)
			}
			t.Logf("%d acknowledged appends over 6 kills", len(acks))
		})
	}
}

// runAndKill starts the child, lets it acknowledge some appends, waits
// extra, SIGKILLs it and returns the complete ack lines it printed.
func runAndKill(t *testing.T, dir, policy string, round int, extra time.Duration) []ack {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKill$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashRoundEnv+"="+strconv.Itoa(round), crashPolicyEnv+"="+policy)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		r := bufio.NewReader(stdout)
		for {
			s, err := r.ReadString('\n')
			if err != nil {
				return // a last line without '\n' was cut by the kill: not an ack
			}
			lines <- s
		}
	}()
	var acks []ack
	parse := func(s string) {
		var a ack
		if _, err := fmt.Sscanf(s, "%d %d %d %d %d\n", &a.first, &a.round, &a.g, &a.c, &a.n); err != nil {
			t.Fatalf("child printed %q: %v", s, err)
		}
		acks = append(acks, a)
	}
	deadline := time.After(20 * time.Second)
	for len(acks) < 20 {
		select {
		case s, ok := <-lines:
			if !ok {
				t.Fatalf("child exited early: %v", cmd.Wait())
			}
			parse(s)
		case <-deadline:
			cmd.Process.Kill()
			t.Fatal("child acknowledged fewer than 20 appends in 20s")
		}
	}
	time.Sleep(extra)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for s := range lines {
		parse(s)
	}
	cmd.Wait()
	return acks
}

// verifyAcks reopens the log and checks every acknowledged record.
func verifyAcks(t *testing.T, dir, policy string, acks []ack) {
	t.Helper()
	l, err := Open(crashConfig(dir, policy), testLogger(t))
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer l.Close()
	if err := l.Cursor("verify"); err != nil {
		t.Fatal(err)
	}
	defer l.DeleteCursor("verify")
	recs := readAll(t, l, "verify")
	for i, r := range recs {
		if r.Seq != uint64(i)+1 {
			t.Fatalf("numbering: record %d has seq %d, want %d", i, r.Seq, i+1)
		}
	}
	for _, a := range acks {
		for i := 0; i < a.n; i++ {
			seq := a.first + uint64(i)
			if seq > uint64(len(recs)) {
				t.Fatalf("acknowledged seq %d (round %d) lost: log ends at %d", seq, a.round, len(recs))
			}
			if want := crashPayload(a.round, a.g, a.c, i); string(recs[seq-1].Payload) != string(want) {
				t.Fatalf("acknowledged seq %d: payload %q, want %q", seq, recs[seq-1].Payload, want)
			}
		}
	}
}
