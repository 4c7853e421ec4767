/* SPDX-License-Identifier: MIT */
/* ufp-test: timeout=240 fill=copy */
/*
 * test_faults.c - fault injection in the syscall layer (lib/os.c, uffd/):
 * each injectable operation made to fail on the use that reaches the path
 * under test (docs/design.md, "Errors and bad input"; issue 7 item 3).
 *
 * For every failure: the public call returns a clear errno or takes the
 * documented fallback and logs it; no fd or mapping leaks (counted before
 * and after, LeakSanitizer at exit under ASan); no slot is lost from the
 * allocator (all free again after frees + quiesce, ufpi_pool_check() == 0);
 * and the pool keeps working (full alloc/verify/write/free cycles after).
 * The isolation property is checked through every failure: a memory sees
 * exactly its own image, never a previous instance's writes (SECRET).
 *
 * Nth-use arithmetic, from the code paths (after the feature probe, which
 * is cached per process, has run once):
 *   ufp_pool_create     MMAP #1 the reservation; USERFAULTFD #k and
 *                       UFFDIO_REGISTER #k per handler fd (per slot when
 *                       handler_threads > 1); URING_INIT #1 (reclaim URING)
 *   ufp_module_create   MMAP #1 scratch, MPROTECT #1 scratch, MMAP #2 image
 *   ufp_memory_alloc    MPROTECT #1 opening a fresh slot; MADVISE #1 when the
 *                       slot must be wiped (stale, or another image's pages)
 *   ufp_memory_grow     MPROTECT #1
 *   ufp_memory_free     MADVISE #1 drops the populated range (no dirty
 *                       tracking); with dirty tracking the written runs
 *                       (possibly one process_madvise, then madvise for
 *                       what it missed, so one failure can be absorbed)
 *   purge (SYNC)        MADVISE #1 per range, then the fallback madvise
 *   COW backend         MMAP #1 maps the image memfd at alloc, or maps
 *                       anonymous memory over the slot to wipe or purge
 *   handler             UFFDIO_COPY per run of image pages in a window
 * A persistent failure (the fallback failing too) is simulated by re-arming
 * from the log callback, which the library calls just before the retry.
 * Criterion forks each Test, so injection state never crosses tests; each
 * still disarms everything when done.
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

/* ---- log capture --------------------------------------------------------- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[64 * 1024];
static size_t log_len;

/* Re-arm `op` with `err` when a log line containing `trigger` goes by. */
static struct {
	const char *trigger;
	enum ufpi_fi_op op;
	int err;
	int times;
} rearm;

static void log_cb(void *arg, ufp_log_level level, const char *msg)
{
	(void)arg;
	(void)level;
	pthread_mutex_lock(&log_lock);
	t_log_append(log_buf, sizeof(log_buf), &log_len, msg);
	if (rearm.trigger && rearm.times > 0 && strstr(msg, rearm.trigger)) {
		rearm.times--;
		UFPI_IGNORE(ufpi_fi_arm(rearm.op, 1, rearm.err));
	}
	pthread_mutex_unlock(&log_lock);
}

static bool log_has(const char *s)
{
	pthread_mutex_lock(&log_lock);
	bool r = strstr(log_buf, s) != NULL;
	pthread_mutex_unlock(&log_lock);
	return r;
}

static void log_clear(void)
{
	pthread_mutex_lock(&log_lock);
	log_len = 0;
	log_buf[0] = 0;
	pthread_mutex_unlock(&log_lock);
}

/* ---- fixtures -------------------------------------------------------------- */

static void fi_init(void)
{
	if (ufpi_fi_arm(UFPI_FI_MMAP, 0, -EIO) == -ENOTSUP)
		t_skip("built without UFP_FAULT_INJECTION (use the debug or "
		       "tsan preset)");
}

static void fi_fini(void)
{
	ufpi_fi_reset();
	rearm.trigger = NULL;
}

TestSuite(faults, .init = fi_init, .fini = fi_fini);

/* A crash expectation only where the crash can be caused: without fault
 * injection those tests are skipped, and a skip raises no signal. */
#ifdef UFP_FAULT_INJECTION
#define FI_SIGNAL(sig) .signal = (sig)
#else
#define FI_SIGNAL(sig) .signal = 0
#endif

static void arm(enum ufpi_fi_op op, unsigned nth, int err)
{
	int rc = ufpi_fi_arm(op, nth, err);
	cr_assert_eq(rc, 0, "ufpi_fi_arm(%d, %u, %d) = %d", (int)op, nth, err,
		     rc);
}

/* Backends (and UFFD with and without dirty tracking): the reset, wipe and
 * purge paths differ between them. */
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

/* A small UFFD pool: `slots` slots of 1 MiB, logging everything. */
static void cfg_small(ufp_config *c, uint32_t slots)
{
	t_config(c, slots, 1 * MIB);
	c->backend = UFP_BACKEND_UFFD;
	c->reclaim = UFP_RECLAIM_SYNC;
	c->dirty_tracking = UFP_DIRTY_OFF;
	c->log = log_cb;
	c->log_level = UFP_LOG_DEBUG;
}

/* The syscalls that install image pages, and that replace what a slot
 * holds, in the pool's fill mode: minor mode maps the image's memfd into
 * the slot (UFFDIO_CONTINUE serves it) and replaces that mapping to wipe;
 * copy mode copies (UFFDIO_COPY) and drops pages (madvise). The suite runs
 * in both (fill=copy above). */
static enum ufpi_fi_op fill_op(const ufp_pool *p)
{
	return p->slots.minor ? UFPI_FI_UFFDIO_CONTINUE : UFPI_FI_UFFDIO_COPY;
}

static enum ufpi_fi_op wipe_op(const ufp_pool *p)
{
	return p->slots.minor ? UFPI_FI_MMAP : UFPI_FI_MADVISE;
}

/* The first syscall preparing a fresh slot for a module: mapping the
 * image (minor mode), else opening [0, size) with mprotect. */
static enum ufpi_fi_op fresh_prepare_op(const ufp_pool *p)
{
	return p->slots.minor ? UFPI_FI_MMAP : UFPI_FI_MPROTECT;
}

/* A module with a sparse image and its reference bytes. */
struct mod {
	ufp_module *m;
	unsigned char *ref;
	uint64_t bytes;
};

/* Reference bytes live in static storage: an assertion that ends a test
 * early then leaves nothing for LeakSanitizer to report. */
#define MOD_MAX_BYTES (256 * KIB)
static unsigned char ref_store[8][MOD_MAX_BYTES];
static unsigned ref_next;

