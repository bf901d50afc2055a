package dashboards

import (
	"testing"

	"github.com/sora3web/telemetry/internal/testenv"
)

// nodeModules makes sure web/node_modules matches package-lock.json.
func nodeModules(t testing.TB) { t.Helper(); testenv.NodeModules(t, "web") }

// ensureChromium installs Debian's chromium when it is missing.
func ensureChromium(t testing.TB) { t.Helper(); testenv.Chromium(t) }

// run runs a command in dir with a timeout; see testenv.Run.
var run = testenv.Run
