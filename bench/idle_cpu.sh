#!/usr/bin/env bash
# Idle CPU of the local system (`make up`) and of its moto server: starts the local-system binary
# on free ports, waits until /health answers 200 and a warm-up has passed, then reads both
# processes' CPU time (utime + stime, /proc/<pid>/stat) over a window and prints it as a share
# of one core. Linux only. Run from the repository root:
#
#   bench/idle_cpu.sh [WINDOW_SECONDS=30] [WARMUP_SECONDS=10]
#
# It builds the binary first (the dev profile, into CARGO_TARGET_DIR, as `make up` does).
set -euo pipefail

window=${1:-30}
warmup=${2:-10}
cargo build --quiet -p local --bin local-system
bin="${CARGO_TARGET_DIR:-target}/debug/local-system"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
aws_port=$(free_port)
api_port=$(free_port)
log=$(mktemp)
LOCAL_AWS_PORT=$aws_port LOCAL_API_PORT=$api_port "$bin" >"$log" 2>&1 &
system=$!
trap 'kill "$system" 2>/dev/null; wait "$system" 2>/dev/null; rm -f "$log"' EXIT

for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$api_port/health" >/dev/null && break
  kill -0 "$system" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 1
done
curl -sf "http://127.0.0.1:$api_port/health" >/dev/null || { echo "never healthy"; cat "$log"; exit 1; }
moto=$(pgrep -P "$system" -f moto_server.py)

ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
sleep "$warmup"
s0=$(ticks "$system"); m0=$(ticks "$moto"); t0=$(date +%s.%N)
sleep "$window"
s1=$(ticks "$system"); m1=$(ticks "$moto"); t1=$(date +%s.%N)
hz=$(getconf CLK_TCK)
awk -v s="$((s1 - s0))" -v m="$((m1 - m0))" -v t0="$t0" -v t1="$t1" -v hz="$hz" 'BEGIN {
  wall = t1 - t0
  printf "idle over %.1f s: local-system %.1f %% of a core, moto server %.1f %%\n", wall, 100 * s / hz / wall, 100 * m / hz / wall
}'
