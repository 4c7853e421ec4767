#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every C code block of the guide must be a region of a compiled example.
#   check_doc.sh GUIDE.md EXAMPLES_DIR      check
#   check_doc.sh --print FILE.c TAG         print a region, as the guide
#                                           should quote it
# In the guide, a C block is preceded by a line
#   <!-- example: FILE.c TAG -->
# and must equal the lines between the two `/* [TAG] */` lines of FILE.c,
# less their common leading tabs.
set -euo pipefail

region() { # FILE TAG
	awk -v tag="/* [$2] */" '
		{ line = $0; sub(/^[ \t]+/, "", line) }
		line == tag { inside = !inside; found++; next }
		inside { print }
		END { if (found != 2) exit 3 }' "$1" |
	awk '{ l[NR] = $0; if ($0 != "") { match($0, /^\t*/); if (min == "" || RLENGTH < min) min = RLENGTH } }
	     END { for (i = 1; i <= NR; i++) print substr(l[i], min + 1) }'
}

if [[ ${1:-} == --print ]]; then
	region "$2" "$3"
	exit
fi
guide=$1 dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0 n=0 want="" block=0
while IFS= read -r line; do
	if [[ $block == 1 ]]; then
		if [[ $line == '```' ]]; then
			block=0
			if [[ -z $want ]]; then
				echo "$guide: a C block without an <!-- example: --> line"
				fail=1
				continue
			fi
			read -r f t <<<"$want"
			if ! region "$dir/$f" "$t" >"$tmp/want"; then
				echo "$guide: $f has no region [$t]"
				fail=1
			elif ! diff -u "$tmp/want" "$tmp/got" >"$tmp/diff"; then
				echo "$guide: the block of $f [$t] differs from the example:"
				cat "$tmp/diff"
				fail=1
			fi
			n=$((n + 1))
			want=""
		else
			printf '%s\n' "$line" >>"$tmp/got"
		fi
	elif [[ $line =~ ^\<!--\ example:\ ([^ ]+)\ ([^ ]+)\ --\>$ ]]; then
		want="${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
	elif [[ $line == '```c' ]]; then
		block=1
		: >"$tmp/got"
	fi
done <"$guide"
[[ $block == 0 ]] || { echo "$guide: unterminated code block"; fail=1; }
[[ $n -gt 0 ]] || { echo "$guide: no C blocks found"; fail=1; }
[[ $fail == 0 ]] && echo "$guide: $n C blocks, each a compiled example"
exit $fail
