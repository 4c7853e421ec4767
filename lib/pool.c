/* SPDX-License-Identifier: MIT */
/*
 * pool.c - the pool: configuration, reservation and slot layout, the
 * handler and reclaim engine it owns, and the memory lifecycle
 * (alloc -> grow -> free).
 *
 * Layout: one PROT_NONE, MAP_NORESERVE, MADV_DONTFORK reservation of
 * pre_guard_bytes + slots * slot_bytes; slot i starts at
 * slots_start + i * slot_bytes; slot_bytes = prefix_bytes +
 * max_memory_bytes + guard_bytes, the memory's base after the prefix.
 * Only a live memory's accessible part is read-write, so an out-of-bounds
 * access is a hardware fault that never reaches the handler. The whole
 * range is registered with userfaultfd (MISSING) once; in minor-fault mode
 * a slot maps its module's memfd over the image range and registers that
 * mapping MINOR|MISSING, and registers the anonymous mapping that replaces
 * it again (slot.c): a registration does not survive a mapping over it.
 *
 * Allocation order: pick a slot (index allocator), prepare it (wipe if it
 * held another image, set protection), publish LIVE state to the handler,
 * return. No fault for the slot is served with the new image before that.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "pool.h"
#include "kernel_uapi.h"

/* 47-bit user address space (x86-64 and arm64 with 4-level tables) */
#define UFPI_ADDRESS_SPACE ((uint64_t)1 << 47)

UFP_API void ufp_config_init(ufp_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->size = sizeof(*cfg);
	cfg->slots = 100;
	cfg->max_memory_bytes = (uint64_t)4 << 30;
	cfg->guard_bytes = (uint64_t)2 << 30;
	cfg->pre_guard_bytes = 64 << 10;
	cfg->strategy = UFP_STRATEGY_REUSE_AFFINITY;
	cfg->max_unused_warm_slots = 100;
	cfg->random_seed = 1;
	cfg->backend = UFP_BACKEND_AUTO;
	cfg->handler_threads = 1;
	cfg->fault_around_bytes = 64 << 10;
	cfg->fault_around_max_bytes = 1 << 20;
	cfg->fault_around_min_bytes = 16 << 10;
	cfg->keep_resident_bytes = UFP_KEEP_AUTO;
	cfg->reclaim = UFP_RECLAIM_AUTO;
	cfg->ring_entries = 256;
	cfg->dirty_tracking = UFP_DIRTY_AUTO;
	cfg->max_resident_idle_bytes = 0;
	cfg->log_level = UFP_LOG_WARN;
	cfg->fill_mode = UFP_FILL_AUTO;
	cfg->prefetch = UFP_PREFETCH_AUTO;
	cfg->prefetch_max_bytes = (uint64_t)64 << 20;
	cfg->wasm_page_bytes = UFPI_WASM_PAGE;
}

static int validate_config(const ufp_config *c, const struct ufpi_log *log)
{
	const uint64_t page = ufpi_page_size();
#define BAD(...)                                                            \
	do {                                                                \
		ufpi_logf(log, UFP_LOG_DEBUG, "pool_create: " __VA_ARGS__); \
		return -EINVAL;                                             \
	} while (0)
	if (c->reserved)
		BAD("reserved field must be 0");
	if (!c->slots)
		BAD("slots must be > 0");
	if (!c->wasm_page_bytes || c->wasm_page_bytes > UFPI_WASM_PAGE ||
	    (c->wasm_page_bytes & (c->wasm_page_bytes - 1)))
		BAD("wasm_page_bytes must be a power of two, 1 to 65536");
	if (!c->max_memory_bytes || c->max_memory_bytes % page ||
	    c->max_memory_bytes % c->wasm_page_bytes)
		BAD("max_memory_bytes must be a non-zero multiple of the page "
		    "size and of wasm_page_bytes");
	if (c->guard_bytes % page || c->pre_guard_bytes % page)
		BAD("guard_bytes and pre_guard_bytes must be page multiples");
	if ((unsigned)c->strategy > UFP_STRATEGY_WARM_LRU)
		BAD("unknown strategy %d", (int)c->strategy);
	if ((unsigned)c->backend > UFP_BACKEND_COPY)
		BAD("unknown backend %d", (int)c->backend);
	if ((unsigned)c->reclaim > UFP_RECLAIM_PROCESS_MADVISE)
		BAD("unknown reclaim engine %d", (int)c->reclaim);
	if ((unsigned)c->dirty_tracking > UFP_DIRTY_OFF)
		BAD("unknown dirty_tracking %d", (int)c->dirty_tracking);
	if (!c->handler_threads || c->handler_threads > UFPI_MAX_HANDLERS)
		BAD("handler_threads must be 1..%d", UFPI_MAX_HANDLERS);
	if (!c->ring_entries || c->ring_entries > 32768)
		BAD("ring_entries must be 1..32768");
	if (!c->fault_around_bytes || c->fault_around_bytes % page)
		BAD("fault_around_bytes must be a non-zero page multiple");
	if (c->fault_around_max_bytes < c->fault_around_bytes ||
	    c->fault_around_max_bytes % page)
		BAD("fault_around_max_bytes must be a page multiple >= "
		    "fault_around_bytes");
	if (!c->fault_around_min_bytes || c->fault_around_min_bytes % page)
		BAD("fault_around_min_bytes must be a non-zero page multiple");
	if (c->keep_resident_bytes % page &&
	    c->keep_resident_bytes != UFP_KEEP_AUTO)
		BAD("keep_resident_bytes must be a page multiple or "
		    "UFP_KEEP_AUTO");
	if ((unsigned)c->fill_mode > UFP_FILL_COPY)
		BAD("unknown fill_mode %d", (int)c->fill_mode);
	if ((unsigned)c->prefetch > UFP_PREFETCH_OFF)
		BAD("unknown prefetch %d", (int)c->prefetch);
	if (c->prefetch_max_bytes % page)
		BAD("prefetch_max_bytes must be a page multiple");
	if (c->prefix_bytes % page || c->prefix_bytes > UFPI_ADDRESS_SPACE)
		BAD("prefix_bytes must be a page multiple");
	if ((unsigned)c->log_level > UFP_LOG_DEBUG)
		BAD("unknown log_level %d", (int)c->log_level);
#undef BAD
	return 0;
}

