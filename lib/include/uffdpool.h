/* SPDX-License-Identifier: MIT */
/*
 * uffdpool.h - pooling allocator of WebAssembly-style linear memories.
 *
 * A pool reserves address space for `slots` equally sized slots. Each live
 * *memory* occupies one slot; its pages are filled on first touch from its
 * *module*'s *image* by a userfaultfd handler thread. Freed slots stay
 * *affine* to the module that used them; dropping a module purges every slot
 * still affine to it. See docs/design.md for the glossary and semantics and
 * docs/api.md for a tour.
 *
 * Conventions, for every function below:
 *  - fallible calls return 0 or a negative errno and never set errno;
 *    ufp_strerror() names any of them;
 *  - handles are opaque; a rejected call leaves the pool fully usable;
 *  - the library never prints: diagnostics go to the config's log callback;
 *  - thread-safety is stated per function ("any thread" means concurrent
 *    calls on the same pool are safe).
 */
#ifndef UFFDPOOL_H
#define UFFDPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "uffdpool/index.h"
#include "uffdpool_version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ufp_pool ufp_pool;
typedef struct ufp_module ufp_module;
typedef struct ufp_memory ufp_memory;

/* Version string of the library actually linked, "MAJOR.MINOR.PATCH". */
UFP_API const char *ufp_version(void);

/* How pages reach a slot. */
typedef enum ufp_backend {
	/* UFFD if userfaultfd can be opened, else COW (reason logged). */
	UFP_BACKEND_AUTO = 0,
	/* userfaultfd handler thread fills pages on first touch. */
	UFP_BACKEND_UFFD = 1,
	/* image in a sealed memfd mapped copy-on-write into the slot. */
	UFP_BACKEND_COW = 2,
	/* eager memcpy of the image at allocation. */
	UFP_BACKEND_COPY = 3,
} ufp_backend;

/* Which engine issues the MADV_DONTNEED work of a purge. */
typedef enum ufp_reclaim {
	/* URING if io_uring supports IORING_OP_MADVISE, else SYNC (logged). */
	UFP_RECLAIM_AUTO = 0,
	/* io_uring IORING_OP_MADVISE batches; the dropping thread only
	 * submits, completions are reaped by the handler thread. */
	UFP_RECLAIM_URING = 1,
	/* plain madvise() loop in the calling thread. */
	UFP_RECLAIM_SYNC = 2,
	/* process_madvise(2) on our own pidfd, up to IOV_MAX ranges per call
	 * (MADV_DONTNEED accepted from Linux 6.13). */
	UFP_RECLAIM_PROCESS_MADVISE = 3,
} ufp_reclaim;

/* Written-page tracking for warm reuse (UFFD_FEATURE_WP_ASYNC +
 * PAGEMAP_SCAN, Linux >= 6.7). */
typedef enum ufp_dirty_tracking {
	UFP_DIRTY_AUTO = 0, /* on when the kernel has it, else off (logged) */
	UFP_DIRTY_OFF = 1,  /* always reset the plain way */
} ufp_dirty_tracking;

/* How the UFFD backend installs a module's image pages. */
typedef enum ufp_fill_mode {
	/* MINOR where the kernel has UFFD_FEATURE_MINOR_SHMEM (Linux 5.14),
	 * else COPY (the reason is logged at INFO). */
	UFP_FILL_AUTO = 0,
	/* Zero-copy: the slot's image range is a private mapping of the
	 * module's sealed memfd, registered for minor faults; the handler
	 * maps page-cache pages with UFFDIO_CONTINUE. Clean pages are shared
	 * by every memory of the module, a write takes a kernel
	 * copy-on-write fault. ufp_pool_create returns -ENOTSUP when the
	 * kernel lacks MINOR_SHMEM. */
	UFP_FILL_MINOR = 1,
	/* Private copies (UFFDIO_COPY): one copy of the image per memory. */
	UFP_FILL_COPY = 2,
} ufp_fill_mode;

