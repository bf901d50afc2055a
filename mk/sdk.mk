# sdk.mk: the browser SDK (sdk/): TypeScript built with esbuild, unit tests
# with node --test, browser tests in Debian's headless Chromium driven by
# playwright-core (sdk/browser_test.go runs them against a real collector
# and Kafka). node_modules stays in sdk/ (gitignored); npm's cache is ~/.npm.
.PHONY: sdk-deps sdk-build sdk-test sdk-browser-test

# sdk-deps: Chromium at /usr/bin/chromium (apt-get when missing) and `npm ci`.
sdk-deps:
	@bash sdk/scripts/ensure-chromium.sh
	cd sdk && npm ci --no-audit --no-fund --prefer-offline

# sdk-build: type-check and bundle sdk/dist/sdk.js (commit it) and sdk/dist/sdk.mjs.
sdk-build:
	@test -d sdk/node_modules || $(MAKE) --no-print-directory sdk-deps
	cd sdk && npm run --silent build

# sdk-test: the SDK's unit tests (node --test) on a fresh build.
sdk-test: sdk-build
	cd sdk && npm test

# sdk-browser-test: the Go tests of sdk/, browser test included (needs Kafka).
sdk-browser-test: sdk-deps kafka-up
	$(GO) test -count=1 ./sdk/
