#!/usr/bin/env bash
# What `mirrord exec` adds to starting a process: `mirrord exec --target sandbox/bench -- true`
# against `true` alone, median of RUNS runs each, measured in the same run. No thresholds: it
# prints figures (the design's target is at most 100 ms added on a local target).
#
#   benches/exec_overhead.sh [RUNS]        (as root; default 20 runs)
#
# Uses target/release/mirrord when the agent and layer are built beside it (`cargo build --release
# --workspace`), else target/debug/mirrord; $MIRRORD overrides. The
# sandbox `bench` is created if needed (and taken down again if this script created it); one
# untimed run warms it up.
set -euo pipefail

runs=${1:-20}
repo=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z ${MIRRORD:-} ]]; then
    MIRRORD=$repo/target/debug/mirrord
    release=$repo/target/release
    if [[ -x $release/mirrord && -x $release/mirrord-agent && -f $release/libmirrord_layer.so ]]; then
        MIRRORD=$release/mirrord
    fi
fi
sandbox=${BENCH_SANDBOX:-bench}
true_bin=$(command -v true)

created=no
existing=$("$MIRRORD" sandbox list --output json)
if ! grep -q "\"name\": *\"$sandbox\"" <<<"$existing"; then
    created=yes
fi
cleanup() {
    if [[ $created == yes ]]; then "$MIRRORD" sandbox down "$sandbox" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
"$MIRRORD" sandbox up "$sandbox" >/dev/null

now_ns() { date +%s%N; }

# Prints the median of the numbers on stdin.
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Runs "$@" RUNS times; prints one duration in microseconds per line.
time_runs() {
    local i start
    for ((i = 0; i < runs; i++)); do
        start=$(now_ns)
        "$@" >/dev/null 2>&1 || true
        echo $((($(now_ns) - start) / 1000))
    done
}

# Warm-up, and a check that the session starts at all.
if ! warmup=$("$MIRRORD" exec --target "sandbox/$sandbox" -- "$true_bin" 2>&1); then
    echo "mirrord exec failed:" >&2
    echo "$warmup" >&2
    exit 1
fi

plain_us=$(time_runs "$true_bin" | median)
mirrord_us=$(time_runs "$MIRRORD" exec --target "sandbox/$sandbox" -- "$true_bin" | median)

awk -v plain="$plain_us" -v mirrord="$mirrord_us" -v runs="$runs" -v binary="$MIRRORD" 'BEGIN {
    printf "binary: %s\n", binary
    printf "runs: %d each, medians\n", runs
    printf "%-40s %8.2f ms\n", "true:", plain / 1000
    printf "%-40s %8.2f ms\n", "mirrord exec --target sandbox/... -- true:", mirrord / 1000
    printf "%-40s %8.2f ms (ratio %.1fx; design target: <= 100 ms added)\n", "added by mirrord:",
        (mirrord - plain) / 1000, mirrord / plain
}'
