/* SPDX-License-Identifier: MIT */
/*
 * test_log.c - errors are reported once (issue 14): a call that returns an
 * error does not also log it at ERROR, WARN or INFO; the detail is there at
 * DEBUG for whoever asks. The log is for what the caller cannot see.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>

#include "helpers.h"
#include "internal.h"

#define WPAGE ((uint64_t)64 << 10)

struct levels {
	pthread_mutex_t lock;
	int n[4];	   /* lines per level */
	char last[4][512]; /* the last line of each level */
};

static void record(void *arg, ufp_log_level level, const char *msg)
{
	struct levels *lv = arg;
	if ((unsigned)level > UFP_LOG_DEBUG)
		return;
	pthread_mutex_lock(&lv->lock);
	lv->n[level]++;
	snprintf(lv->last[level], sizeof(lv->last[level]), "%s", msg);
	pthread_mutex_unlock(&lv->lock);
}

static void levels_reset(struct levels *lv)
{
	pthread_mutex_lock(&lv->lock);
	memset(lv->n, 0, sizeof(lv->n));
	pthread_mutex_unlock(&lv->lock);
}

/* Nothing above DEBUG since the last reset. */
static void expect_quiet(struct levels *lv, const char *what)
{
	static const char *name[] = {"ERROR", "WARN", "INFO"};
	pthread_mutex_lock(&lv->lock);
	for (int l = UFP_LOG_ERROR; l < UFP_LOG_DEBUG; l++)
		cr_expect_eq(lv->n[l], 0,
			     "%s: returned an error and logged %d %s line(s), "
			     "last \"%s\"",
			     what, lv->n[l], name[l], lv->last[l]);
	pthread_mutex_unlock(&lv->lock);
}

static void log_config(ufp_config *c, struct levels *lv)
{
	c->log = record;
	c->log_arg = lv;
	c->log_level = UFP_LOG_DEBUG;
}

Test(log, failing_instantiation_logs_no_error)
{
	static unsigned char data[100];
	t_fill(data, sizeof(data), 4);
	ufp_segment out_of_bounds = {WPAGE - 50, data, sizeof(data)};
	ufp_segment fits = {0, data, sizeof(data)};

	for (size_t k = 0; k < T_NBACKENDS; k++) {
		struct levels lv = {.lock = PTHREAD_MUTEX_INITIALIZER};
		ufp_config c;
		t_config(&c, 2, 4 * WPAGE);
		c.backend = t_backends[k];
		c.dirty_tracking = UFP_DIRTY_OFF;
		log_config(&c, &lv);
		ufp_pool *p = t_pool(&c);
		levels_reset(&lv); /* what pool creation chose is not ours */

		ufp_module *m = NULL;
		int err = ufp_module_create(p, &out_of_bounds, 1, WPAGE, &m);
		cr_expect_eq(err, -ERANGE, "module_create: %d", err);
		expect_quiet(&lv, "module_create, segment out of bounds");
		cr_expect_gt(lv.n[UFP_LOG_DEBUG], 0,
			     "the detail is gone from DEBUG too");
		err = ufp_module_acquire(p, &out_of_bounds, 1, WPAGE, &m);
		cr_expect_eq(err, -ERANGE, "module_acquire: %d", err);
		expect_quiet(&lv, "module_acquire, segment out of bounds");
		err = ufp_module_create(p, &fits, 1, WPAGE + 1, &m);
		cr_expect_eq(err, -EINVAL);
		err = ufp_module_create(p, &fits, 1, 8 * WPAGE, &m);
		cr_expect_eq(err, -E2BIG);
		expect_quiet(&lv, "module_create, bad sizes");

		err = ufp_module_create(p, &fits, 1, 2 * WPAGE, &m);
		cr_assert_eq(err, 0);
		ufp_memory *mem;
		cr_expect_eq(ufp_memory_alloc(p, m, WPAGE, &mem), -ERANGE);
		cr_expect_eq(ufp_memory_alloc(p, m, 8 * WPAGE, &mem), -E2BIG);
		cr_expect_eq(ufp_memory_alloc(p, m, 3, &mem), -EINVAL);
		expect_quiet(&lv, "memory_alloc, bad sizes");

		/* the kernel refuses the slot's first mapping change (minor
		 * mode maps the image, copy mode opens it with mprotect):
		 * returned, and the slot named at DEBUG only */
		if (t_backends[k] == UFP_BACKEND_UFFD &&
		    ufpi_fi_arm(p->slots.minor ? UFPI_FI_MMAP
					       : UFPI_FI_MPROTECT,
				1, -ENOMEM) == 0) {
			err = ufp_memory_alloc(p, m, 0, &mem);
			ufpi_fi_reset();
			cr_expect_eq(err, -ENOMEM, "memory_alloc: %d", err);
			if (!err)
				cr_assert_eq(ufp_memory_free(mem), 0);
			expect_quiet(&lv, "memory_alloc, mprotect refused");
			cr_expect(strstr(lv.last[UFP_LOG_DEBUG], "slot"),
				  "the slot is not named at DEBUG: \"%s\"",
				  lv.last[UFP_LOG_DEBUG]);
		}
		cr_assert_eq(ufp_memory_alloc(p, m, 0, &mem), 0);
		cr_expect_eq(ufp_memory_free(mem), 0);
		cr_expect_eq(ufp_module_drop(m), 0);
		cr_expect_eq(ufp_pool_destroy(p), 0);
		expect_quiet(&lv, "a good run");
	}
}

