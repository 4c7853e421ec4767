/* SPDX-License-Identifier: MIT */
/* ufp-test: timeout=240 */
/*
 * test_fallback.c - every kernel fallback, forced (issue 12, "Every kernel
 * fallback forced in CI"). docs/reliability.md has the table: feature,
 * kernel version, fallback, the test here that forces it.
 *
 * The machines CI runs on have every feature, so each fallback is forced
 * by editing the cached feature probe (process-wide; Criterion runs each
 * test in its own process) before the pool is created, the way
 * test_dirty.c forces WP_ASYNC off. Each test then checks that the pool
 * really took the fallback (ufp_pool_info, the log line) and runs the
 * same correctness round over it: allocate, read every byte of the image,
 * write, free, reuse by the same module and by another, grow, touch a
 * freed memory where the backend traps it, drop with a memory live,
 * quiesce, and nothing of either module left resident.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>

#include "helpers.h"
#include "internal.h"
#include "kernel_uapi.h"

#define KIB ((uint64_t)1 << 10)
#define MIB ((uint64_t)1 << 20)
#define LEN (256 * KIB)

/* ---- the probe, edited ---------------------------------------------------- */

static struct ufpi_features *probe(void)
{
	return (struct ufpi_features *)ufpi_features_probe();
}

/* ---- log capture ---------------------------------------------------------- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[8192];
static size_t log_len;

static void log_cb(void *arg, ufp_log_level level, const char *msg)
{
	(void)arg;
	pthread_mutex_lock(&log_lock);
	int n = snprintf(log_buf + log_len, sizeof(log_buf) - log_len,
			 "%d %s\n", (int)level, msg);
	if (n > 0)
		log_len = log_len + (size_t)n < sizeof(log_buf)
				  ? log_len + (size_t)n
				  : sizeof(log_buf) - 1;
	pthread_mutex_unlock(&log_lock);
}

static bool log_has(const char *s)
{
	pthread_mutex_lock(&log_lock);
	bool r = strstr(log_buf, s) != NULL;
	pthread_mutex_unlock(&log_lock);
	return r;
}

static void cfg(ufp_config *c, ufp_backend be, ufp_reclaim rc, uint64_t keep)
{
	t_config(c, 2, MIB);
	c->backend = be;
	c->reclaim = rc;
	c->keep_resident_bytes = keep;
	c->log = log_cb;
	c->log_level = UFP_LOG_DEBUG;
}

/* ---- the correctness round --------------------------------------------------- */

struct mod {
	ufp_module *m;
	unsigned char img[LEN];
	uint64_t key;
};

static struct mod mods[2];

/* Two data segments with a hole between them and zeros at the end. */
static void mod_make(ufp_pool *p, struct mod *md, uint64_t seed)
{
	memset(md->img, 0, LEN);
	t_fill(md->img, 40 * KIB + 123, seed);
	t_fill(md->img + 130 * KIB, 50 * KIB, seed + 1);
	ufp_segment segs[] = {{0, md->img, 40 * KIB + 123},
			      {130 * KIB, md->img + 130 * KIB, 50 * KIB}};
	int err = ufp_module_create(p, segs, 2, LEN, &md->m);
	cr_assert_eq(err, 0, "module_create: %s", ufp_strerror(err));
	md->key = md->m->key;
}

static ufp_memory *alloc_ok(ufp_pool *p, struct mod *md, uint64_t bytes)
{
	return t_alloc(p, md ? md->m : NULL, bytes);
}

/* Every byte is the image's (zeros past it). */
static void verify(ufp_memory *mem, const struct mod *md, const char *what)
{
	const unsigned char *b = ufp_memory_base(mem);
	uint64_t size = ufp_memory_size(mem);
	for (uint64_t o = 0; o < size; o++) {
		unsigned char want = md && o < LEN ? md->img[o] : 0;
		if (b[o] != want)
			cr_assert_fail("%s: slot %u byte %llu is %#x, want %#x",
				       what, ufp_memory_slot(mem),
				       (unsigned long long)o, b[o], want);
	}
}

static void scribble(ufp_memory *mem)
{
	unsigned char *b = ufp_memory_base(mem);
	for (uint64_t o = 0; o < ufp_memory_size(mem); o += 4096)
		b[o] = (unsigned char)(b[o] ^ 0xa5) | 1;
}

static uint64_t resident(ufp_pool *p)
{
	uint64_t r = 0;
	int err = ufp_pool_resident_bytes(p, &r);
	cr_assert_eq(err, 0, "resident: %s", ufp_strerror(err));
	return r;
}

/*
 * The round. `trap_freed`: the signal a read of a freed page must raise
 * (SIGBUS from UFFDIO_POISON, SIGSEGV from the mprotect fallback), 0 where
 * the backend does not trap (COW, COPY, or pages kept resident).
 */