/* Reservation size, or -E2BIG with the limit to raise. */
static int check_limits(const ufp_config *c, const struct ufpi_log *log,
			size_t *slot_bytes, size_t *total)
{
	uint64_t sb = c->prefix_bytes + c->max_memory_bytes + c->guard_bytes;
	uint64_t t, limit, maxmap, used;

	if (sb < c->max_memory_bytes + c->prefix_bytes ||
	    sb > UFPI_ADDRESS_SPACE ||
	    (uint64_t)c->slots > UFPI_ADDRESS_SPACE / sb ||
	    (t = c->pre_guard_bytes + (uint64_t)c->slots * sb) >
		    UFPI_ADDRESS_SPACE ||
	    t < c->pre_guard_bytes) {
		ufpi_logf(log, UFP_LOG_DEBUG,
			  "pool_create: %u slots of %llu bytes do not fit in "
			  "the 128 TiB address space: lower slots, "
			  "max_memory_bytes or guard_bytes",
			  c->slots, (unsigned long long)sb);
		return -E2BIG;
	}
	if (ufpi_os_rlimit_as(&limit) == 0 && t > limit) {
		ufpi_logf(log, UFP_LOG_DEBUG,
			  "pool_create: the reservation of %llu bytes exceeds "
			  "RLIMIT_AS (%llu): raise it (ulimit -v) or shrink "
			  "the pool",
			  (unsigned long long)t, (unsigned long long)limit);
		return -E2BIG;
	}
	/* each live memory splits its slot into a read-write and a
	 * PROT_NONE mapping (COW: plus the image's file mapping); with
	 * several uffds each slot is its own VMA */
	uint64_t need =
		3 * (uint64_t)c->slots +
		(c->handler_threads > 1 || c->prefix_bytes ? c->slots : 0) + 64;
	if (ufpi_os_max_map_count(&maxmap, &used) == 0 &&
	    used + need > maxmap) {
		ufpi_logf(log, UFP_LOG_DEBUG,
			  "pool_create: %u slots need about %llu mappings; "
			  "vm.max_map_count is %llu with %llu in use: raise "
			  "it (sysctl vm.max_map_count=%llu)",
			  c->slots, (unsigned long long)need,
			  (unsigned long long)maxmap, (unsigned long long)used,
			  (unsigned long long)(used + need) * 2);
		return -E2BIG;
	}
	*slot_bytes = sb;
	*total = t;
	return 0;
}

static int open_uffds(ufp_pool *pool)
{
	const ufp_config *c = &pool->cfg;
	/* the faulting thread's id lets the handler signal a thread it
	 * could neither serve nor poison */
	uint64_t want = pool->feat.uffd_features &
			(UFFD_FEATURE_POISON | UFFD_FEATURE_THREAD_ID);
	unsigned mode = UFPI_REG_MISSING;
	int via_dev;

	if (pool->slots.dirty) {
		want |= UFFD_FEATURE_WP_ASYNC;
		mode |= UFPI_REG_WP;
	}
	/* minor mode registers each slot's image range for minor faults
	 * when it maps a module's memfd there (slot.c); the rest of the
	 * reservation is anonymous and takes missing faults */
	if (pool->fill_mode == UFP_FILL_MINOR)
		want |= UFFD_FEATURE_MINOR_SHMEM;

	for (unsigned k = 0; k < c->handler_threads; k++) {
		int err = ufpi_uffd_open(want, &pool->uffd[k], NULL, &via_dev);
		if (err)
			return err;
		pool->nuffd = k + 1;
	}
	if (pool->nuffd == 1)
		return ufpi_uffd_register(
			pool->uffd[0], pool->slots.start,
			(size_t)c->slots * pool->slots.slot_bytes, mode, NULL);
	for (uint32_t i = 0; i < c->slots; i++) {
		int err =
			ufpi_uffd_register(pool->uffd[i % pool->nuffd],
					   ufpi_slot_start(&pool->slots, i),
					   pool->slots.slot_bytes, mode, NULL);
		if (err)
			return err;
	}
	return 0;
}

/* UFFD backend: how image pages are installed. Minor faults share clean
 * pages through the page cache; copies cost a private page each. */
