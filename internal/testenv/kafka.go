// Package testenv starts the real dependencies that integration tests run
// against (an Apache Kafka broker, ...) and hands the tests their addresses.
//
// It owns the Go side of starting and stopping those dependencies: it finds the
// repository root and runs the scripts under scripts/ (scripts/kafka.sh for
// Kafka), which fetch, configure and run them outside the repository. Tests
// get a real dependency or fail: a missing dependency is never a reason to skip.
//
// It must not be imported by non-test code: it calls testing.TB, runs shell
// scripts and starts processes that outlive the test binary. Only _test.go
// files (and test helpers used solely by them) may import it.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sora3web/telemetry/bus/broker"
)

// KafkaBrokersEnv names the environment variable that, when set, holds a
// comma-separated list of Kafka broker addresses (host:port) for Kafka to
// return instead of starting the local broker with scripts/kafka.sh.
const KafkaBrokersEnv = "TELEMETRY_TEST_KAFKA_BROKERS"

// scriptTimeout bounds one run of a dependency script; a cold `up` fetches
// the Kafka jars with Maven first, which takes the longest.
const scriptTimeout = 10 * time.Minute

var kafkaUp struct {
	once    sync.Once
	brokers []string
	err     error
}

// Kafka returns the addresses (host:port) of a running Kafka broker for an
// integration test.
//
// If TELEMETRY_TEST_KAFKA_BROKERS is set, its comma-separated addresses are
// returned as they are. Otherwise Kafka runs `scripts/kafka.sh up` once per
// process, which starts (or finds already running) a single-node KRaft broker
// on 127.0.0.1:$KAFKA_PORT (default 9092), and returns that address. The
// broker keeps running after the test binary exits, for the next tests.
// Kafka fails the test, with the script's output, when no broker can be had.
func Kafka(t testing.TB) []string {
	t.Helper()
	if v := strings.TrimSpace(os.Getenv(KafkaBrokersEnv)); v != "" {
		var brokers []string
		for _, b := range strings.Split(v, ",") {
			if b = strings.TrimSpace(b); b != "" {
				brokers = append(brokers, b)
			}
		}
		if len(brokers) == 0 {
			t.Fatalf("testenv: %s=%q names no broker", KafkaBrokersEnv, v)
		}
		return brokers
	}
	kafkaUp.once.Do(func() {
		out, err := runScript("kafka.sh", "up")
		if err != nil {
			kafkaUp.err = fmt.Errorf("scripts/kafka.sh up: %w\n%s", err, out)
			return
		}
		port := os.Getenv("KAFKA_PORT")
		if port == "" {
			port = "9092"
		}
		kafkaUp.brokers = []string{"127.0.0.1:" + port}
	})
	if kafkaUp.err != nil {
		t.Fatalf("testenv: no Kafka broker: %v", kafkaUp.err)
	}
	return append([]string(nil), kafkaUp.brokers...)
}

// KafkaScript runs scripts/kafka.sh with args (for example "down" and "up",
// which fault tests use to stop and restart the broker) and returns its
// combined output. It fails the test, with that output, if the script fails.
//
// A test that stops the broker must start it again before it returns: other
// tests of the same process (and other processes) share the broker.
func KafkaScript(t testing.TB, args ...string) string {
	t.Helper()
	out, err := runScript("kafka.sh", args...)
	if err != nil {
		t.Fatalf("testenv: scripts/kafka.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// runScript runs scripts/<name> from the repository root with bash and
// returns its combined stdout and stderr.
func runScript(name string, args ...string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(root, "scripts", name)}, args...)...)
	cmd.Dir = root
	// The script starts the broker with its own stdout and stderr redirected
	// to files, but do not hang on a child that keeps the pipes open anyway.
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", scriptTimeout, err)
	}
	return string(out), err
}

// RepoRoot returns the repository root: the nearest directory at or above
// the working directory that holds go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testenv: no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// DeleteTopicsAtCleanup deletes topics from the brokers when t ends (after
// the cleanups registered later, such as stopping the servers that use
// them). Test runs otherwise pile partitions up on the shared development
// broker, and a broker carrying thousands of them was measurably slower
// (p99 36-135 ms against 12-19 ms once wiped). A failure is logged, not
// fatal: the topics are the test's own and nothing reads them afterwards.
func DeleteTopicsAtCleanup(t testing.TB, brokers []string, topics ...string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := broker.DeleteTopics(ctx, brokers, topics...); err != nil {
			t.Logf("testenv: %v", err)
		}
	})
}
