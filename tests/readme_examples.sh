#!/usr/bin/env bash
# Runs the examples of README.md as printed (`make test` runs it after the
# test suite; bash tests/readme_examples.sh [README] by hand, from the
# repository root after make).
#
# An example is a line of a ```sh block (a line ending in \ goes on on the
# next). They run in order, each with sh -c, in one scratch folder laid out as
# the repository root is: build/unmask is UNMASK_BIN (default build/unmask),
# build/example-generate is UNMASK_EXAMPLE (default build/example-generate),
# models/ is the repository's, ../shared/fixtures is UNMASK_FIXTURES (default
# ../shared/fixtures), and `unmask` on PATH is UNMASK_BIN. UNMASK_MODEL is
# unset, so the examples without -m run the shipped default model.
#
# What does not run, is counted and named, never skipped in silence:
#   ```sh-norun blocks   examples a test cannot run (a downloaded model, hours
#                        of training); printed, not run
#   make lines           the quick start's build: a line of make commands
#                        alone (`make test` is the command that runs this) is
#                        not run, and a line that starts with make commands
#                        joined by && runs what follows them (this runs
#                        after the build)
#
# Fails with the README line of each example that failed, with its output.
set -u

README=${1:-README.md}
ROOT=$(cd "$(dirname "$README")" && pwd)
README_ABS="$ROOT/$(basename "$README")"
BIN=${UNMASK_BIN:-build/unmask}
EXAMPLE=${UNMASK_EXAMPLE:-build/example-generate}
FIXTURES=${UNMASK_FIXTURES:-../shared/fixtures}
LIMIT_S=${README_EXAMPLE_TIMEOUT:-120}

abs() { (cd "$(dirname "$1")" && echo "$(pwd)/$(basename "$1")"); }
fail_setup() { echo "readme examples: $*" >&2; exit 1; }

[ -f "$README_ABS" ] || fail_setup "no $README"
[ -x "$BIN" ] || fail_setup "no unmask binary at $BIN (make first, or set UNMASK_BIN)"
[ -d "$FIXTURES" ] || fail_setup "no fixtures folder at $FIXTURES (set UNMASK_FIXTURES)"
BIN=$(abs "$BIN")
FIXTURES=$(cd "$FIXTURES" && pwd)

SCRATCH=$(mktemp -d /tmp/unmask-readme-XXXXXX)
trap 'rm -rf "$SCRATCH"' EXIT
WORK="$SCRATCH/repo"
mkdir -p "$WORK/build" "$SCRATCH/shared" "$SCRATCH/bin"
ln -s "$ROOT/models" "$WORK/models"
ln -s "$FIXTURES" "$SCRATCH/shared/fixtures"
# the binary itself (not a copy): it finds the shipped models/ beside it
if [ -n "${UNMASK_EXEC_WRAPPER:-}" ]; then
    printf '#!/bin/sh\nexec %s %s "$@"\n' "$UNMASK_EXEC_WRAPPER" "$BIN" >"$SCRATCH/bin/unmask"
    chmod +x "$SCRATCH/bin/unmask"
    ln -s "$SCRATCH/bin/unmask" "$WORK/build/unmask"
else
    ln -s "$BIN" "$SCRATCH/bin/unmask"
    ln -s "$BIN" "$WORK/build/unmask"
fi
[ -x "$EXAMPLE" ] && ln -s "$(abs "$EXAMPLE")" "$WORK/build/example-generate"
unset UNMASK_MODEL

# The examples: "LINE<TAB>KIND<TAB>COMMAND" (KIND: sh or norun), continuation
# lines joined, blank and comment lines left out.
EXAMPLES="$SCRATCH/examples.tsv"
awk '
    function flush() { if (cmd != "") print start "\t" kind "\t" cmd; cmd = "" }
    /^```/ {
        if (!infence) { infence = 1; info = substr($0, 4); sub(/[ \t].*/, "", info)
                        kind = info == "sh" ? "sh" : info == "sh-norun" ? "norun" : "" }
        else { flush(); infence = 0; kind = "" }
        next
    }
    !infence || kind == "" { next }
    {
        line = $0
        if (cmd == "") {
            if (line ~ /^[ \t]*(#.*)?$/) next
            start = NR
        }
        if (line ~ /\\$/) { cmd = cmd substr(line, 1, length(line) - 1); next }
        cmd = cmd line
        flush()
    }
' "$README_ABS" >"$EXAMPLES"

ran=0 passed=0 failed=0 norun=0 built=0
norun_lines="" build_lines="" failed_lines=""
t_all=$(date +%s)
while IFS=$'\t' read -r line kind cmd; do
    if [ "$kind" = norun ]; then
        norun=$((norun + 1)); norun_lines="$norun_lines $line"
        echo "  not run  README.md:$line (sh-norun): $cmd"
        continue
    fi
    # the quick start's build: make commands, alone or before && (this runs after them)
    run=$cmd
    while [[ "$run" =~ ^[[:space:]]*make([[:space:]]+[A-Za-z0-9_=.-]+)*[[:space:]]*\&\&[[:space:]]*(.*)$ ]]; do
        run=${BASH_REMATCH[2]}
    done
    if [[ "$run" =~ ^[[:space:]]*make([[:space:]]+[A-Za-z0-9_=.-]+)*[[:space:]]*$ ]]; then
        built=$((built + 1)); build_lines="$build_lines $line"
        echo "  not run  README.md:$line (a build command; this test runs inside make test): $cmd"
        continue
    fi
    ran=$((ran + 1))
    t0=$(date +%s.%N)
    (cd "$WORK" && PATH="$SCRATCH/bin:$PATH" timeout "$LIMIT_S" sh -c "$run" </dev/null >"$SCRATCH/out" 2>&1)
    rc=$?
    dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        echo "  ok       README.md:$line (${dt} s): $run"
    else
        failed=$((failed + 1)); failed_lines="$failed_lines $line"
        [ $rc -eq 124 ] && why="timed out after $LIMIT_S s" || why="exit status $rc"
        echo "  FAILED   README.md:$line ($why, ${dt} s): $run"
        tail -n 20 "$SCRATCH/out" | sed 's/^/           | /'
    fi
done <"$EXAMPLES"

echo "readme examples: $ran run, $passed passed, $failed failed;" \
     "$norun marked not runnable (sh-norun:${norun_lines:- none}), $built build lines not run (make:${build_lines:- none});" \
     "$(( $(date +%s) - t_all )) s"
if [ $ran -eq 0 ]; then
    echo "readme examples: no example found in $README" >&2
    exit 1
fi
if [ $failed -ne 0 ]; then
    echo "readme examples: failed at README.md line(s)$failed_lines" >&2
    exit 1
fi
