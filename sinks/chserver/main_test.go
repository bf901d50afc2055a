package chserver_test

import (
	"os"
	"testing"

	"github.com/sora3web/telemetry/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunWithClickHouse(m)) }