static int mod_try(ufp_pool *p, struct mod *md, uint64_t bytes, uint64_t seed)
{
	const struct {
		uint64_t off, len;
	} seg[] = {
		/* the first segment's length differs between seeds, so one
		 * module's pages stick out past another's */
		{0, (4 - seed % 3) * 4096 + 100},
		{70000, 9000},
		{bytes - 5000, 4000},
	};
	static unsigned char data[3][4 * 4096 + 100];
	ufp_segment segs[3];

	cr_assert_leq(bytes, MOD_MAX_BYTES);
	md->bytes = bytes;
	md->ref = ref_store[ref_next++ % 8];
	memset(md->ref, 0, bytes);
	for (int k = 0; k < 3; k++) {
		t_fill(data[k], seg[k].len, seed * 7 + (uint64_t)k);
		/* never equal to SECRET, so stale writes are always visible */
		for (uint64_t b = 0; b < seg[k].len; b++)
			if (data[k][b] == SECRET)
				data[k][b] = 0x5a;
		memcpy(md->ref + seg[k].off, data[k], seg[k].len);
		segs[k] = (ufp_segment){seg[k].off, data[k], seg[k].len};
	}
	return ufp_module_create(p, segs, 3, bytes, &md->m);
}

static void mod_make(ufp_pool *p, struct mod *md, uint64_t bytes, uint64_t seed)
{
	int err = mod_try(p, md, bytes, seed);
	cr_assert_eq(err, 0, "ufp_module_create: %s", ufp_strerror(err));
}

static void mod_drop(struct mod *md)
{
	int err = ufp_module_drop(md->m);
	cr_assert_eq(err, 0, "ufp_module_drop: %s", ufp_strerror(err));
	md->ref = NULL;
	md->m = NULL;
}

/* What the running test is exercising, prefixed to failure messages. */
static char ctx[160];

static const unsigned char zeros[MOD_MAX_BYTES];

/* First offset where mem differs from md's image (NULL: zeros), or -1. */
static int64_t mismatch(ufp_memory *mem, const struct mod *md)
{
	const unsigned char *b = ufp_memory_base(mem);
	uint64_t size = ufp_memory_size(mem);
	uint64_t img = md ? (md->bytes < size ? md->bytes : size) : 0;
	bool same = !img || memcmp(b, md->ref, img) == 0;
	for (uint64_t off = img; same && off < size; off += MOD_MAX_BYTES) {
		uint64_t n =
			size - off < MOD_MAX_BYTES ? size - off : MOD_MAX_BYTES;
		same = memcmp(b + off, zeros, n) == 0;
	}
	if (same)
		return -1;
	for (uint64_t off = 0; off < size; off++) {
		unsigned char want = md && off < md->bytes ? md->ref[off] : 0;
		if (b[off] != want)
			return (int64_t)off;
	}
	return -1;
}

static void verify(ufp_memory *mem, const struct mod *md, const char *what)
{
	int64_t off = mismatch(mem, md);
	if (off >= 0) {
		const unsigned char *b = ufp_memory_base(mem);
		unsigned char want =
			md && (uint64_t)off < md->bytes ? md->ref[off] : 0;
		/* not fatal: the other variants of a test still run */
		cr_expect_fail("%s%s: slot %u byte %lld is %#x, expected %#x%s",
			       ctx, what, ufp_memory_slot(mem), (long long)off,
			       b[off], want,
			       b[off] == SECRET ? " (a previous instance's "
						  "write)"
						: "");
	}
}

static ufp_memory *alloc_ok(ufp_pool *p, const struct mod *md, uint64_t bytes)
{
	return t_alloc(p, md ? md->m : NULL, bytes);
}

static void scribble(ufp_memory *mem)
{
	memset(ufp_memory_base(mem), SECRET, ufp_memory_size(mem));
}

/* A memory of md (bytes; 0: the module's initial size) reads as md's
 * image (verify), then is freed. */
static void verify_once(ufp_pool *p, const struct mod *md, uint64_t bytes,
			const char *what)
{
	ufp_memory *mem = alloc_ok(p, md, bytes);
	verify(mem, md, what);
	t_free(mem);
}

/* Every slot back in the allocator and the invariants hold. */
static void assert_intact(ufp_pool *p)
{
	cr_assert_eq(ufp_pool_quiesce(p), 0);
	cr_assert_eq(ufp_index_num_free(p->index), p->cfg.slots,
		     "%u of %u slots free: a slot was lost",
		     ufp_index_num_free(p->index), p->cfg.slots);
	cr_assert_eq(ufpi_pool_check(p), 0, "ufpi_pool_check failed");
}

/* The pool still works: two full cycles on every slot (the second sees
 * what the first one's reset left), then intact. */
static void assert_works(ufp_pool *p, const struct mod *md)
{
	ufp_memory *mem[8];
	uint32_t n = p->cfg.slots < 8 ? p->cfg.slots : 8;
	for (int round = 0; round < 2; round++) {
		for (uint32_t k = 0; k < n; k++) {
			mem[k] = alloc_ok(p, md, md ? 0 : 256 * KIB);
			verify(mem[k], md,
			       round ? "second cycle after the failure"
				     : "first cycle after the failure");
			scribble(mem[k]);
		}
		for (uint32_t k = 0; k < n; k++)
			t_free(mem[k]);
	}
	assert_intact(p);
}

/* fd and mapping counts of the process */
struct res {
	int fds, maps;
};

static struct res res_now(void)
{
	return (struct res){t_count_open_fds(), t_count_maps()};
}

static void res_same(struct res before, const char *what)
{
	struct res now = res_now();
	cr_assert_eq(now.fds, before.fds, "%s: %d fds, %d before: fd leak",
		     what, now.fds, before.fds);
	cr_assert_eq(now.maps, before.maps,
		     "%s: %d mappings, %d before: mapping leak", what, now.maps,
		     before.maps);
}

/* One full pool lifetime with this config: primes the feature probe and
 * every lazily created process resource (thread stack cache, allocator
 * arenas) so counts taken afterwards are stable. */
static void warm_up(const ufp_config *c)
{
	ufp_pool *p = t_pool(c);
	struct mod md;
	mod_make(p, &md, 256 * KIB, 99);
	ufp_memory *mem = alloc_ok(p, &md, 0);
	verify(mem, &md, "warm-up");
	scribble(mem);
	t_free(mem);
	mod_drop(&md);
	cr_assert_eq(ufp_pool_quiesce(p), 0);
	t_destroy(p);
	log_clear();
}

static uint64_t resident(ufp_pool *p)
{
	uint64_t r = 0;
	int err = ufp_pool_resident_bytes(p, &r);
	cr_assert_eq(err, 0, "ufp_pool_resident_bytes: %s", ufp_strerror(err));
	return r;
}

/* cfg_small with a variant's backend and dirty tracking. */
static void cfg_variant(ufp_config *c, uint32_t slots, const struct variant *v)
{
	cfg_small(c, slots);
	c->backend = v->backend;
	c->dirty_tracking = v->dirty;
}

/* Modules a (seed 1) and b (seed 2), 256 KiB each. */
static void mod_make_two(ufp_pool *p, struct mod *a, struct mod *b)
{
	mod_make(p, a, 256 * KIB, 1);
	mod_make(p, b, 256 * KIB, 2);
}

/* A memory of md written all over and freed (kept pages hold md's
 * image, or the writes when the reset fails). */
static void write_and_free(ufp_pool *p, const struct mod *md)
{
	ufp_memory *mem = alloc_ok(p, md, 0);
	scribble(mem);
	t_free(mem);
}

/* md still works on p (assert_works); then it is dropped and p
 * destroyed. */
