/* SPDX-License-Identifier: MIT */
/*
 * wasm.c - loader of the data segments of a .wasm module (see wasm.h).
 *
 * A cursor walks the buffer with a hard limit: the end of the file, or of
 * the section being read. Every read checks the limit first, so a size or
 * count from the file is only ever compared with bytes that exist, never
 * trusted. Errors are reported once, by the innermost reader, with the
 * section and the byte offset; callers just propagate the return code.
 *
 * Binary format: WebAssembly Core Specification 2.0, chapter 5, plus the
 * memory64, threads (shared limits), multi-memory, exception-handling
 * (tag section and imports) and extended-const proposals as far as they
 * change how the sections we read are laid out.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* the fuzz script builds this file outside CMake */
#endif
#include "wasm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
	SEC_CUSTOM = 0,
	SEC_IMPORT = 2,
	SEC_MEMORY = 5,
	SEC_DATA = 11,
	SEC_DATACOUNT = 12,
	SEC_TAG = 13,
};

enum {
	OP_END = 0x0b,
	OP_GLOBAL_GET = 0x23,
	OP_I32_CONST = 0x41,
	OP_I64_CONST = 0x42,
};

/* wasm32 memories are at most 2^16 pages (4 GiB); memory64 ones 2^48. */
#define MAX_PAGES_32 65536ull
#define MAX_PAGES_64 (1ull << 48)

struct cursor {
	const uint8_t *buf;
	size_t pos;
	size_t end;	/* current limit: end of file or of the section */
	size_t len;	/* end of file */
	int sec;	/* id of the section being read, -1 outside */
	int in_body;	/* end is the end of the section contents */
	size_t sec_pos; /* byte offset of that section's id */
	char *err;
	size_t errcap;
};