/* Working-set prefetch for cold starts (minor fill mode only). */
typedef enum ufp_prefetch {
	/* On where the fill mode is MINOR: the first cold start of a module
	 * (and every 16th after it) records the image pages its memory
	 * touches; the other cold starts get that set mapped by the handler
	 * thread, in first-touch order, while the instance runs. */
	UFP_PREFETCH_AUTO = 0,
	UFP_PREFETCH_OFF = 1, /* every page is faulted in on first touch */
} ufp_prefetch;

typedef enum ufp_log_level {
	UFP_LOG_ERROR = 0,
	UFP_LOG_WARN = 1,
	UFP_LOG_INFO = 2,
	UFP_LOG_DEBUG = 3,
} ufp_log_level;

/* Log callback: one line, no trailing newline, valid only during the call.
 * Called on the embedder's threads only, never on the library's handler
 * threads and never under a lock of a slot: what a handler thread has to
 * say waits (up to 32 lines) for the next ufp_memory_alloc, ufp_memory_free,
 * ufp_pool_quiesce or ufp_pool_destroy of any thread. So the callback may
 * touch linear memory and take locks the embedder holds while it does.
 * Must not call back into the pool. */
typedef void (*ufp_log_fn)(void *arg, ufp_log_level level, const char *msg);

/*
 * Pool configuration. Always start from ufp_config_init(), then override
 * fields: new fields get sane defaults there, and `size` lets the library
 * tell which version of the struct the caller was built with.
 */
typedef struct ufp_config {
	uint32_t size;	   /* sizeof(ufp_config), set by ufp_config_init */
	uint32_t reserved; /* must be 0 */

	uint32_t slots;		   /* number of slots; > 0 (default 100) */
	uint64_t max_memory_bytes; /* usable bytes per slot; a multiple of the
				      page size and of wasm_page_bytes, > 0
				      (default 4 GiB, wasm32) */
	uint64_t guard_bytes;	   /* PROT_NONE bytes after each slot; page
				      multiple (default 2 GiB, the wasm32
				      bounds-check-elimination guard) */
	uint64_t pre_guard_bytes;  /* PROT_NONE bytes before slot 0; page
				      multiple (default 64 KiB) */

	ufp_strategy strategy;		/* default REUSE_AFFINITY */
	uint32_t max_unused_warm_slots; /* WARM_LRU only (default 100) */
	uint64_t random_seed; /* RANDOM / REUSE_AFFINITY (default 1) */

	ufp_backend backend;	     /* default AUTO */
	uint32_t handler_threads;    /* userfaultfd fds and threads (default 1,
				      at most 64) */
	uint64_t fault_around_bytes; /* window filled per isolated fault;
					    page multiple (default 64 KiB) */
	uint64_t fault_around_max_bytes; /* the window doubles on sequential
					    faults up to this (default 1 MiB;
					    = fault_around_bytes disables) */
	uint64_t keep_resident_bytes;	 /* [0, keep) restored in place and
					    kept at free; page multiple or
					    UFP_KEEP_AUTO (the default) */

	ufp_reclaim reclaim;   /* default AUTO */
	uint32_t ring_entries; /* io_uring SQ entries (default 256, <= 32768) */
	ufp_dirty_tracking dirty_tracking; /* default AUTO */
	uint64_t max_resident_idle_bytes;  /* bound on bytes kept by unused
					      slots; 0 = unbounded (default) */

	ufp_log_fn log;		 /* NULL: silent */
	void *log_arg;		 /* passed to log */
	ufp_log_level log_level; /* most verbose level delivered (default
				    UFP_LOG_WARN) */

	/* Added in 0.2. ufp_config_init fills the struct of the header the
	 * library was built with, so a binary built against another minor
	 * version must not load this library: before 1.0 the soname carries
	 * the minor version (libuffdpool.so.0.2). */
	uint64_t fault_around_min_bytes; /* a fault that does not continue
					    the last window halves it
					    (starting from at most
					    fault_around_bytes, rounded down
					    to a page), down to this; larger
					    than fault_around_bytes acts as
					    fault_around_bytes, which
					    disables shrinking; non-zero
					    page multiple (default 16 KiB) */

	/* Added in 0.3 (soname libuffdpool.so.0.3). */
	ufp_fill_mode fill_mode;     /* UFFD backend only (default AUTO) */
	ufp_prefetch prefetch;	     /* default AUTO */
	uint64_t prefetch_max_bytes; /* working set recorded (and prefetched)
					per module, at most; page multiple,
					0 turns prefetch off (default
					64 MiB) */
	uint64_t prefix_bytes;	     /* read-write bytes directly before each
					memory's base, for a runtime's header;
					page multiple (default 0). Part of the
					slot, not of the memory's size nor of
					max_memory_bytes; zero at every
					allocation */
	uint64_t wasm_page_bytes;    /* the unit of memory sizes, grow and
					module initial sizes: a power of two
					from 1 (byte-exact sizes, wasm3) to
					65536 (default; the custom-page-sizes
					proposal allows 1). A memory is
					accessible to the end of its last OS
					page; ufp_memory_size and segment
					bounds are exact */
} ufp_config;

