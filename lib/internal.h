/* SPDX-License-Identifier: MIT */
/*
 * internal.h - shared internals of uffdpool (ufpi_ prefix). Not installed.
 *
 * Floors (docs/design.md, "Architecture"): dependencies point down only.
 *   5  pool.c, module.c     own everything, start/stop the handler
 *   4  uffd/handler.c, reclaim.c   read slot state, issue kernel work
 *   3  slot.c               slot state machine
 *   2  index.c, image.c, uffd/uffd.c
 *   1  os.c, stats.c        syscalls, counters
 */
#ifndef UFP_INTERNAL_H
#define UFP_INTERNAL_H

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

/* ---- floor 1: the syscall boundary (os.c) ------------------------------ */
/*
 * Every mmap/mprotect/madvise/mincore/io_uring call of lib/ goes through
 * here and returns 0 (or a count) or -errno, with errno preserved. In
 * builds with UFP_FAULT_INJECTION each can be made to fail on its Nth use.
 */
enum ufpi_fi_op {
	UFPI_FI_MMAP,
	UFPI_FI_MPROTECT,
	UFPI_FI_MADVISE,
	UFPI_FI_URING_INIT,
	UFPI_FI_URING_CQE,
	UFPI_FI_UFFDIO_COPY,
	UFPI_FI_UFFDIO_REGISTER,
	UFPI_FI_USERFAULTFD,
	UFPI_FI_UFFDIO_CONTINUE,
	UFPI_FI_URING_SUBMIT,	    /* io_uring_submit fails, nothing sent */
	UFPI_FI_URING_SUBMIT_SHORT, /* the kernel takes one SQE only (the
				       armed errno is not used) */
	UFPI_FI_URING_PROBE, /* io_uring_get_probe returns NULL (the armed
				errno is left in errno, stale) */
	UFPI_FI_NOPS
};

/* Arm op to fail with -err on its nth use from now (n >= 1); n 0 disarms.
 * Returns -ENOTSUP when built without UFP_FAULT_INJECTION. */
int ufpi_fi_arm(enum ufpi_fi_op op, unsigned nth, int err);
/* The same, but every use from the nth on fails, until ufpi_fi_reset. */
int ufpi_fi_arm_sticky(enum ufpi_fi_op op, unsigned nth, int err);
/* Call fn(op, arg) in the failing thread just before an injected failure
 * is returned (tests use it to run something inside a failing call);
 * cleared by ufpi_fi_reset. A no-op without UFP_FAULT_INJECTION. */
void ufpi_fi_set_hook(void (*fn)(enum ufpi_fi_op op, void *arg), void *arg);
void ufpi_fi_reset(void);
#ifdef UFP_FAULT_INJECTION
int ufpi_fi_hit(enum ufpi_fi_op op); /* 0, or the armed -errno */
#else
static inline int ufpi_fi_hit(enum ufpi_fi_op op)
{
	(void)op;
	return 0;
}
#endif

size_t ufpi_page_size(void);
uint64_t ufpi_now_ns(void); /* CLOCK_MONOTONIC */
void ufpi_sleep_ns(uint64_t ns);
int ufpi_os_reserve(size_t len, void **out);  /* PROT_NONE, NORESERVE */
int ufpi_os_map_anon(size_t len, void **out); /* RW, private anon */
int ufpi_os_unmap(void *addr, size_t len);
int ufpi_os_protect(void *addr, size_t len, int prot);
int ufpi_os_dontneed(void *addr, size_t len);
int ufpi_os_dontfork(void *addr, size_t len);
int ufpi_os_mincore(void *addr, size_t len, unsigned char *vec);
int ufpi_os_pagemap_open(void); /* fd of /proc/self/pagemap */
int ufpi_os_close(int fd);
int ufpi_os_eventfd(int *out);
int ufpi_os_eventfd_signal(int fd);
int ufpi_os_eventfd_drain(int fd);
/* Bytes resident in [addr, addr+len): PAGEMAP_SCAN (present, not the zero
 * page) when pagemap_fd >= 0 and the kernel has it, else mincore. */
