#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The shape docs/design.md §2 promises, checked on the tree and on the
# compiled objects (ctest: layering):
#  1. no circle of calls between files of lib/ and uffd/ (from the objects'
#     symbols: what each file defines, what it calls; tsort finds a loop);
#     and only uffd/fill.c installs pages (UFFDIO_COPY, CONTINUE, ZEROPAGE);
#  2. only lib/slot.c sees the fields of a slot (struct ufpi_slot, in
#     slot_impl.h) and writes them;
#  3. no function in lib/ or uffd/ over 60 lines.
# Usage: layering.sh SOURCE_DIR OBJECT_DIR (the ufp_objects directory).
set -euo pipefail
src=$1
obj=$2
fail=0

# 1. file -> file edges from defined and undefined symbols
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
declare -A owner
for o in "$obj"/lib/*.c.o "$obj"/uffd/*.c.o; do
	f=${o#"$obj"/}
	f=${f%.o}
	while read -r sym; do
		owner[$sym]=$f
	done < <(nm --defined-only -g "$o" | awk '$2 ~ /[TDBR]/ {print $3}')
done
for o in "$obj"/lib/*.c.o "$obj"/uffd/*.c.o; do
	f=${o#"$obj"/}
	f=${f%.o}
	while read -r sym; do
		to=${owner[$sym]:-}
		if [ -n "$to" ] && [ "$to" != "$f" ]; then
			echo "$f $to" >>"$edges"
		fi
	done < <(nm -u "$o" | awk '{print $2}')
done
if [ ! -s "$edges" ]; then
	echo "layering: no calls between files found in $obj" >&2
	exit 1
fi
if ! sort -u "$edges" | tsort >/dev/null 2>"$edges.loop"; then
	echo "layering: a circle of calls between files:" >&2
	cat "$edges.loop" >&2
	fail=1
fi
rm -f "$edges.loop"

# 1b. one page-source seam: only uffd/fill.c installs pages
for o in "$obj"/lib/*.c.o "$obj"/uffd/*.c.o; do
	case $o in */uffd/fill.c.o) continue ;; esac
	if nm -u "$o" | grep -qE ' ufpi_uffd_(copy|continue|zeropage)$'; then
		echo "layering: ${o#"$obj"/} installs pages itself (uffd/fill.c is the one place)" >&2
		fail=1
	fi
done

# 2. a slot's fields: only lib/slot.c includes their header (the compiler
#    then stops any other file), no library file includes internal.h (the
#    tests' header of everything); and, as a second net, no write to a
#    pointer or element named slot (the code's one name for a struct
#    ufpi_slot) outside lib/slot.c
if grep -lE '#include "(slot_impl|internal)\.h"' "$src"/lib/*.c "$src"/uffd/*.c \
	"$src"/lib/*.h "$src"/uffd/*.h | grep -vE '/lib/(slot\.c|internal\.h)$'; then
	echo "layering: slot_impl.h or internal.h included above (slot.c alone may)" >&2
	fail=1
fi
if grep -l '#include "internal\.h"' "$src"/lib/slot.c; then
	echo "layering: slot.c includes internal.h" >&2
	fail=1
fi
if grep -nE '\bslot(\[[^]]*\])?(->|\.)[a-z_]+ *(=[^=]|\+\+|--|[-+|&^]=)' \
	"$src"/lib/*.c "$src"/uffd/*.c | grep -v '^[^:]*/lib/slot\.c:'; then
	echo "layering: slot fields written outside lib/slot.c (above)" >&2
	fail=1
fi

# 3. function length: a definition starts at column 0 with a name and '(',
#    not a prototype, and ends at the first column-0 '}'
long=$(for f in "$src"/lib/*.c "$src"/uffd/*.c; do
	awk -v F="${f#"$src"/}" '
		/^[a-z].*\(/ && !/;$/ { name = $0; start = NR }
		/^}/ && start { if (NR - start + 1 > 60)
			print F ": " NR - start + 1 " lines: " name; start = 0 }' "$f"
done)
if [ -n "$long" ]; then
	echo "layering: functions over 60 lines:" >&2
	echo "$long" >&2
	fail=1
fi
[ $fail = 0 ] && echo "layering: no circle, pages installed by fill.c alone, slot fields seen by slot.c alone, no function over 60 lines"
exit $fail
