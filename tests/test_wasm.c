/* SPDX-License-Identifier: MIT */
/*
 * test_wasm.c - the bench's .wasm data-segment loader (bench/wasm.c).
 *
 * Hand-built modules, byte by byte, for every construct the loader reads or
 * skips; malformed inputs that must fail cleanly with -EINVAL; and, when
 * ../shared/wasm is present, the four real modules checked against the
 * figures of /work/shared/wasm/README.md (an independent source: they were
 * not produced by this loader).
 */
/* ufp-test: timeout=120 */
#include <stddef.h>

#include "helpers.h"

/* t_skip calls cr_fatal, which only <criterion/new/assert.h> declares, and
 * that header changes cr_assert. Until helpers.h stops using it, map it to
 * the classic API here. */
#ifndef cr_fatal
#define cr_fatal(...) cr_assert_fail(__VA_ARGS__)
#endif
#include "wasm.h"

/* segs are handed to ufp_module_create as ufp_segment. */
_Static_assert(sizeof(struct ufpw_segment) == sizeof(ufp_segment),
	       "ufpw_segment size");
_Static_assert(offsetof(struct ufpw_segment, offset) ==
		       offsetof(ufp_segment, offset),
	       "ufpw_segment offset");
_Static_assert(offsetof(struct ufpw_segment, bytes) ==
		       offsetof(ufp_segment, bytes),
	       "ufpw_segment bytes");
_Static_assert(offsetof(struct ufpw_segment, len) == offsetof(ufp_segment, len),
	       "ufpw_segment len");

#define HEADER 0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00

/*
 * A module with one of everything the loader handles. Byte ranges:
 * [0,8) header, [8,14) type, [14,44) import (global, function, memory 0
 * min 1 max 4), [44,49) memory (memory 1, min 2), [49,56) custom,
 * [56,59) data count 5, [59,95) data, [95,100) custom.
 */
static const uint8_t full[] = {
	HEADER,
	/* type: 1 type, func () -> () */
	0x01,
	0x04,
	0x01,
	0x60,
	0x00,
	0x00,
	/* import: 3 entries, 28 bytes */
	0x02,
	0x1c,
	0x03,
	0x03,
	'e',
	'n',
	'v',
	0x01,
	'g',
	0x03,
	0x7f,
	0x00, /* global */
	0x03,
	'e',
	'n',
	'v',
	0x01,
	'f',
	0x00,
	0x00, /* func */
	0x03,
	'e',
	'n',
	'v',
	0x01,
	'm',
	0x02,
	0x01,
	0x01,
	0x04, /* memory */
	/* memory: 1 memory (index 1), min 2 */
	0x05,
	0x03,
	0x01,
	0x00,
	0x02,
	/* custom "note" */
	0x00,
	0x05,
	0x04,
	'n',
	'o',
	't',
	'e',
	/* data count */
	0x0c,
	0x01,
	0x05,
	/* data: 5 entries, 34 bytes */
	0x0b,
	0x22,
	0x05,
	0x00,
	0x41,
	0x08,
	0x0b,
	0x03,
	'a',
	'b',
	'c', /* @8 "abc" */
	0x01,
	0x02,
	'p',
	'q', /* passive */
	0x00,
	0x23,
	0x00,
	0x0b,
	0x01,
	'g', /* global.get */
	0x02,
	0x01,
	0x41,
	0x00,
	0x0b,
	0x01,
	'o', /* memory 1 */
	0x00,
	0x41,
	0x80,
	0x02,
	0x0b,
	0x02,
	'x',
	'y', /* @256 "xy" */
	/* custom "hi" */
	0x00,
	0x03,
	0x02,
	'h',
	'i',
};
/* Prefixes of `full` that are complete modules. 59 is not: the data count
 * section promises 5 segments and the data section is missing. */
static const size_t full_boundaries[] = {8, 14, 44, 49, 56, 95, 100};

static char err[512];

static int parse(const uint8_t *buf, size_t len, struct ufpw_module *m)
{
	err[0] = 'X'; /* must be overwritten */
	return ufpw_parse(buf, len, m, err, sizeof(err));
}