/* The one PAGEMAP_SCAN walker: fn gets every run of [addr, addr+len)
 * that matches q (the kernel's category_mask / _inverted / _anyof_mask),
 * with the q->ret categories, until the range is covered; a non-zero
 * return stops the walk and is returned. */
struct ufpi_pm_query {
	uint64_t mask, inverted, anyof, ret;
};
typedef int (*ufpi_pm_fn)(void *arg, uint64_t start, uint64_t end,
			  uint64_t categories);
int ufpi_os_pagemap_scan(int fd, void *addr, size_t len,
			 const struct ufpi_pm_query *q, ufpi_pm_fn fn,
			 void *arg);
int ufpi_os_resident(int pagemap_fd, void *addr, size_t len, uint64_t *out);
/* The same split into anonymous (private) and file-backed (shared page
 * cache) bytes. Without PAGEMAP_SCAN everything counts as private. */
int ufpi_os_resident_split(int pagemap_fd, void *addr, size_t len,
			   uint64_t *private_bytes, uint64_t *shared_bytes);
int ufpi_os_max_map_count(uint64_t *max, uint64_t *used);
int ufpi_os_rlimit_as(uint64_t *limit); /* UINT64_MAX when unlimited */
int ufpi_os_pidfd_self(int *out);
int ufpi_os_tgkill(uint32_t tid, int sig); /* a thread of this process */
/* process_madvise(MADV_DONTNEED) of up to n ranges; returns bytes or -errno */
long ufpi_os_process_dontneed(int pidfd, const struct iovec *iov, size_t n);
/* MADV_DONTNEED of n ranges: one process_madvise call when pidfd >= 0,
 * what it did not do (or everything, pidfd < 0) with madvise. */
int ufpi_os_dontneed_vec(int pidfd, const struct iovec *iov, size_t n);

int ufpi_os_memfd_image(const char *name, size_t len, int *out);
int ufpi_os_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
int ufpi_os_seal(int fd);
int ufpi_os_map_fixed_file(void *addr, size_t len, int fd);
int ufpi_os_map_fixed_none(void *addr, size_t len);
int ufpi_os_map_file_ro(int fd, size_t len, void **out);

struct io_uring;
int ufpi_os_uring_init(unsigned entries, struct io_uring *ring);
void ufpi_os_uring_exit(struct io_uring *ring);
int ufpi_os_uring_has_madvise(void); /* 1, 0, or -errno */
int ufpi_os_uring_register_eventfd(struct io_uring *ring, int efd);
/* Queue MADV_DONTNEED of [addr, addr+len) (len < 4 GiB); -EBUSY if the
 * submission queue is full. */
int ufpi_os_uring_queue_madvise(struct io_uring *ring, void *addr, size_t len,
				uint64_t user_data);
/* One io_uring_enter for every SQE queued and not yet taken by the
 * kernel: returns how many it took (may be fewer: a short submit leaves
 * the rest in the ring for the next call), or -errno. */
int ufpi_os_uring_submit(struct io_uring *ring);
/* SQEs queued and not yet taken by the kernel. */
unsigned ufpi_os_uring_sq_pending(const struct io_uring *ring);
/* Withdraw them all (the kernel never sees them); their user_data go to
 * ids. Returns how many. Not with SQPOLL. */
unsigned ufpi_os_uring_unqueue(struct io_uring *ring, uint64_t *ids,
			       unsigned max);
/* io_uring_enter calls made by ufpi_os_uring_submit in this process
 * (tests: a batch must be one enter, not one per range). */
uint64_t ufpi_os_uring_enters(void);
/* Pop one completion: 0 with its user_data and result, or -EAGAIN. */
int ufpi_os_uring_peek(struct io_uring *ring, uint64_t *user_data, int *res);

/* ---- floor 2: kernel features (probe.c via uffd/uffd.c, os.c) ---------- */

