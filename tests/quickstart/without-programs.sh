#!/usr/bin/env bash
# Usage (as root): without-programs.sh PROGRAM... -- COMMAND [ARG...]
#
# Runs COMMAND in a private mount namespace where every PROGRAM is absent: each directory on PATH
# (and the usual bin and sbin directories) that holds one of them is covered by an overlay that
# whites it out, so it is neither found on PATH nor visible in the file system (/mnt holds the
# overlays' layers). Mounts made in the namespace stay there: a sandbox created inside it (its
# /run/netns entries are mounts) must be taken down inside it too. The exit status is COMMAND's.
set -euo pipefail

if [ "${MIRRORD_TEST_HIDING:-}" != 1 ]; then
    MIRRORD_TEST_HIDING=1 exec unshare --mount --propagation private -- "$0" "$@"
fi
unset MIRRORD_TEST_HIDING

programs=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    programs+=("$1")
    shift
done
if [ $# -lt 2 ]; then
    echo "usage: $0 PROGRAM... -- COMMAND [ARG...]" >&2
    exit 2
fi
shift

# Scratch space for the overlays' upper layers: a tmpfs over /mnt, in this namespace only.
scratch=/mnt
mount -t tmpfs mirrord-without-programs "$scratch"
# A copy of `mount` keeps working when `mount` itself is among the hidden programs.
cp "$(command -v mount)" "$scratch/mount"

# Every directory to cover, by its real path (on merged-/usr systems /bin is /usr/bin).
declare -A covered=()
IFS=: read -r -a path_dirs <<<"${PATH}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
for dir in "${path_dirs[@]}"; do
    [ -d "$dir" ] || continue
    real=$(realpath "$dir")
    for program in "${programs[@]}"; do
        if { [ -e "$real/$program" ] || [ -L "$real/$program" ]; } && [[ " ${covered[$real]:-} " != *" $program "* ]]; then
            covered["$real"]+=" $program"
        fi
    done
done

index=0
for dir in "${!covered[@]}"; do
    index=$((index + 1))
    upper="$scratch/$index/upper"
    work="$scratch/$index/work"
    mkdir -p "$upper" "$work"
    for program in ${covered[$dir]}; do
        # An overlayfs whiteout: a 0/0 character device hides the lower file.
        mknod "$upper/$program" c 0 0
    done
    "$scratch/mount" -t overlay mirrord-without-programs -o "lowerdir=$dir,upperdir=$upper,workdir=$work" "$dir"
done

rm "$scratch/mount"
hash -r
for program in "${programs[@]}"; do
    if found=$(command -v "$program"); then
        echo "error: $program is still visible at $found" >&2
        exit 2
    fi
done

exec "$@"