/*
 * keep_resident_bytes = UFP_KEEP_AUTO (the default): where a reset finds
 * written pages as the anonymous ones (fill mode MINOR, the COW backend,
 * both with PAGEMAP_SCAN), the pages the last memory modified are restored
 * in place and kept, up to 1 MiB per slot (lowest addresses first; the rest
 * is dropped), so the slot keeps at most what that memory wrote and the
 * next memory of the module writes them again without a fault; clean
 * pages stay shared page-cache pages. Elsewhere (copy mode,
 * COPY, no PAGEMAP_SCAN, dirty_tracking OFF) it means 0. max_resident_idle_bytes bounds the
 * total over idle slots.
 */
#define UFP_KEEP_AUTO UINT64_MAX

/* Fill *cfg with defaults (see each field). NULL is ignored. */
UFP_API void ufp_config_init(ufp_config *cfg);

/* One data segment of a module: `len` bytes at `offset` in linear memory. */
typedef struct ufp_segment {
	uint64_t offset;
	const void *bytes;
	uint64_t len;
} ufp_segment;

/*
 * Counters of one pool, all monotonic unless noted. Generated from one list
 * (UFP_STATS_LIST) that also drives ufp_stats_format(). Fields are only ever
 * appended.
 */
#define UFP_STATS_LIST(X)                                                     \
	X(faults, "userfaultfd faults served")                                \
	X(pages_copied, "pages installed with UFFDIO_COPY")                   \
	X(pages_zeroed, "pages installed with UFFDIO_ZEROPAGE")               \
	X(windows, "fault-around windows filled")                             \
	X(eexist_races, "pages found already present (EEXIST)")               \
	X(poisoned_faults, "faults in slots without a live memory")           \
	X(fault_errors, "unexpected errors while serving a fault")            \
	X(allocs, "memories allocated")                                       \
	X(affinity_hits, "allocations that reused an affine slot")            \
	X(resets, "slots reset at free")                                      \
	X(bytes_restored, "bytes restored in place at reset")                 \
	X(bytes_dropped, "bytes released with MADV_DONTNEED at reset")        \
	X(slots_wiped, "slots wiped for a different module")                  \
	X(purges, "module purges started")                                    \
	X(slots_purged, "affine slots purged")                                \
	X(purge_bytes, "bytes released by purges")                            \
	X(purge_batches, "reclaim batches submitted")                         \
	X(purge_ranges, "ranges submitted in reclaim batches")                \
	X(reclaim_fallbacks, "reclaim ranges redone with madvise")            \
	X(purges_inflight, "slots submitted and not yet completed (gauge)")   \
	X(dirty_scans, "PAGEMAP_SCAN walks at reset")                         \
	X(dirty_scan_ns, "time spent in those walks, ns")                     \
	X(pages_restored, "written pages restored at reset")                  \
	X(pages_dropped, "pages dropped at reset")                            \
	X(faults_avoided, "clean pages kept across a warm reuse")             \
	X(idle_evictions, "idle slots evicted for max_resident_idle_bytes")   \
	X(idle_resident_bytes, "bytes kept by unused slots (gauge)")          \
	X(pages_unchanged, "written pages found equal to the image at reset") \
	X(reprotects, "restored spans write-protected again at reset")        \
	X(pages_refilled, "dropped written pages copied back at warm alloc")  \
	X(pages_continued, "page-cache pages mapped with UFFDIO_CONTINUE")    \
	X(prefetch_learns, "cold starts that recorded a working set")         \
	X(prefetch_starts, "cold starts that prefetched a working set")       \
	X(pages_prefetched, "pages mapped ahead by prefetch")                 \
	X(prefetch_raced, "prefetch pages the memory had touched first")      \
	X(prefetch_faults, "faults taken by prefetched memories")

