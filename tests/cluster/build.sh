#!/usr/bin/env bash
# Builds, once per machine, the control plane the cluster tests run: kube-apiserver,
# kube-controller-manager and kube-scheduler (k8s.io/kubernetes), etcd and kwok, all from the Go
# module proxy. Binaries, GOCACHE and GOMODCACHE live outside the clone, keyed by version, so later
# runs (and CI on this machine) reuse them:
#   $MIRRORD_K8S_CACHE (default /var/cache/mirrord-ci/k8s)/<component>-<version>/bin/
# Prints the bin directories on success. Safe to run concurrently (a lock serialises builds).
set -euo pipefail

# shellcheck source=versions
. "$(dirname "$0")/versions"

cache="${MIRRORD_K8S_CACHE:-/var/cache/mirrord-ci/k8s}"
mkdir -p "$cache"
export GOCACHE="$cache/go-build" GOMODCACHE="$cache/go-mod" GOFLAGS=-buildvcs=false
export CGO_ENABLED=0 GOTOOLCHAIN=local
command -v go >/dev/null || { echo "error: go is not installed (tests/cluster/build.sh needs it)" >&2; exit 2; }

exec 9>"$cache/.build.lock"
flock 9

# build_in_module DIR GO_MOD_BODY PACKAGES...: builds PACKAGES into DIR/bin from a throwaway module.
build_in_module() {
    local dir="$1" gomod="$2"; shift 2
    if [ -f "$dir/done" ]; then return 0; fi
    local work
    work="$(mktemp -d "$cache/.work.XXXXXX")"
    printf '%s\n' "$gomod" > "$work/go.mod"
    # Each component prints its wall and CPU time (`time` counts the go commands it waits for).
    local TIMEFORMAT="built ${dir##*/} in %R s (user %U s, sys %S s)"
    time (
        cd "$work"
        echo "building $* (log: $work/build.log)" >&2
        SECONDS=0
        for pkg in "$@"; do go get "$pkg" >>build.log 2>&1; done
        echo "fetched ${dir##*/}'s modules in $SECONDS s" >&2
        mkdir -p bin
        go build -trimpath -ldflags=-s -o bin/ "$@" >>build.log 2>&1
    ) || { echo "error: building $* failed; see $work/build.log" >&2; tail -20 "$work/build.log" >&2; return 1; }
    rm -rf "$dir"
    mkdir -p "$dir"
    mv "$work/bin" "$dir/bin"
    cp "$work/go.mod" "$work/build.log" "$dir/"
    touch "$dir/done"
    rm -rf "$work"
}

# k8s.io/kubernetes replaces its staging modules (k8s.io/api, k8s.io/client-go, ...) with ./staging
# directories, which `go install` refuses; a wrapper module maps each to its published release.
k8s_dir="$cache/kubernetes-$K8S_VERSION"
if [ ! -f "$k8s_dir/done" ]; then
    k8s_mod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" 2>/dev/null | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')" || true
    if [ -z "$k8s_mod" ] || [ ! -f "$k8s_mod" ]; then
        # Only the go.mod is needed here; `go mod download` of the whole module gives it too.
        echo "error: could not fetch k8s.io/kubernetes@$K8S_VERSION's go.mod from the Go module proxy" >&2
        exit 1
    fi
    replaces="$(sed -n 's#^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$k8s_mod" | sort -u |
        while read -r m; do printf 'replace %s => %s %s\n' "$m" "$m" "$STAGING_VERSION"; done)"
    [ -n "$replaces" ] || { echo "error: no staging replacements found in $k8s_mod" >&2; exit 1; }
    build_in_module "$k8s_dir" "module mirrord.test/k8s-build

go 1.26

require k8s.io/kubernetes $K8S_VERSION

$replaces" \
        k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler
fi

build_in_module "$cache/etcd-$ETCD_VERSION" "module mirrord.test/etcd-build

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION" go.etcd.io/etcd/server/v3

build_in_module "$cache/kwok-$KWOK_VERSION" "module mirrord.test/kwok-build

go 1.26

require sigs.k8s.io/kwok $KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok

# The etcd binary is named after its package directory (v3); give it its usual name.
if [ -f "$cache/etcd-$ETCD_VERSION/bin/v3" ]; then mv "$cache/etcd-$ETCD_VERSION/bin/v3" "$cache/etcd-$ETCD_VERSION/bin/etcd"; fi
if [ -f "$cache/etcd-$ETCD_VERSION/bin/server" ]; then mv "$cache/etcd-$ETCD_VERSION/bin/server" "$cache/etcd-$ETCD_VERSION/bin/etcd"; fi

# kwok's PortForward CRD and its node stages (initialize, heartbeat with lease) come with its module.
kwok_dir="$cache/kwok-$KWOK_VERSION"
kwok_src="$GOMODCACHE/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize"
if [ ! -f "$kwok_dir/share/done" ]; then
    go mod download "sigs.k8s.io/kwok@$KWOK_VERSION"
    mkdir -p "$kwok_dir/share"
    cp "$kwok_src/crd/bases/kwok.x-k8s.io_portforwards.yaml" \
        "$kwok_src/stage/node/fast/node-initialize.yaml" \
        "$kwok_src/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" "$kwok_dir/share/"
    touch "$kwok_dir/share/done"
fi

echo "$k8s_dir/bin"
echo "$cache/etcd-$ETCD_VERSION/bin"
echo "$cache/kwok-$KWOK_VERSION/bin"
