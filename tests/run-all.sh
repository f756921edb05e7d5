#!/usr/bin/env bash
# Runs every test of krmx-native: the README's test command, and what CI runs (.ci/run).
# Installs what it needs on a fresh Debian machine: a C compiler and Node.js from Debian's
# packages when missing, the npm reference packages from tests/interop/package-lock.json, and the
# WebSocket conformance runner from tests/conformance/requirements.txt (into a venv under target/).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3 python3-venv python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

echo "== npm reference packages (tests/interop, pinned by package-lock.json)"
(cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)

echo "== WebSocket conformance runner (kosoku, pinned by tests/conformance/requirements.txt)"
venv=target/conformance-venv
[ -x "$venv/bin/python3" ] || python3 -m venv "$venv"
"$venv/bin/python3" -m pip install --quiet --disable-pip-version-check -r tests/conformance/requirements.txt
export KRMX_CONFORMANCE_PYTHON="$PWD/$venv/bin/python3"

echo "== build (library, krmx command, tests)"
cargo build --locked --all-targets

echo "== the README's first command picks the krmx command (cargo run -- ...)"
cargo run --quiet --locked -- --version

echo "== C examples (-Wall -Wextra -Wpedantic -Werror)"
make -s -C examples-c KRMX_LIB_DIR=../target/debug

echo "== tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked -- --test-threads=2 2>&1 | tee "$log"
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