static void works_then_destroy(ufp_pool *p, struct mod *md)
{
	assert_works(p, md);
	mod_drop(md);
	t_destroy(p);
}

/* A pool of cfg_small(slots), after a warm_up of that config when
 * `warm`. */
static ufp_pool *small_pool(uint32_t slots, bool warm)
{
	ufp_config c;
	cfg_small(&c, slots);
	if (warm)
		warm_up(&c);
	return t_pool(&c);
}

/* A fresh module (seed 1) works on p (assert_works), then is dropped. */
static void assert_works_module(ufp_pool *p)
{
	struct mod md;
	mod_make(p, &md, 256 * KIB, 1);
	assert_works(p, &md);
	mod_drop(&md);
}

/* ufp_memory_alloc with `op` #1 failing with `inject`: what it returned. */
static int alloc_failing(ufp_pool *p, const struct mod *md, uint64_t bytes,
			 enum ufpi_fi_op op, int inject, ufp_memory **mem)
{
	arm(op, 1, inject);
	int err = ufp_memory_alloc(p, md ? md->m : NULL, bytes, mem);
	ufpi_fi_reset();
	return err;
}

/* ufp_pool_create with `op` #nth failing with `inject` returns that error
 * (`what` names the case), logs `logged` (unless NULL) and leaves no fd
 * or mapping behind (against `before`). Returns the pool it left. */
static ufp_pool *create_fails(const ufp_config *c, struct res before,
			      enum ufpi_fi_op op, unsigned nth, int inject,
			      const char *logged, const char *what)
{
	ufp_pool *p = NULL;
	arm(op, nth, inject);
	int err = ufp_pool_create(c, &p);
	ufpi_fi_reset();
	cr_assert_eq(err, inject, "%s: %s", what, ufp_strerror(err));
	if (logged)
		cr_assert(log_has(logged), "%s: log lacks \"%s\": %s", what,
			  logged, log_buf);
	res_same(before, "after the failed create");
	return p;
}

/* After a failed create, a pool of the same config works and its
 * destroy leaves no fd or mapping behind. */
static void good_pool_after(const ufp_config *c, struct res before)
{
	ufp_pool *p = t_pool(c);
	assert_works_module(p);
	t_destroy(p);
	res_same(before, "after a good pool");
}

/* Nothing resident once the pool is intact, and its destroy leaves no
 * fd or mapping behind. */
static void destroy_clean(ufp_pool *p, struct res before)
{
	assert_intact(p);
	cr_assert_eq(resident(p), 0);
	t_destroy(p);
	res_same(before, "after destroy");
}

/* ---- mmap -------------------------------------------------------------------- */

Test(faults, mmap_pool_reservation)
{
	ufp_config c;
	cfg_small(&c, 4);
	warm_up(&c);
	struct res before = res_now();

	cr_assert_null(create_fails(&c, before, UFPI_FI_MMAP, 1, -ENOMEM,
				    "cannot reserve",
				    "create with a failing reservation"));
	good_pool_after(&c, before);
}

/* module_create maps a scratch area (MMAP #1), opens it (MPROTECT #1),
 * then maps the image buffer (MMAP #2). */
static void module_create_fails(enum ufpi_fi_op op, unsigned nth)
{
	ufp_pool *p = small_pool(2, true);
	struct mod md;
	mod_make(p, &md, 256 * KIB, 1); /* allocator arenas warmed */
	mod_drop(&md);
	struct res before = res_now();

	arm(op, nth, -ENOMEM);
	int err = mod_try(p, &md, 256 * KIB, 2);
	ufpi_fi_reset();
	cr_assert_eq(err, -ENOMEM, "module_create, op %d #%u failing: %s",
		     (int)op, nth, ufp_strerror(err));
	res_same(before, "after the failed module_create");
	assert_intact(p);

	mod_make(p, &md, 256 * KIB, 2);
	works_then_destroy(p, &md);
}

Test(faults, mmap_module_scratch)
{
	module_create_fails(UFPI_FI_MMAP, 1);
}

Test(faults, mmap_module_image_buffer)
{
	module_create_fails(UFPI_FI_MMAP, 2);
}

Test(faults, mprotect_module_scratch)
{
	module_create_fails(UFPI_FI_MPROTECT, 1);
}

/* ---- mprotect ------------------------------------------------------------------ */

Test(faults, mprotect_alloc)
{
	ufp_pool *p = small_pool(1, true);
	struct mod md;
	mod_make(p, &md, 256 * KIB, 1);
	ufp_memory *mem = NULL;

	/* a fresh slot: the one mprotect opening [0, size) fails */
	int err = alloc_failing(p, &md, 0, fresh_prepare_op(p), -ENOMEM, &mem);
	cr_assert_eq(err, -ENOMEM, "alloc: %s", ufp_strerror(err));
	cr_assert_null(mem);
	cr_assert(log_has("memory_alloc: slot 0"), "log: %s", log_buf);
	assert_intact(p);

	/* a used slot shrinking to a smaller memory (PROT_NONE the tail) */
	mem = alloc_ok(p, &md, 512 * KIB);
	verify(mem, &md, "after the failed alloc");
	scribble(mem);
	t_free(mem);
	mem = NULL;
	err = alloc_failing(p, &md, 256 * KIB, UFPI_FI_MPROTECT, -ENOMEM, &mem);
	cr_assert_eq(err, -ENOMEM, "alloc (shrink): %s", ufp_strerror(err));
	assert_intact(p);

	/* and with no module */
	err = alloc_failing(p, NULL, 128 * KIB, UFPI_FI_MPROTECT, -ENOMEM,
			    &mem);
	cr_assert_eq(err, -ENOMEM, "alloc (no module): %s", ufp_strerror(err));
	assert_intact(p);

	verify_once(p, NULL, 128 * KIB, "no-module memory after failed allocs");
	works_then_destroy(p, &md);
}

/* After a failed alloc the slot's protection is unknown; the next memory
 * must still trap right past its size. */
Test(faults, mprotect_alloc_then_guard, FI_SIGNAL(SIGSEGV))
{
	ufp_pool *p = small_pool(1, false);
	ufp_memory *mem = alloc_ok(p, NULL, 512 * KIB);
	t_free(mem);
	cr_assert_eq(alloc_failing(p, NULL, 128 * KIB, UFPI_FI_MPROTECT,
				   -ENOMEM, &mem),
		     -ENOMEM);
	mem = alloc_ok(p, NULL, 128 * KIB);
	volatile unsigned char *b = ufp_memory_base(mem);
	b[128 * KIB - 1] = 1;
	b[128 * KIB] = 1; /* SIGSEGV */
	cr_assert_fail("wrote past the accessible size without a trap");
}

