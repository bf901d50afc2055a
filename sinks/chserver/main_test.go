package chserver_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/sora3web/telemetry/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := testenv.StopClickHouse(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the ClickHouse test server:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