struct ufpi_features {
	int uffd_err;	  /* 0 if a userfaultfd could be opened, else -errno */
	int uffd_via_dev; /* opened through /dev/userfaultfd */
	uint64_t uffd_features; /* UFFD_FEATURE_* offered by the kernel */
	bool poison;		/* UFFDIO_POISON (6.6) */
	bool wp_async;		/* UFFD_FEATURE_WP_ASYNC (6.7) */
	bool pagemap_scan;	/* PAGEMAP_SCAN ioctl (6.7) */
	bool minor_shmem;	/* UFFD_FEATURE_MINOR_SHMEM (5.14) */
	int uring_madvise;	/* 1 yes, 0 no, <0 io_uring unusable (-errno) */
	int process_madvise;	/* 1 if process_madvise accepts MADV_DONTNEED on
				  ourselves, 0 no, <0 -errno */
};

/* Probe once per process (cached, thread-safe). */
const struct ufpi_features *ufpi_features_probe(void);
/* Copy the cached probe (probing first if needed) under its lock: a
 * concurrent re-probe may rewrite it. */
void ufpi_features_copy(struct ufpi_features *out);
/* Forget the cached probe (tests with fault injection). */
void ufpi_features_reset(void);

/* ---- floor 2: userfaultfd (uffd/uffd.c) --------------------------------- */

int ufpi_uffd_open(uint64_t want_features, int *fd_out, uint64_t *features_out,
		   int *via_dev);
int ufpi_uffd_probe(uint64_t *features, int *via_dev);
#define UFPI_REG_MISSING 1u /* faults on pages not present */
#define UFPI_REG_WP 2u	    /* write-protect faults (WP_ASYNC tracking) */
#define UFPI_REG_MINOR 4u   /* faults on page-cache pages not mapped yet */
int ufpi_uffd_register(int fd, void *addr, size_t len, unsigned mode,
		       uint64_t *ioctls);
/* Each returns 0 when all of len is done, else -errno with *done set to the
 * bytes completed before the error (EEXIST, EAGAIN, ...). */
int ufpi_uffd_copy(int fd, void *dst, const void *src, size_t len, bool wp,
		   size_t *done);
int ufpi_uffd_zeropage(int fd, void *dst, size_t len, size_t *done);
/* Map the page-cache pages behind [dst, dst+len) (a minor fault range). */
int ufpi_uffd_continue(int fd, void *dst, size_t len, size_t *done);
int ufpi_uffd_poison(int fd, void *dst, size_t len);
int ufpi_uffd_wake(int fd, void *addr, size_t len);
int ufpi_uffd_writeprotect(int fd, void *addr, size_t len, bool wp);

/* ---- floor 2: written-page tracking (uffd/dirty.c) --------------------- */

#define UFPI_PG_PRESENT 1u /* mapped (the shared zero page included) */
#define UFPI_PG_WRITTEN \
	2u		/* written since install or re-protect, not the
			      zero page; or never populated */
#define UFPI_PG_ZERO 4u /* the shared zero page */
#define UFPI_PG_FILE 8u /* a page-cache page (anon scans only) */
/* Called for each run of pages with equal flags; non-zero stops the walk. */
typedef int (*ufpi_dirty_fn)(void *arg, void *addr, size_t len, unsigned flags);
/* Walk [addr, addr+len) with PAGEMAP_SCAN, reporting every run of pages
 * that are present or written, until the whole range is covered. Written
 * means written since write protection (anon false) or anonymous in a
 * copy-on-write file mapping, or swapped out (anon true). */
int ufpi_dirty_scan(int pagemap_fd, void *addr, size_t len, bool anon,
		    ufpi_dirty_fn fn, void *arg);

/* ---- floor 2: images (image.c) ----------------------------------------- */

/*
 * A module's initial memory contents over `npages` pages: `map[p]` is the
 * index of page p's bytes in `data`, or UFPI_IMAGE_ZERO. Pages with no
 * non-zero byte are not stored. Data pages are stored in page order, so
 * consecutive present pages are contiguous in `data`.
 * Refcounted: the module holds one reference until it is dropped, each slot
 * holding populated pages of it one more; the last unref unmaps `data`.
 */
