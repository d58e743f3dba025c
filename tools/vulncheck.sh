#!/usr/bin/env bash
# govulncheck against the Go vulnerability database, built from the
# golang.org/x/vulndb module (its data/osv reports, fetched through the Go
# module proxy like any module) with that module's own indexdb command.
# The hosted database is not reachable from these machines; the module
# is the same data, at the version pinned below (bump it to refresh).
# Findings in code we call fail the run unless .govulncheck-allow lists
# them with a reason (tools/vulngate).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
VULNDB_VERSION=${VULNDB_VERSION:?}
GOVULNCHECK_VERSION=${GOVULNCHECK_VERSION:?}
CACHE=${PODROUTER_CACHE:-/var/cache/podrouter}/vulndb-$VULNDB_VERSION
if [ ! -f "$CACHE/index/db.json" ]; then
	dir=$($GO mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[ -d "$dir/data/osv" ] || { echo "vulncheck: no data/osv in golang.org/x/vulndb@$VULNDB_VERSION" >&2; exit 2; }
	rm -rf "$CACHE.tmp" && mkdir -p "$(dirname "$CACHE")"
	$GO run "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION" -vulns "$dir/data/osv" -out "$CACHE.tmp"
	mv "$CACHE.tmp" "$CACHE"
fi
echo "vulnerability database: golang.org/x/vulndb@$VULNDB_VERSION ($(ls "$CACHE/ID" | wc -l) reports)"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# govulncheck exits 0 in json mode; the gate decides.
$GO run "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION" -db "file://$CACHE" -format json ./... >"$out"
$GO run ./tools/vulngate -allow .govulncheck-allow <"$out"
