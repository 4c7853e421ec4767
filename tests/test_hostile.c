/* SPDX-License-Identifier: MIT */
/* ufp-test: timeout=240 */
/*
 * test_hostile.c - a hostile (or just buggy) embedder (docs/design.md,
 * "Errors and bad input"; issue 7 item 5).
 *
 * Misuse the library can detect returns the documented errno and leaves
 * the pool fully usable: NULLs everywhere, bad configs, double free, drop
 * twice (also racing), grow beyond max or below the current size, a module
 * of another pool, a dropped module, sizes that are not 64 KiB multiples,
 * destroy with live memories.
 *
 * Misuse it cannot detect traps and never reveals another memory's bytes:
 * touching a freed memory (SIGBUS with the UFFD backend), touching past
 * the accessible size (SIGSEGV), a syscall given a freed memory as buffer
 * (EFAULT, not a hang); with keep_resident_bytes the kept pages read as
 * the module's image, never the freed instance's writes. Not covered,
 * because it is undefined behaviour rather than misuse: handles used after
 * their pool was destroyed, or after the quarantine recycled them.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/mman.h>

#include "helpers.h"
#include "internal.h"

#define KIB (UINT64_C(1) << 10)
#define MIB (UINT64_C(1) << 20)
#define SECRET 0xa5

TestSuite(hostile);

/* ---- helpers ------------------------------------------------------------------ */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[16 * 1024];
static size_t log_len;

static void log_cb(void *arg, ufp_log_level level, const char *msg)
{
	(void)arg;
	(void)level;
	pthread_mutex_lock(&log_lock);
	t_log_append(log_buf, sizeof(log_buf), &log_len, msg);
	pthread_mutex_unlock(&log_lock);
}

struct variant {
	ufp_backend backend;
	ufp_dirty_tracking dirty;
	const char *name;
};
static const struct variant variants[] = {
	{UFP_BACKEND_UFFD, UFP_DIRTY_AUTO, "uffd+dirty"},
	{UFP_BACKEND_UFFD, UFP_DIRTY_OFF, "uffd"},
	{UFP_BACKEND_COW, UFP_DIRTY_OFF, "cow"},
	{UFP_BACKEND_COPY, UFP_DIRTY_OFF, "copy"},
};
#define NVARIANTS (sizeof(variants) / sizeof(variants[0]))

static char ctx[128];

static void cfg_small(ufp_config *c, uint32_t slots, const struct variant *v)
{
	t_config(c, slots, 1 * MIB);
	c->backend = v ? v->backend : UFP_BACKEND_UFFD;
	c->dirty_tracking = v ? v->dirty : UFP_DIRTY_OFF;
	c->reclaim = UFP_RECLAIM_SYNC;
	c->log = log_cb;
	c->log_level = UFP_LOG_DEBUG;
	snprintf(ctx, sizeof(ctx), "%s: ", v ? v->name : "uffd");
}

struct mod {
	ufp_module *m;
	unsigned char *ref;
	uint64_t bytes;
};

#define MOD_BYTES (256 * KIB)
static unsigned char ref_store[8][MOD_BYTES];
static unsigned ref_next;

/* A sparse image; the first segment's length depends on the seed so one
 * module's pages stick out past another's. Bytes never equal SECRET. */
static void mod_make(ufp_pool *p, struct mod *md, uint64_t seed)
{
	const uint64_t bytes = MOD_BYTES;
	const struct {
		uint64_t off, len;
	} seg[] = {
		{0, (4 - seed % 3) * 4096 + 100},
		{70000, 9000},
		{bytes - 5000, 4000},
	};
	static unsigned char data[3][4 * 4096 + 100];
	ufp_segment segs[3];

	md->bytes = bytes;
	md->ref = ref_store[ref_next++ % 8];
	memset(md->ref, 0, bytes);
	for (int k = 0; k < 3; k++) {
		t_fill(data[k], seg[k].len, seed * 7 + (uint64_t)k);
		for (uint64_t b = 0; b < seg[k].len; b++)
			if (data[k][b] == SECRET || data[k][b] == 0)
				data[k][b] = 0x5a;
		memcpy(md->ref + seg[k].off, data[k], seg[k].len);
		segs[k] = (ufp_segment){seg[k].off, data[k], seg[k].len};
	}
	int err = ufp_module_create(p, segs, 3, bytes, &md->m);
	cr_assert_eq(err, 0, "%smodule_create: %s", ctx, ufp_strerror(err));
}

static void mod_drop(struct mod *md)
{
	int err = ufp_module_drop(md->m);
	cr_assert_eq(err, 0, "%sufp_module_drop: %s", ctx, ufp_strerror(err));
}

static ufp_memory *alloc_ok(ufp_pool *p, const struct mod *md, uint64_t bytes)
{
	ufp_memory *mem = NULL;
	int err = ufp_memory_alloc(p, md ? md->m : NULL, bytes, &mem);
	cr_assert_eq(err, 0, "%sufp_memory_alloc: %s", ctx, ufp_strerror(err));
	return mem;
}

static void free_ok(ufp_memory *mem)
{
	int err = ufp_memory_free(mem);
	cr_assert_eq(err, 0, "%sufp_memory_free: %s", ctx, ufp_strerror(err));
}

