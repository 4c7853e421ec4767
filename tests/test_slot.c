/* SPDX-License-Identifier: MIT */
/* ufp-test: fill=copy */
/*
 * test_slot.c - the slot lifecycle (lib/slot.c, docs/design.md §5): the
 * state a slot is in after each step of a memory's life (CLEAN, KEPT,
 * LIVE, STALE), the invariant walk catching a slot that contradicts its
 * state, and the transitions refusing (assert) to start from a state they
 * do not belong to.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

#define KIB ((uint64_t)1 << 10)
#define MEM (256 * KIB)

static enum ufpi_slot_state state_of(ufp_pool *p, uint32_t i)
{
	struct ufpi_slot *slot = &p->slots.slot[i];
	pthread_mutex_lock(&slot->lock);
	enum ufpi_slot_state st = slot->state;
	pthread_mutex_unlock(&slot->lock);
	return st;
}

static const char *state_name(enum ufpi_slot_state st)
{
	static const char *const names[] = {"CLEAN", "KEPT", "LIVE", "PURGING",
					    "STALE"};
	return (unsigned)st < 5 ? names[st] : "?";
}

#define expect_state(p, i, want, what)                                      \
	do {                                                                \
		enum ufpi_slot_state got_ = state_of(p, i);                 \
		cr_assert_eq(got_, want, "%s: slot %u is %s, not %s", what, \
			     (unsigned)(i), state_name(got_),               \
			     state_name(want));                             \
	} while (0)

/* A one-slot pool's config (backend b, keep bytes kept at free, SYNC
 * reclaim so a drop's purge is done when it returns), and the pool. */
static void one_slot_config(ufp_config *c, ufp_backend b, uint64_t keep)
{
	t_config(c, 1, 1 << 20);
	c->backend = b;
	c->keep_resident_bytes = keep;
	c->reclaim = UFP_RECLAIM_SYNC;
}

static ufp_pool *one_slot(ufp_backend b, uint64_t keep)
{
	ufp_config c;
	one_slot_config(&c, b, keep);
	return t_pool(&c);
}

static ufp_module *module(ufp_pool *p, unsigned char *buf, uint64_t seed)
{
	t_fill(buf, MEM / 2, seed);
	ufp_segment seg = {0, buf, MEM / 2};
	ufp_module *m = NULL;
	int err = ufp_module_create(p, &seg, 1, MEM, &m);
	cr_assert_eq(err, 0, "ufp_module_create: %s", ufp_strerror(err));
	return m;
}

static ufp_memory *alloc_touch(ufp_pool *p, ufp_module *m)
{
	ufp_memory *mem = NULL;
	int err = ufp_memory_alloc(p, m, MEM, &mem);
	cr_assert_eq(err, 0, "ufp_memory_alloc: %s", ufp_strerror(err));
	unsigned char *base = ufp_memory_base(mem);
	for (uint64_t off = 0; off < MEM; off += t_page())
		base[off] ^= 1; /* every page written */
	return mem;
}

static void drop(ufp_pool *p, ufp_module *m)
{
	cr_assert_eq(ufp_module_drop(m), 0);
	cr_assert_eq(ufp_pool_quiesce(p), 0);
}

/* Written everywhere and freed with keep = 0 in copy fill mode: nothing is
 * left (no memfd mapping, every written page dropped), so the slot is
 * CLEAN. A drop finds nothing to purge and leaves it CLEAN. */
Test(slot, keep_0_copy_fill_frees_to_clean)
{
	static unsigned char img[MEM / 2];
	ufp_config c;
	one_slot_config(&c, UFP_BACKEND_UFFD, 0);
	c.fill_mode = UFP_FILL_COPY;
	ufp_pool *p = t_pool(&c);
	expect_state(p, 0, UFPI_SLOT_CLEAN, "a new pool");
	ufp_module *m = module(p, img, 1);
	ufp_memory *mem = alloc_touch(p, m);
	expect_state(p, 0, UFPI_SLOT_LIVE, "a memory");
	t_free(mem);
	expect_state(p, 0, UFPI_SLOT_CLEAN, "freed, nothing kept");
	cr_assert_eq(ufpi_pool_check(p), 0);
	drop(p, m);
	expect_state(p, 0, UFPI_SLOT_CLEAN, "dropped");
	t_destroy(p);
}

