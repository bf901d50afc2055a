# dashboards.mk: the built-in dashboards' bundle (dashboards/web: SVG charts +
# page logic, bundled by esbuild into dashboards/web/dist, committed and
# embedded by the Go package) and the dashboards' tests (panel SQL on the
# embedded ClickHouse over seeded data, docker-compose.yml, and headless
# Chromium through playwright-core). node_modules stays in dashboards/web
# (gitignored); npm's cache is ~/.npm.
.PHONY: dashboards-deps dashboards-build dashboards-test

# dashboards-deps: Chromium at /usr/bin/chromium (apt-get when missing) and `npm ci`.
dashboards-deps:
	@bash sdk/scripts/ensure-chromium.sh
	cd dashboards/web && npm ci --no-audit --no-fund --prefer-offline

# dashboards-build: rebuild dashboards/web/dist (commit it; a test fails when it is stale).
dashboards-build:
	@test -d dashboards/web/node_modules || $(MAKE) --no-print-directory dashboards-deps
	cd dashboards/web && npm run --silent build

# dashboards-test: every test of dashboards/ (fetches libchdb.so when missing).
dashboards-test: dashboards-deps
	$(GO) test -count=1 ./dashboards/
