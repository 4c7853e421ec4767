/* SPDX-License-Identifier: MIT */
/*
 * base.h - floor 1 of the internals (ufpi_ prefix, not installed): what every
 * layer uses: branch hints, limits, the counters (stats.c) and the log.
 */
#ifndef UFPI_BASE_H
#define UFPI_BASE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "uffdpool.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Ignore a warn_unused_result value on purpose (gcc ignores a cast). */
#define UFPI_IGNORE(x)   \
	do {             \
		if (x) { \
		}        \
	} while (0)

#define UFPI_WASM_PAGE ((uint64_t)65536)
#define UFPI_MAX_HANDLERS 64
/* Dropped runs of written pages a slot remembers for its next warm
 * allocation (8 bytes each). */
#define UFPI_REFILL_MAX 4096
/* ... and pages it copies back at most (64 MiB of 4 KiB pages): beyond
 * that an eager copy costs more than the faults it saves could. */
#define UFPI_REFILL_MAX_PAGES 16384
/* keep_resident_bytes = UFP_KEEP_AUTO: modified pages a slot keeps */
#define UFPI_KEEP_AUTO_BYTES ((uint64_t)1 << 20)

/* ---- floor 1: counters (stats.c) -------------------------------------- */

struct ufpi_counters {
#define UFPI_COUNTER(name, doc) _Atomic uint64_t name;
	UFP_STATS_LIST(UFPI_COUNTER)
#undef UFPI_COUNTER
};

#define UFPI_ADD(c, name, n)                                 \
	atomic_fetch_add_explicit(&(c)->name, (uint64_t)(n), \
				  memory_order_relaxed)
#define UFPI_SUB(c, name, n)                                 \
	atomic_fetch_sub_explicit(&(c)->name, (uint64_t)(n), \
				  memory_order_relaxed)

void ufpi_counters_snapshot(const struct ufpi_counters *c, ufp_stats *out);

/* Logging through the embedder's callback (never prints by itself). */
/* Lines logged by a handler thread wait here for an embedder thread: the
 * embedder's callback may touch linear memory, and a handler thread that
 * faults on pool memory waits on itself (a slot lock may be held too). */
#define UFPI_LOG_QUEUE 32
struct ufpi_log_queue {
	pthread_mutex_t lock;
	_Atomic unsigned n; /* lines waiting */
	unsigned dropped; /* lines lost to a full queue since the last flush */
	struct {
		ufp_log_level level;
		char msg[256];
	} line[UFPI_LOG_QUEUE];
};
struct ufpi_log {
	ufp_log_fn fn;
	void *arg;
	ufp_log_level level;
	struct ufpi_log_queue *queue; /* NULL: always deliver at once */
};
void ufpi_logf(const struct ufpi_log *log, ufp_log_level level, const char *fmt,
	       ...) __attribute__((format(printf, 3, 4)));
/* From now on this thread's lines are queued (handler threads). */
void ufpi_log_defer_thread(void);
/* Deliver queued lines (an embedder thread, no pool lock held). */
void ufpi_log_flush(const struct ufpi_log *log);

#endif /* UFPI_BASE_H */
