/* SPDX-License-Identifier: MIT */
/*
 * module.c - modules, their images, and the purge that runs when one is
 * dropped.
 *
 * Purge protocol: repeatedly take a free slot affine to the module with
 * ufp_index_alloc_affine_and_clear_affinity() (each call holds the index
 * lock for O(1) work; the slot is now "used" with no key, so nobody else
 * can take it mid-purge, and the loop ends because purged slots come back
 * unaffine), queue MADV_DONTNEED over what the slot had populated, and hand
 * the batch to the reclaim engine. Each completion forgets the slot's image
 * reference and frees the slot with no affinity and 0 resident bytes. The
 * image is unmapped when its last reference (module or slot) goes.
 *
 * Identity: every module carries a reference count (ufp_module_create and
 * ufp_module_acquire give one; retain adds, release and drop take one; the
 * last one drops). Modules made by ufp_module_acquire are also entered in
 * the pool's table under a hash of their image, so an acquire of the same
 * contents finds them; lookup and insertion happen under mod_lock, the
 * hash picks candidates and a full comparison of the images decides. A
 * module leaves the table, under the same lock, when its last reference
 * goes, before it is dropped: a dropped module is never handed out.
 *
 * Handle storage: dead module and memory handles are recycled FIFO only
 * after UFPI_QUARANTINE more died, so a double drop/free is detected
 * (-EALREADY / -EINVAL) instead of acting on a handle now in other use.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

/* ---- handle quarantine (pool->mod_lock held) ---------------------------- */

/* Both handle types start with `magic` and keep their FIFO link at
 * `next_off` bytes into the struct. */
static void *quarantine_take(struct ufpi_quarantine *q, size_t next_off)
{
	if (q->n <= UFPI_QUARANTINE)
		return NULL;
	void *h = q->head;
	q->head = *(void **)((char *)h + next_off);
	if (!q->head)
		q->tail = NULL;
	q->n--;
	return h;
}

static void quarantine_put(struct ufpi_quarantine *q, void *h, size_t next_off)
{
	*(void **)((char *)h + next_off) = NULL;
	if (q->tail)
		*(void **)((char *)q->tail + next_off) = h;
	else
		q->head = h;
	q->tail = h;
	q->n++;
}

/* A dead handle from q once it has served its quarantine, else a new
 * zeroed one of `size` bytes (*fresh: the caller links it on the list of
 * every handle). NULL when out of memory. */
static void *handle_new(struct ufpi_quarantine *q, size_t next_off, size_t size,
			bool *fresh)
{
	void *h = quarantine_take(q, next_off);
	*fresh = !h;
	return h ? h : calloc(1, size);
}

ufp_memory *ufpi_memory_handle_new(ufp_pool *pool)
{
	bool fresh;
	ufp_memory *mem =
		handle_new(&pool->dead_memories, offsetof(ufp_memory, next),
			   sizeof(*mem), &fresh);
	if (mem && fresh) {
		mem->all_next = pool->memories;
		pool->memories = mem;
	}
	return mem;
}

void ufpi_memory_handle_retire(ufp_pool *pool, ufp_memory *mem)
{
	atomic_store(&mem->magic, UFPI_MAGIC_DEAD);
	quarantine_put(&pool->dead_memories, mem, offsetof(ufp_memory, next));
}

static void module_retire_locked(ufp_pool *pool, ufp_module *m)
{
	quarantine_put(&pool->dead_modules, m, offsetof(ufp_module, next));
}

/* ---- modules ------------------------------------------------------------ */

static int module_args(const ufp_pool *pool, const ufp_segment *segs,
		       size_t nsegs, uint64_t initial_bytes,
		       ufp_module *const *out)
{
	if (!pool || pool->magic != UFPI_MAGIC_POOL || !out ||
	    (nsegs && !segs) || initial_bytes % pool->cfg.wasm_page_bytes)
		return -EINVAL;
	if (initial_bytes > pool->cfg.max_memory_bytes)
		return -E2BIG;
	return 0;
}