Test(faults, mprotect_grow)
{
	ufp_pool *p = small_pool(1, true);
	struct mod md;
	mod_make(p, &md, 256 * KIB, 1);
	ufp_memory *mem = alloc_ok(p, &md, 0);
	verify(mem, &md, "before grow");

	arm(UFPI_FI_MPROTECT, 1, -ENOMEM);
	int err = ufp_memory_grow(mem, 512 * KIB);
	ufpi_fi_reset();
	cr_assert_eq(err, -ENOMEM, "grow: %s", ufp_strerror(err));
	cr_assert_eq(ufp_memory_size(mem), 256 * KIB, "size changed to %llu",
		     (unsigned long long)ufp_memory_size(mem));
	cr_assert_eq(ufpi_pool_check(p), 0);
	verify(mem, &md, "after the failed grow");

	err = ufp_memory_grow(mem, 512 * KIB);
	cr_assert_eq(err, 0, "grow again: %s", ufp_strerror(err));
	cr_assert_eq(ufp_memory_size(mem), 512 * KIB);
	verify(mem, &md, "after the second grow");
	scribble(mem);
	t_free(mem);
	assert_intact(p);
	works_then_destroy(p, &md);
}

Test(faults, mprotect_grow_then_guard, FI_SIGNAL(SIGSEGV))
{
	ufp_pool *p = small_pool(1, false);
	ufp_memory *mem = alloc_ok(p, NULL, 128 * KIB);
	arm(UFPI_FI_MPROTECT, 1, -ENOMEM);
	cr_assert_eq(ufp_memory_grow(mem, 256 * KIB), -ENOMEM);
	ufpi_fi_reset();
	volatile unsigned char *b = ufp_memory_base(mem);
	b[128 * KIB - 1] = 1;
	b[128 * KIB] = 1; /* not grown: SIGSEGV */
	cr_assert_fail("a failed grow left pages accessible");
}

/* ---- madvise: the reset at free ---------------------------------------------- */

/*
 * The isolation property: when the reset's madvise fails at free, the next
 * memory in that slot (same module, another module, or none) sees exactly
 * its own image, never the freed instance's writes.
 */
static void reset_fails(int next, uint64_t keep)
{
	for (size_t v = 0; v < NVARIANTS; v++) {
		ufp_config c;
		cfg_variant(&c, 1, &variants[v]);
		c.keep_resident_bytes = keep;
		snprintf(ctx, sizeof(ctx), "%s, keep %llu: ", variants[v].name,
			 (unsigned long long)keep);
		warm_up(&c);
		struct res before = res_now();
		ufp_pool *p = t_pool(&c);
		struct mod a, b;
		mod_make_two(p, &a, &b);

		ufp_memory *mem = alloc_ok(p, &a, 0);
		verify(mem, &a, "first instance");
		scribble(mem);
		arm(UFPI_FI_MADVISE, 1, -EIO);
		int err = ufp_memory_free(mem);
		ufpi_fi_reset();
		cr_assert_eq(err, 0, "free with a failing reset: %s",
			     ufp_strerror(err));
		/* With dirty tracking the reset may drop its runs with one
		 * process_madvise and mop up with madvise: one injected
		 * failure is then absorbed. Isolation is checked either way;
		 * the plain path must have failed. */
		if (c.dirty_tracking == UFP_DIRTY_OFF)
			cr_assert(
				log_has("reset failed"),
				"%sno log line (was the madvise reached?): %s",
				ctx, log_buf);
		assert_intact(p);

		const struct mod *nm = next == 0 ? &a : next == 1 ? &b : NULL;
		mem = alloc_ok(p, nm, 256 * KIB);
		cr_assert_eq(ufp_memory_slot(mem), 0);
		verify(mem, nm,
		       next == 0   ? "same module after a failed reset"
		       : next == 1 ? "other module after a failed reset"
				   : "no module after a failed reset");
		t_free(mem);
		assert_works(p, nm);
		mod_drop(&a);
		mod_drop(&b);
		assert_intact(p);
		/* a memory with no module keeps its zeroed pages in an
		 * unaffine slot: no drop ever purges those */
		if (nm || !keep)
			cr_assert_eq(resident(p), 0,
				     "%s%llu bytes left after drop+quiesce",
				     ctx, (unsigned long long)resident(p));
		t_destroy(p);
		res_same(before, "after destroy");
		log_clear();
	}
}

Test(faults, madvise_reset_same_module)
{
	reset_fails(0, 0);
	reset_fails(0, 64 * KIB);
}

Test(faults, madvise_reset_other_module)
{
	reset_fails(1, 0);
	reset_fails(1, 64 * KIB);
}

Test(faults, madvise_reset_no_module)
{
	reset_fails(2, 0);
	reset_fails(2, 64 * KIB);
}

/* keep_resident_bytes covers pages that were never faulted in: the reset
 * drops them (MADVISE #1 inside the kept range) and that fails. */
Test(faults, madvise_reset_kept_range)
{
	ufp_config c;
	cfg_small(&c, 1);
	c.keep_resident_bytes = 256 * KIB;
	c.fault_around_max_bytes = c.fault_around_bytes;
	ufp_pool *p = t_pool(&c);
	struct mod a, b;
	mod_make_two(p, &a, &b);
	ufp_memory *mem = alloc_ok(p, &a, 0);
	unsigned char *base = ufp_memory_base(mem);
	base[0] = SECRET;	       /* window [0, 64K) */
	base[192 * KIB + 10] = SECRET; /* window [192K, 256K) */
	arm(UFPI_FI_MADVISE, 1, -EIO);
	cr_assert_eq(ufp_memory_free(mem), 0);
	ufpi_fi_reset();
	cr_assert(log_has("reset failed"), "log: %s", log_buf);
	assert_intact(p);
	mem = alloc_ok(p, &a, 0);
	verify(mem, &a, "same module after a failed kept-range reset");
	base = ufp_memory_base(mem);
	base[0] = SECRET;
	base[192 * KIB + 10] = SECRET;
	arm(UFPI_FI_MADVISE, 1, -EIO);
	cr_assert_eq(ufp_memory_free(mem), 0);
	ufpi_fi_reset();
	verify_once(p, &b, 0, "other module after a failed kept-range reset");
	assert_works(p, &a);
	mod_drop(&a);
	mod_drop(&b);
	t_destroy(p);
}

/* The wipe before the slot changes hands can fail too: the alloc fails
 * cleanly and the next try wipes. (COW wipes with mmap: see mmap_cow_*.) */
Test(faults, madvise_wipe_for_other_module)
{
	for (size_t v = 0; v < NVARIANTS; v++) {
		if (variants[v].backend == UFP_BACKEND_COW)
			continue;
		ufp_config c;
		cfg_variant(&c, 1, &variants[v]);
		c.keep_resident_bytes = 64 * KIB;
		snprintf(ctx, sizeof(ctx), "%s: ", variants[v].name);
		warm_up(&c);
		ufp_pool *p = t_pool(&c);
		struct mod a, b;
		mod_make_two(p, &a, &b);
		write_and_free(p, &a); /* keeps A's image pages in slot 0 */

		ufp_memory *mem = NULL;
		int err = alloc_failing(p, &b, 0, wipe_op(p), -EIO, &mem);
		cr_assert_eq(err, -EIO, "%salloc with a failing wipe: %s", ctx,
			     ufp_strerror(err));
		cr_assert_null(mem);
		cr_assert(log_has("memory_alloc: slot 0"), "log: %s", log_buf);
		assert_intact(p);

		mem = alloc_ok(p, &b, 0);
		verify(mem, &b, "other module after a failed wipe");
		scribble(mem);
		t_free(mem);
		verify_once(p, &a, 0, "first module again");
		assert_works(p, &b);
		mod_drop(&a);
		mod_drop(&b);
		assert_intact(p);
		cr_assert_eq(resident(p), 0, "%spages left after drop+quiesce",
			     ctx);
		t_destroy(p);
		log_clear();
	}
}