static void destroy_ok(ufp_pool *p)
{
	int err = ufp_pool_destroy(p);
	cr_assert_eq(err, 0, "%sufp_pool_destroy: %s", ctx, ufp_strerror(err));
}

/* Byte `off` of md's image (NULL: zero). */
static unsigned char image_byte(const struct mod *md, uint64_t off)
{
	return md && off < md->bytes ? md->ref[off] : 0;
}

static const unsigned char zeros[MOD_BYTES];

/* Non-fatal: report the first byte of mem that is not md's image. */
static bool verify(ufp_memory *mem, const struct mod *md, const char *what)
{
	const unsigned char *b = ufp_memory_base(mem);
	uint64_t size = ufp_memory_size(mem);
	uint64_t img = md ? (md->bytes < size ? md->bytes : size) : 0;
	bool same = !img || memcmp(b, md->ref, img) == 0;
	for (uint64_t off = img; same && off < size; off += MOD_BYTES) {
		uint64_t n = size - off < MOD_BYTES ? size - off : MOD_BYTES;
		same = memcmp(b + off, zeros, n) == 0;
	}
	if (same)
		return true;
	for (uint64_t off = 0; off < size; off++) {
		if (b[off] != image_byte(md, off)) {
			cr_expect_fail(
				"%s%s: slot %u byte %llu is %#x, expected "
				"%#x%s",
				ctx, what, ufp_memory_slot(mem),
				(unsigned long long)off, b[off],
				image_byte(md, off),
				b[off] == SECRET ? " (another memory's "
						   "write)"
						 : "");
			break;
		}
	}
	return false;
}

/* A memory of md (bytes; 0: the module's initial size) reads as md's
 * image (verify), then is freed. */
static void verify_once(ufp_pool *p, const struct mod *md, uint64_t bytes,
			const char *what)
{
	ufp_memory *mem = alloc_ok(p, md, bytes);
	verify(mem, md, what);
	free_ok(mem);
}

/* Every slot free again and the invariants hold: the pool is intact. */
static void assert_intact(ufp_pool *p)
{
	cr_assert_eq(ufp_pool_quiesce(p), 0);
	cr_assert_eq(ufp_index_num_free(p->index), p->cfg.slots,
		     "%s%u of %u slots free", ctx, ufp_index_num_free(p->index),
		     p->cfg.slots);
	cr_assert_eq(ufpi_pool_check(p), 0, "%sufpi_pool_check", ctx);
}

/* The pool works: a cycle on every slot (verify, write, free), twice. */
static void assert_works(ufp_pool *p, const struct mod *md)
{
	ufp_memory *mem[8];
	uint32_t n = p->cfg.slots < 8 ? p->cfg.slots : 8;
	for (int round = 0; round < 2; round++) {
		for (uint32_t k = 0; k < n; k++) {
			mem[k] = alloc_ok(p, md, md ? 0 : MOD_BYTES);
			verify(mem[k], md, "cycle after misuse");
			memset(ufp_memory_base(mem[k]), SECRET,
			       ufp_memory_size(mem[k]));
		}
		for (uint32_t k = 0; k < n; k++)
			free_ok(mem[k]);
	}
	assert_intact(p);
}

static uint64_t resident(ufp_pool *p)
{
	uint64_t r = 0;
	int err = ufp_pool_resident_bytes(p, &r);
	cr_assert_eq(err, 0, "%sresident_bytes: %s", ctx, ufp_strerror(err));
	return r;
}

static bool has_poison(ufp_pool *p)
{
	return p->feat.poison;
}

/* A pool of cfg_small(slots, v). */
static ufp_pool *small_pool(uint32_t slots, const struct variant *v)
{
	ufp_config c;
	cfg_small(&c, slots, v);
	return t_pool(&c);
}

/* md still works on p (assert_works); then it is dropped and p
 * destroyed. */
static void works_then_destroy(ufp_pool *p, struct mod *md)
{
	assert_works(p, md);
	mod_drop(md);
	destroy_ok(p);
}

/* The same with a fresh module of `seed`. */
static void new_module_works_then_destroy(ufp_pool *p, uint64_t seed)
{
	struct mod md;
	mod_make(p, &md, seed);
	works_then_destroy(p, &md);
}

/* ---- detectable misuse: errors ------------------------------------------------------ */

