/* SPDX-License-Identifier: MIT */
/*
 * model.h - randomized model test of the pool: a seeded generator of
 * operations run against the library and against a plain reference model,
 * compared byte for byte. Used by tests/test_model.c (fixed seeds, CI) and
 * by `ufp-bench soak` (random seeds for as long as asked).
 *
 * The reference model is deliberately naive: every live memory is a
 * malloc'd byte array of max_memory_bytes. A fresh memory equals its
 * module's image over [0, module initial_bytes) and zero elsewhere; writes
 * stick; grow exposes zero bytes (image data lies only below the module's
 * initial_bytes and a memory is at least that big); free forgets. The pool
 * is full when as many memories are live as there are slots.
 *
 * A run is reproducible from its parameters alone (the seed drives every
 * choice, and the model predicts every result the library returns), so a
 * single-threaded failure shrinks by replaying prefixes of increasing
 * length from scratch: the shortest prefix that fails (including the
 * teardown checks run after it) is printed with its operation list.
 * The multi-threaded variant (threads >= 2) is not reproducible op for op:
 * a failure prints the seed and the failing thread's operations.
 *
 * No Criterion, no global constructors, no global state: ufp-bench compiles
 * this engine too (bench/soak_model.c).
 */
#ifndef UFP_TESTS_MODEL_H
#define UFP_TESTS_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "uffdpool.h"

struct ufpm_params {
	/* pool */
	ufp_backend backend;
	ufp_reclaim reclaim;
	ufp_strategy strategy;
	ufp_dirty_tracking dirty_tracking;
	uint64_t keep_resident_bytes;
	uint32_t slots;		   /* default 8: small, so -EAGAIN happens */
	uint64_t max_memory_bytes; /* default 1 MiB */
	uint64_t guard_bytes;	   /* default 64 KiB */
	uint64_t fault_around_max_bytes;  /* 0: the library's default */
	uint64_t max_resident_idle_bytes; /* 0: unbounded (default) */
	/* run */
	uint64_t seed;
	uint32_t ops;		   /* operations (all threads together) */
	uint32_t checkpoint_every; /* full comparison + ufpi_pool_check */
	uint32_t threads;	   /* 1: single-threaded; >= 2: concurrent */
	int verbose;		   /* print every op to stderr as it runs */
	uint32_t corrupt_at;	   /* self-test hook: from op N on, at the
				      first chance, flip one byte of a live
				      memory behind the model's back and
				      check at once (0: never) */
};

/* Defaults: 8 slots of 1 MiB with 64 KiB guards, UFFD, URING,
 * REUSE_AFFINITY, keep 0, dirty AUTO, seed 1, 300 ops, checkpoint every
 * 50, single-threaded. */
void ufpm_params_init(struct ufpm_params *p);

/* A random point of the configuration matrix drawn from `seed` (soak):
 * strategy, keep_resident_bytes, dirty tracking, thread count and op count;
 * backend and reclaim engine from the `nb`/`nr` candidates given. */
void ufpm_params_from_seed(struct ufpm_params *p, uint64_t seed,
			   const ufp_backend *backends, size_t nb,
			   const ufp_reclaim *reclaims, size_t nr);

/* "uffd/uring/reuse_affinity/keep=0/dirty=auto/seed=1/ops=300/threads=1" */
int ufpm_describe(const struct ufpm_params *p, char *buf, size_t cap);

/* What runs added up (accumulated by ufpm_run, never reset by it). */
struct ufpm_totals {
	uint64_t runs;
	uint64_t ops;
	uint64_t modules;	 /* modules created */
	uint64_t memories;	 /* memories allocated */
	uint64_t bytes_compared; /* bytes of pool memory checked against the
				    reference */
	uint64_t checkpoints;
	uint64_t eagain_full;	 /* -EAGAIN with every slot live (expected) */
	uint64_t eagain_purge;	 /* -EAGAIN while a purge was in flight
				    (accepted, then quiesce + retry) */
	uint64_t einval_dropped; /* -EINVAL allocating for a module another
				    thread had just dropped (accepted) */
	uint64_t rejected;	 /* bad-argument calls rejected as expected */
	uint64_t failures;
	uint64_t skips;
};

enum ufpm_status {
	UFPM_OK = 0,
	UFPM_SKIP = 1, /* the pool could not be created: feature missing
			  (-EPERM, -ENOSYS, -ENOTSUP); see msg */
	UFPM_FAIL = 2, /* the library disagreed with the model; see msg */
};

struct ufpm_result {
	enum ufpm_status status;
	int create_err;	    /* ufp_pool_create's error when SKIP */
	uint32_t ops_run;   /* operations executed */
	uint32_t fail_step; /* 1-based op that failed; ops_run + 1 when the
			       teardown checks failed; 0 if none */
	char msg[1024];	    /* what disagreed, where */
};

#define UFPM_ALL UINT32_MAX

/*
 * Run p->ops operations (at most `limit`: UFPM_ALL for all), then the teardown
 * checks: every memory compared and freed, every module dropped, quiesce,
 * resident bytes back to what the model predicts (the pre-module baseline
 * plus what keep_resident_bytes lets slots of image-less memories keep),
 * then every slot allocated once more for a fresh empty module (no slot was
 * lost), freed, the module dropped: resident bytes == baseline exactly.
 * When `oplog` is not NULL and the run fails, the operations (up to the
 * last 200 of each thread) are printed there.
 * Returns r->status.
 */
enum ufpm_status ufpm_run(const struct ufpm_params *p, uint32_t limit,
			  struct ufpm_totals *t, struct ufpm_result *r,
			  FILE *oplog);

/*
 * After a failed single-threaded run: replay prefixes of length 0, 1, 2, ...
 * (each followed by the teardown checks) from scratch with the same
 * parameters until one fails, and print to `out` the seed, the parameters,
 * the failure and the operation list of that shortest failing prefix.
 * With max_seconds > 0 the search stops when that time is up, and the
 * failing run itself (full->fail_step ops) is printed as the shortest
 * known. Returns the length printed, or -1 when no prefix up to the failing
 * op failed again (the failure did not reproduce; printed too) or the run
 * was concurrent (not shrunk: its interleaving cannot be replayed).
 */
int ufpm_shrink(const struct ufpm_params *p, const struct ufpm_result *full,
		double max_seconds, FILE *out);

#endif
