/* SPDX-License-Identifier: MIT */
/*
 * wasm.h - loader of the data segments of a .wasm module, for ufp-bench.
 *
 * Reads just enough of the binary format to build a memory image: the
 * limits of memory 0 (imported or defined) and the active data segments
 * whose offset is a constant. Everything that cannot become a static image
 * is counted, never guessed: passive segments, `global.get` offsets,
 * segments of other memories, extended-const arithmetic.
 *
 * Invariants of a loaded module:
 *  - every segment's bytes lie inside the parsed buffer (the caller's for
 *    ufpw_parse, m->file for ufpw_load_file): the segments borrow them;
 *  - segs[] keeps the order of the data section, so applying them in order
 *    gives the wasm semantics (later segments overwrite earlier ones);
 *  - struct ufpw_segment has the layout of ufp_segment (tests assert it), so
 *    segs can be passed to ufp_module_create as `(const ufp_segment *)`.
 *
 * Hostile input is expected (the fuzzer feeds it): every count and size is
 * checked against the bytes that remain before it is used, LEB128 is
 * decoded strictly, and nothing is allocated from a declared count.
 *
 * This header needs only libc, so the fuzz target builds without the
 * library or its generated headers.
 */
#ifndef UFP_BENCH_WASM_H
#define UFP_BENCH_WASM_H

#include <stddef.h>
#include <stdint.h>

#define UFPW_PAGE_BYTES 65536ull /* a wasm page */

/* One active data segment: `len` bytes at `offset` of linear memory. Same
 * layout as ufp_segment. */
struct ufpw_segment {
	uint64_t offset;
	const void *bytes;
	uint64_t len;
};

struct ufpw_module {
	/* Memory 0: the first imported memory, else the first defined one. */
	int has_memory;	     /* 0: the module declares no memory at all */
	int imported_memory; /* memory 0 is imported */
	int memory64;	     /* limits flag 0x04 (memory64 proposal) */
	int shared;	     /* limits flag 0x02 (threads proposal) */
	int has_max;
	uint64_t mem_min_pages; /* initial size in 64 KiB pages */
	uint64_t mem_max_pages; /* valid when has_max */
	uint32_t nmemories;	/* imported + defined (multi-memory) */

	size_t nsegs; /* active segments of memory 0 with constant offsets */
	struct ufpw_segment *segs;
	uint32_t ndata; /* entries in the data section, of every kind */

	/* Data section entries not in segs, by reason. */
	size_t skipped_passive;	     /* bulk memory: applied by memory.init */
	size_t skipped_global;	     /* offset reads a global (global.get) */
	size_t skipped_other_memory; /* active, memory index != 0 */
	size_t skipped_unsupported;  /* offset is an extended-const expression
					without global.get (i32.add, ...) */

	const uint8_t *buf; /* the bytes parsed; segs point into them */
	size_t buf_len;
	uint8_t *file; /* owned copy (== buf) from ufpw_load_file, else NULL */
};

/* Figures of ufpw_summary, for callers that want them as numbers. */
struct ufpw_stats {
	uint64_t bytes;		/* sum of the active segments' lengths */
	uint64_t pages_4k;	/* distinct 4 KiB pages touched by a segment */
	uint64_t lowest, end;	/* [lowest, end): span of the non-empty
				  segments; 0, 0 when there are none */
	uint64_t initial_bytes; /* mem_min_pages * 64 KiB, saturated */
};

/*
 * Parse the module in buf[0, len). The segments point into buf, which must
 * outlive *out. Sections are checked for order and duplicates, every size
 * against the bytes that remain; unknown and custom sections are skipped by
 * size. Segment offsets are not checked against the memory size here (see
 * ufpw_check_bounds): a module whose segments exceed its initial memory is
 * well formed, it just traps at instantiation.
 * Returns 0 and *out (release with ufpw_free), or, with *out zeroed, a
 * message in err (always NUL-terminated when errcap > 0; err may be NULL
 * when errcap is 0) and:
 *  -EINVAL  NULL out or NULL buf with len > 0, or malformed input: the
 *           message names the section, the byte offset and what is wrong;
 *  -ENOMEM  out of memory.
 * errno is left untouched. Thread-safe (no shared state).
 */
int ufpw_parse(const uint8_t *buf, size_t len, struct ufpw_module *out,
	       char *err, size_t errcap);

/*
 * Read the whole file at path and parse it; out->file owns the bytes.
 * Returns what ufpw_parse returns, or -errno of open/fstat/read (-EIO when
 * the file shrank while it was read, -EFBIG when it does not fit in
 * memory), with the path in err. errno is left untouched.
 */
int ufpw_load_file(const char *path, struct ufpw_module *out, char *err,
		   size_t errcap);

/* Release what ufpw_parse / ufpw_load_file allocated and zero *m. NULL and
 * a zeroed module are fine; a second call is harmless. */
void ufpw_free(struct ufpw_module *m);

/*
 * Bytes of initial linear memory: mem_min_pages * 64 KiB in *out.
 * Returns 0, -EINVAL (NULL argument), -EOVERFLOW (memory64 modules may
 * declare 2^48 pages, which is 2^64 bytes).
 */
int ufpw_initial_bytes(const struct ufpw_module *m, uint64_t *out);

/*
 * Check that every segment fits in initial memory, [0, initial bytes), as
 * ufp_module_create requires (it rejects the module with -ERANGE).
 * Returns 0, -EINVAL (NULL m), or -ERANGE with the first offending segment
 * (its index in segs and the file offset of its bytes), where it ends and
 * how large the initial memory is in err.
 */
int ufpw_check_bounds(const struct ufpw_module *m, char *err, size_t errcap);

/* Compute the figures of *st. Returns 0, -EINVAL (NULL), -ENOMEM (counting
 * distinct pages sorts a copy of the segment ranges). */
int ufpw_stats(const struct ufpw_module *m, struct ufpw_stats *st);

/*
 * Format one line (no newline) about m, for `ufp-bench wasm`:
 *   NAME: memory 338/32768 pages, 397 active segments, 71319 bytes,
 *   20 4-KiB pages covered, skipped 0 passive, 0 global.get,
 *   0 other-memory, 0 unsupported
 * (one line; "no memory" in place of the limits when there is none,
 * "imported", "memory64", "shared" after them when they apply). name may be NULL. Returns the length needed excluding the
 * NUL, like snprintf (buf may be NULL when cap is 0), or a negative errno
 * from ufpw_stats.
 */
int ufpw_summary(const struct ufpw_module *m, const char *name, char *buf,
		 size_t cap);

#endif