static int resolve_fill_mode(ufp_pool *pool)
{
	ufp_fill_mode want = pool->cfg.fill_mode;

	if (pool->backend != UFP_BACKEND_UFFD) {
		pool->fill_mode = UFP_FILL_AUTO;
		return 0;
	}
	if (want == UFP_FILL_MINOR && !pool->feat.minor_shmem) {
		ufpi_logf(&pool->log, UFP_LOG_DEBUG,
			  "pool_create: fill_mode MINOR needs "
			  "UFFD_FEATURE_MINOR_SHMEM (Linux 5.14)");
		return -ENOTSUP;
	}
	pool->fill_mode = want;
	if (want == UFP_FILL_AUTO) {
		pool->fill_mode =
			pool->feat.minor_shmem ? UFP_FILL_MINOR : UFP_FILL_COPY;
		ufpi_logf(&pool->log, UFP_LOG_INFO, "fill mode: %s",
			  pool->feat.minor_shmem
				  ? "MINOR (UFFDIO_CONTINUE from the module's "
				    "memfd: clean pages shared)"
				  : "COPY: the kernel lacks "
				    "UFFD_FEATURE_MINOR_SHMEM (Linux 5.14); "
				    "each memory gets private copies");
	}
	return 0;
}

/*
 * How a reset tells written pages from clean ones, both read with
 * PAGEMAP_SCAN (Linux 6.7): in copy mode by write protection (WP_ASYNC,
 * 6.7); where the image is a copy-on-write file mapping (minor mode, COW)
 * the written pages are the anonymous ones. Without it a reset drops
 * every populated page beyond keep_resident_bytes.
 */
static void resolve_tracking(ufp_pool *pool)
{
	bool wp = pool->backend == UFP_BACKEND_UFFD &&
		  pool->fill_mode == UFP_FILL_COPY;
	bool file = pool->backend == UFP_BACKEND_COW ||
		    pool->fill_mode == UFP_FILL_MINOR;

	if (pool->feat.pagemap_scan) {
		int fd = ufpi_os_pagemap_open();
		pool->pagemap_fd = fd >= 0 ? fd : -1;
	}
	if (pool->cfg.dirty_tracking == UFP_DIRTY_OFF || !(wp || file))
		return;
	const char *lack = pool->pagemap_fd < 0 ? "the PAGEMAP_SCAN ioctl"
			   : wp && !pool->feat.wp_async
				   ? "UFFD_FEATURE_WP_ASYNC"
				   : NULL;
	pool->dirty_tracking = !lack;
	if (lack)
		ufpi_logf(&pool->log, UFP_LOG_INFO,
			  "dirty tracking off: the kernel lacks %s (Linux >= "
			  "6.7); freed slots are reset by dropping every page",
			  lack);
}

static int resolve_reclaim(ufp_pool *pool)
{
	ufp_reclaim kind = pool->cfg.reclaim;
	int err;

	if (kind == UFP_RECLAIM_AUTO) {
		kind = UFP_RECLAIM_URING;
		if (pool->feat.uring_madvise != 1) {
			ufpi_logf(
				&pool->log, UFP_LOG_INFO,
				"reclaim: io_uring IORING_OP_MADVISE %s; "
				"using plain madvise",
				pool->feat.uring_madvise < 0
					? ufp_strerror(pool->feat.uring_madvise)
					: "not supported");
			kind = UFP_RECLAIM_SYNC;
		}
	}
	err = ufpi_reclaim_create(kind, pool->cfg.ring_entries, &pool->feat,
				  &pool->ctr, &pool->log,
				  ufpi_pool_reclaim_done, pool, &pool->reclaim);
	if (err && pool->cfg.reclaim == UFP_RECLAIM_AUTO &&
	    kind != UFP_RECLAIM_SYNC) {
		ufpi_logf(&pool->log, UFP_LOG_WARN,
			  "reclaim: io_uring setup failed (%s); using plain "
			  "madvise",
			  ufp_strerror(err));
		err = ufpi_reclaim_create(UFP_RECLAIM_SYNC, 0, &pool->feat,
					  &pool->ctr, &pool->log,
					  ufpi_pool_reclaim_done, pool,
					  &pool->reclaim);
	}
	if (err)
		ufpi_logf(&pool->log, UFP_LOG_DEBUG,
			  "pool_create: reclaim engine %d unavailable: %s",
			  (int)kind, ufp_strerror(err));
	return err;
}

static void pool_free(ufp_pool *pool)
{
	ufpi_handler_stop(pool->handler);
	ufpi_reclaim_destroy(pool->reclaim);
	ufpi_log_flush(&pool->log); /* what the handler said last */
	ufpi_slots_destroy(&pool->slots);
	ufp_index_destroy(pool->index);
	if (pool->slots.zero_page)
		ufpi_os_unmap((void *)pool->slots.zero_page,
			      pool->slots.zero_len);
	for (unsigned k = 0; k < pool->nuffd; k++)
		ufpi_os_close(pool->uffd[k]);
	if (pool->reservation)
		ufpi_os_unmap(pool->reservation, pool->reservation_len);
	ufpi_os_close(pool->pagemap_fd);
	ufpi_os_close(pool->pidfd);
	for (ufp_module *m = pool->modules, *nx; m; m = nx) {
		nx = m->all_next;
		ufpi_image_unref(m->image);
		free(m);
	}
	for (ufp_memory *m = pool->memories, *nx; m; m = nx) {
		nx = m->all_next;
		free(m);
	}
	pthread_mutex_destroy(&pool->mod_lock);
	pthread_mutex_destroy(&pool->wait_lock);
	pthread_mutex_destroy(&pool->log_queue.lock);
	pthread_cond_destroy(&pool->wait_cond);
	pool->magic = 0;
	free(pool);
}

