#!/usr/bin/env bash
# make install into a temporary prefix, then what a user of the installed
# unmask does: run the program, read its man page, build the example against
# the installed library with pkg-config and run it; make uninstall leaves
# nothing behind. (BUILD, CC, CFLAGS: the build being tested.)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
make --no-print-directory -s install BUILD="$BUILD" PREFIX="$prefix" >/dev/null
"$prefix/bin/unmask" --version | grep -q "^unmask "
grep -q '^\.SH "unmask run"' "$prefix/share/man/man1/unmask.1"
grep -q 'complete -o filenames -F _unmask unmask' "$prefix/share/bash-completion/completions/unmask"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# shellcheck disable=SC2046,SC2086
${CC:-cc} -std=c11 ${CFLAGS:-} -o "$prefix/example" examples/generate.c $(pkg-config --cflags --libs unmask) \
    -Wl,-rpath,"$prefix/lib"
out=$("$prefix/example" "${UNMASK_FIXTURES:-../shared/fixtures}/llada/tiny-llada/hf-bf16" 1 2 3 2>/dev/null)
[ "$(echo "$out" | wc -w)" -eq 32 ] || { echo "install check: the example printed '$out'" >&2; exit 1; }
make --no-print-directory -s uninstall BUILD="$BUILD" PREFIX="$prefix"
left=$(find "$prefix" -type f ! -name example | wc -l)
[ "$left" -eq 0 ] || { echo "install check: uninstall left $left files" >&2; exit 1; }
echo "install check: make install, pkg-config build of the example, make uninstall: ok"