Test(hostile, null_arguments)
{
	ufp_config c;
	ufp_pool *p = NULL;
	ufp_module *m = NULL;
	ufp_memory *mem = NULL;
	ufp_stats st;
	uint64_t r;
	ufp_segment seg = {0, NULL, 10};

	ufp_config_init(NULL);
	cfg_small(&c, 2, NULL);
	cr_assert_eq(ufp_pool_create(NULL, &p), -EINVAL);
	cr_assert_eq(ufp_pool_create(&c, NULL), -EINVAL);
	cr_assert_eq(ufp_pool_destroy(NULL), -EINVAL);
	cr_assert_eq(ufp_pool_quiesce(NULL), -EINVAL);
	cr_assert_eq(ufp_pool_stats(NULL, &st), -EINVAL);
	cr_assert_eq(ufp_pool_resident_bytes(NULL, &r), -EINVAL);
	cr_assert_eq(ufp_pool_info(NULL, NULL, NULL, NULL), -EINVAL);
	cr_assert_eq(ufp_module_create(NULL, NULL, 0, 64 * KIB, &m), -EINVAL);
	cr_assert_eq(ufp_module_drop(NULL), -EINVAL);
	cr_assert_eq(ufp_module_initial_bytes(NULL), 0);
	cr_assert_eq(ufp_memory_alloc(NULL, NULL, 64 * KIB, &mem), -EINVAL);
	cr_assert_eq(ufp_memory_alloc_wait(NULL, NULL, 64 * KIB, 1000, &mem),
		     -EINVAL);
	cr_assert_null(ufp_memory_base(NULL));
	cr_assert_eq(ufp_memory_size(NULL), 0);
	cr_assert_eq(ufp_memory_slot(NULL), UINT32_MAX);
	cr_assert_eq(ufp_memory_grow(NULL, 64 * KIB), -EINVAL);
	cr_assert_eq(ufp_memory_free(NULL), -EINVAL);
	cr_assert_eq(ufp_stats_format(&st, 0, NULL, 0) > 0, 1);
	cr_assert_not_null(ufp_strerror(0));
	cr_assert_not_null(ufp_strerror(1));
	cr_assert_not_null(ufp_strerror(-100000));
	cr_assert_not_null(ufp_strerror(INT32_MIN));

	p = t_pool(&c);
	cr_assert_eq(ufp_pool_stats(p, NULL), -EINVAL);
	cr_assert_eq(ufp_pool_resident_bytes(p, NULL), -EINVAL);
	cr_assert_eq(ufp_pool_info(p, NULL, NULL, NULL), 0);
	cr_assert_eq(ufp_module_create(p, NULL, 0, 64 * KIB, NULL), -EINVAL);
	cr_assert_eq(ufp_module_create(p, NULL, 1, 64 * KIB, &m), -EINVAL,
		     "segs NULL with nsegs 1");
	cr_assert_eq(ufp_module_create(p, &seg, 1, 64 * KIB, &m), -EINVAL,
		     "segment with NULL bytes and len 10");
	cr_assert_eq(ufp_memory_alloc(p, NULL, 64 * KIB, NULL), -EINVAL);
	cr_assert_eq(ufp_memory_alloc_wait(p, NULL, 64 * KIB, 1000, NULL),
		     -EINVAL);

	/* an empty module (no segment) is valid */
	cr_assert_eq(ufp_module_create(p, NULL, 0, 64 * KIB, &m), 0);
	verify_once(p, NULL, 64 * KIB, "NULL module");
	cr_assert_eq(ufp_module_drop(m), 0);
	new_module_works_then_destroy(p, 1);
}

/* One bad field at a time: the documented errno, nothing created, and a
 * good pool afterwards. */
static int bad_config(int k, ufp_config *c)
{
	cfg_small(c, 4, NULL);
	switch (k) {
	case 0:
		c->reserved = 1;
		return -EINVAL;
	case 1:
		c->size = 8;
		return -EINVAL;
	case 2:
		c->slots = 0;
		return -EINVAL;
	case 3:
		c->max_memory_bytes = 0;
		return -EINVAL;
	case 4:
		c->max_memory_bytes = 64 * KIB + 4096;
		return -EINVAL;
	case 5:
		c->guard_bytes = 100;
		return -EINVAL;
	case 6:
		c->pre_guard_bytes = 4097;
		return -EINVAL;
	case 7:
		c->strategy = (ufp_strategy)77;
		return -EINVAL;
	case 8:
		c->backend = (ufp_backend)-1;
		return -EINVAL;
	case 9:
		c->reclaim = (ufp_reclaim)9;
		return -EINVAL;
	case 10:
		c->dirty_tracking = (ufp_dirty_tracking)5;
		return -EINVAL;
	case 11:
		c->handler_threads = 0;
		return -EINVAL;
	case 12:
		c->handler_threads = UFPI_MAX_HANDLERS + 1;
		return -EINVAL;
	case 13:
		c->ring_entries = 0;
		return -EINVAL;
	case 14:
		c->ring_entries = 32769;
		return -EINVAL;
	case 15:
		c->fault_around_bytes = 0;
		return -EINVAL;
	case 16:
		c->fault_around_bytes = 1000;
		return -EINVAL;
	case 17:
		c->fault_around_max_bytes = c->fault_around_bytes / 2;
		return -EINVAL;
	case 18:
		c->keep_resident_bytes = 100;
		return -EINVAL;
	case 19:
		c->log_level = (ufp_log_level)42;
		return -EINVAL;
	/* the reservation cannot fit the 47-bit address space */
	case 20:
		c->slots = UINT32_MAX;
		c->max_memory_bytes = UINT64_C(1) << 32;
		return -E2BIG;
	case 21:
		c->guard_bytes = UINT64_MAX - 4095;
		return -E2BIG;
	case 22:
		c->max_memory_bytes = UINT64_MAX - 65535;
		return -E2BIG;
	case 23:
		c->pre_guard_bytes = UINT64_MAX - 4095;
		return -E2BIG;
	default:
		return 1;
	}
}