/* The sizes of every released ufp_config and nothing else: a prefix that
 * ends elsewhere may end inside a field (a pointer half copied). */
static bool config_size_ok(uint32_t size)
{
	return size == offsetof(ufp_config, fault_around_min_bytes) || /* 0.1 */
	       size == offsetof(ufp_config, fill_mode) ||	       /* 0.2 */
	       size == sizeof(ufp_config);			       /* 0.3 */
}

/* A pool struct with its locks and the process's probe: nothing else. */
static ufp_pool *pool_new(const ufp_config *cfg, const struct ufpi_log *log)
{
	ufp_pool *pool = calloc(1, sizeof(*pool));
	if (!pool)
		return NULL;
	pool->magic = UFPI_MAGIC_POOL;
	pool->cfg = *cfg;
	pool->log = *log;
	pthread_mutex_init(&pool->log_queue.lock, NULL);
	pool->log.queue = &pool->log_queue;
	pool->pagemap_fd = -1;
	pool->pidfd = -1;
	pool->next_key = 1;
	pthread_mutex_init(&pool->mod_lock, NULL);
	pthread_mutex_init(&pool->wait_lock, NULL);
	pthread_cond_init(&pool->wait_cond, NULL);
	ufpi_features_copy(&pool->feat);
	return pool;
}

static const char *uffd_eperm_hint(int err)
{
	return err == -EPERM ? "EPERM - set vm.unprivileged_userfaultfd=1, "
			       "grant access to /dev/userfaultfd, or run "
			       "with CAP_SYS_PTRACE"
			     : ufp_strerror(err);
}

/* backend AUTO: UFFD where userfaultfd can be opened, else COW (seccomp
 * profiles and unprivileged containers forbid it; copy-on-write works
 * everywhere). UFFD forced without it: its error. */
static int resolve_backend(ufp_pool *pool)
{
	pool->backend = pool->cfg.backend;
	if (pool->backend == UFP_BACKEND_AUTO) {
		pool->backend = UFP_BACKEND_UFFD;
		if (pool->feat.uffd_err) {
			ufpi_logf(&pool->log, UFP_LOG_WARN,
				  "userfaultfd unavailable (%s); using the "
				  "copy-on-write backend",
				  uffd_eperm_hint(pool->feat.uffd_err));
			pool->backend = UFP_BACKEND_COW;
		}
	}
	if (pool->backend == UFP_BACKEND_UFFD && pool->feat.uffd_err) {
		ufpi_logf(&pool->log, UFP_LOG_DEBUG, "userfaultfd: %s",
			  uffd_eperm_hint(pool->feat.uffd_err));
		return pool->feat.uffd_err;
	}
	return 0;
}

/* The slot layer's parameters, from the resolved configuration. */
static void slots_params(ufp_pool *pool, size_t slot_bytes)
{
	const ufp_config *c = &pool->cfg;
	struct ufpi_slots *s = &pool->slots;

	s->start = pool->reservation + c->pre_guard_bytes;
	s->slot_bytes = slot_bytes;
	s->prefix = c->prefix_bytes;
	s->max_memory_bytes = c->max_memory_bytes;
	s->ctr = &pool->ctr;
	s->log = &pool->log;
	s->window_min = c->fault_around_bytes;
	s->window_max = c->fault_around_max_bytes;
	s->window_floor = c->fault_around_min_bytes < c->fault_around_bytes
				  ? c->fault_around_min_bytes
				  : c->fault_around_bytes;
	s->uffd = pool->uffd;
	s->uffd_poison = pool->feat.poison;
	s->dirty = pool->dirty_tracking && pool->fill_mode == UFP_FILL_COPY;
	s->backend = pool->backend;
	s->pagemap_fd = pool->pagemap_fd;
	s->minor = pool->fill_mode == UFP_FILL_MINOR;
	s->anon_scan = pool->dirty_tracking && !s->dirty;
	/* AUTO: what the last memory modified, where a scan tells, up to
	 * UFPI_KEEP_AUTO_BYTES per slot (a memory written everywhere is
	 * dropped, not copied back whole) */
	bool autokeep = c->keep_resident_bytes == UFP_KEEP_AUTO;
	s->keep_resident_bytes = autokeep ? (s->anon_scan ? UINT64_MAX : 0)
					  : c->keep_resident_bytes;
	s->keep_budget = autokeep ? UFPI_KEEP_AUTO_BYTES : UINT64_MAX;
	s->prefetch = s->minor && c->prefetch == UFP_PREFETCH_AUTO &&
		      c->prefetch_max_bytes;
	s->prefetch_max_pages = c->prefetch_max_bytes / ufpi_page_size();
	for (unsigned k = 0; k < UFPI_MAX_HANDLERS; k++)
		s->wake_efd[k] = -1;
	s->pidfd = pool->pidfd;
}

