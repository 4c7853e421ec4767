/* SPDX-License-Identifier: MIT */
/* ufp-test: timeout=240 */
/*
 * test_dirty.c - reset on free, warm reuse with written-page tracking and
 * the idle-memory bound (lib/slot.c, uffd/dirty.c, ufpi_pool_evict_idle in
 * lib/module.c) against docs/design.md, "Reset on free and warm reuse".
 *
 * Every expectation is computed from what the test itself passed in (the
 * segments of a module, the bytes it wrote, the pages it touched), never
 * read back from the library. Every correctness check compares every byte
 * of the accessible size. One-slot pools force the next memory into the
 * slot the last one used.
 *
 * Uses internals (pool->index, pool->slots, pool->pagemap_fd, m->key,
 * ufpi_dirty_scan, the cached feature probe) to name a slot's affinity, to
 * measure a slot's resident pages and to count the runs a scan sees: the
 * public API deliberately hides them. The randomized tests are seeded and
 * bounded; they are not benchmarks.
 *
 * The forced fallback (dirty_tracking OFF) runs the same correctness matrix
 * as tracking on, as do the COW and COPY backends. A written page that is
 * not present can only be made by swapping it out: without swap that test
 * skips (and fails under UFP_REQUIRE_FEATURES=1).
 */
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/swap.h>

#include "helpers.h"
#include "internal.h"

#define KIB ((uint64_t)1 << 10)
#define MIB ((uint64_t)1 << 20)

/* ---- pools -------------------------------------------------------------- */

/* Library errors are logged, and a failed reset is silently repaired by a
 * wipe: count them so that a test can insist there were none. */
static int log_errors;
static char log_first[256];

static void log_cb(void *arg, ufp_log_level level, const char *msg)
{
	(void)arg;
	if (level == UFP_LOG_ERROR && log_errors++ == 0)
		snprintf(log_first, sizeof(log_first), "%s", msg);
}

static void cfg_init(ufp_config *c, uint32_t slots, uint64_t max, ufp_backend b,
		     ufp_dirty_tracking dt, uint64_t keep)
{
	t_config(c, slots, max);
	c->backend = b;
	/* write-protect tracking is copy mode's (minor mode finds written
	 * pages as anonymous ones: tests/test_minor.c) */
	c->fill_mode = UFP_FILL_COPY;
	c->dirty_tracking = dt;
	c->keep_resident_bytes = keep;
	c->log = log_cb;
}

/*
 * Create the pool and check that it does what the test asked for: dirty
 * tracking really on for UFFD and COW with AUTO (skipped, with the reason,
 * when the kernel lacks it), off for UFP_DIRTY_OFF and for the COPY
 * backend.
 */
static ufp_pool *pool_new(const ufp_config *c)
{
	ufp_pool *p = t_pool(c);
	ufp_backend b;
	int dirty = -1;

	cr_assert_eq(ufp_pool_info(p, &b, NULL, &dirty), 0);
	cr_assert_eq(b, c->backend, "backend %s resolved to %s",
		     t_backend_name(c->backend), t_backend_name(b));
	if ((c->backend == UFP_BACKEND_UFFD || c->backend == UFP_BACKEND_COW) &&
	    c->dirty_tracking == UFP_DIRTY_AUTO) {
		if (!dirty) {
			UFPI_IGNORE(ufp_pool_destroy(p));
			t_skip("dirty tracking is off: the kernel lacks "
			       "UFFD_FEATURE_WP_ASYNC or PAGEMAP_SCAN "
			       "(Linux >= 6.7)");
		}
	} else {
		cr_assert_eq(dirty, 0,
			     "%s with dirty_tracking %d reports "
			     "dirty tracking on",
			     t_backend_name(b), (int)c->dirty_tracking);
	}
	return p;
}

/* pool_new of cfg_init(slots, max, b, dt, keep). */
static ufp_pool *pool_of(uint32_t slots, uint64_t max, ufp_backend b,
			 ufp_dirty_tracking dt, uint64_t keep)
{
	ufp_config c;
	cfg_init(&c, slots, max, b, dt, keep);
	return pool_new(&c);
}

static void pool_done(ufp_pool *p)
{
	int err = ufp_pool_destroy(p);
	cr_assert_eq(err, 0, "pool_destroy: %s", ufp_strerror(err));
	cr_assert_eq(log_errors, 0, "the library logged %d error(s), first: %s",
		     log_errors, log_first);
}

static uint64_t resident(ufp_pool *p)
{
	uint64_t r = 0;
	int err = ufp_pool_resident_bytes(p, &r);
	cr_assert_eq(err, 0, "resident_bytes: %s", ufp_strerror(err));
	return r;
}

/* Pages of slot i that are resident (mincore), over its first len bytes. */
static uint64_t slot_resident_pages(ufp_pool *p, uint32_t i, uint64_t len)
{
	size_t np = len / t_page();
	unsigned char *vec = malloc(np);
	cr_assert_not_null(vec);
	int rc = mincore(ufpi_slot_base(&p->slots, i), len, vec);
	cr_assert_eq(rc, 0, "mincore: %s", strerror(errno));
	uint64_t n = 0;
	for (size_t k = 0; k < np; k++)
		n += vec[k] & 1;
	free(vec);
	return n;
}

static void check_pool(ufp_pool *p)
{
	int err = ufpi_pool_check(p);
	cr_assert_eq(err, 0, "ufpi_pool_check: %s", ufp_strerror(err));
}

static void quiesce(ufp_pool *p)
{
	cr_assert_eq(ufp_pool_quiesce(p), 0);
}

/* ---- modules with a known image ----------------------------------------- */

struct mod {
	ufp_module *m;	    /* NULL: no module */
	unsigned char *img; /* expected image over len bytes (zero beyond) */
	uint64_t len;	    /* the module's initial bytes */
	uint64_t key;
};

static const struct mod no_module = {NULL, NULL, 0, 0};

static void mod_finish(ufp_pool *p, const ufp_segment *segs, size_t n,
		       struct mod *md)
{
	int err = ufp_module_create(p, segs, n, md->len, &md->m);
	cr_assert_eq(err, 0, "module_create: %s", ufp_strerror(err));
	md->key = md->m->key;
}

/*
 * A module of `len` bytes from `nsegs` random segments: random offsets and
 * lengths (up to three pages, partial pages included), one in five made of
 * zeros over what earlier ones wrote (pages that end up all-zero are not
 * stored); applied in order, like the library, with memcpy.
 */
static void mod_random(ufp_pool *p, uint64_t len, unsigned nsegs, uint64_t *rng,
		       struct mod *md)
{
	const uint64_t span = 3 * t_page();
	ufp_segment *segs = calloc(nsegs, sizeof(*segs));
	cr_assert_not_null(segs);
	md->img = calloc(1, len);
	md->len = len;
	cr_assert_not_null(md->img);
	for (unsigned k = 0; k < nsegs; k++) {
		uint64_t off = t_rand(rng) % len, room = len - off;
		uint64_t l = 1 + t_rand(rng) % (room < span ? room : span);
		unsigned char *b = malloc(l);
		cr_assert_not_null(b);
		if (t_rand(rng) % 5 == 0)
			memset(b, 0, l);
		else
			t_fill(b, l, t_rand(rng));
		memcpy(md->img + off, b, l);
		segs[k] = (ufp_segment){off, b, l};
	}
	mod_finish(p, segs, nsegs, md);
	for (unsigned k = 0; k < nsegs; k++)
		free((void *)segs[k].bytes);
	free(segs);
}

/* A module of `len` bytes whose first `data` bytes are image with a
 * non-zero byte on every page (so every page of it is stored and filled as
 * a real page, never the shared zero page); zero beyond. */
static void mod_full(ufp_pool *p, uint64_t len, uint64_t data, uint64_t seed,
		     struct mod *md)
{
	md->img = calloc(1, len);
	md->len = len;
	cr_assert_not_null(md->img);
	t_fill(md->img, data, seed);
	for (uint64_t o = 0; o < data; o += t_page())
		md->img[o] |= 1;
	ufp_segment seg = {0, md->img, data};
	mod_finish(p, &seg, 1, md);
}

static void mod_fini(struct mod *md)
{
	free(md->img);
	md->img = NULL;
}