struct ufpi_run {
	uint32_t page, n; /* first page, page count */
};

#define UFPI_IMAGE_ZERO UINT32_MAX
struct ufpi_image {
	_Atomic uint32_t refs;
	/* The module's learned working set (uffd/prefetch.c): image pages
	 * its memories touched on a cold start, as runs in first-touch
	 * order; replaced at the end of each learning run. */
	pthread_mutex_t wset_lock;
	struct ufpi_run *wset; /* nwset runs, malloc'd */
	uint32_t nwset;
	uint32_t cold_starts; /* cold starts since the set was learned */
	uint32_t npages;      /* pages covered by map */
	uint32_t ndata;	      /* pages stored in data */
	uint32_t *map;
	unsigned char *data; /* page-aligned, ndata pages */
	size_t data_len;     /* bytes mapped at data */
	int memfd;	     /* COW backend and minor-fault mode: sealed
				   memfd of npages pages (holes read as
				   zero), else -1. Then `data` is a
				   read-only view of it and map[p] == p for
				   every data page: one copy of the image. */
};

int ufpi_image_create(const ufp_segment *segs, size_t nsegs,
		      uint64_t initial_bytes, struct ufpi_image **out);
/* COW backend, minor mode: put the image in a sealed memfd (img->memfd)
 * and read it from there from now on. */
int ufpi_image_make_memfd(struct ufpi_image *img);
/* The page map and stored pages ufpi_image_create would make from segs,
 * in heap memory (for lookups by content). Images are canonical: a page
 * is stored iff it has a non-zero byte, in page order; so equal contents
 * give equal map and data however the segments are cut. */
struct ufpi_contents {
	uint32_t npages, ndata;
	uint32_t *map;
	unsigned char *data;
};
/* 0, or what ufpi_image_create returns for the same arguments. */
int ufpi_contents_build(const ufp_segment *segs, size_t nsegs,
			uint64_t initial_bytes, struct ufpi_contents *out);
void ufpi_contents_free(struct ufpi_contents *c);
/* Picks candidates only: equal contents, equal hash. */
uint64_t ufpi_contents_hash(const struct ufpi_contents *c);
/* Whether img holds byte for byte the contents c. */
bool ufpi_image_matches(const struct ufpi_image *img,
			const struct ufpi_contents *c);
void ufpi_image_ref(struct ufpi_image *img);
void ufpi_image_unref(struct ufpi_image *img);
static inline const unsigned char *ufpi_image_page(const struct ufpi_image *img,
						   uint64_t p)
{
	if (!img || p >= img->npages || img->map[p] == UFPI_IMAGE_ZERO)
		return NULL;
	return img->data + (size_t)img->map[p] * ufpi_page_size();
}

/* End of the run that starts at page p (< end): pages stored one after
 * the other in the image, or pages without data. One UFFDIO_COPY (or one
 * memcpy) or one UFFDIO_ZEROPAGE fills such a run. */
static inline uint64_t ufpi_image_run_end(const struct ufpi_image *img,
					  uint64_t p, uint64_t end)
{
	const unsigned char *src = ufpi_image_page(img, p);
	uint64_t q = p + 1;
	if (src)
		while (q < end && ufpi_image_page(img, q) ==
					  src + (q - p) * ufpi_page_size())
			q++;
	else
		while (q < end && !ufpi_image_page(img, q))
			q++;
	return q;
}

/* ---- floor 3: slots (slot.c) ------------------------------------------- */

enum ufpi_slot_state {
	UFPI_SLOT_FREE = 0, /* no live memory: faults are poisoned */
	UFPI_SLOT_LIVE = 1, /* a memory: faults are filled from `image` */
};

/*
 * One slot. `lock` is taken by the handler while it serves a fault and by
 * every state change, so a fill from module A can never land after the slot
 * was handed to module B. Nobody holds it while touching pool memory.
 */