/* After a failed wipe the slot still holds module A's kept pages (and a
 * reference on its image). Dropping A must still purge them: design §7,
 * "after drop + quiesce no page of its image is resident". */
Test(faults, madvise_wipe_failure_then_drop)
{
	ufp_config c;
	cfg_small(&c, 1);
	c.keep_resident_bytes = 64 * KIB;
	ufp_pool *p = t_pool(&c);
	struct mod a, b;
	mod_make_two(p, &a, &b);
	write_and_free(p, &a);
	ufp_memory *mem = NULL;
	cr_assert_gt(resident(p), 0, "nothing kept: test premise broken");

	const void *image_data = a.m->image->data;
	cr_assert_eq(alloc_failing(p, &b, 0, wipe_op(p), -EIO, &mem), -EIO);
	mod_drop(&a);
	assert_intact(p);
	uint64_t r = resident(p);
	cr_expect_eq(r, 0,
		     "%llu bytes of the dropped module's image still resident "
		     "after drop + quiesce (the failed alloc re-keyed the slot "
		     "to the other module, so the purge never saw it)",
		     (unsigned long long)r);
	cr_expect_eq(t_is_mapped(image_data), 0,
		     "the dropped module's image buffer is still mapped after "
		     "drop + quiesce");
	/* the next alloc (the slot's new key) wipes it at last */
	verify_once(p, &b, 0,
		    "other module after the failed wipe and the drop");
	mod_drop(&b);
	t_destroy(p);
}

/* ---- madvise: purge ------------------------------------------------------------ */

/* The purge's madvise fails once: it is redone, counted and logged. Every
 * backend, plus process_madvise (the same fallback) on UFFD. */
Test(faults, madvise_purge_redone)
{
	for (size_t v = 0; v <= NVARIANTS; v++) {
		ufp_config c;
		cfg_small(&c, 2);
		if (v < NVARIANTS) {
			c.backend = variants[v].backend;
			c.dirty_tracking = variants[v].dirty;
		} else {
			c.reclaim = UFP_RECLAIM_PROCESS_MADVISE;
		}
		c.keep_resident_bytes = 64 * KIB;
		snprintf(ctx, sizeof(ctx),
			 "%s, %s: ", v < NVARIANTS ? variants[v].name : "uffd",
			 t_reclaim_name(c.reclaim));
		warm_up(&c);
		ufp_pool *p = t_pool(&c);
		struct mod a, b;
		mod_make_two(p, &a, &b);
		write_and_free(p, &a);
		cr_assert_gt(resident(p), 0, "%snothing kept", ctx);
		ufp_stats st0 = t_stats(p);

		arm(UFPI_FI_MADVISE, 1, -EIO);
		mod_drop(&a);
		ufpi_fi_reset();
		assert_intact(p);
		ufp_stats st1 = t_stats(p);
		cr_assert_eq(st1.reclaim_fallbacks - st0.reclaim_fallbacks, 1,
			     "%sreclaim_fallbacks +%llu", ctx,
			     (unsigned long long)(st1.reclaim_fallbacks -
						  st0.reclaim_fallbacks));
		cr_assert(log_has("redone with madvise"), "log: %s", log_buf);
		cr_assert_eq(resident(p), 0, "%spages left after the redo",
			     ctx);
		assert_works(p, &b);
		mod_drop(&b);
		t_destroy(p);
		log_clear();
	}
}

/*
 * The purge's madvise and its fallback both fail (a persistent error).
 * The slot still holds the dropped module's bytes; whatever the purge
 * does with it, the next memory in that slot must not see them.
 * Two cases: kept image pages (keep_resident_bytes) and an earlier failed
 * reset (the instance's own writes).
 */
static void purge_fails_twice(const struct variant *var, ufp_reclaim engine,
			      bool stale)
{
	ufp_config c;
	cfg_variant(&c, 1, var);
	c.reclaim = engine;
	c.keep_resident_bytes = stale ? 0 : 64 * KIB;
	snprintf(ctx, sizeof(ctx), "%s, %s: ", var->name,
		 t_reclaim_name(engine));
	ufp_pool *p = t_pool(&c);
	struct mod a, b;
	mod_make_two(p, &a, &b);
	ufp_memory *mem = alloc_ok(p, &a, 0);
	scribble(mem);
	if (stale)
		arm(UFPI_FI_MADVISE, 1, -EIO);
	t_free(mem);
	ufpi_fi_reset();
	/* (with dirty tracking one injected failure may be absorbed by the
	 * reset's own fallback: then nothing is stale and, keep being 0,
	 * nothing is left to purge) */
	bool purge_has_work = !stale || log_has("reset failed");

	rearm.trigger = "redone with madvise";
	rearm.op = UFPI_FI_MADVISE;
	rearm.err = -EIO;
	rearm.times = 1;
	arm(UFPI_FI_MADVISE, 1, -EIO);
	mod_drop(&a);
	cr_assert_eq(ufp_pool_quiesce(p), 0);
	ufpi_fi_reset();
	rearm.trigger = NULL;
	if (purge_has_work)
		cr_assert(log_has("redone with madvise"), "%slog: %s", ctx,
			  log_buf);

	mem = alloc_ok(p, &b, 0);
	cr_assert_eq(ufp_memory_slot(mem), 0);
	verify(mem, &b,
	       stale ? "another module after a failed reset and a failed purge"
		     : "another module after a failed purge of kept pages");
	t_free(mem);
	verify_once(p, NULL, 256 * KIB, "no module after a failed purge");
	mod_drop(&b);
	assert_intact(p);
	t_destroy(p);
	log_clear();
}

Test(faults, madvise_purge_fails_twice_kept)
{
	for (size_t v = 0; v < NVARIANTS; v++)
		purge_fails_twice(&variants[v], UFP_RECLAIM_SYNC, false);
	purge_fails_twice(&variants[1], UFP_RECLAIM_PROCESS_MADVISE, false);
}

Test(faults, madvise_purge_fails_twice_stale)
{
	for (size_t v = 0; v < NVARIANTS; v++)
		purge_fails_twice(&variants[v], UFP_RECLAIM_SYNC, true);
	purge_fails_twice(&variants[1], UFP_RECLAIM_PROCESS_MADVISE, true);
}

/* ---- mmap: the COW backend ------------------------------------------------------ */

/* COW maps the image's memfd over the slot at alloc (MMAP #1 on a fresh
 * slot) and maps fresh anonymous memory over it to wipe (MMAP #1 when the
 * slot changes module) or purge. */
/* A warmed-up 1-slot COW pool; the process's fds and mappings before it
 * in *before. */