static void log_range(ufp_pool *pool, int err, uint64_t initial_bytes)
{
	/* returned to the caller: the log only adds detail (DEBUG) */
	if (err == -ERANGE)
		ufpi_logf(&pool->log, UFP_LOG_DEBUG,
			  "module_create: a segment does not fit in "
			  "the %llu initial bytes",
			  (unsigned long long)initial_bytes);
}

static int module_image(ufp_pool *pool, const ufp_segment *segs, size_t nsegs,
			uint64_t initial_bytes, struct ufpi_image **img)
{
	int err = ufpi_image_create(segs, nsegs, initial_bytes, img);
	log_range(pool, err, initial_bytes);
	return err;
}

/* The COW backend maps the image from a sealed memfd. */
static bool module_needs_memfd(const ufp_pool *pool,
			       const struct ufpi_image *img)
{
	return (pool->backend == UFP_BACKEND_COW ||
		pool->fill_mode == UFP_FILL_MINOR) &&
	       img->npages && img->memfd < 0;
}

/* A live module handle owning img, with one reference; NULL when out of
 * memory (img is then still the caller's). */
static ufp_module *module_new_locked(ufp_pool *pool, struct ufpi_image *img,
				     uint64_t initial_bytes)
{
	bool fresh;
	ufp_module *m =
		handle_new(&pool->dead_modules, offsetof(ufp_module, next),
			   sizeof(*m), &fresh);
	if (!m)
		return NULL;
	if (fresh) {
		m->all_next = pool->modules;
		pool->modules = m;
	}
	m->pool = pool;
	m->key = pool->next_key++;
	m->image = img;
	m->initial_bytes = initial_bytes;
	m->live = 0;
	m->dropped = false;
	m->refs = 1;
	m->shared = false;
	m->hash = 0;
	m->id_next = NULL;
	atomic_store(&m->magic, UFPI_MAGIC_MODULE);
	return m;
}

UFP_API int ufp_module_create(ufp_pool *pool, const ufp_segment *segs,
			      size_t nsegs, uint64_t initial_bytes,
			      ufp_module **out)
{
	struct ufpi_image *img;
	ufp_module *m;
	int err;

	err = module_args(pool, segs, nsegs, initial_bytes, out);
	if (!err)
		err = module_image(pool, segs, nsegs, initial_bytes, &img);
	if (err)
		return err;
	if (module_needs_memfd(pool, img)) {
		err = ufpi_image_make_memfd(img);
		if (err) {
			ufpi_image_unref(img);
			return err;
		}
	}

	pthread_mutex_lock(&pool->mod_lock);
	m = module_new_locked(pool, img, initial_bytes);
	pthread_mutex_unlock(&pool->mod_lock);
	if (!m) {
		ufpi_image_unref(img);
		return -ENOMEM;
	}
	*out = m;
	return 0;
}

UFP_API uint64_t ufp_module_initial_bytes(const ufp_module *m)
{
	return m && atomic_load(&m->magic) == UFPI_MAGIC_MODULE
		       ? m->initial_bytes
		       : 0;
}

/*
 * Give up one reference; the last one drops the module. `drop` (the
 * ufp_module_drop entry) insists on being the last. The magic changes
 * under mod_lock, so concurrent drops, releases and retains of one handle
 * are ordered and a second last-release sees -EALREADY.
 */
