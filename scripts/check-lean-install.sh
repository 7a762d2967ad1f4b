#!/usr/bin/env bash
# A production install as a fresh machine makes it (`npm ci --omit=dev` on a copy of the tracked
# files): no MongoDB binary downloaded, no test-only package installed, and the CLI and the demo
# (`npm start`, on the embedded engine) still work. `npm run test:lean-install`; ~1 minute on a
# warm npm cache. Exits non-zero, saying what went wrong, on the first failed check.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/chunkrelay-lean-XXXXXX")
trap 'rm -rf "$work"' EXIT
app="$work/app"
mkdir -p "$app"

fail() {
  echo "check-lean-install: FAILED: $*" >&2
  exit 1
}

# mongodb-memory-server would download into this trap directory (it takes MONGOMS_DOWNLOAD_DIR
# over its default ~/.cache/mongodb-binaries). The shared cache itself is not compared: another
# test run on the machine may write there meanwhile, which says nothing about this install.
export MONGOMS_DOWNLOAD_DIR="$work/mongoms-download"
unset MONGODB_URI CHUNKRELAY_TEST_MONGO

# The tracked files as they are in the working tree (a clone of this commit, uncommitted edits
# included).
(cd "$root" && git ls-files -z | tar --null -T - -cf -) | tar -xf - -C "$app"
cd "$app"

start=$(date +%s)
echo "== npm ci --omit=dev"
npm ci --omit=dev --no-audit --no-fund
echo "   took $(($(date +%s) - start)) s"

for pkg in mongodb-memory-server mongodb-memory-server-core vitest eslint prettier playwright-core tsx typescript-eslint trigger.dev; do
  [ ! -e "node_modules/$pkg" ] || fail "node_modules/$pkg was installed by a production install"
done
[ -f dist/cli/main.js ] || fail "prepare did not build dist/"

echo "== node bin/chunkrelay.js --help"
node bin/chunkrelay.js --help >"$work/help.txt" || fail "chunkrelay --help exited $?"
grep -q "Usage: chunkrelay" "$work/help.txt" || fail "chunkrelay --help printed no usage"

echo "== npm start"
npm start 2>&1 | tee "$work/start.txt" || fail "npm start exited non-zero"
grep -q "MongoDB: embedded engine .*mongodb-memory-server is not installed" "$work/start.txt" ||
  fail "npm start did not run on the embedded engine for want of mongodb-memory-server"
grep -q " succeeded: " "$work/start.txt" || fail "npm start's job did not succeed"

[ ! -e "$MONGOMS_DOWNLOAD_DIR" ] || fail "a MongoDB binary download was started ($MONGOMS_DOWNLOAD_DIR)"
found=$(find "$app" -type f -name 'mongod*' -perm -u+x | head -1)
[ -z "$found" ] || fail "a mongod binary is in the install: $found"

echo "check-lean-install: OK in $(($(date +%s) - start)) s (no MongoDB binary, no test-only package; --help and npm start work)"