static ufp_pool *cow_pool(struct res *before)
{
	ufp_config c;
	cfg_small(&c, 1);
	c.backend = UFP_BACKEND_COW;
	warm_up(&c);
	*before = res_now();
	return t_pool(&c);
}

Test(faults, mmap_cow_alloc)
{
	struct res before;
	ufp_pool *p = cow_pool(&before);
	struct mod a;
	mod_make(p, &a, 256 * KIB, 1);
	ufp_memory *mem = NULL;
	int err = alloc_failing(p, &a, 0, UFPI_FI_MMAP, -ENOMEM, &mem);
	cr_assert_eq(err, -ENOMEM, "COW alloc with a failing mmap: %s",
		     ufp_strerror(err));
	assert_intact(p);
	assert_works(p, &a);
	mod_drop(&a);
	destroy_clean(p, before);
}

Test(faults, mmap_cow_wipe)
{
	struct res before;
	ufp_pool *p = cow_pool(&before);
	struct mod a, b;
	mod_make_two(p, &a, &b);
	write_and_free(p, &a);
	ufp_memory *mem = NULL;
	int err = alloc_failing(p, &b, 0, UFPI_FI_MMAP, -ENOMEM, &mem);
	cr_assert_eq(err, -ENOMEM, "COW alloc with a failing wipe: %s",
		     ufp_strerror(err));
	assert_intact(p);
	verify_once(p, &b, 0, "COW, other module after a failed wipe");
	assert_works(p, &a);
	mod_drop(&a);
	mod_drop(&b);
	destroy_clean(p, before);
}

Test(faults, mmap_cow_purge)
{
	struct res before;
	ufp_pool *p = cow_pool(&before);
	struct mod a, b;
	mod_make_two(p, &a, &b);
	write_and_free(p, &a);
	arm(UFPI_FI_MMAP, 1, -ENOMEM);
	mod_drop(&a);
	assert_intact(p);
	ufpi_fi_reset();
	ufp_memory *mem = alloc_ok(p, &b, 0);
	verify(mem, &b, "COW, other module after a failed purge");
	scribble(mem);
	t_free(mem);
	verify_once(p, NULL, 256 * KIB, "COW, no module after a failed purge");
	assert_works(p, &b);
	mod_drop(&b);
	destroy_clean(p, before);
}

/* ---- io_uring ----------------------------------------------------------------- */

static void need_uring(void)
{
	const struct ufpi_features *f = ufpi_features_probe();
	if (f->uring_madvise != 1)
		t_skip("io_uring IORING_OP_MADVISE unavailable (%d)",
		       f->uring_madvise);
}

Test(faults, uring_init_auto_falls_back)
{
	ufp_config c;
	cfg_small(&c, 2);
	c.reclaim = UFP_RECLAIM_AUTO;
	c.keep_resident_bytes = 64 * KIB; /* so the purge has work */
	need_uring();
	warm_up(&c);
	struct res before = res_now();

	arm(UFPI_FI_URING_INIT, 1, -ENOMEM);
	ufp_pool *p = t_pool(&c);
	ufpi_fi_reset();
	ufp_reclaim r = UFP_RECLAIM_AUTO;
	cr_assert_eq(ufp_pool_info(p, NULL, &r, NULL), 0);
	cr_assert_eq(r, UFP_RECLAIM_SYNC, "AUTO resolved to %s",
		     t_reclaim_name(r));
	cr_assert(log_has("io_uring setup failed"), "log: %s", log_buf);

	/* purge works through the fallback engine */
	assert_works_module(p);
	destroy_clean(p, before);
}

Test(faults, uring_init_forced_fails)
{
	ufp_config c;
	cfg_small(&c, 2);
	c.reclaim = UFP_RECLAIM_URING;
	need_uring();
	warm_up(&c);
	struct res before = res_now();

	cr_assert_null(create_fails(&c, before, UFPI_FI_URING_INIT, 1, -ENOMEM,
				    "reclaim engine",
				    "forced URING with a failing init"));
	good_pool_after(&c, before);
}

Test(faults, uring_completion_redone)
{
	ufp_config c;
	cfg_small(&c, 4);
	c.reclaim = UFP_RECLAIM_URING;
	c.keep_resident_bytes = 128 * KIB;
	need_uring();
	warm_up(&c);
	ufp_pool *p = t_pool(&c);
	struct mod a, b;
	mod_make(p, &a, 256 * KIB, 1);
	mod_make(p, &b, 256 * KIB, 2);
	ufp_memory *mem[3];
	for (int k = 0; k < 3; k++) {
		mem[k] = alloc_ok(p, &a, 0);
		scribble(mem[k]);
	}
	for (int k = 0; k < 3; k++)
		t_free(mem[k]);
	cr_assert_gt(resident(p), 0);
	ufp_stats st0 = t_stats(p);

	/* the second completion reports an error */
	uint64_t key = a.m->key;
	arm(UFPI_FI_URING_CQE, 2, -EIO);
	mod_drop(&a);
	assert_intact(p);
	ufpi_fi_reset();
	ufp_stats st1 = t_stats(p);
	cr_assert_eq(st1.reclaim_fallbacks - st0.reclaim_fallbacks, 1,
		     "reclaim_fallbacks +%llu",
		     (unsigned long long)(st1.reclaim_fallbacks -
					  st0.reclaim_fallbacks));
	cr_assert_eq(st1.slots_purged - st0.slots_purged, 3);
	cr_assert_eq(st1.purges_inflight, 0);
	cr_assert(log_has("redone with madvise"), "log: %s", log_buf);
	cr_assert_eq(resident(p), 0, "pages left after the redo");
	cr_assert_eq(ufp_index_num_affine(p->index, key), 0);
	works_then_destroy(p, &b);
}

/* ---- UFFDIO_COPY ---------------------------------------------------------------- */

/* The handler's fill fails: the faulting thread must not hang; with
 * UFFDIO_POISON it gets SIGBUS. */
Test(faults, uffdio_copy_fails_sigbus, FI_SIGNAL(SIGBUS), .timeout = 30)
{
	ufp_pool *p = small_pool(1, false);
	if (!p->feat.poison)
		t_skip("no UFFDIO_POISON (Linux 6.6)");
	struct mod a;
	mod_make(p, &a, 256 * KIB, 1);
	ufp_memory *mem = alloc_ok(p, &a, 0);
	arm(fill_op(p), 1, -ENOMEM);
	volatile unsigned char *b = ufp_memory_base(mem);
	unsigned char v = b[0]; /* image page: UFFDIO_COPY fails: SIGBUS */
	(void)v;
	cr_assert_fail("read a page whose fill failed without a trap");
}

