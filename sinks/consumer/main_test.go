package consumer

import (
	"fmt"
	"os"
	"testing"

	"github.com/sora3web/telemetry/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := testenv.StopClickHouse(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping clickhouse:", err)
	}
	os.Exit(code)
}