typedef struct ufp_stats {
	uint32_t size; /* the caller sets sizeof(ufp_stats) before
			  ufp_pool_stats, which sets what it wrote */
	uint32_t reserved;
#define UFP_STATS_FIELD(name, doc) uint64_t name;
	UFP_STATS_LIST(UFP_STATS_FIELD)
#undef UFP_STATS_FIELD
} ufp_stats;

/*
 * Create a pool: reserve `pre_guard_bytes + slots * slot_bytes` of PROT_NONE
 * address space (slot_bytes = prefix_bytes + max_memory_bytes +
 * guard_bytes), open and
 * register userfaultfd, start the handler thread(s), set up the reclaim
 * engine. cfg is copied.
 * cfg->size must be the size of a released ufp_config: sizeof(ufp_config)
 * (0.3), offsetof(ufp_config, fill_mode) (0.2) or
 * offsetof(ufp_config, fault_around_min_bytes) (0.1); fields past it get
 * their defaults. Any other size (a newer header's too) is -EINVAL.
 * Returns 0 and *out, or:
 *  -EINVAL  NULL argument, cfg->size not one of those, reserved != 0,
 *           zero slots,
 *           sizes not page multiples or zero, unknown enum values,
 *           handler_threads 0 or > 64, ring_entries 0 or > 32768,
 *           fault_around_max_bytes < fault_around_bytes;
 *  -E2BIG   the reservation does not fit the address space or RLIMIT_AS,
 *           or slots exceed the vm.max_map_count headroom (logged: which
 *           limit to raise);
 *  -EPERM   backend UFFD and userfaultfd is not permitted (logged: set
 *           vm.unprivileged_userfaultfd=1, grant access to /dev/userfaultfd
 *           or CAP_SYS_PTRACE);
 *  -ENOSYS  backend UFFD and the kernel has no userfaultfd;
 *  -ENOTSUP reclaim URING / PROCESS_MADVISE, a backend or fill_mode MINOR
 *           forced on a kernel that lacks it;
 *  -ENOMEM  out of memory or address space; other -errno from the kernel.
 * Needs: userfaultfd (Linux 4.3, POISON 6.6 else mprotect fallback),
 * io_uring IORING_OP_MADVISE (5.6) for URING. Thread-safety: any thread.
 */
UFP_API UFP_WUR int ufp_pool_create(const ufp_config *cfg, ufp_pool **out);

/*
 * Wait for in-flight purges, stop the handler thread(s), release every
 * image still held by a slot and unmap everything. Modules not dropped are
 * dropped. Returns 0, -EINVAL (NULL), -EBUSY (memories are live: nothing is
 * changed). Must not race with any other call on the same pool.
 */
UFP_API UFP_WUR int ufp_pool_destroy(ufp_pool *pool);

/*
 * Create a module whose image is built from `segs` (applied in order; later
 * segments overwrite earlier ones) over `initial_bytes` of linear memory.
 * Only pages holding a non-zero byte are stored. The segment bytes are
 * copied: the caller may free them after the call.
 * Returns 0 and *out, or -EINVAL (NULL pool/out, segs NULL with nsegs > 0,
 * a segment with NULL bytes and len > 0, initial_bytes not a multiple of
 * wasm_page_bytes), -E2BIG (initial_bytes > max_memory_bytes), -ERANGE (a segment
 * does not fit in [0, initial_bytes)), -ENOMEM.
 * Thread-safety: any thread.
 */
