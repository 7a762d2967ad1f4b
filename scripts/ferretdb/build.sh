#!/usr/bin/env bash
# Builds chunkrelay-ferretdb — FerretDB (version: the FerretDB line in scripts/ferretdb/go.mod) on
# its embedded SQLite backend — with this machine's Go, modules from the Go module proxy, into
# .ferretdb/bin/chunkrelay-ferretdb, and prints that path.
#
#   bash scripts/ferretdb/build.sh        # the FerretDB test lane (npm run test:ferretdb) runs it
#
# - Skipped when the binary is newer than main.go, go.mod and go.sum (FERRETDB_REBUILD=1 forces).
# - Fails loudly (non-zero exit, what to install) when Go is missing or older than go.mod needs.
# - The first build downloads about 60 modules and compiles them: 1–2 minutes on 2 cores; later
#   builds reuse Go's module and build caches (seconds).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/.ferretdb/bin/chunkrelay-ferretdb"

say() { printf '[ferretdb] %s\n' "$*" >&2; }
die() {
  say "ERROR: $*"
  exit 1
}

version="$(sed -n 's|^require github.com/FerretDB/FerretDB \(v[0-9.]*\)$|\1|p' "$here/go.mod")"
[ -n "$version" ] || die "no 'require github.com/FerretDB/FerretDB vX.Y.Z' line in $here/go.mod"
need="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$here/go.mod")"

# Go's own installer puts it in /usr/local/go/bin, which a non-login shell's PATH may lack.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 ||
  die "Go not found on PATH. The FerretDB lane builds FerretDB $version from the Go module proxy: install Go $need or newer (e.g. apt-get install golang-go, or from go.dev)."

have="$(go env GOVERSION | sed 's/^go//')"
older() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$1" ] && [ "$1" != "$2" ]; }
if older "$have" "$need"; then
  die "Go $have found; building FerretDB $version needs Go $need or newer ($(command -v go))."
fi

if [ -x "$out" ] && [ -z "${FERRETDB_REBUILD:-}" ] &&
  [ "$out" -nt "$here/main.go" ] && [ "$out" -nt "$here/go.mod" ] && [ "$out" -nt "$here/go.sum" ]; then
  say "FerretDB $version: $out is up to date"
  echo "$out"
  exit 0
fi

mkdir -p "$(dirname "$out")"
started="$(date +%s%3N)"
say "building FerretDB $version with Go $have (modules from GOPROXY)…"
(cd "$here" && go build -trimpath -o "$out.tmp" .) || die "go build failed (its output is above)"
mv -f "$out.tmp" "$out"
say "built $out in $(( ($(date +%s%3N) - started) ))ms"
echo "$out"