/* The reservation, the slots' headers, the zero source, the slot array
 * and the index allocator. */
static int build_slots(ufp_pool *pool, size_t slot_bytes, size_t total)
{
	const ufp_config *c = &pool->cfg;
	struct ufpi_slots *s = &pool->slots;

	int err = ufpi_os_reserve(total, (void **)&pool->reservation);
	if (err) {
		ufpi_logf(&pool->log, UFP_LOG_DEBUG,
			  "pool_create: cannot reserve %zu bytes: %s", total,
			  ufp_strerror(err));
		return err;
	}
	pool->reservation_len = total;
	ufpi_os_dontfork(pool->reservation, total);
	if (pool->feat.process_madvise == 1 && ufpi_os_pidfd_self(&pool->pidfd))
		pool->pidfd = -1;
	slots_params(pool, slot_bytes);
	/* every slot's header is read-write for good: it is zeroed at each
	 * allocation (slot.c), and what lies before it is the previous
	 * slot's guard */
	for (uint32_t i = 0; s->prefix && i < c->slots && !err; i++)
		err = ufpi_os_protect(ufpi_slot_start(s, i), s->prefix,
				      PROT_READ | PROT_WRITE);
	/* never written: reading it maps the zero page, it costs nothing */
	s->zero_len = s->window_max > ufpi_page_size() ? s->window_max
						       : ufpi_page_size();
	if (!err)
		err = ufpi_os_map_anon(s->zero_len, (void **)&s->zero_page);
	if (err)
		return err;
	err = ufpi_slots_create(s, c->slots);
	if (err)
		return err;
	return ufp_index_create(c->slots, c->strategy, c->max_unused_warm_slots,
				c->random_seed, &pool->index);
}

/* userfaultfds and the handler threads (UFFD), the reclaim engine.
 * Without userfaultfd there is no handler thread: purge completions are
 * reaped by the API calls and ufp_pool_quiesce. */
static int start_engines(ufp_pool *pool)
{
	int err = 0;
	if (pool->backend == UFP_BACKEND_UFFD) {
		err = open_uffds(pool);
		pool->slots.nuffd = pool->nuffd;
		if (err) {
			ufpi_logf(&pool->log, UFP_LOG_DEBUG,
				  "pool_create: userfaultfd setup failed: %s",
				  ufp_strerror(err));
			return err;
		}
	}
	err = resolve_reclaim(pool);
	if (!err && pool->backend == UFP_BACKEND_UFFD)
		err = ufpi_handler_start(&pool->slots,
					 ufpi_reclaim_eventfd(pool->reclaim),
					 ufpi_pool_reap, pool, &pool->handler);
	return err;
}

UFP_API int ufp_pool_create(const ufp_config *cfg_in, ufp_pool **out)
{
	ufp_config cfg;
	size_t slot_bytes, total;

	if (!cfg_in || !out || !config_size_ok(cfg_in->size))
		return -EINVAL;
	/* a caller built against an older header passes a shorter struct:
	 * its missing fields keep their defaults */
	ufp_config_init(&cfg);
	memcpy(&cfg, cfg_in, cfg_in->size);
	cfg.size = sizeof(cfg);
	struct ufpi_log log = {cfg.log, cfg.log_arg, cfg.log_level, NULL};
	int err = validate_config(&cfg, &log);
	if (!err)
		err = check_limits(&cfg, &log, &slot_bytes, &total);
	if (err)
		return err;

	ufp_pool *pool = pool_new(&cfg, &log);
	if (!pool)
		return -ENOMEM;
	err = resolve_backend(pool);
	if (!err)
		err = resolve_fill_mode(pool);
	if (!err) {
		resolve_tracking(pool);
		err = build_slots(pool, slot_bytes, total);
	}
	if (!err)
		err = start_engines(pool);
	if (err) {
		pool_free(pool); /* undoes whatever stage it reached */
		return err;
	}
	*out = pool;
	return 0;
}

static bool pool_ok(const ufp_pool *pool)
{
	return pool && pool->magic == UFPI_MAGIC_POOL;
}

/* Purges hold the slots they clear (used, no key) from the moment they
 * take them until their pages are released. */
static bool purges_pending(ufp_pool *pool)
{
	return atomic_load(&pool->purge_pending) || atomic_load(&pool->purgers);
}

/* CLOCK_REALTIME ns from now (for pthread_cond_timedwait). */
static struct timespec realtime_after(uint64_t ns)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ns / 1000000000ull);
	ts.tv_nsec += (long)(ns % 1000000000ull);
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

/* Reclaim that makes no progress for this long is asked to give back the
 * work the kernel refuses (ufpi_reclaim_rescue: madvise here, logged). */
#define UFPI_STALL_NS ((uint64_t)10 * 1000 * 1000)

struct purge_progress {
	uint64_t left;	/* purge_pending when it last changed */
	uint64_t since; /* ... at this time */
};

/* One step of waiting for purges: reap what completed, rescue a stuck
 * engine, then sleep until a slot is freed (at most 1 ms). */