/* What a fresh memory of md with `size` accessible bytes must read. */
static void expect_fresh(const struct mod *md, unsigned char *buf,
			 uint64_t size)
{
	memset(buf, 0, size);
	if (md->len)
		memcpy(buf, md->img, md->len < size ? md->len : size);
}

/* Offset of the first byte where got and want differ, or -1. */
static long diff_at(const unsigned char *got, const unsigned char *want,
		    uint64_t len)
{
	if (memcmp(got, want, len) == 0)
		return -1;
	for (uint64_t o = 0; o < len; o++)
		if (got[o] != want[o])
			return (long)o;
	return -1;
}

static ufp_memory *mem_alloc(ufp_pool *p, const struct mod *md, uint64_t size)
{
	ufp_memory *mem = NULL;
	int err = ufp_memory_alloc(p, md->m, size, &mem);
	cr_assert_eq(err, 0, "memory_alloc: %s", ufp_strerror(err));
	return mem;
}

/* Compare every byte of mem against a fresh memory of md. */
static void check_fresh(ufp_memory *mem, const struct mod *md, const char *what)
{
	uint64_t size = ufp_memory_size(mem);
	unsigned char *want = malloc(size);
	cr_assert_not_null(want);
	expect_fresh(md, want, size);
	const unsigned char *b = ufp_memory_base(mem);
	long d = diff_at(b, want, size);
	cr_assert_eq(d, -1,
		     "%s: slot %u byte %ld (page %ld) of %llu reads %#x, "
		     "expected %#x",
		     what, ufp_memory_slot(mem), d, d / (long)t_page(),
		     (unsigned long long)size, d < 0 ? 0 : b[d],
		     d < 0 ? 0 : want[d]);
	free(want);
}

/* A memory of md (its initial size), every byte checked fresh. */
static ufp_memory *fresh_alloc(ufp_pool *p, const struct mod *md,
			       const char *what)
{
	ufp_memory *mem = mem_alloc(p, md, 0);
	check_fresh(mem, md, what);
	return mem;
}

/* Read one byte of every page (fills them all). */
static void read_all(ufp_memory *mem)
{
	const volatile unsigned char *b = ufp_memory_base(mem);
	unsigned sum = 0;
	for (uint64_t o = 0; o < ufp_memory_size(mem); o += t_page())
		sum += b[o];
	(void)sum;
}

/* ---- the correctness matrix --------------------------------------------- */

enum next_kind {
	NEXT_SAME,  /* A, A, A, ... */
	NEXT_OTHER, /* A, B, A, B, ...: always another module */
	NEXT_NONE,  /* A, none, none, A, ...: no module after a module, after
		       no module, and a module after no module */
};

#define MX_MAX (1 * MIB)
#define MX_ROUNDS 14

/* Operation log of one memory, printed when the next one reads wrong. */
struct oplog {
	char s[1024];
	size_t n;
};

static void oplog_add(struct oplog *l, const char *fmt, ...)
{
	va_list ap;
	if (l->n >= sizeof(l->s) - 1)
		return;
	va_start(ap, fmt);
	int k = vsnprintf(l->s + l->n, sizeof(l->s) - l->n, fmt, ap);
	va_end(ap);
	if (k > 0)
		l->n += (size_t)k;
	if (l->n > sizeof(l->s) - 1)
		l->n = sizeof(l->s) - 1;
}

/* Write len random bytes at off, in the memory and in its shadow. */
static void put(unsigned char *base, unsigned char *shadow, uint64_t off,
		uint64_t len, uint64_t *rng)
{
	t_fill(shadow + off, len, t_rand(rng));
	/* never a no-op: the first byte always changes */
	shadow[off] = (unsigned char)(base[off] + 1 + t_rand(rng) % 255);
	memcpy(base + off, shadow + off, len);
}

/*
 * One memory's life: random reads (clean image and zero pages), whole-page
 * writes, a few bytes in the middle of a page, writes beyond the image
 * (zero pages), and grows followed by a write just after the old end.
 * `shadow` holds what the memory must read; returns the final size.
 */
static uint64_t scribble(ufp_memory *mem, const struct mod *md,
			 unsigned char *shadow, uint64_t *rng, struct oplog *l,
			 const char *ctx)
{
	const size_t page = t_page();
	unsigned char *base = ufp_memory_base(mem);
	const volatile unsigned char *vb = base;
	uint64_t size = ufp_memory_size(mem);
	unsigned nops = 4 + t_rand(rng) % 12;

	for (unsigned k = 0; k < nops; k++) {
		uint64_t np = size / page, p = t_rand(rng) % np;
		switch (t_rand(rng) % 7) {
		case 0: { /* scattered reads */
			unsigned n = 1 + t_rand(rng) % 8;
			for (unsigned j = 0; j < n; j++)
				(void)vb[(t_rand(rng) % np) * page +
					 t_rand(rng) % page];
			oplog_add(l, " r%u", n);
			break;
		}
		case 1: { /* a sequential run: the fault-around window grows */
			uint64_t n = 1 + t_rand(rng) % (np - p);
			for (uint64_t q = p; q < p + n; q++)
				(void)vb[q * page];
			oplog_add(l, " seq%llu+%llu", (unsigned long long)p,
				  (unsigned long long)n);
			break;
		}
		case 2: /* a whole page */
			put(base, shadow, p * page, page, rng);
			oplog_add(l, " W%llu", (unsigned long long)p);
			break;
		case 3: { /* a few bytes in the middle of a page */
			uint64_t off =
				p * page + page / 2 - 8 + t_rand(rng) % 16;
			put(base, shadow, off, 1 + t_rand(rng) % 8, rng);
			oplog_add(l, " w%llu", (unsigned long long)p);
			break;
		}
		case 4: { /* beyond the image: zero pages until written */
			uint64_t first = (md->len + page - 1) / page;
			if (first >= np)
				break;
			p = first + t_rand(rng) % (np - first);
			if (t_rand(rng) % 2)
				put(base, shadow, p * page, page, rng);
			else
				put(base, shadow, p * page + t_rand(rng) % page,
				    1, rng);
			oplog_add(l, " z%llu", (unsigned long long)p);
			break;
		}
		case 5:
		case 6: { /* grow, then write just after the old end */
			uint64_t add = UFPI_WASM_PAGE * (1 + t_rand(rng) % 4);
			if (size + add > MX_MAX)
				break;
			int err = ufp_memory_grow(mem, size + add);
			cr_assert_eq(err, 0, "grow: %s", ufp_strerror(err));
			/* the new pages must read zero; check every byte on
			 * half of the grows, leave them untouched (never
			 * populated) on the others */
			if (t_rand(rng) % 2) {
				long d = diff_at(base + size, shadow + size,
						 add);
				cr_assert_eq(d, -1,
					     "grown to %llu: byte %llu (page "
					     "%llu) reads %#x, expected 0; "
					     "this memory did [%s]; %s",
					     (unsigned long long)(size + add),
					     (unsigned long long)(size + d),
					     (unsigned long long)(size + d) /
						     page,
					     base[size + d], l->s, ctx);
			}
			if (t_rand(rng) % 2)
				put(base, shadow, size, page, rng);
			else
				put(base, shadow, size + t_rand(rng) % 64, 4,
				    rng);
			oplog_add(l, " g%llu",
				  (unsigned long long)(size + add));
			size += add;
			break;
		}
		}
	}
	return size;
}

static const struct mod *mx_pick(enum next_kind kind, unsigned round,
				 const struct mod *a, const struct mod *b)
{
	switch (kind) {
	case NEXT_SAME:
		return a;
	case NEXT_OTHER:
		return round % 2 ? b : a;
	default:
		return round % 3 ? &no_module : a;
	}
}

static void run_matrix(ufp_backend be, ufp_dirty_tracking dt, uint64_t keep,
		       enum next_kind kind)
{
	const size_t page = t_page();
	ufp_pool *p = pool_of(1, MX_MAX, be, dt, keep);
	uint64_t rng = 0xd1e7ull * 1000003 + (uint64_t)be * 1009 +
		       (uint64_t)dt * 101 + (uint64_t)kind * 11 + keep;
	struct mod a, b;
	mod_random(p, 256 * KIB, 24, &rng, &a);
	mod_random(p, 384 * KIB, 40, &rng, &b);
	unsigned char *shadow = malloc(MX_MAX);
	cr_assert_not_null(shadow);
	struct oplog prev = {{0}, 0}, cur;
	const char *prev_name = "-";

