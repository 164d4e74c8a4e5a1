#!/usr/bin/env bash
# Builds Delve (dlv), once per machine, from the Go module proxy for the IDE's Go launch test
# (crates/ide/tests/dlv_launch.rs). The binary, GOCACHE and GOMODCACHE live outside the clone,
# keyed by version, so later runs (and CI on this machine) reuse them:
#   $MIRRORD_DLV_CACHE (default /var/cache/mirrord-ci/dlv)/<version>/bin/dlv
# Prints the binary's path on success. Safe to run concurrently (a lock serialises builds).
set -euo pipefail

DLV_VERSION=v1.27.2
cache="${MIRRORD_DLV_CACHE:-/var/cache/mirrord-ci/dlv}"
dir="$cache/$DLV_VERSION"
command -v go >/dev/null || { echo "error: go is not installed (tests/dlv/build.sh needs it)" >&2; exit 2; }
mkdir -p "$cache"
exec 9>"$cache/.build.lock"
flock 9
if [ ! -x "$dir/bin/dlv" ]; then
    export GOCACHE="$cache/go-build" GOMODCACHE="$cache/go-mod" GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
    work="$(mktemp -d "$cache/.work.XXXXXX")"
    GOBIN="$work/bin" go install "github.com/go-delve/delve/cmd/dlv@$DLV_VERSION" >"$work/build.log" 2>&1 ||
        { echo "error: building dlv $DLV_VERSION failed; see $work/build.log" >&2; tail -20 "$work/build.log" >&2; exit 1; }
    rm -rf "$dir"
    mkdir -p "$dir"
    mv "$work/bin" "$dir/bin"
    rm -rf "$work"
fi
echo "$dir/bin/dlv"
