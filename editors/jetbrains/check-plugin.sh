#!/usr/bin/env bash
# Checks what can be checked of the plugin module without JetBrains' repositories (it is not
# compiled here): the XML descriptors are well-formed, every class they name is declared in a
# Kotlin source file of its package, every optional config file exists, the bundled schema comes
# from schema/mirrord-schema.json (copied at build time by build.gradle.kts, not kept twice), and
# the plugin's Kotlin stays small. Needs xmllint (Debian: libxml2-utils).
set -euo pipefail
cd "$(dirname "$0")"
meta=plugin/src/main/resources/META-INF
failures=0
fail() { echo "check-plugin: $*" >&2; failures=$((failures + 1)); }

command -v xmllint >/dev/null || { echo "check-plugin: xmllint is missing (apt-get install libxml2-utils)" >&2; exit 2; }

echo "== descriptors are well-formed"
xmllint --noout "$meta"/*.xml

echo "== optional dependencies name existing config files"
for file in $(xmllint --xpath '//depends/@config-file' "$meta/plugin.xml" | sed 's/ *config-file="\([^"]*\)"/\1\n/g'); do
    [ -f "$meta/$file" ] || fail "plugin.xml names $file, which does not exist"
done

echo "== every class named in the descriptors is declared in Kotlin"
classes=$(cat "$meta"/*.xml | grep -o '\(class\|implementation\|serviceImplementation\|factoryClass\)="[^"]*"' | sed 's/.*="\(.*\)"/\1/' | sort -u)
[ -n "$classes" ] || fail "no class names found in $meta"
for class in $classes; do
    package=${class%.*}
    name=${class##*.}
    found=no
    for root in plugin/src/main/kotlin core/src/main/kotlin; do
        dir="$root/${package//.//}"
        if [ -d "$dir" ] && grep -q -E "^(internal |open |abstract )?(class|object) $name\b" "$dir"/*.kt; then found=yes; fi
    done
    [ "$found" = yes ] || fail "$class is named in the descriptors but declared in no Kotlin file of package $package"
    echo "   $class"
done

echo "== the bundled schema is schema/mirrord-schema.json, copied at build time"
grep -q 'from(rootDir.resolve("../../../schema/mirrord-schema.json"))' plugin/build.gradle.kts \
    || fail "build.gradle.kts no longer copies schema/mirrord-schema.json"
[ -f ../../schema/mirrord-schema.json ] || fail "schema/mirrord-schema.json is missing"
grep -q 'into(layout.buildDirectory.dir("generated/schema/schemas"))' plugin/build.gradle.kts \
    && grep -q '"/schemas/mirrord-schema.json"' plugin/src/main/kotlin/mirrord/jetbrains/plugin/MirrordSchemaProviderFactory.kt \
    || fail "the schema provider does not load the resource that build.gradle.kts copies"
if find plugin/src -name 'mirrord-schema.json' | grep -q .; then fail "a copy of the schema is committed under plugin/src; it is copied at build time"; fi

echo "== one sidecar per project, and no picker inside a run hook"
if grep -rq 'ProcessStreamConnectionProvider' plugin/src/main/kotlin; then
    fail "LSP4IJ starts a sidecar of its own; it must use the project's (MirrordProjectService.editorConnection)"
fi
grep -q 'pickInline = false' plugin/src/main/kotlin/mirrord/jetbrains/plugin/MirrordLaunch.kt \
    || fail "the run hooks must prepare with pickInline = false (the picker runs before the run, not inside its hook)"

echo "== the plugin's Kotlin stays small"
lines=$(cat plugin/src/main/kotlin/mirrord/jetbrains/plugin/*.kt | wc -l)
echo "   $lines lines"
[ "$lines" -le 800 ] || fail "plugin/ has $lines lines of Kotlin (keep it under ~800: decisions belong in core)"

if [ "$failures" -gt 0 ]; then
    echo "check-plugin: $failures problem(s)" >&2
    exit 1
fi
echo "check-plugin: ok"
