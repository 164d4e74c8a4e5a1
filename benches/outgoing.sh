#!/usr/bin/env bash
# Outgoing TCP through a local target, against the same client run directly inside the target,
# measured in the same run. No thresholds: it prints figures and ratios (targets: added round
# trip <= 20 us, bulk >= 90 % of direct).
#
#   benches/outgoing.sh [BULK_MIB]        (as root; default 200)
#
# The server runs inside the sandbox pod `bench` on the pod's own loopback (127.0.0.1:PORT, which
# only the pod reaches: what `outgoing.ignore_localhost: false` is for). The same python client
# runs once under `mirrord exec --target sandbox/bench` and once in the pod (nsenter into its
# network namespace), and measures inside the process (no session start-up counted):
#   - connect + 64-byte request/response + close, p50 over 400 connections;
#   - a 64-byte echo round trip on one connection, p50 over 5000;
#   - bulk: BULK_MIB sent to a sink that answers with the byte count, MB/s.
# Best of three runs for each. Uses target/release/mirrord when the agent and layer are built
# beside it (`cargo build --release --workspace`), else target/debug/mirrord; $MIRRORD overrides.
set -euo pipefail

bulk_mib=${1:-200}
repo=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z ${MIRRORD:-} ]]; then
    MIRRORD=$repo/target/debug/mirrord
    release=$repo/target/release
    if [[ -x $release/mirrord && -x $release/mirrord-agent && -f $release/libmirrord_layer.so ]]; then
        MIRRORD=$release/mirrord
    fi
fi
sandbox=${BENCH_SANDBOX:-bench}
port=${BENCH_PORT:-47011}
python=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')

created=no
existing=$("$MIRRORD" sandbox list --output json)
if ! grep -q "\"name\": *\"$sandbox\"" <<<"$existing"; then
    created=yes
fi
server=
cleanup() {
    if [[ -n $server ]]; then kill "$server" 2>/dev/null || true; fi
    if [[ $created == yes ]]; then "$MIRRORD" sandbox down "$sandbox" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
info=$("$MIRRORD" sandbox up "$sandbox" --output json)
pid=$(sed -n 's/^ *"target_pid": *\([0-9]*\),*$/\1/p' <<<"$info")
[[ -n $pid ]] || { echo "cannot find the target pid of sandbox $sandbox" >&2; exit 1; }
in_pod() { nsenter --target "$pid" --net -- "$@"; }

# Echo for the first byte 'e' (64-byte messages), sink for 's' (answers the byte count).
server_code='
import socket, sys, threading
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen(128)
def serve(connection):
    with connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        kind = connection.recv(1)
        if kind == b"s":
            total = 1
            while chunk := connection.recv(1 << 20):
                total += len(chunk)
            connection.sendall(str(total).encode())
            return
        connection.sendall(kind)
        while data := connection.recv(64):
            connection.sendall(data)
print("ready", flush=True)
while True:
    connection, _ = listener.accept()
    threading.Thread(target=serve, args=(connection,), daemon=True).start()
'
# Prints "connect_p50_us round_trip_p50_us bulk_MBps".
client_code='
import socket, statistics, sys, time
port, bulk = int(sys.argv[1]), int(sys.argv[2]) << 20
address = ("127.0.0.1", port)
message = b"e" + b"x" * 63
def exchange(s, data):
    s.sendall(data)
    got = 0
    while got < len(data):
        got += len(s.recv(64 - got))
connects = []
for _ in range(400):
    started = time.perf_counter()
    s = socket.create_connection(address)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    exchange(s, message)
    s.close()
    connects.append(time.perf_counter() - started)
s = socket.create_connection(address)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
exchange(s, message)
trips = []
for _ in range(5000):
    started = time.perf_counter()
    exchange(s, message)
    trips.append(time.perf_counter() - started)
s.close()
s = socket.create_connection(address)
chunk = b"s" + b"\0" * ((1 << 20) - 1)
started = time.perf_counter()
sent = 0
while sent < bulk:
    s.sendall(chunk)
    sent += len(chunk)
s.shutdown(socket.SHUT_WR)
answer = b""
while data := s.recv(64):
    answer += data
elapsed = time.perf_counter() - started
assert int(answer) == sent, (answer, sent)
print(statistics.median(connects) * 1e6, statistics.median(trips) * 1e6, sent / elapsed / 1e6)
'

in_pod "$python" -c "$server_code" "$port" >/tmp/mirrord-bench-outgoing-$$.out &
server=$!
for _ in $(seq 100); do
    grep -q ready /tmp/mirrord-bench-outgoing-$$.out 2>/dev/null && break
    sleep 0.1
done
rm -f /tmp/mirrord-bench-outgoing-$$.out

# Best of three: lowest latencies, highest bulk.
best_of_three() {
    local i
    for i in 1 2 3; do "$@" 2>/dev/null || true; done | awk '
        NF == 3 { if (n == 0 || $1 < c) c = $1; if (n == 0 || $2 < r) r = $2; if ($3 > b) b = $3; n++ }
        END { if (n) printf "%s %s %s\n", c, r, b }'
}

direct=$(best_of_three in_pod "$python" -c "$client_code" "$port" "$bulk_mib")
through=$(best_of_three "$MIRRORD" exec --target "sandbox/$sandbox" -- "$python" -c "$client_code" "$port" "$bulk_mib")

echo "binary: $MIRRORD"
echo "server on the pod's own 127.0.0.1:$port in sandbox $sandbox; python client; best of 3"
awk -v direct="$direct" -v through="$through" 'BEGIN {
    if (direct == "" || through == "") { print "FAILED (direct: " direct ", through mirrord: " through ")"; exit 1 }
    split(direct, d, " "); split(through, t, " ")
    printf "connect + 64 B request, p50   direct %8.1f us   through mirrord %8.1f us   added %7.1f us\n", d[1], t[1], t[1] - d[1]
    printf "64 B echo round trip, p50     direct %8.1f us   through mirrord %8.1f us   added %7.1f us (target <= 20)\n", d[2], t[2], t[2] - d[2]
    printf "bulk send                     direct %8.0f MB/s through mirrord %8.0f MB/s ratio %5.1f%% (target >= 90%%)\n", d[3], t[3], 100 * t[3] / d[3]
}'