static int module_unref(ufp_module *m, bool drop)
{
	uint64_t magic;
	ufp_pool *pool;
	bool purge_now;

	if (!m)
		return -EINVAL;
	magic = atomic_load(&m->magic);
	if (magic != UFPI_MAGIC_MODULE)
		return magic == UFPI_MAGIC_DEAD ? -EALREADY : -EINVAL;
	pool = m->pool;

	pthread_mutex_lock(&pool->mod_lock);
	if (atomic_load(&m->magic) != UFPI_MAGIC_MODULE) {
		pthread_mutex_unlock(&pool->mod_lock);
		return -EALREADY;
	}
	if (drop && m->refs > 1) {
		pthread_mutex_unlock(&pool->mod_lock);
		return -EBUSY;
	}
	if (--m->refs > 0) {
		pthread_mutex_unlock(&pool->mod_lock);
		return 0;
	}
	if (m->shared) {
		/* no acquire can find it from here on */
		ufp_module **pp =
			&pool->identity[m->hash % UFPI_IDENTITY_BUCKETS];
		while (*pp != m)
			pp = &(*pp)->id_next;
		*pp = m->id_next;
		m->id_next = NULL;
		m->shared = false;
	}
	atomic_store(&m->magic, UFPI_MAGIC_DEAD);
	m->dropped = true;
	purge_now = m->live == 0;
	struct ufpi_image *img = m->image;
	uint64_t key = m->key;
	m->image = NULL;
	if (purge_now)
		module_retire_locked(pool, m);
	pthread_mutex_unlock(&pool->mod_lock);

	/* live slots keep their own references: the image stays as long as
	 * any slot has its pages */
	ufpi_image_unref(img);
	if (purge_now)
		ufpi_module_purge(pool, key);
	return 0;
}

UFP_API int ufp_module_drop(ufp_module *m)
{
	return module_unref(m, true);
}

/* ---- identity: one shared module per distinct contents ------------------ */

static _Atomic bool hash_collide;

void ufpi_module_hash_collide(bool on)
{
	atomic_store(&hash_collide, on);
}

/* A live shared module of pool with exactly the contents c, or NULL. The
 * hash only picks candidates; the bytes decide. */
static ufp_module *identity_find_locked(ufp_pool *pool, uint64_t hash,
					uint64_t initial_bytes,
					const struct ufpi_contents *c)
{
	for (ufp_module *m = pool->identity[hash % UFPI_IDENTITY_BUCKETS]; m;
	     m = m->id_next)
		if (m->hash == hash && m->initial_bytes == initial_bytes &&
		    ufpi_image_matches(m->image, c))
			return m;
	return NULL;
}

/* Under mod_lock: the module for c with one more reference, or NULL. */
static ufp_module *identity_take_locked(ufp_pool *pool, uint64_t hash,
					uint64_t initial_bytes,
					const struct ufpi_contents *c, int *err)
{
	ufp_module *m = identity_find_locked(pool, hash, initial_bytes, c);
	*err = 0;
	if (m && m->refs == UINT32_MAX)
		*err = -EOVERFLOW;
	else if (m)
		m->refs++;
	return m;
}