/* Without a handler (COPY backend, COW) nothing sees a write after free:
 * the read-write range stays KEPT, and another module's memory gets it
 * wiped, so a stale write (a use after free) never reaches it. */
Test(slot, no_handler_use_after_free_never_reaches_another_module)
{
	static unsigned char a_img[MEM / 2], b_img[MEM / 2];
	static const ufp_backend nohandler[] = {UFP_BACKEND_COPY,
						UFP_BACKEND_COW};
	for (size_t k = 0; k < 2; k++) {
		ufp_pool *p = one_slot(nohandler[k], 0);
		ufp_module *a = module(p, a_img, 10), *b = module(p, b_img, 11);
		ufp_memory *mem = alloc_touch(p, a);
		unsigned char *base = ufp_memory_base(mem);
		t_free(mem);
		expect_state(p, 0, UFPI_SLOT_KEPT,
			     t_backend_name(nohandler[k]));
		base[MEM - 1] = 0xee; /* after free: beyond B's image */
		cr_assert_eq(ufp_memory_alloc(p, b, MEM, &mem), 0);
		cr_assert_eq(ufp_memory_base(mem), base);
		cr_assert_eq(base[MEM - 1], 0,
			     "[%s] a stale write reached "
			     "another module's memory",
			     t_backend_name(nohandler[k]));
		t_assert_bytes(base, b_img, MEM / 2, "the other module", 0);
		t_free(mem);
		drop(p, a);
		drop(p, b);
		t_destroy(p);
	}
}

/* Freed with pages kept, the slot is KEPT; the module's drop purges it
 * back to CLEAN (every backend: COPY keeps restored pages, COW and UFFD
 * keep the memfd mapping or the written pages too). */
Test(slot, kept_pages_make_kept_and_drop_makes_clean)
{
	static unsigned char img[MEM / 2];
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *p = one_slot(t_backends[k], MEM);
		ufp_module *m = module(p, img, 2);
		ufp_memory *mem = alloc_touch(p, m);
		expect_state(p, 0, UFPI_SLOT_LIVE,
			     t_backend_name(t_backends[k]));
		t_free(mem);
		expect_state(p, 0, UFPI_SLOT_KEPT,
			     t_backend_name(t_backends[k]));
		cr_assert_eq(ufpi_pool_check(p), 0);
		/* the same module again: the kept slot becomes LIVE */
		mem = alloc_touch(p, m);
		expect_state(p, 0, UFPI_SLOT_LIVE, "reused");
		t_free(mem);
		drop(p, m);
		expect_state(p, 0, UFPI_SLOT_CLEAN,
			     t_backend_name(t_backends[k]));
		cr_assert_eq(ufpi_pool_check(p), 0);
		t_destroy(p);
	}
}

#ifdef UFP_FAULT_INJECTION
/* The hook runs inside the reset, after its scan: another thread reads a
 * page of the memory being freed that was never touched, and the handler
 * (the slot still LIVE) serves it. */
static void *read_page(void *addr)
{
	return (void *)(uintptr_t) * (volatile unsigned char *)addr;
}

static void touch_in_reset(enum ufpi_fi_op op, void *addr)
{
	pthread_t th;
	if (op != UFPI_FI_RESET_SCANNED ||
	    pthread_create(&th, NULL, read_page, addr))
		return;
	pthread_join(th, NULL);
}

/* Free mem while another thread reads `touch` (a page of it) from inside
 * the reset, after its scan. */
static void free_touched(ufp_memory *mem, unsigned char *touch)
{
	ufpi_fi_set_hook(touch_in_reset, touch);
	cr_assert_eq(ufpi_fi_arm(UFPI_FI_RESET_SCANNED, 1, -EIO), 0);
	cr_assert_eq(ufp_memory_free(mem), 0); /* the misuse is logged */
	ufpi_fi_reset();
}

/* Module b's memory in the slot a failed or raced reset of a's memory
 * left: only b's image (and, if `wipe`, the slot wiped for it); then the
 * pool's end. */