Test(hostile, bad_configs)
{
	ufp_config c;
	int fds = t_count_open_fds(), maps = t_count_maps();
	for (int k = 0;; k++) {
		ufp_pool *p = NULL;
		int want = bad_config(k, &c);
		if (want > 0)
			break;
		int err = ufp_pool_create(&c, &p);
		cr_expect_eq(err, want, "bad config %d: %s, expected %s", k,
			     ufp_strerror(err), ufp_strerror(want));
		if (!err)
			destroy_ok(p);
		else
			cr_expect_null(p, "bad config %d set *out", k);
	}
	cr_expect_eq(t_count_open_fds(), fds, "bad configs leaked an fd");
	cr_expect_eq(t_count_maps(), maps, "bad configs leaked a mapping");
	/* a caller built against a newer, larger header is refused: only
	 * the sizes of released versions are accepted (issue 12, item 7) */
	struct {
		ufp_config c;
		char future[64];
	} big;
	memset(&big, 0, sizeof(big));
	cfg_small(&big.c, 2, NULL);
	big.c.size = sizeof(big);
	ufp_pool *p = NULL;
	cr_assert_eq(ufp_pool_create(&big.c, &p), -EINVAL);
	cr_assert_null(p);
	big.c.size = sizeof(big.c);
	p = t_pool(&big.c);
	new_module_works_then_destroy(p, 1);
}

Test(hostile, double_free)
{
	for (size_t v = 0; v < NVARIANTS; v++) {
		ufp_pool *p = small_pool(2, &variants[v]);
		struct mod a;
		mod_make(p, &a, 1);
		ufp_memory *mem = alloc_ok(p, &a, 0);
		memset(ufp_memory_base(mem), SECRET, 4096);
		free_ok(mem);
		cr_assert_eq(ufp_memory_free(mem), -EINVAL, "%sdouble free",
			     ctx);
		cr_assert_eq(ufp_memory_free(mem), -EINVAL, "%striple free",
			     ctx);
		/* a stale handle reads as nothing and cannot grow */
		cr_assert_null(ufp_memory_base(mem));
		cr_assert_eq(ufp_memory_size(mem), 0);
		cr_assert_eq(ufp_memory_slot(mem), UINT32_MAX);
		cr_assert_eq(ufp_memory_grow(mem, 512 * KIB), -EINVAL);
		assert_intact(p);
		/* the slot went back once, not twice */
		ufp_memory *m1 = alloc_ok(p, &a, 0), *m2 = alloc_ok(p, &a, 0);
		ufp_memory *m3 = NULL;
		cr_assert_neq(ufp_memory_slot(m1), ufp_memory_slot(m2));
		cr_assert_eq(ufp_memory_alloc(p, a.m, 0, &m3), -EAGAIN,
			     "%sa third memory in a 2-slot pool", ctx);
		verify(m1, &a, "after a double free");
		verify(m2, &a, "after a double free");
		free_ok(m1);
		free_ok(m2);
		cr_assert_eq(ufp_memory_free(m1), -EINVAL);
		works_then_destroy(p, &a);
	}
}

struct race {
	pthread_barrier_t *bar;
	void *handle;
	int rc;
	bool drop;
};

static void *racer(void *arg)
{
	struct race *r = arg;
	pthread_barrier_wait(r->bar);
	r->rc = r->drop ? ufp_module_drop(r->handle)
			: ufp_memory_free(r->handle);
	return NULL;
}

/* Two threads free the same memory (drop the same module) at once:
 * exactly one wins, the other gets the double-use error. */
Test(hostile, racing_double_free_and_drop)
{
	ufp_pool *p = small_pool(4, NULL);
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, 2);
	for (int round = 0; round < 100; round++) {
		bool drop = round & 1;
		struct mod a;
		mod_make(p, &a, (uint64_t)round);
		ufp_memory *mem = alloc_ok(p, &a, 0);
		((unsigned char *)ufp_memory_base(mem))[0] = 1;
		if (drop)
			free_ok(mem);
		struct race r[2] = {
			{&bar, drop ? (void *)a.m : (void *)mem, 1, drop},
			{&bar, drop ? (void *)a.m : (void *)mem, 1, drop}};
		pthread_t t[2];
		for (int k = 0; k < 2; k++)
			cr_assert_eq(pthread_create(&t[k], NULL, racer, &r[k]),
				     0);
		for (int k = 0; k < 2; k++)
			pthread_join(t[k], NULL);
		int lose = drop ? -EALREADY : -EINVAL;
		cr_assert((r[0].rc == 0 && r[1].rc == lose) ||
				  (r[0].rc == lose && r[1].rc == 0),
			  "round %d (%s): results %d and %d", round,
			  drop ? "drop" : "free", r[0].rc, r[1].rc);
		if (!drop)
			mod_drop(&a);
	}
	pthread_barrier_destroy(&bar);
	assert_intact(p);
	new_module_works_then_destroy(p, 1000);
}

