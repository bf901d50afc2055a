package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sora3web/telemetry/sinks/chdb"
	"github.com/sora3web/telemetry/sinks/chserver"
)

// ClickHouseUser is the user of the ClickHouse test server; its password is
// empty, like a stock server's default user.
const ClickHouseUser = "default"

var clickHouseUp struct {
	once   sync.Once
	addr   string
	err    error
	srv    *chserver.Server
	engine *chdb.Engine
	dir    string
}

// ClickHouse returns the host:port of a ClickHouse HTTP interface served by
// the embedded engine (sinks/chdb + sinks/chserver) inside this test
// process. One server is started per test process, on a free 127.0.0.1
// port with a fresh data directory, and lives until StopClickHouse (call it
// from TestMain) or the end of the process; libchdb allows a single engine
// per process, so it cannot be restarted after StopClickHouse. If libchdb.so is missing it
// runs scripts/chdb.sh fetch first. Any failure fails the test; it never
// skips.
func ClickHouse(t testing.TB) (addr string) {
	t.Helper()
	clickHouseUp.once.Do(func() {
		clickHouseUp.addr, clickHouseUp.err = startClickHouse()
	})
	if clickHouseUp.err != nil {
		t.Fatalf("testenv: ClickHouse: %v", clickHouseUp.err)
	}
	return clickHouseUp.addr
}

func startClickHouse() (string, error) {
	lib := chdb.ResolveLibPath("")
	if _, err := os.Stat(lib); err != nil {
		if os.Getenv("CHDB_LIB_PATH") != "" {
			return "", fmt.Errorf("CHDB_LIB_PATH=%s: %w", lib, err)
		}
		if err := fetchChdb(); err != nil {
			return "", err
		}
	}
	dir, err := os.MkdirTemp("", "testenv-clickhouse-")
	if err != nil {
		return "", fmt.Errorf("creating data directory: %w", err)
	}
	engine, err := chdb.Open(chdb.Config{Path: dir, LibPath: lib})
	if err != nil {
		return "", fmt.Errorf("opening engine: %w", err)
	}
	srv, err := chserver.New(chserver.Config{Listen: "127.0.0.1:0", DataDir: dir, User: ClickHouseUser}, engine)
	if err != nil {
		return "", fmt.Errorf("creating server: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		return "", fmt.Errorf("starting server: %w", err)
	}
	clickHouseUp.srv, clickHouseUp.engine, clickHouseUp.dir = srv, engine, dir
	return srv.Addr()
}

// StopClickHouse stops the server started by ClickHouse, closes the engine
// and removes its data directory; a no-op if none was started. Call it from
// TestMain after m.Run: without it the process exits with the engine open,
// which is fine for a plain exit but crashes under -race, whose exit path
// runs the library's C++ destructors while engine threads are still alive.
func StopClickHouse() error {
	up := &clickHouseUp
	if up.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := up.srv.Shutdown(ctx)
	if cerr := up.engine.Close(); err == nil {
		err = cerr
	}
	os.RemoveAll(up.dir)
	up.srv, up.engine = nil, nil
	return err
}

// RunWithClickHouse runs a package's tests and then StopClickHouse, and
// returns the exit code for os.Exit: the tests' code, or 1 when they passed
// but the engine did not stop cleanly. A package whose tests use ClickHouse
// has TestMain call os.Exit(testenv.RunWithClickHouse(m)).
func RunWithClickHouse(m *testing.M) int {
	code := m.Run()
	if err := StopClickHouse(); err != nil {
		fmt.Fprintln(os.Stderr, "testenv: stopping the ClickHouse test server:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// fetchChdb runs scripts/chdb.sh fetch from the repository root.
func fetchChdb() error {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return fmt.Errorf("locating the repository root")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "chdb.sh"), "fetch")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("scripts/chdb.sh fetch: %w: %s", err, out)
	}
	return nil
}

// Engine returns the engine behind ClickHouse(t), started if need be, for
// tests of what runs in the engine's own process (the consumer's
// EngineSink).
func Engine(t testing.TB) *chdb.Engine {
	t.Helper()
	ClickHouse(t)
	return clickHouseUp.engine
}