static void purge_wait_step(ufp_pool *pool, struct purge_progress *pp)
{
	/* the handler reaps on the ring's eventfd; reaping here too makes
	 * waiting independent of it (and there is none for COW/COPY) */
	ufpi_reclaim_reap(pool->reclaim);
	uint64_t now = ufpi_now_ns();
	uint64_t left = atomic_load(&pool->purge_pending);
	if (!pp->since || left != pp->left) {
		pp->left = left;
		pp->since = now;
	} else if (now - pp->since > UFPI_STALL_NS) {
		ufpi_reclaim_rescue(pool->reclaim);
		pp->since = now;
	}
	pthread_mutex_lock(&pool->wait_lock);
	if (purges_pending(pool)) {
		struct timespec ts = realtime_after(1000000);
		pool->waiters++;
		pthread_cond_timedwait(&pool->wait_cond, &pool->wait_lock, &ts);
		pool->waiters--;
	}
	pthread_mutex_unlock(&pool->wait_lock);
}

UFP_API int ufp_pool_quiesce(ufp_pool *pool)
{
	struct purge_progress pp = {0, 0};

	if (!pool_ok(pool))
		return -EINVAL;
	while (purges_pending(pool))
		purge_wait_step(pool, &pp);
	ufpi_log_flush(&pool->log);
	return 0;
}

UFP_API int ufp_pool_destroy(ufp_pool *pool)
{
	if (!pool_ok(pool))
		return -EINVAL;
	pthread_mutex_lock(&pool->mod_lock);
	uint64_t live = pool->live_memories;
	pthread_mutex_unlock(&pool->mod_lock);
	if (live)
		return -EBUSY;
	for (ufp_module *m = pool->modules; m; m = m->all_next)
		if (atomic_load(&m->magic) == UFPI_MAGIC_MODULE)
			UFPI_IGNORE(ufp_module_drop(m));
	UFPI_IGNORE(ufp_pool_quiesce(pool));
	pool_free(pool);
	return 0;
}

static bool module_ok(const ufp_pool *pool, const ufp_module *m)
{
	return atomic_load(&m->magic) == UFPI_MAGIC_MODULE && m->pool == pool;
}

/* The slot's accessible bytes for an exact size: whole OS pages. */
static uint64_t page_up(uint64_t bytes)
{
	const uint64_t page = ufpi_page_size();
	return (bytes + page - 1) & ~(page - 1);
}

/* The sizes of an allocation, checked: 0 or the documented errno. */
static int alloc_sizes(const ufp_pool *pool, const ufp_module *m,
		       uint64_t *initial_bytes, uint64_t *max_bytes)
{
	const ufp_config *c = &pool->cfg;
	if (!*initial_bytes && m)
		*initial_bytes = m->initial_bytes;
	if (!*max_bytes)
		*max_bytes = c->max_memory_bytes;
	if (*initial_bytes % c->wasm_page_bytes)
		return -EINVAL;
	if (*initial_bytes > c->max_memory_bytes ||
	    *max_bytes > c->max_memory_bytes)
		return -E2BIG;
	if (*max_bytes < *initial_bytes || *max_bytes % c->wasm_page_bytes)
		return -EINVAL;
	return m && *initial_bytes < m->initial_bytes ? -ERANGE : 0;
}

/* A handle, a reference on the module's image and the live counts; NULL
 * (with *err) when the module was dropped or memory is short. */
static ufp_memory *alloc_handle(ufp_pool *pool, ufp_module *m,
				struct ufpi_image **img, int *err)
{
	pthread_mutex_lock(&pool->mod_lock);
	ufp_memory *mem = NULL;
	*err = m && m->dropped ? -EINVAL : 0;
	if (!*err && !(mem = ufpi_memory_handle_new(pool)))
		*err = -ENOMEM;
	if (mem) {
		/* our own reference: a concurrent drop releases the
		 * module's */
		*img = m ? m->image : NULL;
		ufpi_image_ref(*img);
		if (m)
			m->live++;
		pool->live_memories++;
	}
	pthread_mutex_unlock(&pool->mod_lock);
	return mem;
}

/* A slot for key. A slot being purged is not held by a memory: wait for
 * its purge (it takes the kernel a moment) rather than fail. */
static int take_slot(ufp_pool *pool, uint64_t key, ufp_slot_index *i,
		     uint64_t *prev_key)
{
	struct purge_progress pp = {0, 0};
	if (!pool->handler && atomic_load(&pool->purge_pending))
		ufpi_reclaim_reap(pool->reclaim);
	int err = ufp_index_alloc(pool->index, key, i, prev_key);
	while (err == -EAGAIN && purges_pending(pool)) {
		purge_wait_step(pool, &pp);
		err = ufp_index_alloc(pool->index, key, i, prev_key);
	}
	return err;
}

/* Slot i could not be prepared: give it back, and make sure no module's
 * pages are left behind in it. Returns the error to report. */