struct ufpi_slot {
	pthread_mutex_t lock;
	enum ufpi_slot_state state;
	uint32_t gen;		  /* bumped on every state change */
	struct ufpi_image *image; /* referenced while LIVE or populated */
	uint64_t accessible;	  /* LIVE: bytes read-write for the memory */
	uint64_t prot_bytes;	  /* bytes currently PROT_READ|WRITE */
	uint64_t populated_hi;	  /* no page at or above this is present */
	bool poisoned;		  /* a fault was poisoned while FREE */
	bool prot_dirty;	  /* protection unknown: reapply all */
	bool stale;		  /* a reset failed: wipe before reuse */
	bool purging;		  /* debug invariant: mid-purge */
	/* fault-around window state (handler only, under lock) */
	uint64_t seq_next;
	uint64_t win;
	uint32_t purge_pending; /* reclaim ranges in flight */
	bool purge_failed;	/* one of them could not be released */
	uint64_t kept_bytes;	/* resident bytes kept by the last reset */
	/* runs of written pages the last dirty reset dropped (beyond
	 * keep_resident_bytes): copied back when the slot is next allocated
	 * for the same image, instead of faulting back one by one. Written
	 * by the freeing thread, read by the allocating one: never both at
	 * once; nrefill changes under lock. */
	struct ufpi_run *refill; /* refill_cap entries, malloc'd */
	uint32_t nrefill, refill_cap;
	uint64_t file_len; /* COW, minor mode: [0, file_len) is a private
			      mapping of image->memfd */
	/* Working-set prefetch (uffd/prefetch.c), under lock. A cold start
	 * either learns (the handler records the windows it fills, with
	 * single-page windows for isolated faults) or prefetches the image's
	 * set: the handler thread maps it run by run, from pf_run/pf_off,
	 * while pf_gen == gen. */
	bool learning;		 /* this memory's windows are recorded */
	bool prefetched;	 /* this memory was prefetched */
	_Atomic bool pf_pending; /* prefetch work left (read unlocked) */
	uint32_t pf_gen, pf_run, pf_off;
	struct ufpi_run *learn; /* nlearn runs recorded, learn_cap */
	uint32_t nlearn, learn_cap;
	uint64_t learn_pages;
};

/* Geometry and shared context the slot and handler layers work with. */
struct ufpi_slots {
	unsigned char *start; /* address of slot 0 */
	size_t slot_bytes;    /* prefix + max_memory_bytes + guard */
	size_t prefix;	      /* prefix_bytes: a header before each base */
	uint64_t max_memory_bytes;
	uint32_t n;
	struct ufpi_slot *slot; /* n slots */
	struct ufpi_counters *ctr;
	const struct ufpi_log *log;
	uint64_t keep_resident_bytes;
	uint64_t keep_budget; /* private bytes a reset restores, at most */
	uint64_t window_min, window_max; /* first window; growth bound */
	uint64_t window_floor;		 /* shrink bound */
	int *uffd; /* uffd of slot i: uffd[i % nuffd]; NULL for
				     backends without userfaultfd */
	unsigned nuffd;
	bool uffd_poison;		/* UFFDIO_POISON available */
	const unsigned char *zero_page; /* zero_len bytes of zeros (never
					   written: zero-page mappings) */
	size_t zero_len;		/* >= window_max, >= a page */
	bool dirty;	     /* pages installed write-protected; reset
				     restores only written pages */
	int pagemap_fd;	     /* /proc/self/pagemap, or -1 */
	int pidfd;	     /* our pidfd when process_madvise accepts
				     MADV_DONTNEED, or -1 */
	ufp_backend backend; /* resolved: UFFD, COW or COPY */
	bool minor;	     /* UFFD minor-fault mode: image ranges map the
				module's memfd, served with UFFDIO_CONTINUE */
	bool anon_scan;	     /* written pages are the anonymous ones of the
				range (minor mode, COW with PAGEMAP_SCAN) */
	bool prefetch;	     /* minor mode: learn and prefetch working sets */
	uint64_t prefetch_max_pages;	 /* recorded per module, at most */
	int wake_efd[UFPI_MAX_HANDLERS]; /* handler k's prefetch doorbell */
};