UFP_API int ufp_module_acquire(ufp_pool *pool, const ufp_segment *segs,
			       size_t nsegs, uint64_t initial_bytes,
			       ufp_module **out)
{
	struct ufpi_contents c;
	struct ufpi_image *img = NULL;
	ufp_module *m;
	uint64_t hash;
	int err;

	/* The lookup works on the contents assembled in heap memory: a hit
	 * maps nothing and builds no image. */
	err = module_args(pool, segs, nsegs, initial_bytes, out);
	if (!err) {
		err = ufpi_contents_build(segs, nsegs, initial_bytes, &c);
		log_range(pool, err, initial_bytes);
	}
	if (err)
		return err;
	hash = atomic_load(&hash_collide) ? 0 : ufpi_contents_hash(&c);
	pthread_mutex_lock(&pool->mod_lock);
	m = identity_take_locked(pool, hash, initial_bytes, &c, &err);
	pthread_mutex_unlock(&pool->mod_lock);
	if (m || err)
		goto out;

	/* A miss: build the image (and the COW memfd) outside the lock, then
	 * look again and insert under one lock, so that simultaneous
	 * acquires of equal contents agree on one module. */
	err = ufpi_image_create(segs, nsegs, initial_bytes, &img);
	if (!err && module_needs_memfd(pool, img))
		err = ufpi_image_make_memfd(img);
	if (err) {
		ufpi_image_unref(img);
		goto out;
	}
	pthread_mutex_lock(&pool->mod_lock);
	m = identity_take_locked(pool, hash, initial_bytes, &c, &err);
	if (!m && !err) {
		m = module_new_locked(pool, img, initial_bytes);
		if (m) {
			ufp_module **head =
				&pool->identity[hash % UFPI_IDENTITY_BUCKETS];
			m->hash = hash;
			m->shared = true;
			m->id_next = *head;
			*head = m;
			img = NULL; /* the module's now */
		} else {
			err = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&pool->mod_lock);
	ufpi_image_unref(img);
out:
	ufpi_contents_free(&c);
	if (m && !err)
		*out = m;
	return m && !err ? 0 : err;
}

UFP_API int ufp_module_retain(ufp_module *m)
{
	int err = 0;

	if (!m || atomic_load(&m->magic) != UFPI_MAGIC_MODULE)
		return -EINVAL;
	ufp_pool *pool = m->pool;
	pthread_mutex_lock(&pool->mod_lock);
	if (atomic_load(&m->magic) != UFPI_MAGIC_MODULE)
		err = -EINVAL;
	else if (m->refs == UINT32_MAX)
		err = -EOVERFLOW;
	else
		m->refs++;
	pthread_mutex_unlock(&pool->mod_lock);
	return err;
}

UFP_API int ufp_module_release(ufp_module *m)
{
	return module_unref(m, false);
}

/* A memory of m was freed (its slot is back in the index). */
void ufpi_module_memory_gone(ufp_pool *pool, ufp_memory *mem, ufp_module *m)
{
	pthread_mutex_lock(&pool->mod_lock);
	pool->live_memories--;
	ufpi_memory_handle_retire(pool, mem);
	bool purge = m && --m->live == 0 && m->dropped;
	uint64_t key = m ? m->key : 0;
	if (purge)
		module_retire_locked(pool, m);
	pthread_mutex_unlock(&pool->mod_lock);
	if (purge)
		ufpi_module_purge(pool, key);
}

/* ---- purge -------------------------------------------------------------- */

/* Ranges collected for one submission: up to ring_entries at a time, so a
 * batch is one io_uring_enter. */
struct purge_batch {
	struct ufpi_range *rg;
	size_t n, cap;
	struct ufpi_range local[64];
};

static void batch_init(ufp_pool *pool, struct purge_batch *b)
{
	b->n = 0;
	b->cap = pool->cfg.ring_entries;
	b->rg = b->cap > 64 ? malloc(b->cap * sizeof(*b->rg)) : NULL;
	if (!b->rg) {
		b->rg = b->local;
		b->cap = 64;
	}
}

static void batch_flush(ufp_pool *pool, struct purge_batch *b)
{
	UFPI_IGNORE(ufpi_reclaim_submit(pool->reclaim, b->rg, b->n));
	b->n = 0;
}

static void batch_fini(ufp_pool *pool, struct purge_batch *b)
{
	batch_flush(pool, b);
	if (b->rg != b->local)
		free(b->rg);
}

/* A slot went back to the index: wake alloc_wait and quiesce waiters. */
void ufpi_pool_slot_freed(ufp_pool *pool)
{
	pthread_mutex_lock(&pool->wait_lock);
	if (pool->waiters)
		pthread_cond_broadcast(&pool->wait_cond);
	pthread_mutex_unlock(&pool->wait_lock);
}

/* Release what slot i (taken from the index, used with no key) has
 * populated; the completion frees it unaffine with 0 resident bytes. */
static void purge_slot(ufp_pool *pool, struct purge_batch *b, uint32_t i)
{
	struct ufpi_slots *s = &pool->slots;
	/* from the slot's start: its header (prefix_bytes) goes too */
	unsigned char *base = ufpi_slot_start(s, i);
	const size_t piece = ufpi_reclaim_max_range(pool->reclaim);
	uint64_t pop;

	if (!ufpi_slot_purge_begin(s, i, piece, &pop)) {
		ufpi_slot_purged(s, i);
		UFPI_IGNORE(ufp_index_free(pool->index, i, 0));
		ufpi_pool_slot_freed(pool);
		return;
	}
	UFPI_ADD(&pool->ctr, purge_bytes, pop);
	UFPI_ADD(&pool->ctr, purges_inflight, 1);
	atomic_fetch_add(&pool->purge_pending, 1);
	for (uint64_t off = 0; off < pop; off += piece) {
		size_t len = pop - off < piece ? (size_t)(pop - off) : piece;
		b->rg[b->n++] = (struct ufpi_range){base + off, len, i};
		if (b->n == b->cap)
			batch_flush(pool, b);
	}
}

void ufpi_module_purge(ufp_pool *pool, uint64_t key)
{
	struct purge_batch b;
	ufp_slot_index i;

	if (unlikely(ufpi_hook_purge_is_off(pool)))
		return;
	UFPI_ADD(&pool->ctr, purges, 1);
	/* from the moment a slot is taken until purge_slot counts it, an
	 * allocation must know a purge holds it (it waits, never -EAGAIN) */
	atomic_fetch_add(&pool->purgers, 1);
	batch_init(pool, &b);
	while (ufp_index_alloc_affine_and_clear_affinity(pool->index, key, &i,
							 NULL) == 0) {
		UFPI_ADD(&pool->ctr, slots_purged, 1);
		purge_slot(pool, &b, i);
	}
	batch_fini(pool, &b);
	atomic_fetch_sub(&pool->purgers, 1);
	ufpi_pool_slot_freed(pool);
}

bool ufpi_module_key_live(ufp_pool *pool, uint64_t key)
{
	bool live = false;
	pthread_mutex_lock(&pool->mod_lock);
	for (ufp_module *m = pool->modules; m && !live; m = m->all_next)
		live = m->key == key && !m->dropped;
	pthread_mutex_unlock(&pool->mod_lock);
	return live;
}

/*
 * Bound what idle slots keep: while the bytes kept by unused slots exceed
 * max_resident_idle_bytes, or (WARM_LRU) more than max_unused_warm_slots
 * idle slots keep pages, release the least recently freed ones through the
 * purge engine. Their affinity goes with their pages.
 */
void ufpi_pool_evict_idle(ufp_pool *pool)
{
	const ufp_config *c = &pool->cfg;
	struct purge_batch b;
	ufp_slot_index i;
	uint64_t bytes, prev;
	bool started = false;

	atomic_fetch_add(&pool->purgers, 1);
	for (;;) {
		uint64_t idle = ufp_index_unused_bytes_resident(pool->index);
		uint32_t nres = ufp_index_num_resident(pool->index);
		bool over = (c->max_resident_idle_bytes &&
			     idle > c->max_resident_idle_bytes) ||
			    (c->strategy == UFP_STRATEGY_WARM_LRU &&
			     nres > c->max_unused_warm_slots);
		if (!over || ufp_index_alloc_lru_resident(pool->index, &i,
							  &prev, &bytes))
			break;
		if (!started) {
			batch_init(pool, &b);
			started = true;
		}
		UFPI_ADD(&pool->ctr, idle_evictions, 1);
		purge_slot(pool, &b, i);
	}
	if (started)
		batch_fini(pool, &b);
	atomic_fetch_sub(&pool->purgers, 1);
	ufpi_pool_slot_freed(pool);
}

/* One range of a purged slot is released; the last one frees the slot.
 * If a range could not be released even by plain madvise, the slot keeps
 * its pages and is wiped before its next use instead of being called
 * clean. */
void ufpi_pool_reclaim_done(void *arg, uint64_t tag, size_t len, int err)
{
	ufp_pool *pool = arg;
	uint32_t i = (uint32_t)tag;
	(void)len;

	if (!ufpi_slot_purge_piece_done(&pool->slots, i, err))
		return;
	UFPI_IGNORE(ufp_index_free(pool->index, i, 0));
	UFPI_SUB(&pool->ctr, purges_inflight, 1);
	atomic_fetch_sub(&pool->purge_pending, 1);
	ufpi_pool_slot_freed(pool);
}

void ufpi_pool_reap(void *arg)
{
	ufp_pool *pool = arg;
	ufpi_reclaim_reap(pool->reclaim);
}
