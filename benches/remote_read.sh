#!/usr/bin/env bash
# Reading a 100 MiB file of the target through the layer, against reading it directly inside the
# target, measured in the same run. No thresholds: it prints MB/s and ratios (the design's target
# is at least 50% of the direct speed).
#
#   benches/remote_read.sh [SIZE_MIB]        (as root; default 100)
#
# The file is made inside the sandbox pod `bench` (its /app is a tmpfs only the pod sees). Each
# way is timed three times and the best is kept:
#   - python, 1 MiB reads, timed inside the process (no session start-up counted):
#     under `mirrord exec` vs. the same code run in the pod (nsenter into its mount namespace);
#   - `cat FILE > /dev/null`, wall time: under `mirrord exec` (session start-up included) vs.
#     `nsenter … cat` in the pod.
# Both with the default `feature.fs.native_fds` (the agent passes the file's descriptor to the
# process, as for every target on this machine) and with it off (every read travels layer →
# intproxy → agent and back, as for a cluster target).
# Uses target/release/mirrord when the agent and layer are built beside it (`cargo build --release
# --workspace`), else target/debug/mirrord; $MIRRORD overrides. A way that fails prints FAILED.
set -euo pipefail

size_mib=${1:-100}
repo=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z ${MIRRORD:-} ]]; then
    MIRRORD=$repo/target/debug/mirrord
    release=$repo/target/release
    if [[ -x $release/mirrord && -x $release/mirrord-agent && -f $release/libmirrord_layer.so ]]; then
        MIRRORD=$release/mirrord
    fi
fi
sandbox=${BENCH_SANDBOX:-bench}
file=/app/bench-read-$$.bin
python=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')

created=no
existing=$("$MIRRORD" sandbox list --output json)
if ! grep -q "\"name\": *\"$sandbox\"" <<<"$existing"; then
    created=yes
fi
pid=
cleanup() {
    if [[ -n $pid ]]; then nsenter --target "$pid" --mount -- rm -f "$file" || true; fi
    if [[ $created == yes ]]; then "$MIRRORD" sandbox down "$sandbox" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
info=$("$MIRRORD" sandbox up "$sandbox" --output json)
pid=$(sed -n 's/^ *"target_pid": *\([0-9]*\),*$/\1/p' <<<"$info")
[[ -n $pid ]] || { echo "cannot find the target pid of sandbox $sandbox" >&2; exit 1; }

in_pod() { nsenter --target "$pid" --mount -- "$@"; }
in_pod dd if=/dev/urandom of="$file" bs=1M count="$size_mib" status=none

# Reads the file in 1 MiB chunks; prints "BYTES SECONDS".
read_code='
import sys, time
started = time.perf_counter()
total = 0
with open(sys.argv[1], "rb", buffering=0) as f:
    while True:
        chunk = f.read(1 << 20)
        if not chunk:
            break
        total += len(chunk)
print(total, time.perf_counter() - started)
'

now_ns() { date +%s%N; }

# Best of three "BYTES SECONDS" lines from running "$@" (a failed run prints nothing).
best_of_three() {
    local i
    for i in 1 2 3; do "$@" || true; done | sort -k2 -g | head -n1
}

# Wall time of "$@" in seconds, as "BYTES SECONDS" (BYTES = the file size).
wall() {
    local start
    start=$(now_ns)
    "$@" >/dev/null 2>&1 || return 1
    echo "$((size_mib * 1048576)) $(awk -v ns=$(($(now_ns) - start)) 'BEGIN { print ns / 1e9 }')"
}

py_direct=$(best_of_three in_pod "$python" -c "$read_code" "$file")
py_mirrord=$(best_of_three "$MIRRORD" exec --target "sandbox/$sandbox" -- "$python" -c "$read_code" "$file" 2>/dev/null)
cat_direct=$(best_of_three wall in_pod cat "$file")
cat_mirrord=$(best_of_three wall "$MIRRORD" exec --target "sandbox/$sandbox" -- cat "$file")
streamed=$(mktemp --suffix=.json)
echo '{"feature": {"fs": {"native_fds": false}}}' >"$streamed"
py_streamed=$(best_of_three "$MIRRORD" exec -f "$streamed" --target "sandbox/$sandbox" -- "$python" -c "$read_code" "$file" 2>/dev/null)
cat_streamed=$(best_of_three wall "$MIRRORD" exec -f "$streamed" --target "sandbox/$sandbox" -- cat "$file")
rm -f "$streamed"

report() { # LABEL DIRECT MIRRORD, each "BYTES SECONDS" or empty when it failed
    awk -v label="$1" -v direct="$2" -v through="$3" -v expected=$((size_mib * 1048576)) '
    function speed(run, parts) { split(run, parts, " "); return parts[1] / parts[2] / 1e6 }
    function shown(run) { return run == "" ? "   FAILED" : sprintf("%9.1f MB/s", speed(run)) }
    BEGIN {
        printf "%-44s direct %s   through mirrord %s", label, shown(direct), shown(through)
        if (direct != "" && through != "") printf "   ratio %5.1f%%", 100 * speed(through) / speed(direct)
        split(through, m, " ")
        if (through != "" && m[1] != expected) printf "   (read %d bytes of %d!)", m[1], expected
        printf "\n"
    }'
}

echo "binary: $MIRRORD"
echo "file: $size_mib MiB in sandbox $sandbox, best of 3 (design target: >= 50%)"
echo "native descriptors (the default for targets on this machine):"
report "python, 1 MiB reads (timed in the process)" "$py_direct" "$py_mirrord"
report "cat > /dev/null (wall, with session start)" "$cat_direct" "$cat_mirrord"
echo "streamed through the intproxy (native_fds off; the cluster path):"
report "python, 1 MiB reads (timed in the process)" "$py_direct" "$py_streamed"
report "cat > /dev/null (wall, with session start)" "$cat_direct" "$cat_streamed"
