# chdb.mk: the embedded ClickHouse engine (libchdb.so, cached, never committed).
.PHONY: chdb chdb-test

# chdb: download/extract libchdb.so into $(CACHE)/chdb/<version>/ if missing.
chdb:
	@scripts/chdb.sh fetch

# chdb-test: test the engine binding and the ClickHouse HTTP server.
chdb-test: chdb
	$(GO) test -p 1 ./sinks/chdb/... ./sinks/chserver/...