__attribute__((format(printf, 2, 3))) static int fail(struct cursor *c,
						      const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (!c->err || !c->errcap)
		return -EINVAL;
	if (c->sec >= 0)
		n = snprintf(c->err, c->errcap,
			     "section %d at byte %zu: ", c->sec, c->sec_pos);
	if (n < 0 || (size_t)n >= c->errcap)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errcap - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* What lies past the current limit, for "runs past the end of ..." */
static const char *limit_name(const struct cursor *c)
{
	return c->in_body ? "the section" : "the file";
}

static int need(struct cursor *c, size_t n, const char *what)
{
	if (n <= c->end - c->pos)
		return 0;
	return fail(
		c,
		"%s at byte %zu needs %zu bytes, %zu left before the end of %s",
		what, c->pos, n, c->end - c->pos, limit_name(c));
}

static int byte(struct cursor *c, uint8_t *out, const char *what)
{
	int r = need(c, 1, what);
	if (r)
		return r;
	*out = c->buf[c->pos++];
	return 0;
}

/*
 * LEB128 as the spec wants it: at most ceil(bits / 7) bytes, and the unused
 * high bits of the last byte must be zero (unsigned) or copies of the sign
 * bit (signed). Anything else is malformed, not merely "long": engines
 * reject it too, so accepting it here would build images of invalid
 * modules.
 */
static int leb(struct cursor *c, unsigned bits, int is_signed, uint64_t *out,
	       const char *what)
{
	const unsigned maxbytes = (bits + 6) / 7;
	size_t start = c->pos;
	uint64_t v = 0;
	unsigned shift = 0;

	for (unsigned i = 0;; i++, shift += 7) {
		if (c->pos >= c->end)
			return fail(c,
				    "%s (LEB128) at byte %zu is cut off by the "
				    "end of %s",
				    what, start, limit_name(c));
		uint8_t b = c->buf[c->pos++];
		v |= (uint64_t)(b & 0x7f) << shift;
		if (i + 1 < maxbytes) {
			if (b & 0x80)
				continue;
			if (is_signed && (b & 0x40))
				v |= ~0ull << (shift + 7);
			break;
		}
		/* Last byte allowed: r payload bits, the rest must be
		 * padding. */
		unsigned r = bits - shift;
		uint8_t pad = (uint8_t)(0x7f & ~((1u << r) - 1));
		if (b & 0x80)
			return fail(c,
				    "%s (LEB128) at byte %zu is longer than %u "
				    "bytes",
				    what, start, maxbytes);
		if (!is_signed && (b & pad))
			return fail(c,
				    "%s (LEB128) at byte %zu overflows %u bits",
				    what, start, bits);
		if (is_signed) {
			uint8_t want = (b & (1u << (r - 1))) ? pad : 0;
			if ((b & pad) != want)
				return fail(c,
					    "%s (signed LEB128) at byte %zu "
					    "overflows %u bits",
					    what, start, bits);
			if (want && shift + 7 < 64)
				v |= ~0ull << (shift + 7);
		}
		break;
	}
	*out = v;
	return 0;
}

static int u32(struct cursor *c, uint32_t *out, const char *what)
{
	uint64_t v = 0;
	int r = leb(c, 32, 0, &v, what);
	if (!r)
		*out = (uint32_t)v;
	return r;
}

/* Skip a vec(byte), a name in the import section. */
static int skip_name(struct cursor *c, const char *what)
{
	uint32_t n;
	int r = u32(c, &n, what);
	if (r)
		return r;
	if ((r = need(c, n, what)))
		return r;
	c->pos += n;
	return 0;
}

struct limits {
	int has_max, shared, is64;
	uint64_t min, max;
};

/* Limits of a memory (and of a table: same flags, no shared tables). */
static int limits(struct cursor *c, struct limits *l, int memory)
{
	uint8_t flags;
	int r = byte(c, &flags, "limits flags");
	if (r)
		return r;
	if (flags & ~0x07u)
		return fail(c,
			    "limits flags 0x%02x at byte %zu: only 0x00-0x07 "
			    "are known (custom page sizes are not supported)",
			    flags, c->pos - 1);
	l->has_max = flags & 0x01;
	l->shared = !!(flags & 0x02);
	l->is64 = !!(flags & 0x04);
	if (l->shared && !memory)
		return fail(c, "table limits at byte %zu are marked shared",
			    c->pos - 1);
	if (l->shared && !l->has_max)
		return fail(c, "shared memory at byte %zu has no maximum",
			    c->pos - 1);
	unsigned bits = l->is64 ? 64 : 32;
	if ((r = leb(c, bits, 0, &l->min, "limits minimum")))
		return r;
	l->max = 0;
	if (l->has_max && (r = leb(c, bits, 0, &l->max, "limits maximum")))
		return r;
	if (l->has_max && l->max < l->min)
		return fail(c,
			    "limits at byte %zu: maximum %" PRIu64
			    " is below minimum %" PRIu64,
			    c->pos, l->max, l->min);
	uint64_t cap = l->is64 ? MAX_PAGES_64 : MAX_PAGES_32;
	if (memory && (l->min > cap || (l->has_max && l->max > cap)))
		return fail(
			c, "memory limits at byte %zu exceed %" PRIu64 " pages",
			c->pos, cap);
	return 0;
}

static void add_memory(struct ufpw_module *m, const struct limits *l,
		       int imported)
{
	if (m->nmemories++ > 0)
		return; /* only memory 0 gets an image */
	m->has_memory = 1;
	m->imported_memory = imported;
	m->memory64 = l->is64;
	m->shared = l->shared;
	m->has_max = l->has_max;
	m->mem_min_pages = l->min;
	m->mem_max_pages = l->max;
}

/* A value type; reference types of the GC proposal carry a heap type. */
static int valtype(struct cursor *c)
{
	uint8_t t;
	uint64_t heap;
	int r = byte(c, &t, "value type");
	if (r)
		return r;
	if (t == 0x63 || t == 0x64) /* (ref null ht), (ref ht) */
		return leb(c, 33, 1, &heap, "heap type");
	return 0;
}

static int import_section(struct cursor *c, struct ufpw_module *m)
{
	uint32_t n, idx;
	uint8_t kind, mut;
	struct limits l;
	int r = u32(c, &n, "import count");

	for (uint32_t i = 0; !r && i < n; i++) {
		if ((r = skip_name(c, "import module name")) ||
		    (r = skip_name(c, "import field name")) ||
		    (r = byte(c, &kind, "import kind")))
			return r;
		switch (kind) {
		case 0x00: /* function: type index */
			r = u32(c, &idx, "function type index");
			break;
		case 0x01: /* table: reftype, limits */
			if (!(r = valtype(c)))
				r = limits(c, &l, 0);
			break;
		case 0x02: /* memory */
			if (!(r = limits(c, &l, 1)))
				add_memory(m, &l, 1);
			break;
		case 0x03: /* global: valtype, mutability */
			if (!(r = valtype(c)) &&
			    !(r = byte(c, &mut, "global mutability")) &&
			    mut > 1)
				r = fail(c,
					 "global mutability 0x%02x at byte %zu",
					 mut, c->pos - 1);
			break;
		case 0x04: /* tag: attribute 0, type index */
			if (!(r = byte(c, &mut, "tag attribute")) && mut != 0)
				r = fail(c, "tag attribute 0x%02x at byte %zu",
					 mut, c->pos - 1);
			if (!r)
				r = u32(c, &idx, "tag type index");
			break;
		default:
			r = fail(c,
				 "import %" PRIu32
				 " at byte %zu has unknown kind 0x%02x",
				 i, c->pos - 1, kind);
		}
	}
	return r;
}

static int memory_section(struct cursor *c, struct ufpw_module *m)
{
	uint32_t n;
	struct limits l;
	int r = u32(c, &n, "memory count");

	for (uint32_t i = 0; !r && i < n; i++)
		if (!(r = limits(c, &l, 1)))
			add_memory(m, &l, 0);
	return r;
}

enum offset_kind { OFFSET_CONST, OFFSET_GLOBAL, OFFSET_UNSUPPORTED };

/*
 * Decode the offset expression of an active segment up to its `end`.
 * A lone i32.const / i64.const is the only thing an image can be built
 * from. The other instructions allowed in constant expressions (global.get,
 * and the extended-const arithmetic) are decoded only to find the end of the
 * expression; anything else could not be skipped safely, so it is an error.
 */
static int offset_expr(struct cursor *c, enum offset_kind *kind,
		       uint64_t *offset)
{
	size_t start = c->pos;
	unsigned ninstr = 0;
	int consts = 0, globals = 0;
	uint64_t v;
	uint32_t idx;
	uint8_t op;
	int r;

	for (;;) {
		if ((r = byte(c, &op, "offset expression")))
			return r;
		if (op == OP_END)
			break;
		ninstr++;
		switch (op) {
		case OP_I32_CONST:
			if ((r = leb(c, 32, 1, &v, "i32.const")))
				return r;
			/* Memory offsets are unsigned: i32.const -1 is
			 * 0xffffffff. */
			*offset = (uint32_t)v;
			consts++;
			break;
		case OP_I64_CONST:
			if ((r = leb(c, 64, 1, &v, "i64.const")))
				return r;
			*offset = v;
			consts++;
			break;
		case OP_GLOBAL_GET:
			if ((r = u32(c, &idx, "global index")))
				return r;
			globals++;
			break;
		case 0x6a:
		case 0x6b:
		case 0x6c: /* i32.add/sub/mul */
		case 0x7c:
		case 0x7d:
		case 0x7e: /* i64.add/sub/mul */
			break;
		default:
			return fail(
				c,
				"offset expression at byte %zu: opcode 0x%02x "
				"at byte %zu is not a constant instruction",
				start, op, c->pos - 1);
		}
	}
	if (ninstr == 1 && consts == 1)
		*kind = OFFSET_CONST;
	else if (globals)
		*kind = OFFSET_GLOBAL;
	else if (ninstr == 0)
		return fail(c, "offset expression at byte %zu is empty", start);
	else
		*kind = OFFSET_UNSUPPORTED;
	return 0;
}

static int push_segment(struct ufpw_module *m, size_t *cap,
			const struct ufpw_segment *s)
{
	if (m->nsegs == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		void *p = realloc(m->segs, ncap * sizeof(*m->segs));
		if (!p)
			return -ENOMEM;
		m->segs = p;
		*cap = ncap;
	}
	m->segs[m->nsegs++] = *s;
	return 0;
}

static int data_section(struct cursor *c, struct ufpw_module *m)
{
	size_t cap = 0;
	uint32_t n, flags, memidx, len;
	int r = u32(c, &n, "data segment count");

	if (r)
		return r;
	/* The smallest entry, an empty passive segment, takes 2 bytes. */
	if (n > (c->end - c->pos) / 2)
		return fail(c,
			    "%" PRIu32
			    " data segments cannot fit in the %zu bytes left",
			    n, c->end - c->pos);
	m->ndata = n;
	for (uint32_t i = 0; i < n; i++) {
		struct ufpw_segment s = {0};
		enum offset_kind kind = OFFSET_CONST;
		size_t at = c->pos;

		if ((r = u32(c, &flags, "segment flags")))
			return r;
		memidx = 0;
		switch (flags) {
		case 0:
			break;
		case 1:
			kind = OFFSET_UNSUPPORTED; /* passive: no offset */
			break;
		case 2:
			if ((r = u32(c, &memidx, "segment memory index")))
				return r;
			break;
		default:
			return fail(c,
				    "segment %" PRIu32
				    " at byte %zu has unknown flags %" PRIu32,
				    i, at, flags);
		}
		if (flags != 1 && (r = offset_expr(c, &kind, &s.offset)))
			return r;
		if ((r = u32(c, &len, "segment length")))
			return r;
		if (len > c->end - c->pos)
			return fail(c,
				    "segment %" PRIu32 " length %" PRIu32
				    " at byte %zu runs past the end of %s (%zu "
				    "bytes left)",
				    i, len, at, limit_name(c), c->end - c->pos);
		s.bytes = c->buf + c->pos;
		s.len = len;
		c->pos += len;

		if (flags == 1)
			m->skipped_passive++;
		else if (memidx != 0)
			m->skipped_other_memory++;
		else if (kind == OFFSET_GLOBAL)
			m->skipped_global++;
		else if (kind == OFFSET_UNSUPPORTED)
			m->skipped_unsupported++;
		else if ((r = push_segment(m, &cap, &s)))
			return r;
	}
	return 0;
}

/*
 * Position of each known section in the order the spec requires; 0 for
 * custom sections, which may appear anywhere. The tag section (13) sits
 * between memory and global, the data count (12) before code.
 */
static int section_rank(uint8_t id)
{
	static const int8_t rank[] = {
		[1] = 1,   [2] = 2,   [3] = 3,	 [4] = 4, [5] = 5,
		[13] = 6,  [6] = 7,   [7] = 8,	 [8] = 9, [9] = 10,
		[12] = 11, [10] = 12, [11] = 13,
	};
	return id < sizeof(rank) ? rank[id] : -1;
}

static int parse(struct cursor *c, struct ufpw_module *m)
{
	static const uint8_t magic[4] = {0x00, 'a', 's', 'm'};
	int last_rank = 0, has_datacount = 0;
	uint32_t datacount = 0;
	int r;

	if (c->len < 8)
		return fail(c, "%zu bytes: too short for the 8-byte header",
			    c->len);
	if (memcmp(c->buf, magic, 4))
		return fail(
			c,
			"no \\0asm magic at byte 0: not a WebAssembly module");
	if (c->buf[4] != 1 || c->buf[5] || c->buf[6] || c->buf[7])
		return fail(c,
			    "version %02x %02x %02x %02x at byte 4: only "
			    "version 1 is supported (components and later "
			    "layers are not modules)",
			    c->buf[4], c->buf[5], c->buf[6], c->buf[7]);
	c->pos = 8;

	while (c->pos < c->len) {
		uint8_t id = c->buf[c->pos];
		uint32_t size;

		c->sec = id;
		c->sec_pos = c->pos++;
		c->end = c->len;
		c->in_body = 0;
		if ((r = u32(c, &size, "section size")))
			return r;
		if (size > c->len - c->pos)
			return fail(c,
				    "size %" PRIu32 " runs past the end of the "
				    "file (%zu bytes left)",
				    size, c->len - c->pos);
		c->end = c->pos + size;
		c->in_body = 1;

		int rank = section_rank(id);
		if (rank > 0 && rank <= last_rank)
			return fail(c,
				    "out of order or repeated (sections must "
				    "appear once, in the order of the spec)");
		if (rank > 0)
			last_rank = rank;

		switch (id) {
		case SEC_IMPORT:
			r = import_section(c, m);
			break;
		case SEC_MEMORY:
			r = memory_section(c, m);
			break;
		case SEC_DATACOUNT:
			has_datacount = 1;
			r = u32(c, &datacount, "data count");
			break;
		case SEC_DATA:
			r = data_section(c, m);
			break;
		default: /* custom, unknown or not needed: skip by size */
			c->pos = c->end;
		}
		if (r)
			return r;
		if (c->pos != c->end)
			return fail(c,
				    "size %" PRIu32 " but the contents end at "
				    "byte %zu, %zu bytes early",
				    size, c->pos, c->end - c->pos);
	}
	c->sec = -1;
	if (has_datacount && datacount != m->ndata)
		return fail(c,
			    "data count section says %" PRIu32
			    " segments, the data section has %" PRIu32,
			    datacount, m->ndata);
	return 0;
}

int ufpw_parse(const uint8_t *buf, size_t len, struct ufpw_module *out,
	       char *err, size_t errcap)
{
	struct cursor c = {.buf = buf,
			   .len = len,
			   .end = len,
			   .sec = -1,
			   .err = err,
			   .errcap = errcap};
	int saved = errno, r;

	if (err && errcap)
		err[0] = '\0';
	if (!out)
		return fail(&c, "NULL module");
	memset(out, 0, sizeof(*out));
	if (!buf && len)
		return fail(&c, "NULL buffer of %zu bytes", len);
	r = parse(&c, out);
	if (r == -ENOMEM && err && errcap)
		snprintf(err, errcap, "out of memory for %zu segments",
			 out->nsegs);
	if (r) {
		ufpw_free(out);
	} else {
		out->buf = buf;
		out->buf_len = len;
	}
	errno = saved;
	return r;
}

static int read_all(int fd, const char *path, uint8_t **out, size_t *len,
		    char *err, size_t errcap)
{
	struct stat st;
	uint8_t *p;
	size_t n = 0;

	if (fstat(fd, &st) < 0) {
		int e = errno;
		snprintf(err, errcap, "%s: fstat: %s", path, strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errcap, "%s: not a regular file", path);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size >= SIZE_MAX) {
		snprintf(err, errcap, "%s: %jd bytes do not fit in memory",
			 path, (intmax_t)st.st_size);
		return -EFBIG;
	}
	/* malloc(0) may return NULL: allocate one byte for empty files. */
	p = malloc((size_t)st.st_size + 1);
	if (!p) {
		snprintf(err, errcap, "%s: out of memory for %jd bytes", path,
			 (intmax_t)st.st_size);
		return -ENOMEM;
	}
	while (n < (size_t)st.st_size) {
		ssize_t k = read(fd, p + n, (size_t)st.st_size - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			int e = k < 0 ? errno : EIO;
			snprintf(err, errcap, "%s: read at byte %zu: %s", path,
				 n, k < 0 ? strerror(e) : "file shrank");
			free(p);
			return -e;
		}
		n += (size_t)k;
	}
	*out = p;
	*len = n;
	return 0;
}

int ufpw_load_file(const char *path, struct ufpw_module *out, char *err,
		   size_t errcap)
{
	char dummy[1];
	int saved = errno, fd, r;
	uint8_t *bytes = NULL;
	size_t len = 0;

	if (!err || !errcap) {
		err = dummy;
		errcap = sizeof(dummy);
	}
	err[0] = '\0';
	if (!path || !out) {
		snprintf(err, errcap, "NULL path or module");
		return -EINVAL;
	}
	memset(out, 0, sizeof(*out));
	do
		fd = open(path, O_RDONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errcap, "%s: %s", path, strerror(-r));
		errno = saved;
		return r;
	}
	r = read_all(fd, path, &bytes, &len, err, errcap);
	close(fd);
	if (!r) {
		r = ufpw_parse(bytes, len, out, err, errcap);
		if (r) {
			/* Put the path in front of the parser's message. */
			size_t pl = strlen(path) + 2;
			size_t ml = strlen(err);
			if (pl + ml < errcap) {
				memmove(err + pl, err, ml + 1);
				memcpy(err, path, pl - 2);
				memcpy(err + pl - 2, ": ", 2);
			}
			free(bytes);
		} else {
			out->file = bytes;
		}
	}
	errno = saved;
	return r;
}

