#!/usr/bin/env bash
# chdb.sh: manage the embedded ClickHouse engine (libchdb.so) used by
# sinks/chdb and sinks/chserver. The library (~560 MB) lives in the cache,
# never in the repository.
#
#   scripts/chdb.sh fetch   ensure libchdb.so is in the cache, print its path
#   scripts/chdb.sh path    print the path (no download; exit 1 if missing)
#
# Cache: ${TELEMETRY_CACHE:-$HOME/.cache/telemetry}/chdb/<version>/libchdb.so
# The download is `npm pack @chdb/lib-linux-x64-gnu@<version>`; a tarball
# already in the cache dir (named like npm pack names it) is reused.
set -euo pipefail

CHDB_VERSION="${CHDB_VERSION:-26.5.3}"
PKG="@chdb/lib-linux-x64-gnu"
CACHE="${TELEMETRY_CACHE:-$HOME/.cache/telemetry}"
DIR="$CACHE/chdb"
DEST="$DIR/$CHDB_VERSION"
LIB="$DEST/libchdb.so"
TGZ="$DIR/chdb-lib-linux-x64-gnu-$CHDB_VERSION.tgz"

die() { echo "chdb.sh: $*" >&2; exit 1; }

fetch() {
	mkdir -p "$DIR"
	# Serialize concurrent fetches (parallel test processes, make -j).
	exec 9>"$DIR/.lock"
	flock 9
	if [[ -s "$LIB" ]]; then
		echo "$LIB"
		return
	fi
	if [[ ! -s "$TGZ" ]]; then
		command -v npm >/dev/null || die "npm not found; needed to fetch $PKG@$CHDB_VERSION"
		echo "chdb.sh: downloading $PKG@$CHDB_VERSION (about 200 MB)..." >&2
		(cd "$DIR" && npm pack --silent "$PKG@$CHDB_VERSION" >/dev/null) ||
			die "npm pack $PKG@$CHDB_VERSION failed"
		[[ -s "$TGZ" ]] || die "npm pack did not produce $TGZ"
	fi
	# tmp is global so the EXIT trap can still see it.
	tmp="$(mktemp -d "$DIR/.extract.XXXXXX")"
	trap 'rm -rf "${tmp:-}"' EXIT
	tar -xzf "$TGZ" -C "$tmp" package/libchdb.so ||
		die "extracting libchdb.so from $TGZ failed"
	mkdir -p "$DEST"
	# Rename is atomic: readers never see a half-written library.
	mv "$tmp/package/libchdb.so" "$LIB.tmp"
	chmod 0755 "$LIB.tmp"
	mv "$LIB.tmp" "$LIB"
	echo "$LIB"
}

case "${1:-}" in
fetch) fetch ;;
path)
	[[ -s "$LIB" ]] || die "$LIB missing; run: $0 fetch"
	echo "$LIB"
	;;
*) die "usage: $0 fetch|path" ;;
esac