Test(log, rejected_config_logs_no_error)
{
	struct levels lv = {.lock = PTHREAD_MUTEX_INITIALIZER};
	ufp_config good, c;
	ufp_pool *p = NULL;
	t_config(&good, 2, 4 * WPAGE);
	log_config(&good, &lv);

	c = good;
	c.slots = 0;
	cr_expect_eq(ufp_pool_create(&c, &p), -EINVAL);
	expect_quiet(&lv, "slots = 0");
	cr_expect_eq(lv.n[UFP_LOG_DEBUG], 1, "the reason is not at DEBUG");
	cr_expect(strstr(lv.last[UFP_LOG_DEBUG], "slots"), "reason: \"%s\"",
		  lv.last[UFP_LOG_DEBUG]);
	levels_reset(&lv);

	c = good;
	c.max_memory_bytes = WPAGE + 4096;
	cr_expect_eq(ufp_pool_create(&c, &p), -EINVAL);
	expect_quiet(&lv, "max_memory_bytes not a wasm page multiple");
	levels_reset(&lv);

	c = good;
	c.slots = UINT32_MAX;
	c.max_memory_bytes = (uint64_t)4 << 30;
	cr_expect_eq(ufp_pool_create(&c, &p), -E2BIG);
	expect_quiet(&lv, "beyond the address space");
	cr_expect_eq(lv.n[UFP_LOG_DEBUG], 1, "the limit is not named at DEBUG");
	levels_reset(&lv);

	/* and the good config still works, quietly at WARN */
	c = good;
	p = t_pool(&c);
	cr_expect_eq(ufp_pool_destroy(p), 0);
}

/* ---- the callback runs where it may touch linear memory ----------------- */

/* Issue 12, defect 10: the log callback ran on the handler thread (under a
 * slot lock). A logger that touches a live memory there faults on pool
 * memory from the thread that must serve the fault: both hang. The
 * handler's lines now wait for an embedder thread. */
static const volatile unsigned char *touch_in_logger;
static volatile int logger_touched, logger_lines;
static volatile pid_t logger_tid;

static void touching_logger(void *arg, ufp_log_level level, const char *msg)
{
	(void)arg;
	(void)level;
	(void)msg;
	logger_tid = gettid();
	logger_lines++;
	if (touch_in_logger)
		logger_touched +=
			touch_in_logger[0] != 0x5a; /* not served yet */
}

static sigjmp_buf bus_jb;
static void on_bus(int sig)
{
	siglongjmp(bus_jb, sig);
}

Test(log, a_logger_that_touches_memory_never_runs_on_the_handler, .timeout = 30)
{
#ifndef UFP_FAULT_INJECTION
	/* the handler's failure is injected: a build property, not a
	 * kernel feature */
	cr_skip_test("built without UFP_FAULT_INJECTION (debug/tsan presets "
		     "have it)");
#endif
	ufp_config c;
	t_config(&c, 2, 1 << 20);
	c.backend = UFP_BACKEND_UFFD;
	c.log = touching_logger;
	c.log_level = UFP_LOG_DEBUG;
	ufp_pool *p = t_pool(&c);
	static unsigned char data[8192];
	memset(data, 0x11, sizeof(data));
	ufp_segment seg = {0, data, sizeof(data)};
	ufp_module *m = NULL;
	cr_assert_eq(ufp_module_create(p, &seg, 1, 256 << 10, &m), 0);
	ufp_memory *victim = NULL, *other = NULL;
	cr_assert_eq(ufp_memory_alloc(p, m, 0, &victim), 0);
	cr_assert_eq(ufp_memory_alloc(p, NULL, 256 << 10, &other), 0);
	/* an untouched page of a live memory: touching it needs the handler */
	touch_in_logger = (unsigned char *)ufp_memory_base(other) + 128 * 1024;
	logger_lines = 0;

	/* the handler cannot fill the victim's page: it logs at ERROR and
	 * poisons it (SIGBUS here) */
	cr_assert_eq(ufpi_fi_arm(p->slots.minor ? UFPI_FI_UFFDIO_CONTINUE
						: UFPI_FI_UFFDIO_COPY,
				 1, -ENOMEM),
		     0);
	struct sigaction sa = {.sa_handler = on_bus}, old;
	sigaction(SIGBUS, &sa, &old);
	int sig = sigsetjmp(bus_jb, 1);
	if (!sig)
		(void)((volatile unsigned char *)ufp_memory_base(victim))[0];
	sigaction(SIGBUS, &old, NULL);
	ufpi_fi_reset();
	cr_assert_eq(sig, SIGBUS);

	/* the line is delivered here, on this thread, and may touch memory */
	cr_assert_eq(ufp_pool_quiesce(p), 0);
	cr_assert_geq(logger_lines, 1, "the handler's line was not delivered");
	cr_assert_eq(logger_tid, gettid());
	cr_assert_eq(logger_touched, 1);
	touch_in_logger = NULL;
	cr_assert_eq(ufp_memory_free(victim), 0);
	cr_assert_eq(ufp_memory_free(other), 0);
	cr_assert_eq(ufp_module_drop(m), 0);
	cr_assert_eq(ufp_pool_destroy(p), 0);
}
