#!/usr/bin/env bash
# Idle CPU of the local system (`make up`) and of its moto server: starts the local-system binary
# on free ports, waits until /health answers 200 and a warm-up has passed, then reads both
# processes' CPU time (utime + stime, /proc/<pid>/stat) over a window and prints it as a share
# of one core. Linux only. Run from the repository root:
#
#   bench/idle_cpu.sh [WINDOW_SECONDS=30] [WARMUP_SECONDS=10]
#
# It builds the binary first (the dev profile, into CARGO_TARGET_DIR, as `make up` does).
#
# The method and the last run's figures (BENCHMARKS.md keeps the summary table):
#
# # Idle CPU of the local system
#
# **What is measured:** `make up`'s two processes, the `local-system` binary and its moto server,
# left idle (no tenant written; the scheduled reconciler, decommission, rollout driver, metrics job
# and live view running as always): their CPU time (utime + stime from `/proc/<pid>/stat`) over
# 30 s, after `/health` answered 200 and a 15 s warm-up, as a share of one core. Debug build, as
# `make up` runs it. Two runs each, 2026-12-02, on the machine BENCHMARKS.md describes (shared with other builds:
# load average 1–4).
#
# | | local-system | moto server | calls to moto per second |
# |---|---|---|---|
# | before (polling at a fixed pace: the stream every 0.2 s, the queues with 1 s waits, the live view every 0.3 s, the rollout driver every 2 s) | 11.9 %, 11.1 % | 14.0 %, 13.1 % | about 22 |
# | after (idle backoff: the stream up to 1 s, 20 s long polls, the view up to 1 s, the rollout driver up to 8 s; plus the emulator watch's probe every 2 s) | 3.8 %, 4.3 % | 3.5 %, 3.6 % | about 5 |
#
# Calls per second are moto's log lines (one per request) over the last 12 s of the run. What is
# left idle is mostly the stream poller's three calls a second (DescribeStream, GetShardIterator,
# GetRecords: a write is seen within a second of it, the issue's bound) and the live view's Scan.
# `local_system::an_idle_system_backs_off_and_still_picks_up_a_write_after_the_idle` (tests/)
# holds the library system (no live view, no metrics job) under 8 calls a second idle (measured:
# 4.2), then provisions a write made after the idle spell.
#
# **Re-run** (Linux; about a minute after the build):
#
# ```sh
# bench/idle_cpu.sh 30 15     # window and warm-up, in seconds
# ```
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