	for (unsigned r = 0; r < MX_ROUNDS; r++) {
		const struct mod *md = mx_pick(kind, r, &a, &b);
		const char *name = md == &a ? "A" : md == &b ? "B" : "none";
		uint64_t size =
			md->len ? md->len
				: UFPI_WASM_PAGE * (1 + t_rand(&rng) % 6);
		if (t_rand(&rng) % 3 == 0)
			size += UFPI_WASM_PAGE * (1 + t_rand(&rng) % 3);
		ufp_memory *mem = mem_alloc(p, md, size);
		cr_assert_eq(ufp_memory_slot(mem), 0);

		unsigned char *base = ufp_memory_base(mem);
		memset(shadow, 0, MX_MAX);
		expect_fresh(md, shadow, size);
		long d = diff_at(base, shadow, size);
		cr_assert_eq(d, -1,
			     "%s keep %llu: round %u, memory of %s (%llu "
			     "bytes) after one of %s that did [%s]: byte %ld "
			     "(page %ld) reads %#x, expected %#x",
			     t_backend_name(be), (unsigned long long)keep, r,
			     name, (unsigned long long)size, prev_name, prev.s,
			     d, d / (long)page, d < 0 ? 0 : base[d],
			     d < 0 ? 0 : shadow[d]);

		cur.n = 0;
		cur.s[0] = 0;
		char ctx[1200];
		snprintf(ctx, sizeof(ctx),
			 "%s keep %llu round %u, memory of %s after one of %s "
			 "that did [%s]",
			 t_backend_name(be), (unsigned long long)keep, r, name,
			 prev_name, prev.s);
		size = scribble(mem, md, shadow, &rng, &cur, ctx);
		cr_assert_eq(ufp_memory_size(mem), size);
		if (r % 2) {
			/* the memory itself reads what it wrote */
			d = diff_at(base, shadow, size);
			cr_assert_eq(d, -1,
				     "round %u [%s]: byte %ld reads %#x, "
				     "wrote %#x",
				     r, cur.s, d, d < 0 ? 0 : base[d],
				     d < 0 ? 0 : shadow[d]);
		}
		t_free(mem);
		check_pool(p);
		prev = cur;
		prev_name = name;
	}
	free(shadow);
	mod_fini(&a);
	mod_fini(&b);
	pool_done(p);
}