static void other_module_sees_its_own(ufp_pool *p, ufp_module *a, ufp_module *b,
				      const unsigned char *img, bool wipe,
				      const char *what)
{
	ufp_memory *mem = NULL;
	uint64_t wiped = t_stats(p).slots_wiped;
	cr_assert_eq(ufp_memory_alloc(p, b, MEM, &mem), 0);
	expect_state(p, 0, UFPI_SLOT_LIVE, what);
	if (wipe)
		cr_assert_eq(t_stats(p).slots_wiped, wiped + 1, "%s: not wiped",
			     what);
	t_assert_bytes(ufp_memory_base(mem), img, MEM / 2, what, 0);
	t_free(mem);
	drop(p, a);
	drop(p, b);
	t_destroy(p);
}
#endif

/* A reset that fails leaves the slot STALE (it may hold the old bytes);
 * the next memory, of another module, wipes it and sees only its image. */
Test(slot, failed_reset_makes_stale_and_prepare_wipes)
{
#ifndef UFP_FAULT_INJECTION
	cr_skip_test("fault injection is compiled only in debug and tsan "
		     "builds (UFP_FAULT_INJECTION)");
#else
	static unsigned char a_img[MEM / 2], b_img[MEM / 2];
	ufp_pool *p = one_slot(UFP_BACKEND_COPY, 0);
	ufp_module *a = module(p, a_img, 3), *b = module(p, b_img, 4);
	ufp_memory *mem = alloc_touch(p, a);
	cr_assert_eq(ufpi_fi_arm(UFPI_FI_MADVISE, 1, -EIO), 0);
	cr_assert_eq(ufp_memory_free(mem), 0); /* the error is the slot's */
	ufpi_fi_reset();
	expect_state(p, 0, UFPI_SLOT_STALE, "after a failed reset");
	cr_assert_eq(ufpi_pool_check(p), 0);
	other_module_sees_its_own(p, a, b, b_img, true,
				  "the next memory after a failed reset");
#endif
}

/* A memory touched while its free runs (a use after free racing the free,
 * from another thread): what the fault mapped was never scanned, so the
 * slot is STALE and wiped before any reuse, whatever the reset would have
 * kept; the next memory, of another module, sees only its own image. */
Test(slot, touched_while_freed_makes_stale)
{
#ifndef UFP_FAULT_INJECTION
	cr_skip_test("the hook inside the reset needs fault injection "
		     "(debug and tsan builds, UFP_FAULT_INJECTION)");
#else
	static unsigned char a_img[MEM / 2], b_img[MEM / 2];
	ufp_config c;
	one_slot_config(&c, UFP_BACKEND_UFFD, 0);
	c.fault_around_bytes = c.fault_around_min_bytes = t_page();
	ufp_pool *p = t_pool(&c);
	int tracking = 0;
	cr_assert_eq(ufp_pool_info(p, NULL, NULL, &tracking), 0);
	if (!tracking) {
		t_destroy(p);
		t_skip("dirty tracking unavailable (PAGEMAP_SCAN, WP_ASYNC): "
		       "the untracked reset is the next test's");
	}
	ufp_module *a = module(p, a_img, 8), *b = module(p, b_img, 9);
	ufp_memory *mem = NULL;
	cr_assert_eq(ufp_memory_alloc(p, a, MEM, &mem), 0);
	unsigned char *base = ufp_memory_base(mem);
	base[0] = 1; /* one page written, the rest never touched */
	uint64_t faults = t_stats(p).faults;
	free_touched(mem, base + MEM / 4);
	cr_assert_gt(t_stats(p).faults, faults,
		     "the hook's read took no fault");
	expect_state(p, 0, UFPI_SLOT_STALE, "touched while being freed");
	cr_assert_eq(ufpi_pool_check(p), 0);
	other_module_sees_its_own(p, a, b, b_img, true,
				  "the next memory after a racing use");
#endif
}

/* A second fault message for a page the first one served (two threads
 * faulted in one window; one read returns both) installs nothing: it is
 * not a use of the memory, and the free that may follow is not failed. */