UFP_API UFP_WUR int ufp_module_create(ufp_pool *pool, const ufp_segment *segs,
				      size_t nsegs, uint64_t initial_bytes,
				      ufp_module **out);

/*
 * End the embedder's handle to a module and purge every slot still affine
 * to it: affinity cleared, pages released with MADV_DONTNEED (io_uring
 * batches with reclaim URING: the call only submits; ufp_pool_quiesce
 * waits). While memories of the module are live, the purge is deferred to
 * the free of the last one. After drop + quiesce no page of the module is
 * resident in the pool and its image memory is unmapped.
 * The handle must not be used afterwards; a second drop is detected while
 * the handle's storage has not been reused (it is recycled FIFO, after at
 * least 1024 other modules were dropped).
 * Returns 0, -EINVAL (NULL or not a live module), -EALREADY (already
 * dropped), -EBUSY (other references are held, see ufp_module_retain:
 * nothing changed). Thread-safety: any thread.
 */
UFP_API UFP_WUR int ufp_module_drop(ufp_module *m);

/*
 * Module identity, for runtimes without a module/instance split (each
 * instantiation parses the module again): ask for a module by its initial
 * memory contents and get the same handle for the same contents, counted
 * by references.
 *
 * Every module has a reference count: ufp_module_create and
 * ufp_module_acquire return a handle holding one reference,
 * ufp_module_retain adds one, ufp_module_release gives one up, and the
 * last release drops the module exactly like ufp_module_drop (purge of its
 * affine slots, deferred while memories of it are live). That is the whole
 * drop policy: a module whose references are all released is dropped at
 * once, so it can never be found again. To keep a module warm between
 * instantiations, keep one reference of your own (e.g. one per distinct
 * handle acquire returned) and release it when the module should go.
 *
 * ufp_module_drop is the release of the last reference: it returns -EBUSY
 * (nothing changed) while other references are held. Plain
 * ufp_module_create + ufp_module_drop code never sees the difference.
 * ufp_pool_destroy releases every module whatever its count.
 */

/*
 * Return a live module of `pool` whose initial memory is byte for byte what
 * `segs` (applied in order) make over `initial_bytes`, with one more
 * reference; if there is none, create it as ufp_module_create does (one
 * reference) and make it findable. Contents are compared in full (a hash
 * only picks candidates): segments cut or ordered differently that give
 * the same bytes find the same module; a different byte or a different
 * initial_bytes never does. Only modules made by ufp_module_acquire are
 * found, never one from ufp_module_create, nor a dropped one. The lookup
 * assembles the contents in heap memory (a copy of the segments' bytes,
 * a hash, a comparison) and maps nothing; only a miss builds the image.
 * Returns 0 and *out, or what ufp_module_create returns (-EINVAL, -E2BIG,
 * -ERANGE, -ENOMEM), or -EOVERFLOW (the module already has 2^32 - 1
 * references). Thread-safety: any thread; concurrent acquires of equal
 * contents get one module.
 */
UFP_API UFP_WUR int ufp_module_acquire(ufp_pool *pool, const ufp_segment *segs,
				       size_t nsegs, uint64_t initial_bytes,
				       ufp_module **out);

/*
 * Add a reference to a live module (from ufp_module_create or
 * ufp_module_acquire). The caller must hold a reference already.
 * Returns 0, -EINVAL (NULL or not a live module), -EOVERFLOW (2^32 - 1
 * references). Thread-safety: any thread.
 */
UFP_API UFP_WUR int ufp_module_retain(ufp_module *m);

/*
 * Give up one reference; the last one drops the module (as
 * ufp_module_drop: the handle dies, affine slots are purged, deferred to
 * the free of the last live memory). The handle must not be used after
 * the caller's last reference is released.
 * Returns 0, -EINVAL (NULL or not a module), -EALREADY (the module is
 * already dropped, detected while the handle is quarantined as for
 * ufp_module_drop). Thread-safety: any thread.
 */
UFP_API UFP_WUR int ufp_module_release(ufp_module *m);

/* Bytes of linear memory the module was created with. 0 for NULL. */
UFP_API uint64_t ufp_module_initial_bytes(const ufp_module *m);