Test(hostile, drop_twice)
{
	ufp_pool *p = small_pool(2, NULL);
	struct mod a, b;
	mod_make(p, &a, 1);
	mod_make(p, &b, 2);
	mod_drop(&a);
	cr_assert_eq(ufp_module_drop(a.m), -EALREADY);
	cr_assert_eq(ufp_module_drop(a.m), -EALREADY);
	cr_assert_eq(ufp_module_initial_bytes(a.m), 0);

	/* dropped while a memory lives: that memory keeps working */
	ufp_memory *mem = alloc_ok(p, &b, 0);
	mod_drop(&b);
	cr_assert_eq(ufp_module_drop(b.m), -EALREADY);
	verify(mem, &b, "a memory of a dropped module");
	memset(ufp_memory_base(mem), SECRET, ufp_memory_size(mem));
	cr_assert_eq(ufp_memory_grow(mem, 512 * KIB), 0);
	free_ok(mem);
	cr_assert_eq(ufp_module_drop(b.m), -EALREADY);
	assert_intact(p);
	cr_assert_eq(resident(p), 0, "the dropped module's pages stayed");
	assert_works(p, NULL);
	destroy_ok(p);
}

Test(hostile, grow_misuse)
{
	for (size_t v = 0; v < NVARIANTS; v++) {
		ufp_pool *p = small_pool(1, &variants[v]);
		struct mod a;
		mod_make(p, &a, 1);
		ufp_memory *mem = alloc_ok(p, &a, 512 * KIB);
		cr_assert_eq(ufp_memory_grow(mem, 2 * MIB), -E2BIG,
			     "%sgrow beyond max", ctx);
		cr_assert_eq(ufp_memory_grow(mem, UINT64_MAX - 65535), -E2BIG,
			     "%sgrow to 2^64 - 64 KiB", ctx);
		cr_assert_eq(ufp_memory_grow(mem, 256 * KIB), -EINVAL,
			     "%sgrow to a smaller size", ctx);
		cr_assert_eq(ufp_memory_grow(mem, 0), -EINVAL, "%sgrow to 0",
			     ctx);
		cr_assert_eq(ufp_memory_grow(mem, 512 * KIB + 4096), -EINVAL,
			     "%sgrow by a page, not a wasm page", ctx);
		cr_assert_eq(ufp_memory_grow(mem, 512 * KIB), 0,
			     "%sgrow to the same size", ctx);
		cr_assert_eq(ufp_memory_size(mem), 512 * KIB);
		cr_assert_eq(ufpi_pool_check(p), 0);
		verify(mem, &a, "after rejected grows");
		cr_assert_eq(ufp_memory_grow(mem, 1 * MIB), 0, "%sgrow to max",
			     ctx);
		verify(mem, &a, "grown to max");
		free_ok(mem);
		works_then_destroy(p, &a);
	}
}

Test(hostile, alloc_misuse)
{
	ufp_config c;
	cfg_small(&c, 2, NULL);
	ufp_pool *p = t_pool(&c), *q = t_pool(&c);
	struct mod a, other, dropped;
	mod_make(p, &a, 1);
	mod_make(q, &other, 2);
	mod_make(p, &dropped, 3);
	mod_drop(&dropped);
	ufp_memory *mem = NULL;

	cr_assert_eq(ufp_memory_alloc(p, other.m, 0, &mem), -EINVAL,
		     "a module of another pool");
	cr_assert_eq(ufp_memory_alloc(p, dropped.m, 0, &mem), -EINVAL,
		     "a dropped module");
	cr_assert_eq(ufp_memory_alloc(p, a.m, 256 * KIB + 4096, &mem), -EINVAL,
		     "size not a 64 KiB multiple");
	cr_assert_eq(ufp_memory_alloc(p, NULL, 100, &mem), -EINVAL, "size 100");
	cr_assert_eq(ufp_memory_alloc(p, a.m, 2 * MIB, &mem), -E2BIG,
		     "beyond max_memory_bytes");
	cr_assert_eq(ufp_memory_alloc(p, NULL, UINT64_MAX - 65535, &mem),
		     -E2BIG, "2^64 - 64 KiB");
	cr_assert_eq(ufp_memory_alloc(p, a.m, 128 * KIB, &mem), -ERANGE,
		     "smaller than the module's initial size");
	cr_assert_null(mem);
	cr_assert_eq(ufp_memory_alloc_wait(p, dropped.m, 0, 1000000, &mem),
		     -EINVAL);
	assert_intact(p);

	/* every slot in use: EAGAIN, and a bounded wait times out */
	ufp_memory *m1 = alloc_ok(p, &a, 0), *m2 = alloc_ok(p, NULL, 0);
	/* a zero-sized memory with no module is valid: all guard */
	cr_assert_eq(ufp_memory_size(m2), 0);
	cr_assert_eq(ufp_memory_alloc(p, a.m, 0, &mem), -EAGAIN);
	cr_assert_eq(ufp_memory_alloc_wait(p, a.m, 0, 20 * 1000000, &mem),
		     -ETIMEDOUT);
	cr_assert_null(mem);
	free_ok(m2);
	verify(m1, &a, "with the pool full");
	free_ok(m1);
	assert_intact(p);

	/* the other pool was never touched */
	assert_works(q, &other);
	assert_works(p, &a);
	mod_drop(&a);
	mod_drop(&other);
	destroy_ok(p);
	destroy_ok(q);
}

