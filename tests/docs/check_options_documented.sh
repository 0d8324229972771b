#!/bin/sh
# Every agent option in src/common/ls_options.def must appear in the man page (as ".B name").
set -eu
def=$1
man=$2
missing=0
for opt in $(sed -n 's/^LS_OPT(\([a-z_]*\),.*/\1/p' "$def"); do
    if ! grep -q "^\.B $opt\$" "$man"; then
        echo "option '$opt' is in $def but not documented in $man"
        missing=$((missing + 1))
    fi
done
n=$(grep -c '^LS_OPT(' "$def")
echo "$n options, $missing undocumented"
[ "$missing" -eq 0 ]
