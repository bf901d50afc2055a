#!/usr/bin/env bash
# ensure-chromium.sh: make sure Debian's headless-capable Chromium is at
# /usr/bin/chromium for the SDK's browser tests (sdk/test/browser.mjs drives
# it with playwright-core; Playwright's own browser downloads are never used).
# Installs the `chromium` package with apt-get when it is missing; needs root
# (or sudo) for that. Prints the browser's version.
set -euo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [[ ! -x "$CHROMIUM" ]]; then
	SUDO=""
	if [[ "$(id -u)" != 0 ]]; then
		command -v sudo >/dev/null || { echo "ensure-chromium.sh: $CHROMIUM missing and not root (no sudo)" >&2; exit 1; }
		SUDO="sudo"
	fi
	# Serialize concurrent installs (parallel make or test processes).
	exec 9>/tmp/telemetry-ensure-chromium.lock
	flock 9
	if [[ ! -x "$CHROMIUM" ]]; then
		echo "ensure-chromium.sh: installing chromium with apt-get..." >&2
		export DEBIAN_FRONTEND=noninteractive
		$SUDO apt-get update -qq
		$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
	fi
fi
[[ -x "$CHROMIUM" ]] || { echo "ensure-chromium.sh: $CHROMIUM still missing after install" >&2; exit 1; }
"$CHROMIUM" --version