/* Slot i: [start, start + prefix) the runtime's header (always
 * read-write), then the memory's base, max_memory_bytes, the guard. */
static inline unsigned char *ufpi_slot_start(const struct ufpi_slots *s,
					     uint32_t i)
{
	return s->start + (size_t)i * s->slot_bytes;
}

static inline unsigned char *ufpi_slot_base(const struct ufpi_slots *s,
					    uint32_t i)
{
	return ufpi_slot_start(s, i) + s->prefix;
}

int ufpi_slot_init(struct ufpi_slot *slot);
void ufpi_slot_fini(struct ufpi_slot *slot);
/* Make slot i ready for a memory of `bytes` backed by img (NULL: zeros). */
int ufpi_slot_prepare(struct ufpi_slots *s, uint32_t i, struct ufpi_image *img,
		      uint64_t bytes, bool *wiped);
/* Grow a LIVE slot's accessible size. */
int ufpi_slot_grow(struct ufpi_slots *s, uint32_t i, uint64_t new_bytes);
/* Reset at free: restore and keep what keep_resident_bytes allows, drop the
 * rest, slot becomes FREE. *kept receives the resident bytes kept. */
int ufpi_slot_reset(struct ufpi_slots *s, uint32_t i, uint64_t *kept);
/* After a purge released [0, populated_hi): forget the image. */
void ufpi_slot_purged(struct ufpi_slots *s, uint32_t i);
/* A purge or prepare could not release the slot's pages: it keeps them and
 * its image reference and is wiped before its next use. */
void ufpi_slot_mark_stale(struct ufpi_slots *s, uint32_t i);

/* ---- floor 3: page sources (uffd/fill.c) -------------------------------- */

/* Fill pages [p, q) of slot i (slot lock held, image published) from its
 * image through its uffd: CONTINUE where the slot maps the image's memfd,
 * COPY elsewhere, ZEROPAGE where the image has no data. EEXIST and EAGAIN
 * are normal (unless `patient`, two present pages in a row end a run:
 * the rest is left to fault); other errors do not stop it. Returns 0 or the first
 * unexpected -errno, with *stop at the first page it left empty. Adds the
 * pages it filled to *filled (may be NULL). Wakes nobody. */
#define UFPI_FILL_PATIENT 1u /* step over every present page */
#define UFPI_FILL_WRITE \
	2u /* for a write: pages without data become
				private zero pages at once (UFFDIO_COPY),
				not the zero page a write copies again */
int ufpi_fill_pages(struct ufpi_slots *s, uint32_t i, uint64_t p, uint64_t q,
		    unsigned flags, unsigned char **stop, uint64_t *filled);
/* End of the run from page p (< endp) that one fill ioctl covers. */
uint64_t ufpi_fill_run_end(const struct ufpi_slots *s, uint32_t i, uint64_t p,
			   uint64_t endp);

/* ---- floor 3: working-set prefetch (uffd/prefetch.c) ------------------- */

/* Slot lock held, slot i just became LIVE after a cold prepare (its image
 * mapping is new): start learning or prefetching. True when the handler
 * thread of the slot must be woken. */
bool ufpi_prefetch_begin_locked(struct ufpi_slots *s, uint32_t i);
/* Handler, slot lock held: pages [p, q) were filled for a fault. */
void ufpi_prefetch_note_locked(struct ufpi_slots *s, uint32_t i, uint64_t p,
			       uint64_t q);
/* At reset, before the slot leaves LIVE: end learning (publish the set)
 * and any prefetch of this memory. */
void ufpi_prefetch_end(struct ufpi_slots *s, uint32_t i);
/* Handler thread k: map one chunk of some slot's working set. *cursor
 * (the handler's, starts at 0) rotates over its slots. True while work
 * remains. */
bool ufpi_prefetch_step(struct ufpi_slots *s, unsigned k, uint32_t *cursor);
/* Free a slot's recording buffer. */
void ufpi_prefetch_fini(struct ufpi_slot *slot);