static void round_trip(ufp_pool *p, int trap_freed)
{
	uint64_t base = resident(p);
	mod_make(p, &mods[0], 11);
	mod_make(p, &mods[1], 22);

	/* cold, then written and reused warm by the same module */
	ufp_memory *a = alloc_ok(p, &mods[0], 0);
	verify(a, &mods[0], "cold");
	scribble(a);
	unsigned char *abase = ufp_memory_base(a);
	t_free(a);
	if (trap_freed) {
		int sig = t_read_trapping(abase + 4096, NULL);
		cr_assert_eq(sig, trap_freed,
			     "read of a freed page: signal %d, want %d", sig,
			     trap_freed);
	}
	a = alloc_ok(p, &mods[0], 0);
	verify(a, &mods[0], "warm, same module");
	/* grow: new pages read as zero */
	cr_assert_eq(ufp_memory_grow(a, 512 * KIB), 0);
	verify(a, &mods[0], "after grow");
	scribble(a);

	/* the other slot: module 1, then the first slot is reused by it */
	ufp_memory *b = alloc_ok(p, &mods[1], 0);
	verify(b, &mods[1], "cold, module 1");
	t_free(a);
	ufp_memory *c = alloc_ok(p, &mods[1], 0);
	verify(c, &mods[1], "a slot of module 0 reused by module 1");
	scribble(c);
	t_free(c);

	/* drop with a memory live: purged when it is freed */
	cr_assert_eq(ufp_module_drop(mods[0].m), 0);
	cr_assert_eq(ufp_module_drop(mods[1].m), 0);
	verify(b, &mods[1], "live across the drop of its module");
	t_free(b);
	cr_assert_eq(ufp_pool_quiesce(p), 0);
	for (int k = 0; k < 2; k++)
		cr_assert_eq(ufp_index_num_affine(p->index, mods[k].key), 0);
	uint64_t r = resident(p);
	cr_assert_eq(r, base, "resident %llu after drop + quiesce, %llu before",
		     (unsigned long long)r, (unsigned long long)base);
	cr_assert_eq(ufpi_pool_check(p), 0);

	/* and the pool still works, with no module too (measured last: a
	 * slot without a module keeps zero pages, which mincore counts) */
	c = alloc_ok(p, NULL, 128 * KIB);
	verify(c, NULL, "no module, after the drops");
	scribble(c);
	t_free(c);
	c = alloc_ok(p, NULL, 64 * KIB);
	verify(c, NULL, "no module, reused");
	t_free(c);
}

static void info(ufp_pool *p, ufp_backend *be, ufp_reclaim *rc, int *dirty)
{
	cr_assert_eq(ufp_pool_info(p, be, rc, dirty), 0);
}

/* The round on p, then p destroyed. */
static void round_trip_destroy(ufp_pool *p, int trap_freed)
{
	round_trip(p, trap_freed);
	cr_assert_eq(ufp_pool_destroy(p), 0);
}

/* A pool of c is refused with `want`, and none is made. */
static void assert_refused(const ufp_config *c, int want)
{
	ufp_pool *p = NULL;
	cr_assert_eq(ufp_pool_create(c, &p), want);
	cr_assert_null(p);
}

static void require_uffd(void)
{
	if (probe()->uffd_err)
		t_skip("userfaultfd: %s", ufp_strerror(probe()->uffd_err));
}

/* ---- no UFFDIO_POISON: the handler mprotects stale pages ---------------- */

Test(fallback, no_uffdio_poison_mprotect_path)
{
	require_uffd();
	struct ufpi_features *f = probe();
	f->poison = false;
	f->uffd_features &= ~(uint64_t)UFFD_FEATURE_POISON;
	ufp_config c;
	cfg(&c, UFP_BACKEND_UFFD, UFP_RECLAIM_AUTO, 0);
	c.dirty_tracking = UFP_DIRTY_OFF; /* every freed page traps */
	ufp_pool *p = t_pool(&c);
	cr_assert_not(p->slots.uffd_poison, "the pool still uses POISON");
	uint64_t poisoned0 = t_stats(p).poisoned_faults;
	round_trip(p, SIGSEGV);
	cr_assert_gt(t_stats(p).poisoned_faults, poisoned0);
	cr_assert_eq(ufp_pool_destroy(p), 0);
	ufpi_features_reset();
}

/* The same with POISON, for contrast: the trap is SIGBUS there. */
Test(fallback, with_uffdio_poison_for_contrast)
{
	require_uffd();
	if (!probe()->poison)
		t_skip("no UFFDIO_POISON (Linux 6.6)");
	ufp_config c;
	cfg(&c, UFP_BACKEND_UFFD, UFP_RECLAIM_AUTO, 0);
	c.dirty_tracking = UFP_DIRTY_OFF;
	ufp_pool *p = t_pool(&c);
	round_trip_destroy(p, SIGBUS);
}