Test(hostile, module_create_misuse)
{
	ufp_pool *p = small_pool(1, NULL);
	ufp_module *m = NULL;
	unsigned char b[100];
	memset(b, 1, sizeof(b));
	const struct {
		ufp_segment seg;
		uint64_t initial;
		int want;
		const char *what;
	} cases[] = {
		{{0, b, 10}, 64 * KIB + 4096, -EINVAL, "initial not 64 KiB"},
		{{0, b, 10}, 2 * MIB, -E2BIG, "initial beyond max"},
		{{64 * KIB - 5, b, 10}, 64 * KIB, -ERANGE, "segment past end"},
		{{64 * KIB, b, 1}, 64 * KIB, -ERANGE, "segment at the end"},
		{{UINT64_MAX - 5, b, 10},
		 64 * KIB,
		 -ERANGE,
		 "offset + len wraps around"},
		{{5, b, UINT64_MAX - 2}, 64 * KIB, -ERANGE, "huge len"},
		{{0, NULL, 1}, 64 * KIB, -EINVAL, "NULL bytes"},
		{{0, b, 10}, 0, 0, "initial 0 with a segment"},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		m = NULL;
		int err = ufp_module_create(p, &cases[k].seg, 1,
					    cases[k].initial, &m);
		if (cases[k].want == 0 && err == -ERANGE)
			continue; /* a segment in 0 bytes: also fine */
		cr_expect_eq(err, cases[k].want, "%s: %s", cases[k].what,
			     ufp_strerror(err));
		if (!err)
			cr_assert_eq(ufp_module_drop(m), 0);
	}
	/* a zero-length segment anywhere in range, NULL bytes: fine */
	ufp_segment empty = {64 * KIB, NULL, 0};
	cr_assert_eq(ufp_module_create(p, &empty, 1, 64 * KIB, &m), 0);
	cr_assert_eq(ufp_module_drop(m), 0);
	new_module_works_then_destroy(p, 1);
}

Test(hostile, destroy_with_live_memory)
{
	for (size_t v = 0; v < NVARIANTS; v++) {
		ufp_pool *p = small_pool(2, &variants[v]);
		struct mod a;
		mod_make(p, &a, 1);
		ufp_memory *mem = alloc_ok(p, &a, 0);
		cr_assert_eq(ufp_pool_destroy(p), -EBUSY, "%sdestroy", ctx);
		cr_assert_eq(ufp_pool_destroy(p), -EBUSY);
		verify(mem, &a, "after a refused destroy");
		memset(ufp_memory_base(mem), SECRET, ufp_memory_size(mem));
		cr_assert_eq(ufp_memory_grow(mem, 512 * KIB), 0);
		free_ok(mem);
		assert_works(p, &a);
		/* modules not dropped are dropped by destroy */
		destroy_ok(p);
	}
}

/* ---- undetectable misuse: traps ------------------------------------------------------ */

/* keep_resident_bytes 0, no dirty tracking: every page of a freed memory
 * is gone, a touch faults to the handler, which poisons it. */
static ufp_memory *freed_memory(ufp_pool **pp, struct mod *a, bool touch)
{
	*pp = small_pool(1, &variants[1]);
	if (!has_poison(*pp))
		t_skip("no UFFDIO_POISON (Linux 6.6): freed memory gives "
		       "SIGSEGV, not SIGBUS");
	mod_make(*pp, a, 1);
	ufp_memory *mem = alloc_ok(*pp, a, 0);
	if (touch)
		memset(ufp_memory_base(mem), SECRET, ufp_memory_size(mem));
	free_ok(mem);
	return mem;
}

Test(hostile, read_freed_touched_page, .signal = SIGBUS)
{
	ufp_pool *p;
	struct mod a;
	ufp_memory *mem = freed_memory(&p, &a, true);
	volatile unsigned char *b = ufpi_slot_base(&p->slots, 0);
	(void)mem;
	unsigned char v = b[0];
	cr_assert_fail("read %#x from a freed memory", v);
}

Test(hostile, read_freed_untouched_page, .signal = SIGBUS)
{
	ufp_pool *p;
	struct mod a;
	ufp_memory *mem = freed_memory(&p, &a, false);
	volatile unsigned char *b = ufpi_slot_base(&p->slots, 0);
	(void)mem;
	unsigned char v = b[200 * KIB];
	cr_assert_fail("read %#x from a freed memory", v);
}

Test(hostile, write_freed_page, .signal = SIGBUS)
{
	ufp_pool *p;
	struct mod a;
	ufp_memory *mem = freed_memory(&p, &a, true);
	volatile unsigned char *b = ufpi_slot_base(&p->slots, 0);
	(void)mem;
	b[100 * KIB] = 1;
	cr_assert_fail("wrote to a freed memory");
}

Test(hostile, past_accessible_size, .signal = SIGSEGV)
{
	ufp_pool *p = small_pool(2, NULL);
	ufp_memory *mem = alloc_ok(p, NULL, 128 * KIB);
	volatile unsigned char *b = ufp_memory_base(mem);
	b[128 * KIB - 1] = 1;
	unsigned char v = b[128 * KIB];
	cr_assert_fail("read %#x past the accessible size", v);
}