/*
 * Allocate a memory of `initial_bytes` (0: the module's initial_bytes; a
 * multiple of wasm_page_bytes) for module m (NULL: no image, all zero). Prefers a
 * slot affine to m per the pool's strategy. The accessible part is
 * read-write, the rest of the slot PROT_NONE.
 * Returns 0 and *out, or -EINVAL (NULL pool/out, size not a multiple of
 * wasm_page_bytes, m not a live module of this pool), -E2BIG (initial_bytes >
 * max_memory_bytes: can never fit), -ERANGE (initial_bytes smaller than the
 * module's), -EAGAIN (every slot is held by a live memory or a concurrent
 * allocation right now), -ENOMEM (also for a transient EAGAIN of the kernel
 * inside mmap/mprotect/madvise) and other -errno from those (the slot is
 * returned to the pool). A slot that a purge holds is not "in use": when
 * no slot is free but a purge is pending or in flight, the call waits for
 * it (the kernel releasing the pages; it reaps the io_uring completions
 * itself) and takes the slot.
 * Thread-safety: any thread.
 */
UFP_API UFP_WUR int ufp_memory_alloc(ufp_pool *pool, ufp_module *m,
				     uint64_t initial_bytes, ufp_memory **out);

/*
 * Like ufp_memory_alloc, but when every slot is held by a live memory wait
 * up to `timeout_ns` (capped at 365 days; UINT64_MAX: that long) for one
 * to be freed. Any other
 * error (the kernel's) is returned at once.
 * Returns what ufp_memory_alloc returns, with -ETIMEDOUT in place of
 * -EAGAIN once the timeout has passed.
 */
UFP_API UFP_WUR int ufp_memory_alloc_wait(ufp_pool *pool, ufp_module *m,
					  uint64_t initial_bytes,
					  uint64_t timeout_ns,
					  ufp_memory **out);

/* Options of ufp_memory_alloc_ex: set size = sizeof(ufp_alloc_opts). */
typedef struct ufp_alloc_opts {
	uint32_t size;
	uint32_t reserved;	/* must be 0 */
	uint64_t initial_bytes; /* as ufp_memory_alloc's (0: the module's) */
	uint64_t max_bytes;	/* this memory's own maximum (the module's
				   declared one): grow beyond it is -E2BIG;
				   0 = max_memory_bytes */
} ufp_alloc_opts;

/*
 * ufp_memory_alloc with options: a per-memory maximum. Returns what
 * ufp_memory_alloc returns, and -EINVAL for a NULL opts, a wrong size or
 * reserved field, or max_bytes below the initial size or not a multiple
 * of wasm_page_bytes; -E2BIG for max_bytes > max_memory_bytes.
 * Thread-safety: any thread.
 */
UFP_API UFP_WUR int ufp_memory_alloc_ex(ufp_pool *pool, ufp_module *m,
					const ufp_alloc_opts *opts,
					ufp_memory **out);

/* Base address, accessible size in bytes, slot index. NULL gives
 * NULL/0/UINT32_MAX. Thread-safety: any thread (size races with grow). */
UFP_API void *ufp_memory_base(const ufp_memory *mem);
UFP_API uint64_t ufp_memory_size(const ufp_memory *mem);
UFP_API uint32_t ufp_memory_slot(const ufp_memory *mem);

/*
 * Grow the accessible size to `new_bytes` (a multiple of wasm_page_bytes,
 * >= the current size). New pages read as the image's data where it extends there,
 * else zero.
 * Returns 0, -EINVAL (NULL, not live, not a multiple of wasm_page_bytes,
 * smaller than the current size), -E2BIG (beyond the memory's maximum:
 * max_memory_bytes unless ufp_memory_alloc_ex set one), -ENOMEM
 * (mprotect).
 * Thread-safety: not against other calls on the same memory.
 */
UFP_API UFP_WUR int ufp_memory_grow(ufp_memory *mem, uint64_t new_bytes);