Test(slot, a_late_message_is_not_a_touch)
{
	static unsigned char img[MEM / 2];
	ufp_pool *p = one_slot(UFP_BACKEND_UFFD, 0);
	ufp_module *m = module(p, img, 14);
	ufp_memory *mem = alloc_touch(p, m);
	unsigned char *base = ufp_memory_base(mem);
	struct ufpi_slot *slot = &p->slots.slot[0];
	pthread_mutex_lock(&slot->lock);
	uint64_t w0 = slot->windows;
	pthread_mutex_unlock(&slot->lock);
	/* the late message: a fault at a page that is there */
	ufpi_handler_fault(&p->slots, p->slots.uffd[0],
			   (uint64_t)(uintptr_t)(base + MEM / 4), 0, false);
	pthread_mutex_lock(&slot->lock);
	uint64_t w1 = slot->windows;
	pthread_mutex_unlock(&slot->lock);
	cr_assert_eq(w1, w0, "a window that installed nothing was counted");
	t_free(mem);
	cr_assert_neq(state_of(p, 0), UFPI_SLOT_STALE);
	drop(p, m);
	t_destroy(p);
}

/* The same without dirty tracking and with keep > 0: the reset restores
 * [0, keep) and drops the rest; a page below keep mapped after the restore
 * looked (the racing thread's read) keeps the slot KEPT with its image, so
 * that another module's memory wipes it and sees only its own image. */
Test(slot, touched_while_freed_untracked_keeps_image)
{
#ifndef UFP_FAULT_INJECTION
	cr_skip_test("the hook inside the reset needs fault injection "
		     "(debug and tsan builds, UFP_FAULT_INJECTION)");
#else
	static unsigned char a_img[MEM / 2], b_img[MEM / 2];
	const size_t page = t_page();
	ufp_config c;
	one_slot_config(&c, UFP_BACKEND_UFFD, 16 * page);
	c.fill_mode = UFP_FILL_COPY;
	c.dirty_tracking = UFP_DIRTY_OFF;
	c.fault_around_bytes = c.fault_around_min_bytes = page;
	ufp_pool *p = t_pool(&c);
	ufp_module *a = module(p, a_img, 12), *b = module(p, b_img, 13);
	ufp_memory *mem = NULL;
	cr_assert_eq(ufp_memory_alloc(p, a, MEM, &mem), 0);
	unsigned char *base = ufp_memory_base(mem);
	base[20 * page] = 1; /* above keep: nothing kept below it */
	free_touched(mem, base + 4 * page);
	expect_state(p, 0, UFPI_SLOT_KEPT, "touched below keep while freed");
	other_module_sees_its_own(p, a, b, b_img, false,
				  "the next memory after a racing use");
#endif
}

/* The invariant walk is not blind: a CLEAN slot claiming a populated
 * page, or a LIVE one the index does not hold, is reported. */
Test(slot, invariant_walk_catches_a_contradiction)
{
	static unsigned char img[MEM / 2];
	ufp_pool *p = one_slot(UFP_BACKEND_COPY, 0);
	struct ufpi_slot *slot = &p->slots.slot[0];
	cr_assert_eq(ufpi_pool_check(p), 0);
	pthread_mutex_lock(&slot->lock);
	slot->populated_hi = t_page(); /* CLEAN holds no page */
	pthread_mutex_unlock(&slot->lock);
	cr_assert_eq(ufpi_pool_check(p), -EUCLEAN);
	pthread_mutex_lock(&slot->lock);
	slot->populated_hi = 0;
	slot->state = UFPI_SLOT_LIVE; /* LIVE, but the index has it free */
	pthread_mutex_unlock(&slot->lock);
	cr_assert_eq(ufpi_pool_check(p), -EUCLEAN);
	pthread_mutex_lock(&slot->lock);
	slot->state = UFPI_SLOT_CLEAN;
	pthread_mutex_unlock(&slot->lock);
	cr_assert_eq(ufpi_pool_check(p), 0);
	ufp_module *m = module(p, img, 5);
	ufp_memory *mem = alloc_touch(p, m);
	t_free(mem);
	drop(p, m);
	t_destroy(p);
}

/* The walk checks a slot against the index under the slot's lock, so a
 * slot mid-prepare (CLEAN, already holding its image or the image's pages
 * before it is published LIVE) is not a contradiction: checked from
 * another thread throughout allocations, the pool is always sound. */
struct churn {
	ufp_pool *p;
	ufp_module *m;
	atomic_bool stop;
	bool failed; /* an alloc or free failed (read after the join) */
};

