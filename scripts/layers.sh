#!/usr/bin/env bash
# Checks the layering of src/ (docs/design.md, "Layers"): a module uses only modules on its own layer or below,
# items are imported from the module that defines them (never through the crate root's re-exports), and the
# imports between modules, and between the files of a folder, have no cycle.
#
# It reads every `crate::` and `super::` path in code (comments and doc comments are skipped) and prints each
# violation; the exit status is non-zero if there is one. Run from anywhere: `bash scripts/layers.sh`.
set -euo pipefail
cd "$(dirname "$0")/../src"

layer_of() {
    case $1 in
        sync | error | config | hash | stats | marker) echo 0 ;;
        arena) echo 1 ;;
        budget | report) echo 2 ;;
        table | lazy) echo 3 ;;
        once | intern | cache) echo 4 ;;
        *) echo "" ;;
    esac
}

failures=0
fail() {
    printf '%s\n' "$*"
    failures=$((failures + 1))
}

module_edges=$(mktemp)
file_edges=$(mktemp)
trap 'rm -f "$module_edges" "$file_edges"' EXIT

# The module a file belongs to (`arena` for src/arena/lane.rs) and its name as a node (`arena/lane`).
while IFS= read -r file; do
    case $file in lib.rs | compile_fail_tests.rs) continue ;; esac
    node=${file%.rs}
    node=${node%/mod}
    top=${node%%/*}
    own=$(layer_of "$top")
    [ -n "$own" ] || fail "src/$file: module \`$top\` has no layer in scripts/layers.sh"
    printf '%s %s\n' "$top" "$top" >> "$module_edges"
    printf '%s %s\n' "$node" "$node" >> "$file_edges"
    # Paths in code: drop line comments (doc comments included) first. `$crate::` paths are a macro's expansion, which
    # must go through the root (`$crate::__private`), and are not imports of this file.
    code=$(sed -e 's://.*$::' "$file")
    # `use crate::{a, b}` imports through the root.
    if grep -Eq '(^|[^$])crate::\{' <<< "$code"; then
        fail "src/$file: imports through the crate root (\`use crate::{...}\`): import from the defining module"
    fi
    while IFS= read -r path; do
        first=${path#crate::}
        first=${first%%::*}
        layer=$(layer_of "$first")
        if [ -z "$layer" ]; then
            fail "src/$file: \`$path\` goes through the crate root: import it from the module that defines it"
            continue
        fi
        if [ "$layer" -gt "$own" ]; then
            fail "src/$file (layer $own) uses \`$path\` (layer $layer): a module uses only its own layer or lower"
        fi
        [ "$first" = "$top" ] || printf '%s %s\n' "$top" "$first" >> "$module_edges"
        second=${path#crate::"$first"}
        second=${second#::}
        second=${second%%::*}
        if [ -n "$second" ] && [ -e "$first/$second.rs" -o -e "$first/$second/mod.rs" ]; then
            printf '%s %s\n' "$node" "$first/$second" >> "$file_edges"
        else
            printf '%s %s\n' "$node" "$first" >> "$file_edges"
        fi
    done < <(grep -Eo '(^|[^$[:alnum:]_])crate::[[:alnum:]_]+(::[[:alnum:]_]+)?' <<< "$code" | sed 's/^.*crate::/crate::/' |
        sort -u)
    # `super::x` inside a folder: an edge between two files of the folder.
    dir=$(dirname "$file")
    [ "$dir" = "." ] && continue
    [ "$(basename "$file")" = mod.rs ] && base=$(dirname "$dir") || base=$dir
    while IFS= read -r path; do
        sibling=${path#super::}
        if [ -e "$base/$sibling.rs" ] || [ -e "$base/$sibling/mod.rs" ]; then
            printf '%s %s\n' "$node" "$base/$sibling" >> "$file_edges"
        fi
    done < <(grep -Eo 'super::[a-z_]+' <<< "$code" | sort -u)
done < <(find . -name '*.rs' | sed 's:^\./::' | sort)

# A file's edge to its own folder's mod.rs (`crate::arena` from arena/lane.rs) is the folder's interface, not a cycle.
sed -E 's:^([a-z_]+)/[a-z_]+ \1$::' "$file_edges" | grep -v '^$' > "$file_edges.kept" || true
for edges in "$module_edges" "$file_edges.kept"; do
    if ! tsort "$edges" > /dev/null 2> "$edges.err"; then
        fail "import cycle through: $(grep -v 'input contains a loop' "$edges.err" | sed 's/^tsort: //' | sort -u | tr '\n' ' ')"
    fi
    rm -f "$edges.err"
done
rm -f "$file_edges.kept"

if [ "$failures" -gt 0 ]; then
    printf '\n%d layering problem(s)\n' "$failures"
    exit 1
fi
printf 'layers: %d files, no upward import, no import through the crate root, no cycle\n' \
    "$(find . -name '*.rs' | wc -l)"