/*
 * Free a memory: reset its slot (the first keep_resident_bytes restored in
 * place and kept, the rest of what was populated dropped; with dirty
 * tracking, clean pages are kept too and only written ones restored or
 * dropped), keep the slot affine to the module. Touching the memory
 * afterwards is a bug: with the UFFD backend a dropped page traps (SIGBUS),
 * a kept page reads as the module's image, and a write to a kept page is
 * seen by the next memory of the same module in that slot, as with any
 * allocator's use after free (keep_resident_bytes = 0 with dirty_tracking
 * OFF makes every such access trap). COW and COPY never trap.
 * Returns 0, -EINVAL (NULL or not a live memory: double free is detected
 * while the handle's storage has not been reused). Errors of the reset
 * itself are logged and counted; the slot is then wiped before reuse.
 * Thread-safety: any thread, not against other calls on the same memory.
 */
UFP_API UFP_WUR int ufp_memory_free(ufp_memory *mem);

/*
 * Wait until every purge in flight has completed and its slots are back in
 * the allocator. If io_uring keeps refusing submissions (nothing completes
 * for 10 ms while the kernel takes none of the pending requests), the
 * ranges it has not taken are released here with plain madvise, logged at
 * WARN: quiesce never waits for ever. Returns 0, -EINVAL (NULL).
 * Thread-safety: any thread.
 */
UFP_API UFP_WUR int ufp_pool_quiesce(ufp_pool *pool);

/*
 * Snapshot of the counters. Set out->size = sizeof(ufp_stats) first (e.g.
 * `ufp_stats st = {.size = sizeof(st)};`): a caller built against an older
 * header gets only the counters its struct has; a larger size gets ours
 * and nothing past them is written. On return out->size is the bytes
 * written. Returns 0, -EINVAL (NULL, or out->size not a multiple of
 * 8 holding at least one counter). Any thread.
 */
UFP_API UFP_WUR int ufp_pool_stats(const ufp_pool *pool, ufp_stats *out);

/*
 * Format stats as "name value\n" lines (json = 0) or one JSON object
 * (json != 0) into buf. Returns the length it needed (excluding the NUL),
 * like snprintf; buf may be NULL when cap is 0.
 */
UFP_API size_t ufp_stats_format(const ufp_stats *st, int json, char *buf,
				size_t cap);

/*
 * Bytes of the pool's reservation resident right now, measured from the
 * kernel (PAGEMAP_SCAN, or mincore where it is missing), not from counters.
 * Returns 0, -EINVAL (NULL), -errno from the kernel. Any thread.
 */
UFP_API UFP_WUR int ufp_pool_resident_bytes(ufp_pool *pool, uint64_t *out);

/*
 * The same, split by kind: *private_bytes are the pool's anonymous pages
 * (written pages, copies the handler installed, restored kept pages);
 * *shared_bytes are page-cache pages of module images mapped into slots
 * (minor-fault mode and the COW backend), one physical copy shared by
 * every slot that maps it. Needs PAGEMAP_SCAN (Linux 6.7); without it
 * everything resident is reported private. Returns 0, -EINVAL (a NULL
 * argument), -errno from the kernel. Any thread.
 */
UFP_API UFP_WUR int ufp_pool_resident_split(ufp_pool *pool,
					    uint64_t *private_bytes,
					    uint64_t *shared_bytes);

/* How the pool's UFFD backend installs image pages (AUTO resolved):
 * UFP_FILL_MINOR or UFP_FILL_COPY; UFP_FILL_AUTO for the COW and COPY
 * backends, which have no handler. Returns 0, -EINVAL (NULL). */
UFP_API UFP_WUR int ufp_pool_fill_mode(const ufp_pool *pool,
				       ufp_fill_mode *out);

/* Which backend, reclaim engine and dirty tracking the pool actually uses
 * (AUTO resolved). Any of the out pointers may be NULL. */
UFP_API UFP_WUR int ufp_pool_info(const ufp_pool *pool, ufp_backend *backend,
				  ufp_reclaim *reclaim, int *dirty_tracking);

/* Static description of an error code (negative errno), never NULL. */
UFP_API const char *ufp_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif /* UFFDPOOL_H */