void ufpw_free(struct ufpw_module *m)
{
	if (!m)
		return;
	free(m->segs);
	free(m->file);
	memset(m, 0, sizeof(*m));
}

int ufpw_initial_bytes(const struct ufpw_module *m, uint64_t *out)
{
	if (!m || !out)
		return -EINVAL;
	if (m->mem_min_pages > UINT64_MAX / UFPW_PAGE_BYTES)
		return -EOVERFLOW;
	*out = m->mem_min_pages * UFPW_PAGE_BYTES;
	return 0;
}

static size_t file_offset(const struct ufpw_module *m,
			  const struct ufpw_segment *s)
{
	return m->buf ? (size_t)((const uint8_t *)s->bytes - m->buf) : 0;
}

int ufpw_check_bounds(const struct ufpw_module *m, char *err, size_t errcap)
{
	char dummy[1];
	uint64_t limit;

	if (!err || !errcap) {
		err = dummy;
		errcap = sizeof(dummy);
	}
	err[0] = '\0';
	if (!m)
		return -EINVAL;
	if (ufpw_initial_bytes(m, &limit))
		limit = UINT64_MAX; /* 2^64 bytes: everything fits */
	for (size_t i = 0; i < m->nsegs; i++) {
		const struct ufpw_segment *s = &m->segs[i];
		if (s->offset > UINT64_MAX - s->len) {
			snprintf(err, errcap,
				 "segment %zu (bytes at file offset %zu): "
				 "offset %" PRIu64 " + length %" PRIu64
				 " overflows 64 bits",
				 i, file_offset(m, s), s->offset, s->len);
			return -ERANGE;
		}
		/* Wasm checks offset + len <= size even for len 0. */
		if (s->offset + s->len > limit) {
			snprintf(err, errcap,
				 "segment %zu (bytes at file offset %zu): "
				 "[%" PRIu64 ", %" PRIu64
				 ") is past the initial memory of %" PRIu64
				 " bytes (%" PRIu64 " pages%s)",
				 i, file_offset(m, s), s->offset,
				 s->offset + s->len, limit, m->mem_min_pages,
				 m->has_memory ? ""
					       : ": the module has no memory");
			return -ERANGE;
		}
	}
	return 0;
}

