#!/usr/bin/env bash
# Acceptance test of README's quick start on a machine that has only what README's Install
# section lists: runs the quick-start command (read from README.md, so the two cannot drift) as
# root in a private mount namespace where dnsmasq and every optional program that .ci/run installs
# are absent, and checks examples/whoami.py's output line by line. The sandbox `demo` is taken
# down before and after, inside the same namespace (its /run/netns entries are mounts there).
set -euo pipefail
cd "$(dirname "$0")/../.."

# Programs the quick start must not need: what the old sandbox ran (dnsmasq, nsenter, unshare,
# setsid, mount, umount, pivot_root), and what .ci/run installs for other tests only.
hidden=(dnsmasq nsenter unshare setsid mount umount pivot_root
    curl iptables iptables-legacy iptables-nft ip6tables nft kubectl
    node npm npx java javac mvn xmllint getent)

command=$(sed -n '/^## Quick start/,/^## /p' README.md | grep -m1 '^cargo build')
if [ -z "$command" ]; then
    echo "error: README.md's Quick start section has no \`cargo build …\` command line" >&2
    exit 1
fi
echo "quick start: $command"

inside() {
    # Runs in the namespace: the quick start between two `down`s, output kept for the checks.
    set -uo pipefail
    local binary=target/release/mirrord status=0
    [ ! -x "$binary" ] || "$binary" sandbox down demo >/dev/null || return 1
    bash -c "$QUICK_START" >"$OUTPUT" 2>"$OUTPUT.stderr" || status=$?
    if [ -x "$binary" ]; then
        "$binary" sandbox list --output json >"$OUTPUT.list" || status=1
        "$binary" sandbox down demo >/dev/null || status=1
    fi
    return "$status"
}
export -f inside
output=$(mktemp /tmp/mirrord-quickstart.XXXXXX)
trap 'rm -f "$output" "$output.stderr" "$output.list"' EXIT
status=0
QUICK_START="$command" OUTPUT="$output" CARGO_TERM_COLOR=never \
    tests/quickstart/without-programs.sh "${hidden[@]}" -- bash -c inside || status=$?

fail() {
    echo "error: $1" >&2
    echo "--- stdout" >&2
    cat "$output" >&2
    echo "--- stderr (last 30 lines)" >&2
    tail -n 30 "$output.stderr" >&2
    exit 1
}
[ "$status" -eq 0 ] || fail "the quick-start command exited with status $status"

db_ip=$(python3 -c 'import json, sys; print(next(s["db_ip"] for s in json.load(sys.stdin) if s["name"] == "demo"))' <"$output.list") ||
    fail "sandbox demo was not listed while it ran"
expected=(
    "hostname                        demo"
    "first line of /app/config.yaml  # Configuration of sandbox pod demo; this file exists only inside the pod."
    "\$SANDBOX_GREETING               hello from sandbox demo"
    "db.sandbox.svc resolves to      $db_ip"
    "tcp echo at db.sandbox.svc:7    replied 'hello from whoami.py'"
)
mapfile -t actual <"$output"
for index in "${!expected[@]}"; do
    [ "${actual[$index]:-<missing>}" = "${expected[$index]}" ] ||
        fail "line $((index + 1)) of whoami.py's output is \"${actual[$index]:-<missing>}\", expected \"${expected[$index]}\""
done
[ "${#actual[@]}" -eq "${#expected[@]}" ] || fail "whoami.py printed ${#actual[@]} lines, expected ${#expected[@]}"
echo "quick start: whoami.py saw the pod (${#expected[@]} lines as expected)"
