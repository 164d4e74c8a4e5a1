#!/usr/bin/env bash
# Installs what the VS Code end-to-end test needs: a real VS Code (code-server, from npm) cached
# outside the clone under /var/cache/mirrord-ci/code-server-$VERSION, Debian's chromium, and this
# directory's node packages (playwright-core drives the browser). Run as root (from .ci/run).
# A finished cache holds a `.complete` marker; a half-done one is removed and rebuilt.
set -euo pipefail
cd "$(dirname "$0")"

version=4.100.3
cache="${MIRRORD_CI_CACHE:-/var/cache/mirrord-ci}/code-server-$version"

export DEBIAN_FRONTEND=noninteractive
missing=()
for pkg in chromium ripgrep libkrb5-dev g++ make python3; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for tool in chromium rg; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing after installation" >&2; exit 2; }
done
if [ ! -f /usr/include/node/node.h ]; then
    echo "error: /usr/include/node/node.h is missing: the native modules of code-server are built against Debian's node headers" >&2
    exit 2
fi

if [ ! -f "$cache/.complete" ]; then
    echo "installing code-server $version into $cache (takes a few minutes, once per machine)"
    rm -rf "$cache"
    mkdir -p "$cache"
    (
        cd "$cache"
        # code-server's own postinstall fetches from the internet; its steps are done by hand below.
        npm install --no-audit --no-fund --loglevel=error --ignore-scripts "code-server@$version" >/dev/null
        root="$cache/node_modules/code-server"
        # What code-server's postinstall.sh does, without its network steps.
        (cd "$root/lib/vscode" && npm install --no-audit --no-fund --loglevel=error --omit=dev --ignore-scripts >/dev/null)
        ln -sfn node_modules "$root/lib/vscode/node_modules.asar"
        ln -sfn code-linux.sh "$root/lib/vscode/bin/remote-cli/code-server"
        ln -sfn browser-linux.sh "$root/lib/vscode/bin/helpers/browser.sh"
        (cd "$root/lib/vscode/extensions" && npm install --no-audit --no-fund --loglevel=error --omit=dev --ignore-scripts >/dev/null)
        (cd "$root/lib/vscode/extensions" && node postinstall.mjs >/dev/null)
        # @vscode/ripgrep's postinstall downloads rg from GitHub: use Debian's.
        while IFS= read -r dir; do
            mkdir -p "$dir/bin"
            cp "$(command -v rg)" "$dir/bin/rg"
        done < <(find "$root" -type d -path '*/node_modules/@vscode/ripgrep')
        # Native modules, built against Debian's node headers (no download of headers).
        # node-pty's postinstall runs `npx node-gyp` (from the npm registry) to write
        # compile_commands.json.
        export npm_config_nodedir=/usr npm_config_yes=true
        (cd "$root/lib/vscode" && npm rebuild --loglevel=error >/dev/null)
        # argon2 (password login; the test runs with `--auth none`, but code-server loads it).
        (cd "$cache" && npm rebuild --loglevel=error --build-from-source argon2 >/dev/null)
    )
    touch "$cache/.complete"
fi

npm ci --no-audit --no-fund --loglevel=error