static int prepare_failed(ufp_pool *pool, ufp_slot_index i, uint64_t key,
			  uint64_t prev_key, int err)
{
	ufpi_logf(&pool->log, UFP_LOG_DEBUG, "memory_alloc: slot %u: %s", i,
		  ufp_strerror(err));
	/* What the slot held may still be there: it stays affine to the
	 * module that left it, so that module's purge still finds it, and
	 * is wiped before reuse. */
	uint64_t kept = ufpi_slot_mark_stale(&pool->slots, i);
	UFPI_IGNORE(ufp_index_free_affine(pool->index, i, prev_key, kept));
	ufpi_pool_slot_freed(pool);
	/* ... but if that module was dropped meanwhile, its purge ran while
	 * we held the slot and missed it */
	if (prev_key && prev_key != key &&
	    !ufpi_module_key_live(pool, prev_key))
		ufpi_module_purge(pool, prev_key);
	/* -EAGAIN means "no slot": a transient kernel error is not that */
	return err == -EAGAIN ? -ENOMEM : err;
}

/* ufp_memory_alloc; *no_slot tells a -EAGAIN "every slot is held by a
 * live memory" from any error of the kernel. */
static int memory_alloc(ufp_pool *pool, ufp_module *m, uint64_t initial_bytes,
			uint64_t max_bytes, ufp_memory **out, bool *no_slot)
{
	struct ufpi_image *img = NULL;
	ufp_slot_index i;
	uint64_t prev_key = 0;
	bool wiped;
	int err;

	if (!pool_ok(pool) || !out || (m && !module_ok(pool, m)))
		return -EINVAL;
	err = alloc_sizes(pool, m, &initial_bytes, &max_bytes);
	if (err)
		return err;
	ufp_memory *mem = alloc_handle(pool, m, &img, &err);
	if (!mem)
		return err;

	uint64_t key = m ? m->key : 0;
	err = take_slot(pool, key, &i, &prev_key);
	*no_slot = err == -EAGAIN;
	if (!err) {
		err = ufpi_slot_prepare(&pool->slots, i, img,
					page_up(initial_bytes), &wiped);
		if (err)
			err = prepare_failed(pool, i, key, prev_key, err);
	}
	ufpi_image_unref(img); /* the slot holds its own now */
	if (err) {
		ufpi_module_memory_gone(pool, mem, m);
		return err;
	}
	UFPI_ADD(&pool->ctr, allocs, 1);
	if (key && prev_key == key)
		UFPI_ADD(&pool->ctr, affinity_hits, 1);
	mem->pool = pool;
	mem->module = m;
	mem->slot = i;
	atomic_store(&mem->size, initial_bytes);
	mem->max_bytes = max_bytes;
	atomic_store(&mem->magic, UFPI_MAGIC_MEMORY);
	*out = mem;
	return 0;
}

UFP_API int ufp_memory_alloc(ufp_pool *pool, ufp_module *m,
			     uint64_t initial_bytes, ufp_memory **out)
{
	bool no_slot;
	int err = memory_alloc(pool, m, initial_bytes, 0, out, &no_slot);
	if (pool_ok(pool))
		ufpi_log_flush(&pool->log);
	return err;
}

UFP_API int ufp_memory_alloc_ex(ufp_pool *pool, ufp_module *m,
				const ufp_alloc_opts *opts, ufp_memory **out)
{
	bool no_slot;
	if (!opts || opts->size != sizeof(*opts) || opts->reserved)
		return -EINVAL;
	int err = memory_alloc(pool, m, opts->initial_bytes, opts->max_bytes,
			       out, &no_slot);
	if (pool_ok(pool))
		ufpi_log_flush(&pool->log);
	return err;
}

UFP_API int ufp_memory_alloc_wait(ufp_pool *pool, ufp_module *m,
				  uint64_t initial_bytes, uint64_t timeout_ns,
				  ufp_memory **out)
{
	struct timespec now, deadline;

	if (!pool_ok(pool))
		return -EINVAL;
	if (timeout_ns > (uint64_t)365 * 24 * 3600 * 1000000000ull)
		timeout_ns = (uint64_t)365 * 24 * 3600 * 1000000000ull;
	deadline = realtime_after(timeout_ns);
	for (;;) {
		/* count ourselves as a waiter before trying, so that a free
		 * between the failed try and the wait still wakes us */
		pthread_mutex_lock(&pool->wait_lock);
		pool->waiters++;
		pthread_mutex_unlock(&pool->wait_lock);
		bool no_slot = false;
		int err =
			memory_alloc(pool, m, initial_bytes, 0, out, &no_slot);
		pthread_mutex_lock(&pool->wait_lock);
		/* wait only while every slot is held by a live memory; any
		 * other error (a kernel's) is the caller's at once */
		if (err == -EAGAIN && no_slot &&
		    ufp_index_num_free(pool->index) == 0) {
			/* with no handler thread, purges complete only when
			 * someone reaps: wake up every millisecond to do so */
			struct timespec until = deadline;
			bool slice = !pool->handler &&
				     atomic_load(&pool->purge_pending);
			if (slice)
				until = realtime_after(1000000);
			int r = pthread_cond_timedwait(
				&pool->wait_cond, &pool->wait_lock, &until);
			clock_gettime(CLOCK_REALTIME, &now);
			bool past = now.tv_sec > deadline.tv_sec ||
				    (now.tv_sec == deadline.tv_sec &&
				     now.tv_nsec >= deadline.tv_nsec);
			err = r == ETIMEDOUT && past ? -ETIMEDOUT : -EAGAIN;
		}
		pool->waiters--;
		pthread_mutex_unlock(&pool->wait_lock);
		if (err != -EAGAIN)
			return err;
	}
}

