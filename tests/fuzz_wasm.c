/* SPDX-License-Identifier: MIT */
/*
 * fuzz_wasm.c - libFuzzer target of the bench's .wasm loader.
 *
 * Every input goes through ufpw_parse and, when it parses, through every
 * helper that walks the result. Beyond what ASan and UBSan catch, the
 * target traps when the loader breaks a promise of wasm.h: a result other
 * than 0 or -EINVAL, a missing error message, a segment pointing outside
 * the input, counts that do not add up.
 * Built and run by tests/fuzz_wasm.sh (not by CMake: it needs clang).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wasm.h"

#define check(cond)                       \
	do {                              \
		if (!(cond))              \
			__builtin_trap(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ufpw_module m;
	struct ufpw_stats st;
	char err[256], line[512];
	uint64_t bytes = 0, initial;

	err[0] = 'X';
	int r = ufpw_parse(data, size, &m, err, sizeof(err));
	if (r) {
		check(r == -EINVAL);
		check(err[0] && err[0] != 'X' && memchr(err, 0, sizeof(err)));
		check(m.nsegs == 0 && m.segs == NULL);
		return 0;
	}
	check(m.buf == data && m.buf_len == size && m.file == NULL);
	check(m.nsegs + m.skipped_passive + m.skipped_global +
		      m.skipped_other_memory + m.skipped_unsupported ==
	      m.ndata);
	check(!m.has_memory == !m.nmemories);
	for (size_t i = 0; i < m.nsegs; i++) {
		const uint8_t *b = m.segs[i].bytes;
		check(b >= data && b <= data + size);
		check(m.segs[i].len <= (uint64_t)(data + size - b));
		bytes += m.segs[i].len;
	}
	r = ufpw_initial_bytes(&m, &initial);
	check(r == 0 || (r == -EOVERFLOW && m.memory64));
	r = ufpw_check_bounds(&m, err, sizeof(err));
	check(r == 0 || (r == -ERANGE && err[0]));
	r = ufpw_stats(&m, &st);
	check(r == 0 || r == -ENOMEM);
	if (!r) {
		check(st.bytes == bytes);
		check(st.lowest <= st.end);
		/* Each page counted holds a byte of some segment. */
		check(st.pages_4k <= bytes);
	}
	r = ufpw_summary(&m, "fuzz", line, sizeof(line));
	check(r < 0 || (size_t)r == strlen(line) || (size_t)r >= sizeof(line));
	ufpw_free(&m);
	return 0;
}
