#!/usr/bin/env bash
# Cost of the layer on calls that stay local: a small C program loops `open`+`close` of a local file
# (and `stat`, and a 1-byte `read`), natively and with the release build of the layer preloaded and
# active (default config, fs mode `read`). Prints ns/call for both and the cost the layer adds.
#
# Usage: layer/benches/layer_local_calls.sh [iterations]   (default 300000)
#
# System calls cost microseconds on a virtual machine and vary by more than the layer adds, so each
# libc call is timed against the same system call made with syscall(2) (which the layer never sees) in
# back-to-back batches; the median of those per-batch gaps cancels the machine's drift, and the layer's
# cost is how much the gap grows with the layer loaded ("added"). Native and layered runs alternate.
#
# Target (DESIGN.md section 4): at most 50 ns added per local open+close, and per connect to a
# loopback port (connect-lo: a datagram socket connected to 127.0.0.1:9, over and over).
set -euo pipefail
cd "$(dirname "$0")/../.."

iterations="${1:-300000}"
rounds=6
jobs="${CARGO_BUILD_JOBS:-2}"

cargo build --release -q -j"$jobs" -p mirrord-layer --lib --example resolved_config
layer="$PWD/target/release/libmirrord_layer.so"
config="$(target/release/examples/resolved_config read)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat >"$work/local_calls.c" <<'C_SOURCE'
/* Times libc calls (hooked when the layer is loaded) against the same system calls made with
 * syscall(2), in back-to-back batches; per operation prints the best ns/call of each and the median of
 * the per-batch differences (libc - raw), which cancels the machine's drift between batches. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BATCH 1000

static const char *path;
static struct stat st;
static int zero;
static char byte;

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void libc_open_close(void) { close(open(path, O_RDONLY | O_CLOEXEC)); }
static void raw_open_close(void) {
    syscall(SYS_close, syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC));
}
static void libc_stat(void) { stat(path, &st); }
static void raw_stat(void) { syscall(SYS_newfstatat, AT_FDCWD, path, &st, 0); }
static void libc_read(void) { (void)!read(zero, &byte, 1); }
static void raw_read(void) { syscall(SYS_read, zero, &byte, 1); }
/* connect(2) of a datagram socket to a loopback port (again and again: a datagram socket may
 * change its peer): the layer's connect hook decides the destination stays local. */
static struct sockaddr_in loopback;
static int datagram;
static void libc_connect(void) { connect(datagram, (struct sockaddr *)&loopback, sizeof loopback); }
static void raw_connect(void) { syscall(SYS_connect, datagram, &loopback, sizeof loopback); }

static double batch(void (*call)(void)) {
    double start = now_ns();
    for (int i = 0; i < BATCH; i++) call();
    return (now_ns() - start) / BATCH;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    path = argv[1];
    long batches = atol(argv[2]) / BATCH;
    if (batches < 1) batches = 1;
    double *differences = malloc(sizeof(double) * batches);
    zero = open("/dev/zero", O_RDONLY);
    loopback.sin_family = AF_INET;
    loopback.sin_port = htons(9);
    loopback.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    datagram = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    void (*calls[4][2])(void) = {{libc_open_close, raw_open_close},
                                 {libc_stat, raw_stat},
                                 {libc_read, raw_read},
                                 {libc_connect, raw_connect}};
    for (int op = 0; op < 4; op++) {
        double best[2] = {1e18, 1e18};
        for (long b = 0; b < batches; b++) {
            double ns[2];
            for (int kind = 0; kind < 2; kind++) {
                ns[kind] = batch(calls[op][kind]);
                if (ns[kind] < best[kind]) best[kind] = ns[kind];
            }
            differences[b] = ns[0] - ns[1];
        }
        qsort(differences, batches, sizeof(double), by_value);
        printf("%.1f %.1f %.1f ", best[0], best[1], differences[batches / 2]);
    }
    printf("\n");
    return 0;
}
C_SOURCE
cc -O2 -o "$work/local_calls" "$work/local_calls.c"
echo "local file" >"$work/file.txt"

# Every run's result line, one per line.
native_runs=""
layered_runs=""
for _ in $(seq "$rounds"); do
    native_runs+="$("$work/local_calls" "$work/file.txt" "$iterations")"$'\n'
    layered_runs+="$(env \
        LD_PRELOAD="$layer" \
        MIRRORD_LAYER_INTPROXY_ADDR=127.0.0.1:9 \
        MIRRORD_LAYER_SESSION_TOKEN="$(printf '%064d' 0)" \
        MIRRORD_RESOLVED_CONFIG="$config" \
        MIRRORD_LAYER_LOG="$work/layer.log" \
        "$work/local_calls" "$work/file.txt" "$iterations")"$'\n'
done

if ! grep -q "layer active" "$work/layer.log"; then
    echo "error: the layer did not activate; its log says:" >&2
    cat "$work/layer.log" >&2
    exit 1
fi

# Per column: the minimum for the timings, the median of the runs for the differences.
summary() {
    awk 'NF { for (i = 1; i <= NF; i++) v[i, NR] = $i; n = NR; cols = NF }
        END {
            for (i = 1; i <= cols; i++) {
                if (i % 3 == 0) {
                    # median of the runs
                    m = 0; for (r = 1; r <= n; r++) a[++m] = v[i, r]
                    for (x = 1; x <= m; x++) for (y = x + 1; y <= m; y++) if (a[y] < a[x]) { t = a[x]; a[x] = a[y]; a[y] = t }
                    printf "%.1f ", a[int((m + 1) / 2)]
                } else {
                    best = v[i, 1]; for (r = 2; r <= n; r++) if (v[i, r] < best) best = v[i, r]
                    printf "%.1f ", best
                }
            }
        }'
}
native="$(summary <<<"$native_runs")"
layered="$(summary <<<"$layered_runs")"

echo "layer cost on local calls: $rounds runs x $iterations calls each, in batches of 1000 (ns/call)"
echo "(raw: the same system calls through syscall(2), which the layer never sees; gap: median of"
echo " the per-batch libc-minus-raw differences; added: how much the gap grows with the layer)"
printf '%-12s %9s %9s %9s %9s %9s %9s %9s\n' call native raw gap layered raw gap added
printf 'open+close\nstat\nread-1-byte\nconnect-lo\n' |
    paste - <(xargs -n3 <<<"$native") <(xargs -n3 <<<"$layered") |
    awk '{ printf "%-12s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n", $1, $2, $3, $4, $5, $6, $7, $7 - $4 }'