static bool memory_ok(const ufp_memory *mem)
{
	return mem && atomic_load(&mem->magic) == UFPI_MAGIC_MEMORY;
}

UFP_API void *ufp_memory_base(const ufp_memory *mem)
{
	return memory_ok(mem) ? ufpi_slot_base(&mem->pool->slots, mem->slot)
			      : NULL;
}

UFP_API uint64_t ufp_memory_size(const ufp_memory *mem)
{
	return memory_ok(mem) ? atomic_load(&mem->size) : 0;
}

UFP_API uint32_t ufp_memory_slot(const ufp_memory *mem)
{
	return memory_ok(mem) ? mem->slot : UINT32_MAX;
}

UFP_API int ufp_memory_grow(ufp_memory *mem, uint64_t new_bytes)
{
	if (!memory_ok(mem) || new_bytes % mem->pool->cfg.wasm_page_bytes ||
	    new_bytes < atomic_load(&mem->size))
		return -EINVAL;
	if (new_bytes > mem->max_bytes)
		return -E2BIG;
	uint64_t old = atomic_load(&mem->size);
	/* within the last OS page the bytes are accessible already */
	int err = page_up(new_bytes) == page_up(old)
			  ? 0
			  : ufpi_slot_grow(&mem->pool->slots, mem->slot,
					   page_up(new_bytes));
	if (!err)
		atomic_store(&mem->size, new_bytes);
	return err;
}

UFP_API int ufp_memory_free(ufp_memory *mem)
{
	uint64_t want = UFPI_MAGIC_MEMORY, kept = 0;

	if (!mem || !atomic_compare_exchange_strong(&mem->magic, &want,
						    UFPI_MAGIC_DEAD))
		return -EINVAL;
	ufp_pool *pool = mem->pool;
	ufp_module *m = mem->module;
	uint32_t i = mem->slot;

	ufpi_log_flush(&pool->log);
	/* errors are logged by the slot, which is then wiped before reuse */
	(void)ufpi_slot_reset(&pool->slots, i, &kept);
	UFPI_IGNORE(ufp_index_free(pool->index, i, kept));

	ufpi_module_memory_gone(pool, mem, m);
	ufpi_pool_slot_freed(pool);
	if (kept && (pool->cfg.max_resident_idle_bytes ||
		     pool->cfg.strategy == UFP_STRATEGY_WARM_LRU))
		ufpi_pool_evict_idle(pool);
	return 0;
}

UFP_API int ufp_pool_stats(const ufp_pool *pool, ufp_stats *out)
{
	ufp_stats st;

	/* out->size is the caller's sizeof(ufp_stats): an older, smaller
	 * struct gets its prefix; a larger size gets ours, and out->size
	 * says how much that is. Nothing past our struct is ever written:
	 * a size left uninitialized must not become a wild memset. */
	if (!pool_ok(pool) || !out ||
	    out->size < offsetof(ufp_stats, faults) + sizeof(uint64_t) ||
	    out->size % sizeof(uint64_t))
		return -EINVAL;
	ufpi_counters_snapshot(&pool->ctr, &st);
	st.idle_resident_bytes = ufp_index_unused_bytes_resident(pool->index);
	size_t n = out->size < sizeof(st) ? out->size : sizeof(st);
	st.size = (uint32_t)n;
	memcpy(out, &st, n);
	return 0;
}

UFP_API int ufp_pool_resident_bytes(ufp_pool *pool, uint64_t *out)
{
	if (!pool_ok(pool) || !out)
		return -EINVAL;
	return ufpi_os_resident(pool->pagemap_fd, pool->reservation,
				pool->reservation_len, out);
}

UFP_API int ufp_pool_resident_split(ufp_pool *pool, uint64_t *private_bytes,
				    uint64_t *shared_bytes)
{
	if (!pool_ok(pool) || !private_bytes || !shared_bytes)
		return -EINVAL;
	return ufpi_os_resident_split(pool->pagemap_fd, pool->reservation,
				      pool->reservation_len, private_bytes,
				      shared_bytes);
}

UFP_API int ufp_pool_fill_mode(const ufp_pool *pool, ufp_fill_mode *out)
{
	if (!pool_ok(pool) || !out)
		return -EINVAL;
	*out = pool->fill_mode;
	return 0;
}

UFP_API int ufp_pool_info(const ufp_pool *pool, ufp_backend *backend,
			  ufp_reclaim *reclaim, int *dirty_tracking)
{
	if (!pool_ok(pool))
		return -EINVAL;
	if (backend)
		*backend = pool->backend;
	if (reclaim)
		*reclaim = ufpi_reclaim_kind(pool->reclaim);
	if (dirty_tracking)
		*dirty_tracking = pool->dirty_tracking;
	return 0;
}

int ufpi_pool_check(ufp_pool *pool)
{
	if (!pool_ok(pool))
		return -EINVAL;
	int err = ufp_index_check(pool->index);
	if (err)
		return err;
	for (uint32_t i = 0; i < pool->slots.n; i++)
		if (!ufpi_slot_check(&pool->slots, i, pool->index))
			return -EUCLEAN;
	return 0;
}