Test(faults, uffdio_copy_fails_counted, .timeout = 30)
{
	ufp_pool *p = small_pool(1, true);
	if (!p->feat.poison)
		t_skip("no UFFDIO_POISON (Linux 6.6)");
	struct mod a;
	mod_make(p, &a, 256 * KIB, 1);
	ufp_memory *mem = alloc_ok(p, &a, 0);
	ufp_stats st0 = t_stats(p);

	arm(fill_op(p), 1, -ENOMEM);
	unsigned char v = 0;
	int sig = t_read_trapping(ufp_memory_base(mem), &v);
	ufpi_fi_reset();
	cr_assert_eq(sig, SIGBUS,
		     "read of a page whose fill failed: signal "
		     "%d, value %#x",
		     sig, v);
	ufp_stats st1 = t_stats(p);
	cr_assert_eq(st1.fault_errors - st0.fault_errors, 1,
		     "fault_errors +%llu",
		     (unsigned long long)(st1.fault_errors - st0.fault_errors));
	cr_assert_eq(ufp_pool_quiesce(p), 0); /* delivers the handler's line */
	cr_assert(log_has("fill failed"), "log: %s", log_buf);

	/* the rest of the memory is still served */
	const unsigned char *b = ufp_memory_base(mem);
	cr_assert_eq(memcmp(b + 128 * KIB, a.ref + 128 * KIB, 128 * KIB), 0);
	t_free(mem);
	assert_intact(p);
	/* the poisoned page was zapped by the reset */
	verify_once(p, &a, 0, "after a failed fill");
	works_then_destroy(p, &a);
}

/* An error while filling a neighbour of the faulting page costs the
 * faulting thread nothing: its own page is filled first, the rest of the
 * window is best-effort, and the neighbour is served at its own fault.
 * (Before: the fill stopped at the first failing run of the window, which
 * starts below the faulting page, and the thread got SIGBUS.) */
Test(faults, neighbour_fill_error_spares_the_faulting_thread, .timeout = 30)
{
	const size_t page = t_page();
	ufp_config c;
	cfg_small(&c, 1);
	c.fault_around_bytes = 16 * page; /* one window: pages 0..15 */
	c.fault_around_max_bytes = 16 * page;
	ufp_pool *p = t_pool(&c);
	/* data in pages 0-1 and 4-7: the window holds two data runs */
	static unsigned char d0[2 * 4096], d1[4 * 4096];
	cr_assert_leq(page, 4096);
	t_fill(d0, sizeof(d0), 11);
	t_fill(d1, sizeof(d1), 12);
	ufp_segment segs[] = {{0, d0, 2 * page}, {4 * page, d1, 4 * page}};
	ufp_module *m = NULL;
	cr_assert_eq(ufp_module_create(p, segs, 2, 256 * KIB, &m), 0);
	ufp_memory *mem = NULL;
	cr_assert_eq(ufp_memory_alloc(p, m, 0, &mem), 0);
	unsigned char *b = ufp_memory_base(mem);
	ufp_stats st0 = t_stats(p);

	/* the second data ioctl is the run below the faulting page */
	arm(fill_op(p), 2, -ENOMEM);
	unsigned char v = 0;
	int sig = t_read_trapping(b + 5 * page, &v);
	ufpi_fi_reset();
	cr_assert_eq(sig, 0,
		     "the faulting thread got signal %d for an error "
		     "on a neighbour page",
		     sig);
	cr_assert_eq(v, d1[page]);
	ufp_stats st1 = t_stats(p);
	cr_assert_eq(st1.fault_errors - st0.fault_errors, 1);
	cr_assert_eq(st1.poisoned_faults, st0.poisoned_faults);
	/* the neighbour run was left empty and is served at its fault */
	cr_assert_eq(memcmp(b, d0, 2 * page), 0);
	cr_assert_eq(memcmp(b + 4 * page, d1, 4 * page), 0);
	t_free(mem);
	cr_assert_eq(ufp_module_drop(m), 0);
	assert_intact(p);
	t_destroy(p);
}

/* Issue 12, defect 8: without UFFDIO_POISON a fault that must not be
 * served is answered by making the page PROT_NONE; if that mprotect fails
 * too, the thread used to be woken on an empty page and fault again for
 * ever. It now gets SIGBUS (tgkill, the thread id from
 * UFFD_FEATURE_THREAD_ID), and the failure is counted and logged. */
Test(faults, unpoisonable_fault_sends_sigbus, .timeout = 30)
{
	struct ufpi_features *f = (struct ufpi_features *)ufpi_features_probe();
	if (f->uffd_err)
		t_skip("userfaultfd: %s", ufp_strerror(f->uffd_err));
	f->poison = false;
	ufp_config c;
	cfg_small(&c, 1);
	c.keep_resident_bytes = 0;
	ufp_pool *p = t_pool(&c);
	cr_assert_not(p->slots.uffd_poison);
	ufp_memory *mem = alloc_ok(p, NULL, 256 * KIB);
	const unsigned char *stale = ufp_memory_base(mem);
	t_free(mem);
	ufp_stats st0 = t_stats(p);

	cr_assert_eq(ufpi_fi_arm_sticky(UFPI_FI_MPROTECT, 1, -ENOMEM), 0);
	unsigned char v = 0;
	int sig = t_read_trapping(stale + 8 * KIB, &v);
	ufpi_fi_reset();
	cr_assert_eq(sig, SIGBUS,
		     "a fault that could not be poisoned: signal "
		     "%d",
		     sig);
	cr_assert_gt(t_stats(p).fault_errors, st0.fault_errors);
	cr_assert_eq(ufp_pool_quiesce(p), 0); /* delivers the handler's line */
	cr_assert(log_has("sending SIGBUS"), "log: %s", log_buf);
	assert_works(p, NULL);
	t_destroy(p);
	ufpi_features_reset();
}

/* A kernel-mode fault (read(2) into the memory) whose fill fails returns
 * EFAULT instead of hanging. */
Test(faults, uffdio_copy_fails_in_syscall, .timeout = 30)
{
	ufp_pool *p = small_pool(1, false);
	if (!p->feat.poison)
		t_skip("no UFFDIO_POISON (Linux 6.6)");
	struct mod a;
	mod_make(p, &a, 256 * KIB, 1);
	ufp_memory *mem = alloc_ok(p, &a, 0);
	int pfd[2];
	char msg[100];
	memset(msg, 'x', sizeof(msg));
	cr_assert_eq(pipe(pfd), 0);
	cr_assert_eq(write(pfd[1], msg, sizeof(msg)), (ssize_t)sizeof(msg));

	alarm(20);
	arm(fill_op(p), 1, -ENOMEM);
	errno = 0;
	ssize_t n = read(pfd[0], ufp_memory_base(mem), sizeof(msg));
	int e = errno;
	ufpi_fi_reset();
	alarm(0);
	cr_assert(n < 0 && e == EFAULT, "read(2) into a failed fill: %zd (%s)",
		  n, strerror(e));
	close(pfd[0]);
	close(pfd[1]);
	t_free(mem);
	works_then_destroy(p, &a);
}