/* Every backend: past the size, in the guard, before slot 0, and in a
 * never-used neighbour slot, an access is SIGSEGV; and a freed memory
 * (keep_resident_bytes 0) traps or reads as its image or zero, never the
 * freed instance's writes, with every page trapping (SIGBUS) for UFFD
 * without dirty tracking. */
Test(hostile, traps_everywhere)
{
	for (size_t v = 0; v < NVARIANTS; v++) {
		ufp_pool *p = small_pool(2, &variants[v]);
		struct mod a;
		mod_make(p, &a, 1);
		ufp_memory *mem = alloc_ok(p, &a, 0);
		ufp_memory *other = alloc_ok(p, &a, 0);
		volatile unsigned char *b = ufp_memory_base(mem);
		unsigned char x;
		const int64_t offs[] = {
			256 * KIB,	      /* first byte past size */
			512 * KIB,	      /* further in the slot */
			(int64_t)(MIB + 100), /* the guard */
			-1,		      /* before the slot */
		};
		for (size_t k = 0; k < sizeof(offs) / sizeof(offs[0]); k++) {
			volatile unsigned char *q = b + offs[k];
			if (offs[k] < 0 && ufp_memory_slot(mem) != 0)
				continue; /* the other slot's guard is before */
			cr_expect_eq(t_read_trapping(q, &x), SIGSEGV,
				     "%sread at offset %lld did not SIGSEGV",
				     ctx, (long long)offs[k]);
			cr_expect_eq(t_write_trapping(q, 1), SIGSEGV,
				     "%swrite at offset %lld did not SIGSEGV",
				     ctx, (long long)offs[k]);
		}
		verify(mem, &a, "after trapped accesses");
		memset((void *)b, SECRET, ufp_memory_size(mem));
		memset(ufp_memory_base(other), SECRET, 4096);
		free_ok(mem);

		/* the freed memory, page by page */
		const size_t page = 4096;
		unsigned trapped = 0;
		for (uint64_t off = 0; off < MOD_BYTES; off += page) {
			int sig = t_read_trapping(b + off, &x);
			if (sig) {
				cr_expect_eq(sig, SIGBUS,
					     "%sfreed page %llu: signal %d",
					     ctx, (unsigned long long)off, sig);
				trapped++;
				continue;
			}
			for (uint64_t i = 0; i < page; i++) {
				unsigned char got = b[off + i];
				if (got != image_byte(&a, off + i) &&
				    got != 0) {
					cr_expect_fail(
						"%sfreed memory byte %llu "
						"reads "
						"%#x: not its image (%#x)%s",
						ctx,
						(unsigned long long)(off + i),
						got, image_byte(&a, off + i),
						got == SECRET
							? ", the freed "
							  "instance's write"
							: "");
					break;
				}
			}
		}
		if (variants[v].backend == UFP_BACKEND_UFFD &&
		    variants[v].dirty == UFP_DIRTY_OFF && has_poison(p))
			cr_expect_eq(trapped, MOD_BYTES / page,
				     "%sonly %u of %llu freed pages trapped",
				     ctx, trapped,
				     (unsigned long long)(MOD_BYTES / page));
		free_ok(other);
		assert_intact(p);
		/* poisoned pages are dropped before the slot is reused */
		assert_works(p, &a);
		assert_works(p, NULL);
		mod_drop(&a);
		destroy_ok(p);
	}
}

/* keep_resident_bytes > 0: the kept pages of a freed memory stay mapped.
 * Reading them shows the module's image, never the freed instance's
 * writes; pages past the kept range trap (UFFD) or read as image/zero. */
Test(hostile, kept_pages_read_as_image)
{
	for (size_t v = 0; v < NVARIANTS; v++) {
		ufp_config c;
		cfg_small(&c, 1, &variants[v]);
		c.keep_resident_bytes = 128 * KIB;
		ufp_pool *p = t_pool(&c);
		struct mod a;
		mod_make(p, &a, 1);
		ufp_memory *mem = alloc_ok(p, &a, 0);
		volatile unsigned char *b = ufp_memory_base(mem);
		memset((void *)b, SECRET, ufp_memory_size(mem));
		free_ok(mem);
		unsigned char x;
		unsigned readable = 0;
		for (uint64_t off = 0; off < MOD_BYTES; off += 4096) {
			int sig = t_read_trapping(b + off, &x);
			if (sig) {
				cr_expect_eq(sig, SIGBUS, "%ssignal %d", ctx,
					     sig);
				cr_expect_geq(off, c.keep_resident_bytes,
					      "%skept page %llu trapped", ctx,
					      (unsigned long long)off);
				continue;
			}
			readable++;
			for (uint64_t i = 0; i < 4096; i++) {
				unsigned char got = b[off + i];
				unsigned char want = image_byte(&a, off + i);
				if (got != want &&
				    !(off >= c.keep_resident_bytes &&
				      got == 0)) {
					cr_expect_fail(
						"%sfreed byte %llu reads "
						"%#x, image %#x%s",
						ctx,
						(unsigned long long)(off + i),
						got, want,
						got == SECRET ? " (the freed "
								"instance's "
								"write)"
							      : "");
					break;
				}
			}
		}
		cr_expect_gt(readable, 0, "%sno kept page readable", ctx);
		assert_intact(p);
		verify_once(p, &a, 0, "next memory after reading kept pages");
		works_then_destroy(p, &a);
	}
}