/* ---- floor 4: handler (uffd/handler.c) --------------------------------- */

struct ufpi_handler;
/* Called by handler 0 when the reclaim eventfd is readable. */
typedef void (*ufpi_reap_fn)(void *arg);
int ufpi_handler_start(struct ufpi_slots *s, int reclaim_efd, ufpi_reap_fn reap,
		       void *reap_arg, struct ufpi_handler **out);
void ufpi_handler_stop(struct ufpi_handler *h);
/* Serve one fault at addr, raised by thread tid (0: unknown); exposed
 * for tests of the fill logic. */
void ufpi_handler_fault(struct ufpi_slots *s, int fd, uint64_t addr,
			uint32_t tid, bool write);

/* ---- floor 4: reclaim engines (reclaim.c) ------------------------------ */

struct ufpi_range {
	void *addr;
	size_t len;
	uint64_t tag; /* opaque to the engine: the slot index */
};

/* Called once per completed range (after a madvise fallback if it failed),
 * outside every engine lock; err != 0 if the range could not be released
 * at all (its pages may still be there). */
typedef void (*ufpi_reclaim_done_fn)(void *arg, uint64_t tag, size_t len,
				     int err);

struct ufpi_reclaim;
int ufpi_reclaim_create(ufp_reclaim kind, unsigned ring_entries,
			const struct ufpi_features *feat,
			struct ufpi_counters *ctr, const struct ufpi_log *log,
			ufpi_reclaim_done_fn done, void *done_arg,
			struct ufpi_reclaim **out);
void ufpi_reclaim_destroy(struct ufpi_reclaim *r);
ufp_reclaim ufpi_reclaim_kind(const struct ufpi_reclaim *r);
/* eventfd signalled on completions (URING), or -1. */
int ufpi_reclaim_eventfd(const struct ufpi_reclaim *r);
/* Queue ranges; with URING this only submits (done runs later, from
 * ufpi_reclaim_reap); with SYNC/PROCESS_MADVISE done runs before return. */
int ufpi_reclaim_submit(struct ufpi_reclaim *r, const struct ufpi_range *rg,
			size_t n);
/* Reap what has completed; never blocks. Returns ranges completed. */
size_t ufpi_reclaim_reap(struct ufpi_reclaim *r);
/* Ranges submitted and not yet completed. */
size_t ufpi_reclaim_inflight(struct ufpi_reclaim *r);
/* URING whose last submit the kernel refused (or took nothing of): do
 * every range the kernel has not taken with plain madvise here, logged.
 * Returns ranges so done (0 when the engine makes progress). */
size_t ufpi_reclaim_rescue(struct ufpi_reclaim *r);

/* ---- floor 5: pool, modules, memories (pool.c, module.c) -------------- */

#define UFPI_MAGIC_POOL 0x75667020706f6f6cULL	/* "ufp pool" */
#define UFPI_MAGIC_MODULE 0x7566706d6f64756cULL /* "ufpmodul" */
#define UFPI_MAGIC_MEMORY 0x7566706d656d6f72ULL /* "ufpmemor" */
#define UFPI_MAGIC_DEAD 0x6465616464656164ULL	/* "deaddead" */

/* Dead handles are recycled FIFO only after this many more died, so a
 * double free or double drop is detected in the meantime. */
#define UFPI_QUARANTINE 1024
/* Buckets of a pool's table of shared modules (ufp_module_acquire). */
#define UFPI_IDENTITY_BUCKETS 256

struct ufp_module {
	_Atomic uint64_t magic;
	ufp_pool *pool;
	uint64_t key;		  /* never reused within a pool */
	struct ufpi_image *image; /* the module's own reference */
	uint64_t initial_bytes;
	uint32_t live;		 /* live memories (pool->mod_lock) */
	bool dropped;		 /* (pool->mod_lock) */
	struct ufp_module *next; /* all-modules list / quarantine FIFO */
	struct ufp_module *all_next;
	/* identity (pool->mod_lock): references held by the embedder; a
	 * module from ufp_module_acquire sits in pool->identity under the
	 * hash of its image until its last reference goes */
	uint32_t refs;
	bool shared;
	uint64_t hash;
	struct ufp_module *id_next;
};