/* EAGAIN and EEXIST are normal answers: the fill finishes correctly. */
Test(faults, uffdio_copy_transient)
{
	const int errs[] = {-EAGAIN, -EEXIST};
	ufp_pool *p = small_pool(1, false);
	struct mod a;
	mod_make(p, &a, 256 * KIB, 1);
	for (int k = 0; k < 2; k++) {
		for (unsigned nth = 1; nth <= 3; nth++) {
			ufp_stats st0 = t_stats(p);
			ufp_memory *mem = alloc_ok(p, &a, 0);
			arm(fill_op(p), nth, errs[k]);
			verify(mem, &a, "fill with a transient error");
			ufpi_fi_reset();
			ufp_stats st1 = t_stats(p);
			cr_assert_eq(st1.fault_errors, st0.fault_errors,
				     "%s #%u counted as an error",
				     strerror(-errs[k]), nth);
			t_free(mem);
		}
	}
	assert_intact(p);
	mod_drop(&a);
	t_destroy(p);
}

/* ---- UFFDIO_REGISTER -------------------------------------------------------------- */

static void register_fails(unsigned threads, unsigned nth)
{
	ufp_config c;
	char what[64];
	cfg_small(&c, 4);
	c.handler_threads = threads;
	warm_up(&c);
	struct res before = res_now();

	snprintf(what, sizeof(what), "%u handlers, register #%u failing",
		 threads, nth);
	cr_assert_null(create_fails(&c, before, UFPI_FI_UFFDIO_REGISTER, nth,
				    -ENOMEM, "userfaultfd setup failed", what));
	good_pool_after(&c, before);
}

Test(faults, uffdio_register)
{
	register_fails(1, 1);
}

Test(faults, uffdio_register_per_slot)
{
	register_fails(2, 1);
	register_fails(2, 3);
}

/* ---- userfaultfd() ------------------------------------------------------------------ */

static void userfaultfd_fails(int inject, const char *logged)
{
	ufp_config c;
	char what[96];
	cfg_small(&c, 2);
	warm_up(&c);
	struct res before = res_now();

	ufpi_features_reset();
	snprintf(what, sizeof(what), "create with userfaultfd failing %s",
		 strerror(-inject));
	cr_assert_null(create_fails(&c, before, UFPI_FI_USERFAULTFD, 1, inject,
				    logged, what));

	ufpi_features_reset();
	good_pool_after(&c, before);
}

Test(faults, userfaultfd_eperm)
{
	userfaultfd_fails(-EPERM, "vm.unprivileged_userfaultfd");
}

Test(faults, userfaultfd_enosys)
{
	userfaultfd_fails(-ENOSYS, "userfaultfd");
}

/* backend AUTO: userfaultfd refused -> the COW backend, logged with what
 * to change. */
Test(faults, userfaultfd_eperm_auto_falls_back_to_cow)
{
	ufp_config c;
	cfg_small(&c, 2);
	c.backend = UFP_BACKEND_AUTO;
	warm_up(&c);
	ufpi_features_reset();
	arm(UFPI_FI_USERFAULTFD, 1, -EPERM);
	ufp_pool *p = t_pool(&c);
	ufpi_fi_reset();
	ufp_backend b = UFP_BACKEND_AUTO;
	cr_assert_eq(ufp_pool_info(p, &b, NULL, NULL), 0);
	cr_assert_eq(b, UFP_BACKEND_COW, "AUTO resolved to %s",
		     t_backend_name(b));
	cr_assert(log_has("vm.unprivileged_userfaultfd"), "log: %s", log_buf);
	assert_works_module(p);
	t_destroy(p);
	ufpi_features_reset();
}

/* The probe succeeds, opening the pool's own fd fails (the 2nd of two
 * handler fds: the first must be closed). */
Test(faults, userfaultfd_pool_fd)
{
	for (unsigned threads = 1; threads <= 2; threads++) {
		ufp_config c;
		char what[32];
		cfg_small(&c, 4);
		c.handler_threads = threads;
		warm_up(&c);
		struct res before = res_now();

		snprintf(what, sizeof(what), "%u handlers", threads);
		create_fails(&c, before, UFPI_FI_USERFAULTFD, threads, -EMFILE,
			     "userfaultfd setup failed", what);
		ufp_pool *p = t_pool(&c);
		assert_works_module(p);
		t_destroy(p);
		log_clear();
	}
}

/* A transient error while probing (out of fds) fails that create, but the
 * next create, once fds are available again, must not inherit it: the
 * probe caches kernel features, not momentary failures. */
Test(faults, userfaultfd_transient_probe_error_not_cached)
{
	ufp_config c;
	ufp_pool *p = NULL;
	cfg_small(&c, 2);
	ufpi_features_reset();
	arm(UFPI_FI_USERFAULTFD, 1, -EMFILE);
	int err = ufp_pool_create(&c, &p);
	ufpi_fi_reset();
	cr_assert_eq(err, -EMFILE, "%s", ufp_strerror(err));
	err = ufp_pool_create(&c, &p);
	cr_expect_eq(err, 0,
		     "a create after a transient EMFILE in the probe failed "
		     "with %s: the process-wide probe cached the error",
		     ufp_strerror(err));
	if (!err)
		t_destroy(p);
}

/* ---- alloc_wait and transient kernel errors (issue 12, item 6) ----------- */

/* A kernel EAGAIN inside prepare, with a free slot, on every try: the
 * wait used to retry at once for ever, past its deadline. It is the
 * kernel's error, not "no slot": returned at once, and not as -EAGAIN
 * (which means every slot is held by a live memory). */
Test(faults, alloc_wait_kernel_eagain_does_not_spin, .timeout = 20)
{
	ufp_pool *p = small_pool(2, false);
	ufp_memory *mem = NULL;
	cr_assert_eq(ufpi_fi_arm_sticky(UFPI_FI_MPROTECT, 1, -EAGAIN), 0);
	uint64_t t0 = ufpi_now_ns();
	int err = ufp_memory_alloc_wait(p, NULL, 64 * KIB,
					(uint64_t)50 * 1000 * 1000, &mem);
	uint64_t took = ufpi_now_ns() - t0;
	ufpi_fi_reset();
	cr_assert_eq(err, -ENOMEM, "alloc_wait: %s", ufp_strerror(err));
	cr_assert_null(mem);
	cr_assert_lt(took, (uint64_t)5 * 1000 * 1000 * 1000,
		     "alloc_wait took %llu ns", (unsigned long long)took);
	err = ufp_memory_alloc(p, NULL, 64 * KIB, &mem);
	cr_assert_eq(err, 0, "alloc: %s", ufp_strerror(err));
	t_free(mem);
	/* and a real "no slot" still waits until its deadline */
	ufp_memory *a = NULL, *b = NULL;
	cr_assert_eq(ufp_memory_alloc(p, NULL, 64 * KIB, &a), 0);
	cr_assert_eq(ufp_memory_alloc(p, NULL, 64 * KIB, &b), 0);
	t0 = ufpi_now_ns();
	err = ufp_memory_alloc_wait(p, NULL, 64 * KIB,
				    (uint64_t)30 * 1000 * 1000, &mem);
	took = ufpi_now_ns() - t0;
	cr_assert_eq(err, -ETIMEDOUT, "alloc_wait: %s", ufp_strerror(err));
	cr_assert_geq(took, (uint64_t)30 * 1000 * 1000);
	t_free(a);
	t_free(b);
	cr_assert_eq(ufp_pool_destroy(p), 0);
}