/* A syscall given a freed memory as its buffer fails with EFAULT; it
 * neither hangs (the handler answers kernel-mode faults too) nor moves
 * bytes. */
Test(hostile, syscall_on_freed_memory, .timeout = 30)
{
	ufp_pool *p;
	struct mod a;
	freed_memory(&p, &a, true);
	unsigned char *b = ufpi_slot_base(&p->slots, 0);
	int pfd[2];
	char msg[64];
	memset(msg, 'x', sizeof(msg));
	cr_assert_eq(pipe(pfd), 0);

	alarm(20);
	errno = 0;
	ssize_t n = write(pfd[1], b + 8192, sizeof(msg));
	int e = errno;
	cr_expect(n < 0 && e == EFAULT,
		  "write(2) from a freed memory: %zd (%s)", n, strerror(e));
	cr_assert_eq(write(pfd[1], msg, sizeof(msg)), (ssize_t)sizeof(msg));
	errno = 0;
	n = read(pfd[0], b + 100 * KIB, sizeof(msg));
	e = errno;
	cr_expect(n < 0 && e == EFAULT, "read(2) into a freed memory: %zd (%s)",
		  n, strerror(e));
	alarm(0);
	close(pfd[0]);
	close(pfd[1]);
	assert_intact(p);
	works_then_destroy(p, &a);
}

/* ---- isolation between consecutive tenants -------------------------------------------- */

/*
 * Regression: with dirty tracking, a memory that only *read* zero-image
 * pages left them mapped (the shared zero page is clean, so the reset
 * keeps it) but recorded the slot as unpopulated. The next memory's
 * writes to those pages never fault, so nothing tracks them: they survived
 * its free and the next tenant, of any module, read them.
 */
Test(hostile, zero_pages_read_then_written_by_next_tenant)
{
	for (size_t v = 0; v < NVARIANTS; v++) {
		for (int with_module = 0; with_module < 2; with_module++) {
			ufp_pool *p = small_pool(1, &variants[v]);
			struct mod a, b;
			mod_make(p, &a, 1);
			mod_make(p, &b, 2);
			const struct mod *first = with_module ? &a : NULL;

			/* tenant 1 reads only pages with no image data */
			ufp_memory *mem = alloc_ok(p, first, MOD_BYTES);
			const volatile unsigned char *r = ufp_memory_base(mem);
			unsigned sum = 0;
			for (uint64_t off = 100 * KIB; off < 200 * KIB;
			     off += 4096)
				sum += r[off];
			cr_assert_eq(sum, 0);
			free_ok(mem);
			/* tenant 2, same module, writes there */
			mem = alloc_ok(p, first, MOD_BYTES);
			memset((unsigned char *)ufp_memory_base(mem) +
				       100 * KIB,
			       SECRET, 100 * KIB);
			free_ok(mem);
			/* tenant 3: another module, then no module */
			verify_once(p, &b, 0,
				    with_module
					    ? "after zero pages of a module"
					    : "after zero pages of no module");
			verify_once(p, NULL, MOD_BYTES,
				    "no module after zero pages");
			mod_drop(&a);
			mod_drop(&b);
			assert_intact(p);
			destroy_ok(p);
		}
	}
}

/* Many tenants in turn, each writing its whole memory: every one sees
 * exactly its own image, in every backend and with kept pages. */
Test(hostile, tenants_in_turn)
{
	for (size_t v = 0; v < NVARIANTS; v++) {
		for (int keep = 0; keep < 2; keep++) {
			ufp_config c;
			cfg_small(&c, 2, &variants[v]);
			c.keep_resident_bytes = keep ? 64 * KIB : 0;
			ufp_pool *p = t_pool(&c);
			struct mod m[3];
			for (int k = 0; k < 3; k++)
				mod_make(p, &m[k], (uint64_t)k + 1);
			uint64_t seed = 7;
			for (int round = 0; round < 40; round++) {
				uint64_t pick = t_rand(&seed) % 4;
				const struct mod *md =
					pick < 3 ? &m[pick] : NULL;
				ufp_memory *mem = alloc_ok(p, md, MOD_BYTES);
				if (!verify(mem, md, "tenant in turn")) {
					free_ok(mem);
					break;
				}
				/* read some pages only, write others */
				unsigned char *b = ufp_memory_base(mem);
				uint64_t w = t_rand(&seed);
				for (uint64_t pg = 0; pg < MOD_BYTES / 4096;
				     pg++)
					if ((w >> (pg % 64)) & 1)
						b[pg * 4096 + 7] = SECRET;
				free_ok(mem);
			}
			for (int k = 0; k < 3; k++)
				mod_drop(&m[k]);
			assert_intact(p);
			destroy_ok(p);
		}
	}
}