struct ufp_memory {
	_Atomic uint64_t magic;
	ufp_pool *pool;
	ufp_module *module;
	uint32_t slot;
	_Atomic uint64_t size;	     /* exact, in bytes */
	uint64_t max_bytes;	     /* its own maximum */
	struct ufp_memory *next;     /* quarantine FIFO */
	struct ufp_memory *all_next; /* every handle ever allocated */
};

struct ufpi_quarantine {
	void *head, *tail;
	size_t n;
};

struct ufp_pool {
	uint64_t magic;
	ufp_config cfg;
	struct ufpi_log log;
	struct ufpi_log_queue log_queue;
	struct ufpi_counters ctr;
	struct ufpi_features feat; /* copy of the process-wide probe */
	ufp_backend backend;	   /* resolved */
	bool dirty_tracking;	   /* resolved */
	ufp_fill_mode fill_mode;   /* resolved: MINOR or COPY (UFFD), AUTO */

	unsigned char *reservation; /* pre_guard + slots * slot_bytes */
	size_t reservation_len;
	struct ufpi_slots slots;
	ufp_index *index;

	int uffd[UFPI_MAX_HANDLERS];
	unsigned nuffd;
	struct ufpi_handler *handler;
	struct ufpi_reclaim *reclaim;
	int pagemap_fd;
	int pidfd;

	pthread_mutex_t mod_lock; /* modules, handles, quarantines */
	uint64_t next_key;
	struct ufp_module *modules; /* every module struct (all_next) */
	struct ufpi_quarantine dead_modules;
	struct ufp_memory *memories; /* every memory struct (all_next) */
	struct ufpi_quarantine dead_memories;
	uint64_t live_memories;
	/* modules of ufp_module_acquire by image hash (mod_lock); embedded so
	 * that it needs no teardown */
	struct ufp_module *identity[UFPI_IDENTITY_BUCKETS];

	/* slots freed: wakes ufp_memory_alloc_wait and ufp_pool_quiesce */
	pthread_mutex_t wait_lock;
	pthread_cond_t wait_cond;
	uint32_t waiters;
	_Atomic uint64_t purge_pending; /* slots being purged */
	_Atomic uint32_t purgers;	/* purge/evict loops taking slots */
};

/* module.c (pool->mod_lock held for the handle functions) */
ufp_memory *ufpi_memory_handle_new(ufp_pool *pool);
void ufpi_memory_handle_retire(ufp_pool *pool, ufp_memory *mem);
void ufpi_module_purge(ufp_pool *pool, uint64_t key);
/* true while a module with this key exists and is not dropped */
bool ufpi_module_key_live(ufp_pool *pool, uint64_t key);
void ufpi_module_memory_freed(ufp_pool *pool, ufp_module *m);
void ufpi_pool_evict_idle(ufp_pool *pool);
void ufpi_pool_reclaim_done(void *arg, uint64_t tag, size_t len, int err);
void ufpi_pool_slot_freed(ufp_pool *pool);
void ufpi_pool_reap(void *arg);
/* Tests: make every image hash alike, so that only the byte comparison
 * tells modules apart in ufp_module_acquire. */
void ufpi_module_hash_collide(bool on);

/* Benchmark hook (lib/hooks.c), outside the production structs: with
 * purge off for one pool a dropped module's affine slots keep their pages
 * (the behaviour before purge existed), to measure what purge saves.
 * NULL turns it off again. Never for production. */
void ufpi_hook_purge_off(const ufp_pool *pool);
bool ufpi_hook_purge_is_off(const ufp_pool *pool);

/* Walk the pool and check invariants (tests). 0 or -EUCLEAN. */
int ufpi_pool_check(ufp_pool *pool);

#endif /* UFP_INTERNAL_H */