#define MX_KEEPS(cfg, be, dt, kind, kname)           \
	Test(reset_matrix, cfg##_##kname##_keep_0)   \
	{                                            \
		run_matrix(be, dt, 0, kind);         \
	}                                            \
	Test(reset_matrix, cfg##_##kname##_keep_64k) \
	{                                            \
		run_matrix(be, dt, 64 * KIB, kind);  \
	}                                            \
	Test(reset_matrix, cfg##_##kname##_keep_all) \
	{                                            \
		run_matrix(be, dt, MX_MAX, kind);    \
	}
#define MX_KINDS(cfg, be, dt)                    \
	MX_KEEPS(cfg, be, dt, NEXT_SAME, same)   \
	MX_KEEPS(cfg, be, dt, NEXT_OTHER, other) \
	MX_KEEPS(cfg, be, dt, NEXT_NONE, none)

MX_KINDS(uffd_dirty, UFP_BACKEND_UFFD, UFP_DIRTY_AUTO)
MX_KINDS(uffd_plain, UFP_BACKEND_UFFD, UFP_DIRTY_OFF)
MX_KINDS(cow, UFP_BACKEND_COW, UFP_DIRTY_AUTO)
MX_KINDS(copy, UFP_BACKEND_COPY, UFP_DIRTY_AUTO)

/*
 * Regression: with dirty tracking, a reset that keeps no real page (only
 * shared zero pages were read, every written page dropped) forgot the
 * slot's image and populated range but left the zero pages mapped; the
 * next memory of another module then read zeros where its image has data,
 * without a fault.
 */
static void zero_pages_then_other(ufp_dirty_tracking dt, bool from_module)
{
	ufp_pool *p = pool_of(1, 256 * KIB, UFP_BACKEND_UFFD, dt, 0);
	struct mod a, b;
	/* a: data on its first page only, the rest reads as zero pages */
	mod_full(p, 128 * KIB, t_page(), 7, &a);
	mod_full(p, 128 * KIB, 128 * KIB, 8, &b);

	const struct mod *first = from_module ? &a : &no_module;
	ufp_memory *mem = mem_alloc(p, first, 128 * KIB);
	unsigned char *base = ufp_memory_base(mem);
	read_all(mem);
	if (from_module)
		base[0] ^= 0xff; /* the one data page: written, dropped */
	t_free(mem);

	mem = mem_alloc(p, &b, 0);
	check_fresh(mem, &b,
		    from_module ? "b after a's zero pages"
				: "b after a module-less memory");
	t_free(mem);
	mod_fini(&a);
	mod_fini(&b);
	pool_done(p);
}

Test(regression, zero_pages_of_moduleless_memory_leak_into_next_module)
{
	zero_pages_then_other(UFP_DIRTY_AUTO, false);
}

Test(regression, zero_pages_of_module_leak_into_other_module)
{
	zero_pages_then_other(UFP_DIRTY_AUTO, true);
}

/*
 * Regression, same cause: after such a reset the slot believes nothing is
 * populated, so a write into one of the leftover zero pages (a plain
 * copy-on-write, no userfaultfd fault, populated range not raised) lies
 * outside the next reset's scan, and a later memory reads the bytes.
 */
static void written_zero_page_outside_scan(bool with_module)
{
	const size_t page = t_page();
	ufp_pool *p =
		pool_of(1, 256 * KIB, UFP_BACKEND_UFFD, UFP_DIRTY_AUTO, 0);
	struct mod a;
	mod_full(p, 128 * KIB, t_page(), 9, &a);
	const struct mod *md = with_module ? &a : &no_module;

	ufp_memory *mem = mem_alloc(p, md, 128 * KIB);
	const volatile unsigned char *vb = ufp_memory_base(mem);
	(void)vb[20 * page]; /* a zero page, nothing else */
	t_free(mem);

	mem = mem_alloc(p, md, 128 * KIB);
	memset((unsigned char *)ufp_memory_base(mem) + 20 * page, 0xab, page);
	t_free(mem);

	mem = mem_alloc(p, md, 128 * KIB);
	check_fresh(mem, md, "third memory");
	t_free(mem);
	mod_fini(&a);
	pool_done(p);
}

Test(regression, written_zero_page_outside_scan_moduleless)
{
	written_zero_page_outside_scan(false);
}

Test(regression, written_zero_page_outside_scan_same_module)
{
	written_zero_page_outside_scan(true);
}

/* The same sequences through the plain reset, for contrast. */
Test(regression, zero_pages_plain_reset)
{
	zero_pages_then_other(UFP_DIRTY_OFF, false);
	zero_pages_then_other(UFP_DIRTY_OFF, true);
}

/* ---- warm reuse avoids faults ------------------------------------------- */

#define WARM_LEN (4 * MIB)
#define WARM_DATA (WARM_LEN - 256 * KIB) /* the last 64 pages read zero */

struct warm {
	uint64_t faults, installed, avoided, written, npages, datapages;
	uint64_t refilled;     /* dropped written pages copied back at alloc */
	uint64_t written_data; /* written pages that hold image data */
};

/*
 * Round 1: a memory of a module reads every page, then writes `pct`% of
 * its pages (distinct, random, whole pages). Round 2: the next memory of
 * the same module, in the same slot, reads every byte. Returns what round
 * 2 cost: faults, pages installed (copied + zero pages), and the
 * faults_avoided its allocation counted.
 */
static struct warm warm_reuse(ufp_dirty_tracking dt, uint64_t keep,
			      uint64_t window, unsigned pct)
{
	const size_t page = t_page();
	ufp_config c;
	cfg_init(&c, 1, WARM_LEN, UFP_BACKEND_UFFD, dt, keep);
	if (window) {
		c.fault_around_bytes = window;
		c.fault_around_max_bytes = window;
	}
	ufp_pool *p = pool_new(&c);
	struct mod a;
	mod_full(p, WARM_LEN, WARM_DATA, 42, &a);
	struct warm w = {0};
	w.npages = WARM_LEN / page;
	w.datapages = WARM_DATA / page;

	ufp_memory *mem = fresh_alloc(p, &a, "round 1");
	uint64_t *pg = malloc(w.npages * sizeof(*pg));
	cr_assert_not_null(pg);
	uint64_t rng = 0x3a3a + pct;
	t_permutation(pg, w.npages, &rng);
	w.written = w.npages * pct / 100;
	unsigned char *base = ufp_memory_base(mem);
	for (uint64_t k = 0; k < w.written; k++) {
		base[pg[k] * page + t_rand(&rng) % page] ^= 0x5a;
		w.written_data += pg[k] < w.datapages;
	}
	free(pg);
	t_free(mem);

	ufp_stats s0 = t_stats(p);
	mem = mem_alloc(p, &a, 0);
	cr_assert_eq(ufp_memory_slot(mem), 0);
	check_fresh(mem, &a, "round 2");
	ufp_stats s1 = t_stats(p);
	t_free(mem);

	w.faults = s1.faults - s0.faults;
	w.installed = (s1.pages_copied - s0.pages_copied) +
		      (s1.pages_zeroed - s0.pages_zeroed);
	w.avoided = s1.faults_avoided - s0.faults_avoided;
	w.refilled = s1.pages_refilled - s0.pages_refilled;
	cr_assert_eq(s1.affinity_hits - s0.affinity_hits, 1);
	mod_fini(&a);
	pool_done(p);
	return w;
}

Test(warm_reuse, clean_pages_take_no_fault)
{
	struct warm on = warm_reuse(UFP_DIRTY_AUTO, 0, 0, 0);
	cr_assert_eq(on.faults, 0,
		     "tracking on: %llu faults re-reading clean pages",
		     (unsigned long long)on.faults);
	cr_assert_eq(on.installed, 0);
	/* every data page stayed (the zero pages are not counted) */
	cr_assert_eq(on.avoided, on.datapages, "faults_avoided %llu, want %llu",
		     (unsigned long long)on.avoided,
		     (unsigned long long)on.datapages);

	struct warm off = warm_reuse(UFP_DIRTY_OFF, 0, 0, 0);
	cr_assert_gt(off.faults, 0,
		     "tracking off: no fault after a reset "
		     "that drops every page");
	cr_assert_eq(off.installed, off.npages);
	cr_assert_eq(off.avoided, 0);
}

/* One-page windows: every fault installs exactly one page. The written
 * pages the reset dropped come back either copied at the allocation (the
 * first runs of them) or by a fault each. */
Test(warm_reuse, five_percent_written_exact_faults)
{
	const uint64_t page = t_page();
	struct warm on = warm_reuse(UFP_DIRTY_AUTO, 0, page, 5);
	cr_assert_gt(on.written, 0);
	cr_assert_gt(on.refilled, 0);
	cr_assert_eq(on.faults + on.refilled, on.written,
		     "tracking on, keep 0: %llu faults + %llu refilled, %llu "
		     "pages written",
		     (unsigned long long)on.faults,
		     (unsigned long long)on.refilled,
		     (unsigned long long)on.written);
	cr_assert_eq(on.installed, on.faults);

	struct warm kept = warm_reuse(UFP_DIRTY_AUTO, WARM_LEN, page, 5);
	cr_assert_eq(kept.faults, 0,
		     "tracking on, keep all: written pages were restored in "
		     "place, yet %llu faults",
		     (unsigned long long)kept.faults);

	struct warm off = warm_reuse(UFP_DIRTY_OFF, 0, page, 5);
	cr_assert_eq(
		off.faults, off.npages, "tracking off: %llu faults, %llu pages",
		(unsigned long long)off.faults, (unsigned long long)off.npages);
}

/* Default fault-around windows. */
Test(warm_reuse, five_percent_written_far_fewer_faults)
{
	struct warm on = warm_reuse(UFP_DIRTY_AUTO, 0, 0, 5);
	struct warm off = warm_reuse(UFP_DIRTY_OFF, 0, 0, 5);
	cr_assert_leq(on.faults, on.written);
	/* a window around a dropped page refills only the dropped pages */
	cr_assert_eq(on.installed + on.refilled, on.written,
		     "tracking on: %llu pages installed + %llu refilled, %llu "
		     "written",
		     (unsigned long long)on.installed,
		     (unsigned long long)on.refilled,
		     (unsigned long long)on.written);
	cr_assert_eq(off.installed, off.npages);
	cr_assert_lt(on.installed * 10, off.installed);
	/* clean data pages; zero pages are not counted, written or not */
	cr_assert_eq(on.avoided, on.datapages - on.written_data,
		     "faults_avoided %llu, want %llu",
		     (unsigned long long)on.avoided,
		     (unsigned long long)(on.datapages - on.written_data));
}

/* ---- written pages beyond keep_resident_bytes are dropped --------------- */

static void written_beyond_keep(ufp_dirty_tracking dt)
{
	const size_t page = t_page();
	const uint64_t len = 1 * MIB, keep = 256 * KIB;
	const uint64_t nbeyond = 12, nbelow = 5;
	ufp_pool *p = pool_of(1, len, UFP_BACKEND_UFFD, dt, keep);
	struct mod a;
	mod_full(p, len, len, 5, &a);

	ufp_memory *mem = fresh_alloc(p, &a, "first");
	unsigned char *base = ufp_memory_base(mem);
	uint64_t rng = 99;
	uint64_t pg[256];
	t_permutation(pg, len / page, &rng);
	uint64_t nb = 0, nk = 0;
	for (uint64_t k = 0; k < len / page && (nb < nbeyond || nk < nbelow);
	     k++) {
		bool below = pg[k] * page < keep;
		if (below ? nk++ >= nbelow : nb++ >= nbeyond)
			continue;
		base[pg[k] * page + 100] ^= 0xff;
	}
	uint64_t r0 = resident(p);
	cr_assert_eq(r0, len, "resident %llu before free, want %llu",
		     (unsigned long long)r0, (unsigned long long)len);
	ufp_stats s0 = t_stats(p);
	t_free(mem);
	ufp_stats s1 = t_stats(p);
	uint64_t r1 = resident(p);

	if (dt == UFP_DIRTY_AUTO) {
		/* clean pages stay wherever they are; written ones below
		 * keep are restored in place, the rest dropped */
		cr_assert_eq(r0 - r1, nbeyond * page,
			     "resident fell by %llu bytes, want %llu (%llu "
			     "written pages beyond keep)",
			     (unsigned long long)(r0 - r1),
			     (unsigned long long)(nbeyond * page),
			     (unsigned long long)nbeyond);
		cr_assert_eq(s1.pages_dropped - s0.pages_dropped, nbeyond);
		cr_assert_eq(s1.pages_restored - s0.pages_restored, nbelow);
	} else {
		/* the plain reset keeps exactly [0, keep) */
		cr_assert_eq(r1, keep, "resident %llu after free, want %llu",
			     (unsigned long long)r1, (unsigned long long)keep);
		cr_assert_eq(s1.pages_dropped - s0.pages_dropped,
			     (len - keep) / page);
	}
	cr_assert_eq(
		ufp_index_unused_bytes_resident(p->index), r1,
		"the index accounts %llu idle bytes, %llu are resident",
		(unsigned long long)ufp_index_unused_bytes_resident(p->index),
		(unsigned long long)r1);
	mem = fresh_alloc(p, &a, "after the reset");
	t_free(mem);
	mod_fini(&a);
	pool_done(p);
}

Test(resident, written_beyond_keep_dropped_dirty)
{
	written_beyond_keep(UFP_DIRTY_AUTO);
}

Test(resident, written_beyond_keep_dropped_plain)
{
	written_beyond_keep(UFP_DIRTY_OFF);
}

/* ---- a written page that is not present must be dropped ----------------- */

/*
 * Without swap, MADV_PAGEOUT cannot make an anonymous page non-present. As
 * root we can give the machine a small temporary swap file for the test;
 * it is removed again at the end. Returns the path to remove, or NULL when
 * swap was already there (or could not be set up: the caller skips).
 */
static const char *temp_swap_on(void)
{
	static char path[] = "/var/tmp/ufp-test-swap-XXXXXX";
	char cmd[256];
	FILE *f = fopen("/proc/swaps", "r");
	int lines = 0, ch;
	while (f && (ch = fgetc(f)) != EOF)
		lines += ch == '\n';
	if (f)
		fclose(f);
	if (lines > 1 || geteuid() != 0)
		return NULL;
	int fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	int ok = ftruncate(fd, 0) == 0;
	static char zero[1 << 16];
	for (int k = 0; ok && k < 512; k++) /* 32 MiB, no holes */
		ok = write(fd, zero, sizeof(zero)) == (ssize_t)sizeof(zero);
	close(fd);
	snprintf(cmd, sizeof(cmd), "mkswap -q %s >/dev/null 2>&1", path);
	if (!ok || system(cmd) != 0 || swapon(path, 0) != 0) {
		unlink(path);
		return NULL;
	}
	return path;
}

static void temp_swap_off(const char *path)
{
	if (path) {
		swapoff(path);
		unlink(path);
	}
}

Test(regression, swapped_out_written_page_is_dropped, .timeout = 60)
{
	const size_t page = t_page();
	ufp_pool *p = pool_of(1, 256 * KIB, UFP_BACKEND_UFFD, UFP_DIRTY_AUTO,
			      256 * KIB);
	struct mod a;
	mod_full(p, 256 * KIB, 256 * KIB, 11, &a);
	const char *swap = temp_swap_on();

	ufp_memory *mem = mem_alloc(p, &a, 0);
	read_all(mem);
	unsigned char *pg = (unsigned char *)ufp_memory_base(mem) + 9 * page;
	memset(pg, 0xee, page);
	int rc = madvise(pg, page, MADV_PAGEOUT);
	unsigned char v = 1;
	cr_assert_eq(mincore(pg, page, &v), 0);
	if (rc != 0 || (v & 1)) {
		t_free(mem);
		mod_fini(&a);
		UFPI_IGNORE(ufp_pool_destroy(p));
		temp_swap_off(swap);
		/* Not a kernel feature the library needs but a property of
		 * the machine (no swap, or a memory cgroup that forbids it;
		 * on our VMs MADV_PAGEOUT leaves the page resident even with
		 * a swap file): a plain skip, also under
		 * UFP_REQUIRE_FEATURES. */
		cr_skip_test("cannot make a written page non-present here "
			     "(MADV_PAGEOUT %s)",
			     rc ? strerror(errno) : "left it resident");
	}
	t_free(mem);
	mem = fresh_alloc(p, &a, "after a written page was swapped out");
	t_free(mem);
	mod_fini(&a);
	pool_done(p);
	temp_swap_off(swap);
}

/* ---- the scan walks the whole range ------------------------------------- */

struct runs {
	uint64_t runs, written_pages;
};

static int count_run(void *arg, void *addr, size_t len, unsigned flags)
{
	struct runs *r = arg;
	(void)addr;
	r->runs++;
	if (flags & UFPI_PG_WRITTEN)
		r->written_pages += len / t_page();
	return 0;
}

static void scan_whole_range(uint64_t keep)
{
	const size_t page = t_page();
	const uint64_t len = 8 * MIB, np = len / page;
	ufp_pool *p = pool_of(1, len, UFP_BACKEND_UFFD, UFP_DIRTY_AUTO, keep);
	struct mod a;
	mod_full(p, len, len, 3, &a);

	ufp_memory *mem = fresh_alloc(p, &a, "first");
	unsigned char *base = ufp_memory_base(mem);
	for (uint64_t k = 0; k < np; k += 2)
		base[k * page + k % page] ^= 0x81;
	/* the setup really has far more runs than one scan buffer holds */
	struct runs r = {0, 0};
	int err =
		ufpi_dirty_scan(p->pagemap_fd, base, len, false, count_run, &r);
	cr_assert_eq(err, 0, "dirty_scan: %s", ufp_strerror(err));
	cr_assert_eq(r.runs, np, "the scan saw %llu runs, want %llu",
		     (unsigned long long)r.runs, (unsigned long long)np);
	cr_assert_eq(r.written_pages, np / 2);

	ufp_stats s0 = t_stats(p);
	t_free(mem);
	ufp_stats s1 = t_stats(p);
	if (keep >= len) {
		cr_assert_eq(s1.pages_restored - s0.pages_restored, np / 2,
			     "pages_restored %llu, %llu written",
			     (unsigned long long)(s1.pages_restored -
						  s0.pages_restored),
			     (unsigned long long)(np / 2));
		cr_assert_eq(s1.pages_dropped - s0.pages_dropped, 0);
	} else {
		cr_assert_eq(s1.pages_dropped - s0.pages_dropped, np / 2,
			     "pages_dropped %llu, %llu written",
			     (unsigned long long)(s1.pages_dropped -
						  s0.pages_dropped),
			     (unsigned long long)(np / 2));
		cr_assert_eq(s1.pages_restored - s0.pages_restored, 0);
	}
	mem = fresh_alloc(p, &a, "after 2048 separate runs");
	t_free(mem);
	mod_fini(&a);
	pool_done(p);
}

Test(scan, every_other_page_keep_all_restored)
{
	scan_whole_range(8 * MIB);
}

Test(scan, every_other_page_keep_0_dropped)
{
	scan_whole_range(0);
}

/* ---- restored pages stay writable while they keep being written -------- */

struct written_pages {
	unsigned char *base;
	uint64_t mask; /* bit k: page k reads as written */
};

static int note_written(void *arg, void *addr, size_t len, unsigned flags)
{
	struct written_pages *w = arg;
	/* never-populated holes read as written too: present ones only */
	if (!(flags & UFPI_PG_WRITTEN) || !(flags & UFPI_PG_PRESENT))
		return 0;
	for (size_t o = 0; o < len; o += t_page())
		w->mask |=
			UINT64_C(1)
			<< (((unsigned char *)addr + o - w->base) / t_page());
	return 0;
}

/* Pages of the first 64 of slot 0 that are present and that the next scan
 * will report written: written by an instance (or installed writable) and
 * not write-protected since. */
static uint64_t written_mask(ufp_pool *p, uint64_t len)
{
	struct written_pages w = {ufpi_slot_base(&p->slots, 0), 0};
	int err = ufpi_dirty_scan(p->pagemap_fd, w.base, len, false,
				  note_written, &w);
	cr_assert_eq(err, 0, "dirty_scan: %s", ufp_strerror(err));
	return w.mask;
}

static void bump(ufp_memory *mem, uint64_t page_no, unsigned char by)
{
	unsigned char *b = ufp_memory_base(mem);
	b[page_no * t_page() + 17] += by;
}

/*
 * A page restored at free is left writable while the next instances keep
 * writing it (no TLB flush at reset, no write-protect fault at the next
 * write): it reads as written to every later scan, so it is restored, or
 * found unchanged, at every reset. Once at least half of the writable set
 * comes back unchanged, the span is protected again. Every instance reads
 * the image exactly, whatever the protection.
 */
Test(sticky, rewritten_pages_stay_writable_until_they_go_cold)
{
	const uint64_t len = 64 * t_page();
	const uint64_t both = (UINT64_C(1) << 3) | (UINT64_C(1) << 7);
	ufp_pool *p = pool_of(1, len, UFP_BACKEND_UFFD, UFP_DIRTY_AUTO, len);
	struct mod a;
	mod_full(p, len, len, 11, &a);

	/* 1: pages 3 and 7 written */
	ufp_memory *mem = fresh_alloc(p, &a, "first");
	bump(mem, 3, 1);
	bump(mem, 7, 1);
	ufp_stats s0 = t_stats(p);
	t_free(mem);
	ufp_stats s1 = t_stats(p);
	cr_assert_eq(s1.pages_restored - s0.pages_restored, 2);
	cr_assert_eq(s1.reprotects - s0.reprotects, 0,
		     "both restored pages had changed: no re-protection");
	cr_assert_eq(written_mask(p, len), both,
		     "pages 3 and 7 should stay writable, the scan reports "
		     "%#llx",
		     (unsigned long long)written_mask(p, len));

	/* 2: the same pages written again, differently */
	mem = fresh_alloc(p, &a, "second (restored pages left writable)");
	bump(mem, 3, 2);
	bump(mem, 7, 3);
	t_free(mem);
	ufp_stats s2 = t_stats(p);
	cr_assert_eq(s2.pages_restored - s1.pages_restored, 2);
	cr_assert_eq(s2.reprotects - s1.reprotects, 0);
	cr_assert_eq(written_mask(p, len), both);

	/* 3: only page 3 written: one changed, one unchanged (half) */
	mem = fresh_alloc(p, &a, "third");
	bump(mem, 3, 5);
	t_free(mem);
	ufp_stats s3 = t_stats(p);
	cr_assert_eq(s3.pages_restored - s2.pages_restored, 1);
	cr_assert_eq(s3.pages_unchanged - s2.pages_unchanged, 1);
	cr_assert_eq(s3.reprotects - s2.reprotects, 1,
		     "half of the writable set came back unchanged");
	cr_assert_eq(written_mask(p, len), 0,
		     "after re-protection the scan reports %#llx written",
		     (unsigned long long)written_mask(p, len));

	/* 4: nothing written: nothing to restore, and still the image */
	mem = fresh_alloc(p, &a, "fourth (span protected again)");
	t_free(mem);
	ufp_stats s4 = t_stats(p);
	cr_assert_eq(s4.pages_restored - s3.pages_restored, 0);
	cr_assert_eq(s4.pages_unchanged - s3.pages_unchanged, 0);
	cr_assert_eq(s4.faults, s3.faults, "a warm reuse takes no fault");

	/* 5: another module in the slot sees its own image only */
	mem = mem_alloc(p, &a, 0);
	bump(mem, 9, 1);
	t_free(mem);
	struct mod b;
	mod_full(p, len, len, 12, &b);
	ufp_stats s5 = t_stats(p);
	mem = mem_alloc(p, &b, 0); /* the only slot: wiped for b */
	cr_assert_eq(t_stats(p).slots_wiped - s5.slots_wiped, 1);
	check_fresh(mem, &b, "other module after a writable page");
	t_free(mem);
	mod_fini(&a);
	mod_fini(&b);
	pool_done(p);
}

/* ---- written pages dropped at free are copied back at warm alloc ------- */

/*
 * keep_resident_bytes 0: the written pages are dropped at free (the idle
 * slot keeps only clean pages), and the next memory of the same module
 * gets them copied back by its allocation, writable, instead of one fault
 * round trip each; a memory of another module gets nothing of the kind.
 */
Test(refill, dropped_written_pages_come_back_at_warm_alloc)
{
	const size_t page = t_page();
	const uint64_t len = 64 * page;
	const uint64_t runs =
		(UINT64_C(1) << 3) | (UINT64_C(1) << 4) | (UINT64_C(1) << 9);
	ufp_pool *p = pool_of(1, len, UFP_BACKEND_UFFD, UFP_DIRTY_AUTO, 0);
	struct mod a;
	mod_full(p, len, len, 21, &a);

	ufp_memory *mem = mem_alloc(p, &a, 0);
	read_all(mem);
	bump(mem, 3, 1);
	bump(mem, 4, 1);
	bump(mem, 9, 1);
	uint64_t r0 = resident(p);
	t_free(mem);
	cr_assert_eq(r0 - resident(p), 3 * page,
		     "the three written pages are dropped at free");
	cr_assert_eq(written_mask(p, len), 0);

	ufp_stats s0 = t_stats(p);
	mem = mem_alloc(p, &a, 0);
	ufp_stats s1 = t_stats(p);
	cr_assert_eq(s1.pages_refilled - s0.pages_refilled, 3);
	/* there, and writable: they read as written before any write */
	cr_assert_eq(written_mask(p, len), runs,
		     "refilled pages %#llx, want %#llx",
		     (unsigned long long)written_mask(p, len),
		     (unsigned long long)runs);
	check_fresh(mem, &a, "after the refill");
	cr_assert_eq(t_stats(p).faults, s1.faults,
		     "every page was there: clean ones kept, written ones "
		     "copied back");
	bump(mem, 9, 7);
	t_free(mem);

	/* pages 3 and 4 came back and were left alone: not copied again
	 * (the set does not grow to everything ever written) */
	ufp_stats s1b = t_stats(p);
	mem = mem_alloc(p, &a, 0);
	cr_assert_eq(t_stats(p).pages_refilled - s1b.pages_refilled, 1,
		     "only page 9 was written by the last memory");
	check_fresh(mem, &a, "after a smaller refill");
	t_free(mem);

	/* another module: wiped, nothing copied back from the old image */
	struct mod b;
	mod_full(p, len, len, 22, &b);
	ufp_stats s2 = t_stats(p);
	mem = mem_alloc(p, &b, 0);
	ufp_stats s3 = t_stats(p);
	cr_assert_eq(s3.slots_wiped - s2.slots_wiped, 1);
	cr_assert_eq(s3.pages_refilled - s2.pages_refilled, 0);
	check_fresh(mem, &b, "another module after a refill");
	t_free(mem);
	mod_fini(&a);
	mod_fini(&b);
	pool_done(p);
}

/* Scattered writes: every dropped run comes back, up to UFPI_REFILL_MAX
 * runs; beyond that the rest fault in, and every byte is right. */
Test(refill, every_scattered_run_up_to_the_cap, .timeout = 120)
{
	const size_t page = t_page();
	const uint64_t runs = UFPI_REFILL_MAX + 104, npages = 2 * runs;
	const uint64_t len =
		(npages * page + 64 * KIB - 1) / (64 * KIB) * (64 * KIB);
	ufp_pool *p = pool_of(1, len, UFP_BACKEND_UFFD, UFP_DIRTY_AUTO, 0);
	struct mod a;
	mod_full(p, len, len, 24, &a);

	for (int round = 0; round < 2; round++) {
		/* round 0: 100 runs, all remembered; round 1: beyond the cap */
		uint64_t n = round ? runs : 100;
		ufp_memory *mem = mem_alloc(p, &a, 0);
		read_all(mem);
		for (uint64_t k = 0; k < n; k++)
			bump(mem, 2 * k, 1); /* every other page: n runs */
		t_free(mem);

		ufp_stats s0 = t_stats(p);
		mem = mem_alloc(p, &a, 0);
		ufp_stats s1 = t_stats(p);
		uint64_t want = n < UFPI_REFILL_MAX ? n : UFPI_REFILL_MAX;
		cr_assert_eq(s1.pages_refilled - s0.pages_refilled, want,
			     "%llu pages copied back for %llu dropped runs",
			     (unsigned long long)(s1.pages_refilled -
						  s0.pages_refilled),
			     (unsigned long long)n);
		check_fresh(mem, &a, round ? "beyond the cap" : "100 runs");
		ufp_stats s2 = t_stats(p);
		/* one fault's window may bring back several of the rest */
		uint64_t faults = s2.faults - s1.faults;
		cr_assert(round ? faults >= 1 && faults <= n - want
				: faults == 0,
			  "%llu faults, %llu pages were not copied back",
			  (unsigned long long)faults,
			  (unsigned long long)(n - want));
		t_free(mem);
	}
	mod_fini(&a);
	pool_done(p);
}

/* One long written run: at most UFPI_REFILL_MAX_PAGES come back eagerly;
 * the rest fault in, and every byte is right. */
Test(refill, at_most_the_page_cap_copied_back, .timeout = 120)
{
	const size_t page = t_page();
	const uint64_t npages = UFPI_REFILL_MAX_PAGES + 64;
	/* and clean pages after them: a slot left with nothing mapped
	 * releases its image, and with it anything to copy back */
	const uint64_t len =
		((npages + 16) * page + 64 * KIB - 1) / (64 * KIB) * (64 * KIB);
	ufp_pool *p = pool_of(1, len, UFP_BACKEND_UFFD, UFP_DIRTY_AUTO, 0);
	struct mod a;
	mod_full(p, len, len, 25, &a);

	ufp_memory *mem = mem_alloc(p, &a, 0);
	read_all(mem);
	for (uint64_t k = 0; k < npages; k++)
		bump(mem, k, 1);
	t_free(mem);

	ufp_stats s0 = t_stats(p);
	mem = mem_alloc(p, &a, 0);
	ufp_stats s1 = t_stats(p);
	cr_assert_eq(
		s1.pages_refilled - s0.pages_refilled, UFPI_REFILL_MAX_PAGES,
		"%llu pages copied back",
		(unsigned long long)(s1.pages_refilled - s0.pages_refilled));
	check_fresh(mem, &a, "beyond the page cap");
	cr_assert_gt(t_stats(p).faults, s1.faults,
		     "the pages beyond the cap fault in");
	t_free(mem);
	mod_fini(&a);
	pool_done(p);
}

/* A smaller memory of the same module gets only what fits in it. */
Test(refill, clipped_to_the_new_size)
{
	const uint64_t wasm_page = 64 * KIB, len = 4 * wasm_page;
	ufp_pool *p = pool_of(1, len, UFP_BACKEND_UFFD, UFP_DIRTY_AUTO, 0);
	struct mod a;
	mod_full(p, wasm_page, wasm_page, 23, &a);

	ufp_memory *mem = mem_alloc(p, &a, len);
	read_all(mem);
	unsigned char *b = ufp_memory_base(mem);
	b[5] ^= 1;		   /* page 0, image data */
	b[3 * wasm_page + 5] ^= 1; /* beyond the next memory's size */
	t_free(mem);

	ufp_stats s0 = t_stats(p);
	mem = mem_alloc(p, &a, wasm_page);
	cr_assert_eq(t_stats(p).pages_refilled - s0.pages_refilled, 1);
	check_fresh(mem, &a, "smaller memory");
	cr_assert_eq(ufp_memory_grow(mem, len), 0);
	check_fresh(mem, &a, "grown back (zero beyond the image)");
	t_free(mem);
	mod_fini(&a);
	pool_done(p);
}

/* ---- idle resident bytes are bounded, least recently freed first -------- */

#define IDLE_LEN (256 * KIB)

static void idle_lru(ufp_backend be, ufp_dirty_tracking dt)
{
	const size_t page = t_page();
	enum { N = 8, KEEP_SLOTS = 3 };
	ufp_config c;
	cfg_init(&c, N, IDLE_LEN, be, dt, IDLE_LEN);
	c.strategy = UFP_STRATEGY_REUSE_AFFINITY;
	c.max_resident_idle_bytes = KEEP_SLOTS * IDLE_LEN;
	ufp_pool *p = pool_new(&c);
	struct mod md[N];
	ufp_memory *mem[N];
	uint32_t slot[N];
	uint64_t order[N], rng = 77 + be * 3 + dt;

	for (unsigned k = 0; k < N; k++)
		mod_full(p, IDLE_LEN, IDLE_LEN, 100 + k, &md[k]);
	for (unsigned k = 0; k < N; k++) {
		mem[k] = mem_alloc(p, &md[k], 0);
		slot[k] = ufp_memory_slot(mem[k]);
		check_fresh(mem[k], &md[k], "first");
		/* a few written pages too: restored, kept */
		((unsigned char *)ufp_memory_base(mem[k]))[k * page] ^= 1;
		order[k] = k;
	}
	t_shuffle_u64(order, N, &rng);
	for (unsigned k = 0; k < N; k++)
		t_free(mem[order[k]]);
	quiesce(p);
	check_pool(p);

	ufp_stats s = t_stats(p);
	uint64_t idle = ufp_index_unused_bytes_resident(p->index);
	cr_assert_leq(idle, c.max_resident_idle_bytes,
		      "idle resident %llu > bound %llu",
		      (unsigned long long)idle,
		      (unsigned long long)c.max_resident_idle_bytes);
	cr_assert_eq(s.idle_evictions, N - KEEP_SLOTS);
	cr_assert_eq(ufp_index_num_resident(p->index), KEEP_SLOTS);
	cr_assert_eq(resident(p), KEEP_SLOTS * IDLE_LEN,
		     "measured resident %llu, want %llu",
		     (unsigned long long)resident(p),
		     (unsigned long long)(KEEP_SLOTS * IDLE_LEN));
	for (unsigned k = 0; k < N; k++) {
		unsigned m = (unsigned)order[k];
		uint64_t key = ufp_index_slot_key(p->index, slot[m]);
		uint64_t pages = slot_resident_pages(p, slot[m], IDLE_LEN);
		if (k < N - KEEP_SLOTS) {
			cr_assert_eq(key, 0,
				     "slot %u (freed %u-th of %d) was not "
				     "evicted: still affine to %llu",
				     slot[m], k + 1, N,
				     (unsigned long long)key);
			cr_assert_eq(pages, 0, "evicted slot %u has %llu pages",
				     slot[m], (unsigned long long)pages);
		} else {
			cr_assert_eq(key, md[m].key,
				     "slot %u (freed %u-th of %d, among the "
				     "most recent) lost its affinity",
				     slot[m], k + 1, N);
			cr_assert_eq(pages, IDLE_LEN / page);
		}
	}
	/* every module still reads its image, in its old slot if kept (those
	 * first: another module may take any free slot) */
	for (unsigned k = N; k-- > 0;) {
		unsigned m = (unsigned)order[k];
		mem[m] = mem_alloc(p, &md[m], 0);
		if (k >= N - KEEP_SLOTS)
			cr_assert_eq(ufp_memory_slot(mem[m]), slot[m]);
		check_fresh(mem[m], &md[m], "after eviction");
	}
	for (unsigned k = 0; k < N; k++) {
		t_free(mem[k]);
		mod_fini(&md[k]);
	}
	quiesce(p);
	pool_done(p);
}

Test(idle, lru_eviction_uffd_dirty)
{
	idle_lru(UFP_BACKEND_UFFD, UFP_DIRTY_AUTO);
}
Test(idle, lru_eviction_uffd_plain)
{
	idle_lru(UFP_BACKEND_UFFD, UFP_DIRTY_OFF);
}
Test(idle, lru_eviction_cow)
{
	/* with tracking a COW slot keeps only what it restored privately
	 * (clean pages are page cache): tests/test_minor.c checks that */
	idle_lru(UFP_BACKEND_COW, UFP_DIRTY_OFF);
}
Test(idle, lru_eviction_copy)
{
	idle_lru(UFP_BACKEND_COPY, UFP_DIRTY_AUTO);
}

static void warm_lru_bound(ufp_dirty_tracking dt)
{
	enum { N = 5, WARM = 2 };
	ufp_config c;
	cfg_init(&c, 8, IDLE_LEN, UFP_BACKEND_UFFD, dt, IDLE_LEN);
	c.strategy = UFP_STRATEGY_WARM_LRU;
	c.max_unused_warm_slots = WARM;
	ufp_pool *p = pool_new(&c);
	struct mod md[N];
	ufp_memory *mem[N];
	uint32_t slot[N];

	for (unsigned k = 0; k < N; k++) {
		mod_full(p, IDLE_LEN, IDLE_LEN, 200 + k, &md[k]);
		mem[k] = mem_alloc(p, &md[k], 0);
		slot[k] = ufp_memory_slot(mem[k]);
		read_all(mem[k]);
	}
	for (unsigned k = 0; k < N; k++)
		t_free(mem[k]);
	quiesce(p);
	check_pool(p);
	cr_assert_leq(ufp_index_num_resident(p->index), WARM,
		      "%u idle slots keep pages, max_unused_warm_slots %d",
		      ufp_index_num_resident(p->index), WARM);
	cr_assert_eq(resident(p), WARM * IDLE_LEN);
	for (unsigned k = 0; k < N; k++)
		cr_assert_eq(slot_resident_pages(p, slot[k], IDLE_LEN),
			     k < N - WARM ? 0 : IDLE_LEN / t_page(),
			     "slot %u, freed %u-th", slot[k], k + 1);
	for (unsigned k = 0; k < N; k++)
		mod_fini(&md[k]);
	pool_done(p);
}

Test(idle, warm_lru_bound_dirty)
{
	warm_lru_bound(UFP_DIRTY_AUTO);
}
Test(idle, warm_lru_bound_plain)
{
	warm_lru_bound(UFP_DIRTY_OFF);
}

/* ---- purge with dirty tracking on --------------------------------------- */

Test(purge, drop_returns_to_baseline_with_dirty_tracking)
{
	const size_t page = t_page();
	enum { N = 3 };
	ufp_pool *p = pool_of(N + 1, 1 * MIB, UFP_BACKEND_UFFD, UFP_DIRTY_AUTO,
			      256 * KIB);
	uint64_t baseline = resident(p);
	struct mod a, b;
	mod_full(p, 1 * MIB, 1 * MIB, 21, &a);
	mod_full(p, 1 * MIB, 768 * KIB, 22, &b);

	ufp_memory *mem[N];
	for (unsigned k = 0; k < N; k++) {
		mem[k] = mem_alloc(p, &a, 0);
		check_fresh(mem[k], &a, "a");
		unsigned char *base = ufp_memory_base(mem[k]);
		for (uint64_t o = k * page; o < 1 * MIB; o += 7 * page)
			base[o] ^= 0x33;
	}
	for (unsigned k = 0; k < N; k++)
		t_free(mem[k]);
	uint64_t lingering = resident(p);
	cr_assert_gt(lingering, baseline + 256 * KIB,
		     "nothing lingered after free (%llu): the purge would "
		     "prove nothing",
		     (unsigned long long)lingering);

	ufp_stats s0 = t_stats(p);
	cr_assert_eq(ufp_module_drop(a.m), 0);
	quiesce(p);
	ufp_stats s1 = t_stats(p);
	cr_assert_eq(resident(p), baseline,
		     "resident %llu after drop + quiesce, baseline %llu",
		     (unsigned long long)resident(p),
		     (unsigned long long)baseline);
	cr_assert_eq(s1.slots_purged - s0.slots_purged, N);
	cr_assert_eq(ufp_index_num_affine(p->index, a.key), 0);
	cr_assert_eq(ufp_index_unused_bytes_resident(p->index), 0);
	check_pool(p);

	/* purged slots still track writes for the next module */
	for (unsigned r = 0; r < 2 * N; r++) {
		ufp_memory *m = fresh_alloc(p, &b, "b after the purge of a");
		unsigned char *base = ufp_memory_base(m);
		for (uint64_t o = r * page; o < 1 * MIB; o += 5 * page)
			base[o] ^= 0x44;
		t_free(m);
	}
	mod_fini(&a);
	mod_fini(&b);
	pool_done(p);
}

/* ---- stats -------------------------------------------------------------- */

static ufp_stats stats_cycles(ufp_backend be, ufp_dirty_tracking dt,
			      unsigned cycles)
{
	const size_t page = t_page();
	ufp_pool *p = pool_of(1, 1 * MIB, be, dt, 0);
	struct mod a;
	mod_full(p, 1 * MIB, 512 * KIB, 31, &a);
	for (unsigned r = 0; r < cycles; r++) {
		ufp_memory *mem = fresh_alloc(p, &a, "cycle");
		unsigned char *base = ufp_memory_base(mem);
		for (uint64_t o = r * page; o < 1 * MIB; o += 16 * page)
			base[o] ^= 0x10;
		t_free(mem);
	}
	ufp_stats s = t_stats(p);
	mod_fini(&a);
	pool_done(p);
	return s;
}

Test(stats, dirty_scans_move_only_with_tracking)
{
	const unsigned cycles = 4;
	ufp_stats on = stats_cycles(UFP_BACKEND_UFFD, UFP_DIRTY_AUTO, cycles);
	cr_assert_eq(on.dirty_scans, cycles);
	cr_assert_gt(on.dirty_scan_ns, 0);
	cr_assert_gt(on.faults_avoided, 0);
	cr_assert_eq(on.resets, cycles);

	/* COW finds written pages as its anonymous ones */
	ufp_stats cow = stats_cycles(UFP_BACKEND_COW, UFP_DIRTY_AUTO, cycles);
	cr_assert_eq(cow.dirty_scans, cycles);

	const ufp_backend off_be[] = {UFP_BACKEND_UFFD, UFP_BACKEND_COW,
				      UFP_BACKEND_COPY};
	for (size_t k = 0; k < 3; k++) {
		ufp_dirty_tracking dt = off_be[k] != UFP_BACKEND_COPY
						? UFP_DIRTY_OFF
						: UFP_DIRTY_AUTO;
		ufp_stats off = stats_cycles(off_be[k], dt, cycles);
		cr_assert_eq(off.dirty_scans, 0, "%s",
			     t_backend_name(off_be[k]));
		cr_assert_eq(off.dirty_scan_ns, 0, "%s",
			     t_backend_name(off_be[k]));
		cr_assert_eq(off.resets, cycles);
	}
}

Test(stats, faults_avoided_counts_kept_clean_pages)
{
	const size_t page = t_page();
	ufp_pool *p = pool_of(1, 1 * MIB, UFP_BACKEND_UFFD, UFP_DIRTY_AUTO, 0);
	struct mod a;
	mod_full(p, 1 * MIB, 1 * MIB, 32, &a);
	ufp_memory *mem = mem_alloc(p, &a, 0);
	read_all(mem);
	unsigned char *base = ufp_memory_base(mem);
	const uint64_t nw = 10;
	for (uint64_t k = 0; k < nw; k++)
		base[(3 + 17 * k) * page] ^= 1;
	t_free(mem);
	ufp_stats s0 = t_stats(p);
	cr_assert_eq(s0.faults_avoided, 0);
	mem = mem_alloc(p, &a, 0);
	ufp_stats s1 = t_stats(p);
	cr_assert_eq(s1.faults_avoided, 1 * MIB / page - nw,
		     "faults_avoided %llu, want %llu clean pages",
		     (unsigned long long)s1.faults_avoided,
		     (unsigned long long)(1 * MIB / page - nw));
	check_fresh(mem, &a, "warm");
	t_free(mem);
	mod_fini(&a);
	pool_done(p);
}

/* ---- AUTO without kernel support falls back and says why ---------------- */

static char info_msg[512];

static void info_cb(void *arg, ufp_log_level level, const char *msg)
{
	(void)arg;
	if (level == UFP_LOG_INFO && strstr(msg, "dirty tracking"))
		snprintf(info_msg, sizeof(info_msg), "%s", msg);
}

/*
 * This kernel has the support, so the fallback is simulated: the cached
 * feature probe (process-wide; Criterion runs each test in its own
 * process) is edited before the pool is created. What is tested is the
 * decision and the log line, not the probe itself.
 */
static void fallback(bool no_wp_async, const char *needle)
{
	struct ufpi_features *f = (struct ufpi_features *)ufpi_features_probe();
	if (f->uffd_err)
		t_skip("userfaultfd: %s", ufp_strerror(f->uffd_err));
	if (no_wp_async)
		f->wp_async = false;
	else
		f->pagemap_scan = false;

	ufp_config c;
	cfg_init(&c, 1, 256 * KIB, UFP_BACKEND_UFFD, UFP_DIRTY_AUTO, 0);
	c.log = info_cb;
	c.log_level = UFP_LOG_INFO;
	info_msg[0] = 0;
	ufp_pool *p = t_pool(&c);
	int dirty = -1;
	cr_assert_eq(ufp_pool_info(p, NULL, NULL, &dirty), 0);
	cr_assert_eq(dirty, 0);
	cr_assert(strstr(info_msg, needle), "log line \"%s\" lacks \"%s\"",
		  info_msg, needle);

	/* and the plain reset it fell back to is correct */
	struct mod a;
	mod_full(p, 256 * KIB, 192 * KIB, 41, &a);
	ufp_memory *mem = mem_alloc(p, &a, 0);
	read_all(mem);
	memset(ufp_memory_base(mem), 0x77, 256 * KIB);
	t_free(mem);
	mem = fresh_alloc(p, &a, "fallback");
	t_free(mem);
	mod_fini(&a);
	cr_assert_eq(ufp_pool_destroy(p), 0);
	ufpi_features_reset();
}

Test(fallback, auto_without_wp_async_logs_why)
{
	fallback(true, "UFFD_FEATURE_WP_ASYNC");
}

Test(fallback, auto_without_pagemap_scan_logs_why)
{
	fallback(false, "PAGEMAP_SCAN");
}