/* Parsing must fail with -EINVAL and a message containing `what`. */
static void expect_malformed(const uint8_t *buf, size_t len, const char *what)
{
	struct ufpw_module m;
	int r = parse(buf, len, &m);
	cr_assert_eq(r, -EINVAL, "want -EINVAL, got %d (%s)", r, err);
	cr_assert(strstr(err, what), "message '%s' lacks '%s'", err, what);
	cr_assert_null(m.segs);
	cr_assert_eq(m.nsegs, 0);
}

Test(wasm, full_module)
{
	struct ufpw_module m;
	struct ufpw_stats st;

	cr_assert_eq(sizeof(full), 100);
	cr_assert_eq(parse(full, sizeof(full), &m), 0, "%s", err);
	cr_assert_str_empty(err);
	cr_assert(m.has_memory);
	cr_assert(m.imported_memory);
	cr_assert_eq(m.nmemories, 2);
	cr_assert_eq(m.mem_min_pages, 1);
	cr_assert(m.has_max);
	cr_assert_eq(m.mem_max_pages, 4);
	cr_assert_not(m.memory64);
	cr_assert_not(m.shared);
	cr_assert_eq(m.ndata, 5);
	cr_assert_eq(m.nsegs, 2);
	cr_assert_eq(m.segs[0].offset, 8);
	cr_assert_eq(m.segs[0].len, 3);
	cr_assert_eq(m.segs[0].bytes, full + 67, "segments borrow the buffer");
	cr_assert_eq(memcmp(m.segs[0].bytes, "abc", 3), 0);
	cr_assert_eq(m.segs[1].offset, 256);
	cr_assert_eq(m.segs[1].len, 2);
	cr_assert_eq(memcmp(m.segs[1].bytes, "xy", 2), 0);
	cr_assert_eq(m.skipped_passive, 1);
	cr_assert_eq(m.skipped_global, 1);
	cr_assert_eq(m.skipped_other_memory, 1);
	cr_assert_eq(m.skipped_unsupported, 0);
	cr_assert_eq(m.buf, full);
	cr_assert_eq(m.buf_len, sizeof(full));
	cr_assert_null(m.file);

	cr_assert_eq(ufpw_check_bounds(&m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(ufpw_stats(&m, &st), 0);
	cr_assert_eq(st.bytes, 5);
	cr_assert_eq(st.pages_4k, 1);
	cr_assert_eq(st.lowest, 8);
	cr_assert_eq(st.end, 258);
	cr_assert_eq(st.initial_bytes, 65536);
	ufpw_free(&m);
	cr_assert_null(m.segs);
	ufpw_free(&m); /* harmless twice */
}

/* Memory section with two active segments, the second above 64 KiB. */
static const uint8_t two_active[] = {
	HEADER, 0x05, 0x04, 0x01, 0x01, 0x02, 0x02, /* memory min 2 max 2 */
	0x0b,	0x15, 0x02, 0x00, 0x41, 0x10, 0x0b, 0x05, 'h', 'e',
	'l',	'l',  'o',					  /* @16 */
	0x00,	0x41, 0xf0, 0xa2, 0x04, 0x0b, 0x03, 1,	  2,   3, /* @70000 */
};

Test(wasm, memory_and_two_active_segments)
{
	struct ufpw_module m;
	struct ufpw_stats st;
	uint64_t bytes;

	cr_assert_eq(parse(two_active, sizeof(two_active), &m), 0, "%s", err);
	cr_assert_not(m.imported_memory);
	cr_assert_eq(m.nmemories, 1);
	cr_assert_eq(m.mem_min_pages, 2);
	cr_assert_eq(m.mem_max_pages, 2);
	cr_assert_eq(m.nsegs, 2);
	cr_assert_eq(m.segs[0].offset, 16);
	cr_assert_eq(m.segs[1].offset, 70000);
	cr_assert_eq(m.segs[1].len, 3);
	cr_assert_eq(ufpw_initial_bytes(&m, &bytes), 0);
	cr_assert_eq(bytes, 131072);
	cr_assert_eq(ufpw_check_bounds(&m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(ufpw_stats(&m, &st), 0);
	cr_assert_eq(st.bytes, 8);
	cr_assert_eq(st.pages_4k, 2);

	int n = ufpw_summary(&m, "two.wasm", err, sizeof(err));
	cr_assert_str_eq(err,
			 "two.wasm: memory 2/2 pages, 2 active segments, 8 "
			 "bytes, 2 4-KiB pages covered, skipped 0 passive, 0 "
			 "global.get, 0 other-memory, 0 unsupported");
	cr_assert_eq((size_t)n, strlen(err));
	cr_assert_eq(ufpw_summary(&m, NULL, NULL, 0), n - 10);
	ufpw_free(&m);
}

Test(wasm, imported_memory_with_every_import_kind)
{
	static const uint8_t mod[] = {
		HEADER,
		0x02,
		0x26,
		0x05,
		0x01,
		'a',
		0x01,
		'f',
		0x00,
		0x07, /* func type 7 */
		0x01,
		'a',
		0x01,
		't',
		0x01,
		0x70,
		0x00,
		0x01, /* table */
		0x01,
		'a',
		0x01,
		'g',
		0x03,
		0x64,
		0x70,
		0x01, /* (ref func) */
		0x01,
		'a',
		0x01,
		'x',
		0x04,
		0x00,
		0x00, /* tag */
		/* shared memory min 3 max 9, then a second memory */
		0x01,
		'a',
		0x01,
		'm',
		0x02,
		0x03,
		0x03,
		0x09,
		0x05,
		0x03,
		0x01,
		0x00,
		0x05,
		0x0b,
		0x09,
		0x01,
		0x00,
		0x41,
		0x00,
		0x0b,
		0x03,
		'i',
		'm',
		'p',
	};
	struct ufpw_module m;

	cr_assert_eq(parse(mod, sizeof(mod), &m), 0, "%s", err);
	cr_assert(m.imported_memory);
	cr_assert(m.shared);
	cr_assert_eq(m.nmemories, 2);
	cr_assert_eq(m.mem_min_pages, 3);
	cr_assert_eq(m.mem_max_pages, 9);
	cr_assert_eq(m.nsegs, 1);
	cr_assert_eq(memcmp(m.segs[0].bytes, "imp", 3), 0);
	ufpw_summary(&m, NULL, err, sizeof(err));
	cr_assert(strstr(err, "memory 3/9 pages imported shared,"), "%s", err);
	ufpw_free(&m);
}

Test(wasm, memory64_i64_const)
{
	static const uint8_t mod[] = {
		HEADER,
		0x05,
		0x03,
		0x01,
		0x04,
		0x03, /* memory64, min 3 */
		0x0b,
		0x14,
		0x02,
		/* @131072 "m64!" */
		0x00,
		0x42,
		0x80,
		0x80,
		0x08,
		0x0b,
		0x04,
		'm',
		'6',
		'4',
		'!',
		/* explicit memory 0, @5 "xy" */
		0x02,
		0x00,
		0x42,
		0x05,
		0x0b,
		0x02,
		'x',
		'y',
	};
	struct ufpw_module m;

	cr_assert_eq(parse(mod, sizeof(mod), &m), 0, "%s", err);
	cr_assert(m.memory64);
	cr_assert_not(m.has_max);
	cr_assert_eq(m.mem_min_pages, 3);
	cr_assert_eq(m.nsegs, 2);
	cr_assert_eq(m.segs[0].offset, 131072);
	cr_assert_eq(m.segs[1].offset, 5);
	cr_assert_eq(ufpw_check_bounds(&m, err, sizeof(err)), 0, "%s", err);
	ufpw_free(&m);
}

Test(wasm, memory64_of_2_pow_48_pages_overflows_bytes)
{
	/* min = 2^48 pages: the largest memory64 allowed, 2^64 bytes. */
	static const uint8_t mod[] = {
		HEADER, 0x05, 0x09, 0x01, 0x04, 0x80,
		0x80,	0x80, 0x80, 0x80, 0x80, 0x40,
	};
	struct ufpw_module m;
	uint64_t bytes = 7;

	cr_assert_eq(parse(mod, sizeof(mod), &m), 0, "%s", err);
	cr_assert_eq(m.mem_min_pages, 1ull << 48);
	cr_assert_eq(ufpw_initial_bytes(&m, &bytes), -EOVERFLOW);
	cr_assert_eq(bytes, 7);
	cr_assert_eq(ufpw_check_bounds(&m, err, sizeof(err)), 0);
	ufpw_free(&m);
}

Test(wasm, passive_global_get_and_unsupported_are_counted)
{
	static const uint8_t mod[] = {
		HEADER, 0x05, 0x03, 0x01, 0x00, 0x00, /* min 0 */
		0x0b, 0x20, 0x05, 0x01, 0x00,	      /* empty passive */
		0x00, 0x23, 0x02, 0x0b, 0x01, 'g',    /* global.get 2 */
		/* i32.const 1 i32.const 2 i32.add: extended const */
		0x00, 0x41, 0x01, 0x41, 0x02, 0x6a, 0x0b, 0x01, 'e',
		/* global.get 0 i32.const 4 i32.add */
		0x00, 0x23, 0x00, 0x41, 0x04, 0x6a, 0x0b, 0x01, 'G', 0x00, 0x41,
		0x00, 0x0b, 0x00, /* @0, empty */
	};
	struct ufpw_module m;

	cr_assert_eq(parse(mod, sizeof(mod), &m), 0, "%s", err);
	cr_assert_eq(m.ndata, 5);
	cr_assert_eq(m.skipped_passive, 1);
	cr_assert_eq(m.skipped_global, 2);
	cr_assert_eq(m.skipped_unsupported, 1);
	cr_assert_eq(m.nsegs, 1);
	cr_assert_eq(m.segs[0].len, 0);
	/* An empty segment at 0 fits even a memory of 0 pages. */
	cr_assert_eq(ufpw_check_bounds(&m, err, sizeof(err)), 0, "%s", err);
	ufpw_free(&m);
}

Test(wasm, header_only_is_an_empty_module)
{
	static const uint8_t mod[] = {HEADER};
	struct ufpw_module m;
	struct ufpw_stats st;

	cr_assert_eq(parse(mod, sizeof(mod), &m), 0, "%s", err);
	cr_assert_not(m.has_memory);
	cr_assert_eq(m.nsegs, 0);
	cr_assert_eq(ufpw_stats(&m, &st), 0);
	cr_assert_eq(st.bytes + st.pages_4k + st.lowest + st.end, 0);
	ufpw_summary(&m, "e", err, sizeof(err));
	cr_assert(strstr(err, "e: no memory, 0 active segments"), "%s", err);
	ufpw_free(&m);
}

Test(wasm, every_truncation_fails_cleanly)
{
	for (size_t len = 0; len <= sizeof(full); len++) {
		struct ufpw_module m;
		int whole = 0;
		/* A copy of exactly len bytes, so ASan sees any overread. */
		uint8_t *p = malloc(len ? len : 1);
		cr_assert_not_null(p);
		memcpy(p, full, len);
		for (size_t i = 0; i < sizeof(full_boundaries) / sizeof(size_t);
		     i++)
			whole |= full_boundaries[i] == len;
		int r = parse(p, len, &m);
		if (whole) {
			cr_assert_eq(r, 0, "prefix %zu: %s", len, err);
			ufpw_free(&m);
		} else {
			cr_assert_eq(r, -EINVAL, "prefix %zu: %d", len, r);
			cr_assert(err[0] && err[0] != 'X', "prefix %zu", len);
		}
		free(p);
	}
}

Test(wasm, bad_magic_and_version)
{
	static const uint8_t magic[] = {0x00, 0x61, 0x73, 0x6e, 1, 0, 0, 0};
	static const uint8_t version[] = {0x00, 0x61, 0x73, 0x6d, 2, 0, 0, 0};
	/* A component (layer 1) starts like a module of version 0x1000d. */
	static const uint8_t component[] = {0x00, 0x61, 0x73, 0x6d,
					    0x0d, 0x00, 0x01, 0x00};
	expect_malformed(magic, sizeof(magic), "magic");
	expect_malformed(version, sizeof(version), "only version 1");
	expect_malformed(component, sizeof(component), "only version 1");
	expect_malformed(magic, 3, "too short");
	expect_malformed(NULL, 0, "too short");
}

Test(wasm, leb128_overlong_and_overflowing)
{
	/* Section size in 6 bytes. */
	static const uint8_t six[] = {HEADER, 0x00, 0x80, 0x80,
				      0x80,   0x80, 0x80, 0x00};
	/* 5 bytes whose last carries bits above 2^32. */
	static const uint8_t big[] = {HEADER, 0x00, 0xff, 0xff,
				      0xff,   0xff, 0x1f};
	/* i32.const whose 5th byte does not sign-extend bit 31. */
	static const uint8_t s32[] = {
		HEADER, 0x05, 0x03, 0x01, 0x00, 0x00, 0x0b, 0x0a, 0x01,
		0x00,	0x41, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x0b, 0x00,
	};
	/* i64.const whose 10th byte is 0x01: sign bit set, padding clear. */
	static const uint8_t s64[] = {
		HEADER, 0x05, 0x03, 0x01, 0x04, 0x00, 0x0b, 0x0f,
		0x01,	0x00, 0x42, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff,	0xff, 0xff, 0xff, 0x01, 0x0b, 0x00,
	};
	/* Cut off in the middle of a LEB128. */
	static const uint8_t cut[] = {HEADER, 0x0b, 0xff, 0xff};

	expect_malformed(six, sizeof(six), "longer than 5 bytes");
	expect_malformed(big, sizeof(big), "overflows 32 bits");
	expect_malformed(s32, sizeof(s32), "overflows 32 bits");
	expect_malformed(s64, sizeof(s64), "overflows 64 bits");
	expect_malformed(cut, sizeof(cut), "cut off");
}

Test(wasm, leb128_longest_valid_forms_are_accepted)
{
	/* Custom section whose size 4 is padded to 5 bytes; memory min 65536;
	 * i32.const -1 in 5 bytes (offset 0xffffffff). */
	static const uint8_t mod[] = {
		HEADER, 0x00, 0x84, 0x80, 0x80, 0x80, 0x00, 0x03,
		'a',	'b',  'c',  0x05, 0x05, 0x01, 0x00, 0x80,
		0x80,	0x04, 0x0b, 0x0b, 0x01, 0x00, 0x41, 0xff,
		0xff,	0xff, 0xff, 0x7f, 0x0b, 0x01, 0xee,
	};
	struct ufpw_module m;

	cr_assert_eq(parse(mod, sizeof(mod), &m), 0, "%s", err);
	cr_assert_eq(m.mem_min_pages, 65536);
	cr_assert_eq(m.nsegs, 1);
	cr_assert_eq(m.segs[0].offset, 0xffffffffull);
	/* The last byte of a 4 GiB memory. */
	cr_assert_eq(ufpw_check_bounds(&m, err, sizeof(err)), 0, "%s", err);
	ufpw_free(&m);
}

Test(wasm, section_size_past_end)
{
	static const uint8_t mod[] = {HEADER, 0x05, 0x10, 0x01, 0x00, 0x01};
	expect_malformed(mod, sizeof(mod),
			 "section 5 at byte 8: size 16 runs past the end of "
			 "the file (3 bytes left)");
}

Test(wasm, huge_segment_count_is_rejected_before_allocating)
{
	static const uint8_t mod[] = {
		HEADER, 0x05, 0x03, 0x01, 0x00, 0x00, 0x0b, 0x07,
		0xff,	0xff, 0xff, 0xff, 0x0f, 0x01, 0x00,
	};
	expect_malformed(
		mod, sizeof(mod),
		"4294967295 data segments cannot fit in the 2 bytes left");
}

Test(wasm, segment_length_past_end)
{
	static const uint8_t mod[] =
		{
			HEADER, 0x05, 0x03, 0x01, 0x00, 0x00,
			0x0b,	0x0a, 0x01, 0x00, 0x41, 0x00,
			0x0b,	0x9f, 0x8d, 0x06, 'a',	'b', /* length 99999 */
		};
	expect_malformed(
		mod, sizeof(mod),
		"section 11 at byte 13: segment 0 length 99999 at byte 16 runs "
		"past the end of the section (2 bytes left)");
}

Test(wasm, sections_out_of_order_or_repeated)
{
	static const uint8_t twice[] = {HEADER, 0x05, 0x01, 0x00,
					0x05,	0x01, 0x00};
	static const uint8_t order[] = {HEADER, 0x0b, 0x01, 0x00,
					0x05,	0x01, 0x00};
	/* Custom and unknown ids are skipped wherever they are. */
	static const uint8_t custom[] = {HEADER, 0x05, 0x01, 0x00, 0x00, 0x01,
					 0x00,	 0x2a, 0x00, 0x0b, 0x01, 0x00};
	struct ufpw_module m;

	expect_malformed(twice, sizeof(twice),
			 "section 5 at byte 11: out of order or repeated");
	expect_malformed(order, sizeof(order),
			 "section 5 at byte 11: out of order");
	cr_assert_eq(parse(custom, sizeof(custom), &m), 0, "%s", err);
	ufpw_free(&m);
}

Test(wasm, section_contents_shorter_than_size)
{
	/* Memory section of size 4 holding 3 bytes of entries. */
	static const uint8_t mod[] = {HEADER, 0x05, 0x04, 0x01,
				      0x00,   0x01, 0x00};
	expect_malformed(
		mod, sizeof(mod),
		"size 4 but the contents end at byte 13, 1 bytes early");
}

Test(wasm, data_count_mismatch)
{
	static const uint8_t mod[] = {HEADER, 0x05, 0x03, 0x01, 0x00,
				      0x00,   0x0c, 0x01, 0x02, 0x0b,
				      0x03,   0x01, 0x01, 0x00};
	expect_malformed(
		mod, sizeof(mod),
		"data count section says 2 segments, the data section has 1");
}

Test(wasm, malformed_entries)
{
	static const uint8_t flags[] = {HEADER, 0x0b, 0x03, 0x01, 0x03, 0x00};
	static const uint8_t opcode[] = {HEADER, 0x0b, 0x05, 0x01,
					 0x00,	 0x20, 0x00, 0x0b};
	static const uint8_t empty_expr[] = {HEADER, 0x0b, 0x04, 0x01,
					     0x00,   0x0b, 0x00};
	static const uint8_t import_kind[] = {HEADER, 0x02, 0x06, 0x01, 0x01,
					      'a',    0x01, 'b',  0x05};
	static const uint8_t limits[] = {HEADER, 0x05, 0x03, 0x01, 0x08, 0x00};
	static const uint8_t max_below_min[] = {HEADER, 0x05, 0x04, 0x01,
						0x01,	0x02, 0x01};
	static const uint8_t too_many_pages[] = {HEADER, 0x05, 0x05, 0x01,
						 0x00,	 0x81, 0x80, 0x04};
	static const uint8_t shared_no_max[] = {HEADER, 0x05, 0x03,
						0x01,	0x02, 0x00};

	expect_malformed(flags, sizeof(flags), "unknown flags 3");
	expect_malformed(opcode, sizeof(opcode), "opcode 0x20");
	expect_malformed(empty_expr, sizeof(empty_expr), "is empty");
	expect_malformed(import_kind, sizeof(import_kind), "unknown kind 0x05");
	expect_malformed(limits, sizeof(limits), "limits flags 0x08");
	expect_malformed(max_below_min, sizeof(max_below_min), "below minimum");
	expect_malformed(too_many_pages, sizeof(too_many_pages),
			 "exceed 65536 pages");
	expect_malformed(shared_no_max, sizeof(shared_no_max), "no maximum");
}

Test(wasm, segment_past_initial_memory_is_erange)
{
	static const uint8_t mod[] = {
		HEADER, 0x05, 0x03, 0x01, 0x00, 0x01, /* 1 page */
		0x0b,	0x12, 0x01, 0x00, 0x41, 0xfa, 0xff, 0x03, 0x0b, 0x0a,
		'0',	'1',  '2',  '3',  '4',	'5',  '6',  '7',  '8',	'9',
	};
	static const uint8_t nomem[] = {HEADER, 0x0b, 0x07, 0x01, 0x00,
					0x41,	0x00, 0x0b, 0x01, 'z'};
	struct ufpw_module m;

	cr_assert_eq(parse(mod, sizeof(mod), &m), 0, "%s", err);
	cr_assert_eq(m.segs[0].offset, 65530);
	cr_assert_eq(ufpw_check_bounds(&m, err, sizeof(err)), -ERANGE);
	cr_assert_str_eq(err,
			 "segment 0 (bytes at file offset 23): [65530, 65540) "
			 "is past the initial memory of 65536 bytes (1 pages)");
	cr_assert_eq(ufpw_check_bounds(&m, NULL, 0), -ERANGE);
	ufpw_free(&m);

	cr_assert_eq(parse(nomem, sizeof(nomem), &m), 0, "%s", err);
	cr_assert_eq(ufpw_check_bounds(&m, err, sizeof(err)), -ERANGE);
	cr_assert(strstr(err, "the module has no memory"), "%s", err);
	ufpw_free(&m);
}

Test(wasm, segment_end_overflowing_64_bits_is_erange)
{
	/* memory64 of 1 page, segment at i64.const -1 of 2 bytes. */
	static const uint8_t mod[] = {HEADER, 0x05, 0x03, 0x01, 0x04, 0x01,
				      0x0b,   0x08, 0x01, 0x00, 0x42, 0x7f,
				      0x0b,   0x02, 'o',  'v'};
	struct ufpw_module m;
	struct ufpw_stats st;

	cr_assert_eq(parse(mod, sizeof(mod), &m), 0, "%s", err);
	cr_assert_eq(m.segs[0].offset, UINT64_MAX);
	cr_assert_eq(ufpw_check_bounds(&m, err, sizeof(err)), -ERANGE);
	cr_assert(strstr(err, "overflows 64 bits"), "%s", err);
	cr_assert_eq(ufpw_stats(&m, &st), 0);
	cr_assert_eq(st.end, UINT64_MAX);
	ufpw_free(&m);
}

Test(wasm, message_fits_small_buffers_and_null)
{
	static const uint8_t mod[] = {HEADER, 0x05, 0x10};
	struct ufpw_module m;
	char small[8];

	cr_assert_eq(ufpw_parse(mod, sizeof(mod), &m, small, sizeof(small)),
		     -EINVAL);
	cr_assert_eq(strlen(small), sizeof(small) - 1);
	cr_assert_eq(ufpw_parse(mod, sizeof(mod), &m, NULL, 0), -EINVAL);
	cr_assert_eq(ufpw_parse(mod, sizeof(mod), NULL, err, sizeof(err)),
		     -EINVAL);
	cr_assert_eq(ufpw_parse(NULL, 4, &m, err, sizeof(err)), -EINVAL);
	errno = 1234;
	cr_assert_eq(ufpw_parse(mod, sizeof(mod), &m, err, sizeof(err)),
		     -EINVAL);
	cr_assert_eq(errno, 1234, "errno untouched");
}

Test(wasm, load_file)
{
	char path[] = "/tmp/ufp-test-wasm-XXXXXX";
	struct ufpw_module m;
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, full, sizeof(full)), (ssize_t)sizeof(full));
	close(fd);
	cr_assert_eq(ufpw_load_file(path, &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(m.file);
	cr_assert_eq(m.buf, m.file);
	cr_assert_eq(m.nsegs, 2);
	cr_assert_eq(memcmp(m.segs[1].bytes, "xy", 2), 0);
	ufpw_free(&m);

	/* Malformed: the parser's message, prefixed with the path. */
	fd = open(path, O_WRONLY | O_TRUNC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, full, 52), 52);
	close(fd);
	cr_assert_eq(ufpw_load_file(path, &m, err, sizeof(err)), -EINVAL);
	cr_assert_eq(strncmp(err, path, strlen(path)), 0, "%s", err);
	cr_assert(strstr(err, ": section 0 at byte 49: size 5 runs past the "
			      "end of the file (1 bytes left)"),
		  "%s", err);
	unlink(path);

	errno = 77;
	cr_assert_eq(ufpw_load_file(path, &m, err, sizeof(err)), -ENOENT);
	cr_assert_eq(errno, 77);
	cr_assert(strstr(err, "No such file"), "%s", err);
	cr_assert_eq(ufpw_load_file("/tmp", &m, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "not a regular file"), "%s", err);
}

/*
 * Random damage to a valid module: flipped bytes, inserted and removed
 * ones. Whatever comes out, the parser returns 0 or -EINVAL and successful
 * results only point inside the buffer. A cheap complement of the fuzzer
 * that runs with every test run; not a benchmark.
 */
Test(wasm, random_damage_never_crashes)
{
	uint64_t seed = 0x5eed;
	uint8_t buf[sizeof(full) + 8];

	for (int iter = 0; iter < 20000; iter++) {
		size_t len = sizeof(full);
		memcpy(buf, full, len);
		for (int k = 1 + (int)(t_rand(&seed) % 4); k > 0; k--) {
			size_t at = (size_t)(t_rand(&seed) % len);
			switch (t_rand(&seed) % 3) {
			case 0:
				buf[at] = (uint8_t)t_rand(&seed);
				break;
			case 1:
				if (len < sizeof(buf)) {
					memmove(buf + at + 1, buf + at,
						len - at);
					buf[at] = (uint8_t)t_rand(&seed);
					len++;
				}
				break;
			default:
				memmove(buf + at, buf + at + 1, len - at - 1);
				len--;
			}
		}
		uint8_t *p = malloc(len);
		memcpy(p, buf, len);
		struct ufpw_module m;
		int r = parse(p, len, &m);
		cr_assert(r == 0 || r == -EINVAL, "iter %d: %d", iter, r);
		for (size_t i = 0; !r && i < m.nsegs; i++) {
			const uint8_t *b = m.segs[i].bytes;
			cr_assert(b >= p && m.segs[i].len <=
						    (uint64_t)(p + len - b),
				  "iter %d: segment %zu outside the buffer",
				  iter, i);
		}
		ufpw_free(&m);
		free(p);
	}
}

/* One row of the table in /work/shared/wasm/README.md. */
struct real {
	const char *file;
	uint64_t min_pages, max_pages; /* max 0: none */
	size_t active;
	uint64_t bytes, pages_4k;
};

static void check_real(const struct real *want)
{
	char path[4096], line[512];
	struct ufpw_module m;
	struct ufpw_stats st;

	if (!t_shared_wasm(want->file, path, sizeof(path)))
		t_skip("../shared/wasm/%s is absent", want->file);
	cr_assert_eq(ufpw_load_file(path, &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(m.mem_min_pages, want->min_pages, "%s", want->file);
	cr_assert_eq(m.has_max, want->max_pages != 0, "%s", want->file);
	cr_assert_eq(m.mem_max_pages, want->max_pages, "%s", want->file);
	cr_assert_eq(m.nsegs, want->active, "%s", want->file);
	cr_assert_eq(m.skipped_passive + m.skipped_global +
			     m.skipped_other_memory + m.skipped_unsupported,
		     0, "%s: README says all offsets are i32.const",
		     want->file);
	cr_assert_eq(ufpw_stats(&m, &st), 0);
	cr_assert_eq(st.bytes, want->bytes, "%s", want->file);
	cr_assert_eq(st.pages_4k, want->pages_4k, "%s", want->file);
	cr_assert_eq(ufpw_check_bounds(&m, err, sizeof(err)), 0, "%s", err);
	cr_assert_gt(ufpw_summary(&m, want->file, line, sizeof(line)), 0);
	cr_log_info("%s", line);
	ufpw_free(&m);
}

Test(wasm_shared, sqljs)
{
	check_real(&(struct real){"sqljs-1.16.0.wasm", 338, 32768, 397, 71319,
				  20});
}

Test(wasm_shared, quickjs)
{
	check_real(&(struct real){"quickjs-0.32.0.wasm", 256, 32768, 93, 84533,
				  22});
}

Test(wasm_shared, brotli)
{
	check_real(&(struct real){"brotli-wasm-3.0.1.wasm", 28, 0, 4978, 642430,
				  177});
}

Test(wasm_shared, esbuild)
{
	check_real(&(struct real){"esbuild-0.28.2.wasm", 95, 0, 98450, 3162464,
				  1204});
}