static void *churn(void *arg)
{
	struct churn *c = arg;
	for (int k = 0; k < 4000 && !c->failed; k++) {
		ufp_memory *mem = NULL;
		c->failed = ufp_memory_alloc(c->p, c->m, MEM, &mem) ||
			    ufp_memory_free(mem);
	}
	atomic_store(&c->stop, true);
	return NULL;
}

Test(slot, invariant_walk_during_allocations)
{
	static unsigned char img[MEM / 2];
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		struct churn c = {one_slot(t_backends[k], 0), NULL, false,
				  false};
		c.m = module(c.p, img, 7);
		pthread_t th;
		cr_assert_eq(pthread_create(&th, NULL, churn, &c), 0);
		uint64_t checks = 0, bad = 0;
		while (!atomic_load(&c.stop)) {
			bad += ufpi_pool_check(c.p) != 0;
			checks++;
		}
		pthread_join(th, NULL);
		cr_assert_not(c.failed, "[%s] alloc or free failed",
			      t_backend_name(t_backends[k]));
		cr_assert_eq(bad, 0, "[%s] %llu of %llu walks failed",
			     t_backend_name(t_backends[k]),
			     (unsigned long long)bad,
			     (unsigned long long)checks);
		drop(c.p, c.m);
		t_destroy(c.p);
	}
}

/* ---- transitions refuse a wrong start state --------------------------- */

#ifndef NDEBUG
enum wrong {
	GROW_FREE,
	RESET_FREE,
	PURGED_CLEAN,
	PREPARE_LIVE, /* from here on, slot 0 holds a live memory */
	PURGE_LIVE,
	STALE_LIVE
};

/* In a child: put slot 0 in the state the call must refuse and make the
 * call; it must abort (assert). Returns how the child ended; *ready tells
 * that the child got as far as the call (an abort in its setup is not a
 * refusal). */
static int child_status(enum wrong w, bool *ready)
{
	static unsigned char img[MEM / 2];
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		signal(SIGABRT, SIG_DFL);
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 2); /* the assertion's message */
		ufp_pool *p = one_slot(UFP_BACKEND_COPY, 0);
		struct ufpi_slots *s = &p->slots;
		ufp_module *m = module(p, img, 6);
		uint64_t len, kept;
		bool wiped;
		if (w >= PREPARE_LIVE)
			(void)alloc_touch(p, m);
		if (write(fds[1], "!", 1) != 1) /* set up: now the call */
			_exit(3);
		if (w == GROW_FREE)
			(void)ufpi_slot_grow(s, 0, MEM);
		else if (w == RESET_FREE)
			(void)ufpi_slot_reset(s, 0, &kept);
		else if (w == PURGED_CLEAN)
			ufpi_slot_purged(s, 0);
		else if (w == PREPARE_LIVE)
			(void)ufpi_slot_prepare(s, 0, NULL, MEM, &wiped);
		else if (w == PURGE_LIVE)
			(void)ufpi_slot_purge_begin(s, 0, SIZE_MAX, &len);
		else
			(void)ufpi_slot_mark_stale(s, 0);
		_exit(0); /* not refused */
	}
	int status = 0;
	char c;
	close(fds[1]);
	*ready = read(fds[0], &c, 1) == 1;
	close(fds[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return status;
}

#endif

Test(slot, transitions_assert_their_start_state)
{
#ifdef NDEBUG
	cr_skip_test("assertions are compiled out (NDEBUG)");
#else
	static const char *const what[] = {
		[GROW_FREE] = "grow of a free slot",
		[RESET_FREE] = "reset of a free slot",
		[PURGED_CLEAN] = "purged of a clean slot",
		[PREPARE_LIVE] = "prepare of a live slot",
		[PURGE_LIVE] = "purge_begin of a live slot",
		[STALE_LIVE] = "mark_stale of a live slot"};
	for (int w = GROW_FREE; w <= STALE_LIVE; w++) {
		bool ready = false;
		int status = child_status((enum wrong)w, &ready);
		cr_assert(ready,
			  "%s: the child failed before the call "
			  "(status %#x)",
			  what[w], status);
		cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
			  "%s was not refused (status %#x)", what[w], status);
	}
#endif
}