struct range {
	uint64_t lo, hi; /* 4 KiB page numbers, inclusive */
};

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;
	return (x->lo > y->lo) - (x->lo < y->lo);
}

int ufpw_stats(const struct ufpw_module *m, struct ufpw_stats *st)
{
	struct range *v;
	size_t n = 0;

	if (!m || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	if (ufpw_initial_bytes(m, &st->initial_bytes))
		st->initial_bytes = UINT64_MAX;
	if (!m->nsegs)
		return 0;
	v = malloc(m->nsegs * sizeof(*v));
	if (!v)
		return -ENOMEM;
	st->lowest = UINT64_MAX;
	for (size_t i = 0; i < m->nsegs; i++) {
		const struct ufpw_segment *s = &m->segs[i];
		/* Saturate: an overflowing segment is reported by
		 * ufpw_check_bounds; here it just covers up to the top. */
		uint64_t end = s->offset > UINT64_MAX - s->len
				       ? UINT64_MAX
				       : s->offset + s->len;
		st->bytes += s->len;
		if (!s->len)
			continue;
		if (s->offset < st->lowest)
			st->lowest = s->offset;
		if (end > st->end)
			st->end = end;
		v[n].lo = s->offset >> 12;
		v[n].hi = (end - 1) >> 12;
		n++;
	}
	if (!n)
		st->lowest = 0;
	qsort(v, n, sizeof(*v), cmp_range);
	for (size_t i = 0; i < n;) {
		uint64_t lo = v[i].lo, hi = v[i].hi;
		for (i++; i < n && v[i].lo <= hi + 1; i++)
			if (v[i].hi > hi)
				hi = v[i].hi;
		st->pages_4k += hi - lo + 1;
	}
	free(v);
	return 0;
}

int ufpw_summary(const struct ufpw_module *m, const char *name, char *buf,
		 size_t cap)
{
	struct ufpw_stats st;
	char mem[96] = "no memory";
	int r = ufpw_stats(m, &st);

	if (r)
		return r;
	if (m->has_memory) {
		char max[24] = "none";
		if (m->has_max)
			snprintf(max, sizeof(max), "%" PRIu64,
				 m->mem_max_pages);
		snprintf(mem, sizeof(mem), "memory %" PRIu64 "/%s pages%s%s%s",
			 m->mem_min_pages, max,
			 m->imported_memory ? " imported" : "",
			 m->memory64 ? " memory64" : "",
			 m->shared ? " shared" : "");
	}
	return snprintf(
		buf, cap,
		"%s%s%s, %zu active segments, %" PRIu64 " bytes, %" PRIu64
		" 4-KiB pages covered, skipped %zu passive, %zu global.get, "
		"%zu other-memory, %zu unsupported",
		name ? name : "", name ? ": " : "", mem, m->nsegs, st.bytes,
		st.pages_4k, m->skipped_passive, m->skipped_global,
		m->skipped_other_memory, m->skipped_unsupported);
}