/* ---- no WP_ASYNC / no PAGEMAP_SCAN: plain reset ------------------------- */

static void no_dirty(bool wp_async, bool pagemap_scan, const char *needle)
{
	require_uffd();
	struct ufpi_features *f = probe();
	f->wp_async = wp_async;
	f->pagemap_scan = pagemap_scan;
	ufp_config c;
	/* keep some pages: the reset restores them in place */
	cfg(&c, UFP_BACKEND_UFFD, UFP_RECLAIM_AUTO, 64 * KIB);
	/* write protection is copy mode's way to find written pages (minor
	 * mode needs PAGEMAP_SCAN alone) */
	if (!wp_async)
		c.fill_mode = UFP_FILL_COPY;
	ufp_pool *p = t_pool(&c);
	int dirty = -1;
	info(p, NULL, NULL, &dirty);
	cr_assert_eq(dirty, 0, "dirty tracking still on");
	cr_assert(log_has(needle), "no log line names %s: %s", needle, log_buf);
	if (!pagemap_scan)
		cr_assert_eq(p->pagemap_fd, -1,
			     "resident bytes must come from mincore");
	round_trip(p, 0);
	cr_assert_eq(t_stats(p).dirty_scans, 0);
	cr_assert_eq(ufp_pool_destroy(p), 0);
	ufpi_features_reset();
}

Test(fallback, no_wp_async_plain_reset)
{
	no_dirty(false, true, "UFFD_FEATURE_WP_ASYNC");
}

Test(fallback, no_pagemap_scan_plain_reset_and_mincore)
{
	no_dirty(true, false, "PAGEMAP_SCAN");
}

/* ---- no io_uring MADVISE: AUTO purges with plain madvise ----------------- */

Test(fallback, no_uring_madvise_sync_reclaim)
{
	struct ufpi_features *f = probe();
	f->uring_madvise = 0;
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_config c;
		cfg(&c, t_backends[k], UFP_RECLAIM_AUTO, 64 * KIB);
		log_len = 0;
		log_buf[0] = 0;
		ufp_pool *p = t_pool(&c);
		ufp_reclaim rc;
		info(p, NULL, &rc, NULL);
		cr_assert_eq(rc, UFP_RECLAIM_SYNC, "%s: AUTO resolved to %s",
			     t_backend_name(t_backends[k]), t_reclaim_name(rc));
		cr_assert(log_has("IORING_OP_MADVISE not supported"),
			  "no log line says why: %s", log_buf);
		cr_assert_eq(ufpi_reclaim_eventfd(p->reclaim), -1);
		round_trip_destroy(p, 0);

		/* forcing the missing engine is refused */
		c.reclaim = UFP_RECLAIM_URING;
		assert_refused(&c, -ENOTSUP);
	}
	ufpi_features_reset();
}

/* ---- no process_madvise: vectors are released range by range ------------ */

Test(fallback, no_process_madvise)
{
	struct ufpi_features *f = probe();
	f->process_madvise = 0;
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_config c;
		cfg(&c, t_backends[k], UFP_RECLAIM_SYNC, 64 * KIB);
		ufp_pool *p = t_pool(&c);
		cr_assert_eq(p->pidfd, -1, "a pidfd for process_madvise");
		cr_assert_eq(p->slots.pidfd, -1);
		round_trip_destroy(p, 0);

		c.reclaim = UFP_RECLAIM_PROCESS_MADVISE;
		assert_refused(&c, -ENOTSUP);
	}
	ufpi_features_reset();
}

/* ---- userfaultfd refused: AUTO takes the copy-on-write backend ---------- */

Test(fallback, userfaultfd_eperm_auto_uses_cow)
{
	struct ufpi_features *f = probe();
	f->uffd_err = -EPERM;
	f->uffd_features = 0;
	f->poison = f->wp_async = f->minor_shmem = false;
	ufp_config c;
	cfg(&c, UFP_BACKEND_AUTO, UFP_RECLAIM_AUTO, 0);
	ufp_pool *p = t_pool(&c);
	ufp_backend be;
	info(p, &be, NULL, NULL);
	cr_assert_eq(be, UFP_BACKEND_COW, "AUTO resolved to %s",
		     t_backend_name(be));
	cr_assert(log_has("1 userfaultfd unavailable (EPERM - set "
			  "vm.unprivileged_userfaultfd=1"),
		  "no WARN line says what to change: %s", log_buf);
	cr_assert_eq(p->nuffd, 0);
	round_trip_destroy(p, 0);

	/* forcing UFFD is refused with the reason */
	c.backend = UFP_BACKEND_UFFD;
	assert_refused(&c, -EPERM);
	ufpi_features_reset();
}
