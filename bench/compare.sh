#!/usr/bin/env bash
# Compares krmx-native with the reference npm @krmx/server over real WebSockets on loopback
# (method and latest figures: docs/performance.md). Servers under test, each a relay (every custom
# message broadcast to every linked user):
#   c-relay     examples-c/relay, a C host linked with the release libkrmx.a
#   krmx-serve  krmx serve --relay (the CLI, events serialized to stdout, sent to /dev/null)
#   reference   node bench/relay.js, the unmodified @krmx/server 0.5.5
# Every run starts a fresh server; rounds are interleaved (the server order rotates per round).
# With 2 or more cores the server runs on core 0 and the generator (krmx-bench) on core 1.
#
# usage: bench/compare.sh [--quick] [--rounds R] [--reference-storm-5000] [--only SCENARIO,...]
#   --quick                  small counts; the 5,000 storm (ours) only in round 1
#   --rounds R               rounds (default 3; quick: 3)
#   --reference-storm-5000   also storm 5,000 clients against the reference, once (~600 s)
#   --only a,b               only these scenarios (names as in the table: echo-1, storm-1000, host...)
# Results: one JSON line per run in bench/results/RUN.jsonl (ignored by git), then the table.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
rounds=3
reference_storm_5000=0
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --rounds) rounds="$2"; shift ;;
    --reference-storm-5000) reference_storm_5000=1 ;;
    --only) only=",$2,"; shift ;;
    *) sed -n '2,20p' "$0" >&2; exit 2 ;;
  esac
  shift
done

# 5,000 clients take 5,000 fds in the generator and as many in the server.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 12000 ]; then
  echo "compare.sh: the fd limit is $(ulimit -n); the 5,000 storm needs about 5,100 per process" >&2
fi

echo "== installing: npm ci in bench/, cargo build --release, examples-c/relay, bench/host_cost"
(cd bench && npm ci --no-audit --no-fund --loglevel=error)
cargo build --release --locked --bins --lib
mkdir -p bench/results
# Always linked anew, into bench/results, against the release library: the test command builds
# the examples in place against the debug library, and make would take that binary as up to date.
make -s -B -C examples-c OUT="$PWD/bench/results" KRMX_LIB_DIR="$PWD/target/release" "$PWD/bench/results/relay"
cc -std=c99 -O2 -g -Wall -Wextra -Wpedantic -Werror -Iinclude bench/host_cost.c \
  target/release/libkrmx.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o bench/results/host_cost

bench=target/release/krmx-bench
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  server_cpu=(taskset -c 0)
  bench_cpu=(taskset -c 1)
  pinning="server on core 0, generator on core 1"
else
  server_cpu=()
  bench_cpu=()
  pinning="not pinned"
fi

# Scenario name, then the generator's arguments, for each mode.
if [ "$quick" = 1 ]; then
  scenarios=(
    "echo-1|echo --clients 1 --count 5000"
    "echo-10|echo --clients 10 --count 500"
    "fanout-100|fanout --clients 100 --count 2000"
    "fanout-100-w16|fanout --clients 100 --count 2000 --window 16"
    "fanout-1000|fanout --clients 1000 --count 300"
    "fanout-1000-w16|fanout --clients 1000 --count 300 --window 16"
    "storm-1000|storm --clients 1000"
    "storm-5000|storm --clients 5000"
  )
  host_args="10 20000"
else
  scenarios=(
    "echo-1|echo --clients 1 --count 20000"
    "echo-10|echo --clients 10 --count 2000"
    "fanout-100|fanout --clients 100 --count 5000"
    "fanout-100-w16|fanout --clients 100 --count 5000 --window 16"
    "fanout-1000|fanout --clients 1000 --count 1000"
    "fanout-1000-w16|fanout --clients 1000 --count 1000 --window 16"
    "storm-1000|storm --clients 1000"
    "storm-5000|storm --clients 5000"
  )
  host_args="10 50000"
fi
servers=(c-relay krmx-serve reference)

run_id=$(date -u +%Y%m%dT%H%M%SZ)
results="bench/results/$run_id.jsonl"
: > "$results"
port=$((20000 + RANDOM % 20000))
server_pid=""

start_server() { # NAME PORT LOG: starts it in the background, sets server_pid, waits until it listens
  case "$1" in
    c-relay) "${server_cpu[@]}" bench/results/relay "$2" > "$3" 2>&1 & ;;
    krmx-serve) "${server_cpu[@]}" target/release/krmx serve --relay --port "$2" > /dev/null 2> "$3" & ;;
    reference) "${server_cpu[@]}" node bench/relay.js "$2" > "$3" 2>&1 & ;;
  esac
  server_pid=$!
  for _ in $(seq 100); do
    grep -q "listening on port\|serving Krmx" "$3" 2>/dev/null && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "compare.sh: $1 did not start: $(cat "$3")" >&2
  return 1
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
trap 'stop_server' EXIT

wanted() { [ -z "$only" ] || [[ "$only" == *",$1,"* ]]; }

echo "== $rounds round(s), $pinning, results in $results"
for round in $(seq "$rounds"); do
  # Rotate the server order so that no server always runs first (or right after another).
  shift_by=$(( (round - 1) % ${#servers[@]} ))
  order=("${servers[@]:shift_by}" "${servers[@]:0:shift_by}")
  for scenario in "${scenarios[@]}"; do
    name=${scenario%%|*}
    args=${scenario#*|}
    wanted "$name" || continue
    for server in "${order[@]}"; do
      if [ "$name" = storm-5000 ]; then
        if [ "$server" = reference ] && { [ "$reference_storm_5000" = 0 ] || [ "$round" != 1 ]; }; then continue; fi
        if [ "$quick" = 1 ] && [ "$round" != 1 ]; then continue; fi
      fi
      port=$((port + 1))
      log="bench/results/$run_id.$server.log"
      start_server "$server" "$port" "$log" || continue
      started=$(date +%s)
      # shellcheck disable=SC2086
      if line=$(timeout 1200 "${bench_cpu[@]}" "$bench" $args --url "ws://127.0.0.1:$port" \
          --server-pid "$server_pid" --label "$server" --timeout-s 1100 2> "$log.err"); then
        echo "$line" | sed "s/}\$/,\"name\":\"$name\",\"round\":$round}/" >> "$results"
      else
        printf '{"name":"%s","server":"%s","round":%d,"error":"%s"}\n' "$name" "$server" "$round" \
          "$(tr -d '"\\\n' < "$log.err" | cut -c1-200)" >> "$results"
      fi
      stop_server
      echo "round $round $name $server: $(( $(date +%s) - started )) s"
    done
  done
  if wanted host; then
    # shellcheck disable=SC2086
    for host in c rust; do
      if [ "$host" = c ]; then cmd=(bench/results/host_cost $host_args); else
        read -r n k <<< "$host_args"; cmd=("$bench" host --clients "$n" --count "$k"); fi
      if line=$("${cmd[@]}" 2> "bench/results/$run_id.host.err"); then
        echo "$line" | sed "s/}\$/,\"name\":\"host\",\"server\":\"$host-host\",\"round\":$round}/" >> "$results"
      else
        printf '{"name":"host","server":"%s-host","round":%d,"error":"failed"}\n' "$host" "$round" >> "$results"
      fi
      echo "round $round host-$host"
    done
  fi
done

echo
node bench/summarize.js "$results"
