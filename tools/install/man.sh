#!/usr/bin/env bash
# Writes unmask(1) to stdout from the program's own help: the command list,
# then each command's --help, so the page says what the program does.
#   tools/install/man.sh BUILD/unmask
set -euo pipefail
bin=$1
version=$("$bin" --version | sed 's/^unmask //')
esc() { sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\\&'/"; }
echo ".TH UNMASK 1 \"\" \"unmask $version\" \"User Commands\""
echo ".SH NAME"
echo "unmask \\- inference for masked diffusion language models"
echo ".SH SYNOPSIS"
echo ".B unmask"
echo "\\fICOMMAND\\fR [\\fIoptions\\fR]"
echo ".SH DESCRIPTION"
echo ".nf"
"$bin" --help | esc
echo ".fi"
for cmd in $("$bin" --help | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p'); do
    echo ".SH \"unmask $cmd\""
    echo ".nf"
    "$bin" "$cmd" --help | esc
    echo ".fi"
done
echo ".SH SEE ALSO"
echo "The README and docs/ of the unmask sources."
