/* SPDX-License-Identifier: MIT */
/*
 * slot.c - the per-slot state machine: prepare for a memory, grow, reset
 * at free, forget after a purge.
 *
 * States (slot.h, docs/design.md §5): LIVE (a memory, faults filled from
 * `image`), and four without a memory, where the handler poisons faults:
 * CLEAN, KEPT, PURGING, STALE. This file alone writes a slot's fields;
 * every transition asserts the state it starts from. Invariants:
 *  - no page at or above populated_hi is present;
 *  - image is referenced while the slot is LIVE, has populated pages or
 *    maps the image's memfd (file_len), so a dropped module's image lives
 *    exactly as long as its pages and mappings in slots;
 *  - a LIVE slot's prot_bytes == accessible: everything past it traps;
 *  - a slot is handed to a different image only after everything it had
 *    populated was dropped, or mapped over (so no memory ever sees
 *    another's bytes).
 * Minor mode and COW map the image's memfd over [0, file_len): the reset
 * then finds written pages as the anonymous ones (dirty.c), and purge and
 * wipe replace that mapping. A cold prepare (a new mapping) learns or
 * prefetches the module's working set (uffd/prefetch.c).
 * The slot lock is held for state changes only, never while touching pool
 * memory: the handler takes the same lock to serve a fault, and a thread
 * faulting while it held it would wait on itself.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fill.h"
#include "slot_impl.h"
#include "uffd.h"

static int slot_init(struct ufpi_slot *slot)
{
	memset(slot, 0, sizeof(*slot));
	return -pthread_mutex_init(&slot->lock, NULL);
}

static void slot_fini(struct ufpi_slot *slot)
{
	ufpi_image_unref(slot->image);
	slot->image = NULL;
	free(slot->refill);
	slot->refill = NULL;
	pthread_mutex_destroy(&slot->lock);
}

int ufpi_slots_create(struct ufpi_slots *s, uint32_t n)
{
	s->slot = calloc(n, sizeof(*s->slot));
	if (!s->slot)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		int err = slot_init(&s->slot[i]);
		if (err)
			return err;
		s->n = i + 1;
	}
	return ufpi_prefetch_create(s);
}

void ufpi_slots_destroy(struct ufpi_slots *s)
{
	ufpi_prefetch_destroy(s);
	for (uint32_t i = 0; s->slot && i < s->n; i++)
		slot_fini(&s->slot[i]);
	free(s->slot);
	s->slot = NULL;
}

void ufpi_slot_lock(struct ufpi_slots *s, uint32_t i)
{
	pthread_mutex_lock(&s->slot[i].lock);
}

void ufpi_slot_unlock(struct ufpi_slots *s, uint32_t i)
{
	pthread_mutex_unlock(&s->slot[i].lock);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* Pages below hi (bytes from the base) are installed, lock held: no page
 * at or above populated_hi may be present, so it rises to hi. */
static void populated_locked(struct ufpi_slot *slot, uint64_t hi)
{
	if (hi > slot->populated_hi)
		slot->populated_hi = hi;
}

/* A slot that loses its image loses its refill record too, and gives the
 * array back (up to UFPI_REFILL_MAX runs): returned, to free unlocked. */
static struct ufpi_run *forget_refill_locked(struct ufpi_slot *slot)
{
	struct ufpi_run *runs = slot->refill;
	slot->refill = NULL;
	slot->refill_cap = 0;
	slot->nrefill = 0;
	return runs;
}

/* -> CLEAN: nothing of the slot's last contents is left (wiped before
 * reuse, or `purged`): it holds no image, no pages, no refill list. */
static void forget_contents(struct ufpi_slot *slot, bool purged)
{
	pthread_mutex_lock(&slot->lock);
	assert(purged ? slot->state == UFPI_SLOT_PURGING
		      : slot->state != UFPI_SLOT_LIVE &&
				slot->state != UFPI_SLOT_PURGING);
	(void)purged; /* NDEBUG */
	struct ufpi_image *old = slot->image;
	slot->image = NULL;
	slot->populated_hi = 0;
	slot->kept_bytes = 0;
	struct ufpi_run *runs = forget_refill_locked(slot);
	slot->state = UFPI_SLOT_CLEAN;
	pthread_mutex_unlock(&slot->lock);
	free(runs);
	ufpi_image_unref(old);
}

static int unmap_range(struct ufpi_slots *s, uint32_t i, uint64_t from,
		       uint64_t to);

/* Slot i could not be brought back to a known state: it is wiped before
 * its next use (the caller marks it stale). */
static void log_wipe(const struct ufpi_slots *s, uint32_t i, int level,
		     const char *what, int err)
{
	ufpi_logf(s->log, level,
		  "slot %u: %s (%s); the slot will be wiped before reuse", i,
		  what, ufp_strerror(err));
}

/*
 * The image's memfd mapped copy-on-write over [0, npages) of slot i,
 * replacing whatever was there (pages, poison markers, another image's
 * mapping). In minor mode the range is registered for minor faults
 * (page-cache pages not mapped yet) and missing ones (the image's holes):
 * a new mapping has no registration. The file mapping is read-write;
 * set_protection trims.
 */
static int map_image(struct ufpi_slots *s, uint32_t i,
		     const struct ufpi_image *img)
{
	struct ufpi_slot *slot = &s->slot[i];
	unsigned char *base = ufpi_slot_base(s, i);
	uint64_t ilen = (uint64_t)img->npages * ufpi_page_size();
	int err = ufpi_os_map_fixed_file(base, ilen, img->memfd);
	if (err)
		return err;
	/* [ilen, prot_bytes) may still be read-write from an earlier
	 * memory: set_protection trims it */
	slot->file_len = ilen;
	slot->prot_bytes = max_u64(slot->prot_bytes, ilen);
	if (!s->minor)
		return 0;
	err = ufpi_uffd_register(s->uffd[i % s->nuffd], base, ilen,
				 UFPI_REG_MISSING | UFPI_REG_MINOR, NULL);
	if (err) {
		/* unregistered, the kernel would serve this range itself,
		 * with no trap for a stale access: never leave it mapped */
		int e2 = unmap_range(s, i, 0, slot->prot_bytes);
		if (e2)
			log_wipe(s, i, UFP_LOG_WARN,
				 "cannot undo the image mapping", e2);
	}
	return err;
}

/*
 * Replace [from, to) of slot i with fresh PROT_NONE anonymous memory:
 * pages, poison markers and the hold on an image's memfd go with the old
 * mapping. With a handler the range is registered again the way the
 * reservation was (a mapping over a registered range drops the
 * registration).
 */
static int unmap_range(struct ufpi_slots *s, uint32_t i, uint64_t from,
		       uint64_t to)
{
	struct ufpi_slot *slot = &s->slot[i];
	unsigned char *addr = ufpi_slot_base(s, i) + from;
	int err = ufpi_os_map_fixed_none(addr, to - from);
	if (!err && s->nuffd)
		err = ufpi_uffd_register(
			s->uffd[i % s->nuffd], addr, to - from,
			UFPI_REG_MISSING | (s->dirty ? UFPI_REG_WP : 0), NULL);
	if (err) {
		/* what is mapped and how is unknown now: a later wipe
		 * starts over (file_len stays), protection is reapplied */
		pthread_mutex_lock(&slot->lock);
		slot->prot_dirty = true;
		pthread_mutex_unlock(&slot->lock);
		return err;
	}
	slot->file_len = min_u64(slot->file_len, from);
	slot->prot_bytes = min_u64(slot->prot_bytes, from);
	return 0;
}

/*
 * Drop everything the slot holds: populated pages, poison markers, the
 * image reference. The slot is not LIVE and is owned by the caller. Where
 * the slot maps an image's memfd and the next memory maps one too (minor
 * mode, COW), the new image is mapped straight over the old one, and only
 * what lies beyond it is replaced by anonymous memory: one mapping less
 * on every image switch.
 */
static int wipe(struct ufpi_slots *s, uint32_t i, uint64_t len,
		const struct ufpi_image *next)
{
	struct ufpi_slot *slot = &s->slot[i];
	bool remap = (s->minor || s->backend == UFP_BACKEND_COW) && next &&
		     next->npages && slot->file_len &&
		     slot->state != UFPI_SLOT_STALE;
	int err;

	if (slot->file_len ||
	    (s->backend == UFP_BACKEND_COW && slot->prot_bytes)) {
		/* a fresh mapping over the slot drops the old one with every
		 * page and its hold on the image's memfd */
		len = max_u64(max_u64(len, slot->file_len), slot->prot_bytes);
		uint64_t from =
			remap ? (uint64_t)next->npages * ufpi_page_size() : 0;
		err = from < len ? unmap_range(s, i, from, len) : 0;
		if (!err && remap)
			err = map_image(s, i, next);
	} else {
		err = ufpi_os_dontneed(ufpi_slot_base(s, i), len);
	}
	if (err)
		return err;
	forget_contents(slot, false);
	UFPI_ADD(s->ctr, slots_wiped, 1);
	UFPI_ADD(s->ctr, bytes_dropped, len);
	return 0;
}

/* Make [0, bytes) read-write and [bytes, prot_bytes) PROT_NONE. */
static int set_protection(struct ufpi_slots *s, uint32_t i, uint64_t bytes,
			  bool redo_all)
{
	struct ufpi_slot *slot = &s->slot[i];
	unsigned char *base = ufpi_slot_base(s, i);
	int err = 0;

	if (redo_all) {
		/* the handler mprotected single pages (no POISON), or an
		 * earlier mprotect failed half-way: start from scratch */
		err = ufpi_os_protect(base, s->max_memory_bytes, PROT_NONE);
		if (err)
			return err;
		slot->prot_bytes = 0;
	}
	if (bytes > slot->prot_bytes)
		err = ufpi_os_protect(base + slot->prot_bytes,
				      bytes - slot->prot_bytes,
				      PROT_READ | PROT_WRITE);
	else if (bytes < slot->prot_bytes)
		err = ufpi_os_protect(base + bytes, slot->prot_bytes - bytes,
				      PROT_NONE);
	if (err) {
		pthread_mutex_lock(&slot->lock);
		slot->prot_dirty = true;
		pthread_mutex_unlock(&slot->lock);
		return err;
	}
	slot->prot_bytes = bytes;
	return 0;
}

/* COPY backend: the whole image, eagerly. */
static void copy_image(struct ufpi_slots *s, uint32_t i,
		       const struct ufpi_image *img)
{
	const size_t page = ufpi_page_size();
	unsigned char *base = ufpi_slot_base(s, i);
	struct ufpi_slot *slot = &s->slot[i];

	for (uint64_t p = 0; p < img->npages;) {
		const unsigned char *src = ufpi_image_page(img, p);
		uint64_t q = ufpi_image_run_end(img, p, img->npages);
		if (src) {
			memcpy(base + p * page, src, (q - p) * page);
			UFPI_ADD(s->ctr, pages_copied, q - p);
		}
		p = q;
	}
	pthread_mutex_lock(&slot->lock);
	populated_locked(slot, (uint64_t)img->npages * page);
	pthread_mutex_unlock(&slot->lock);
}

/*
 * Copy back the written pages the last reset dropped, for a memory of the
 * same image (slot lock held, slot LIVE, no fault of the new memory yet).
 * An instance tends to write what the previous one wrote, and each of
 * those pages would otherwise come back through a fault round trip to the
 * handler, then take a write-protect fault (resolved by the kernel, but a
 * VM exit here) on the write. They are installed writable (so
 * they read as written to the next scan, and are restored or dropped like
 * any written page). A copy that fails is left to the handler: the page
 * is simply not there yet.
 */
static void refill_locked(struct ufpi_slots *s, uint32_t i, uint64_t bytes)
{
	struct ufpi_slot *slot = &s->slot[i];
	const uint64_t limit = bytes / ufpi_page_size();
	struct ufpi_page_src src;
	unsigned char *stop;

	ufpi_slot_source_locked(s, i, &src);
	for (uint32_t k = 0; k < slot->nrefill; k++) {
		uint64_t p = slot->refill[k].page;
		uint64_t end = min_u64(p + slot->refill[k].n, limit);
		if (p < end)
			UFPI_IGNORE(ufpi_fill_pages(s, &src, p, end,
						    UFPI_FILL_REFILL, &stop,
						    NULL));
	}
}

/* A run of the header's pages: one a memory wrote is zeroed in place (it
 * stays, private), one swapped out is dropped (it would come back with
 * the old bytes); zero pages and missing ones are zero already. */
static int prefix_run(void *arg, void *addr_, size_t len, unsigned flags)
{
	const size_t page = ufpi_page_size();
	unsigned char *addr = addr_;
	(void)arg;
	if (!(flags & UFPI_PG_WRITTEN))
		return 0;
	if (!(flags & UFPI_PG_PRESENT))
		return ufpi_os_dontneed(addr, len);
	for (size_t off = 0; off < len; off += page)
		if (!ufpi_bytes_are_zero(addr + off, page))
			memset(addr + off, 0, page);
	return 0;
}

/*
 * The runtime's header before the base (prefix_bytes) reads as zero for
 * every memory, whatever an earlier memory (or a stale pointer) wrote
 * there. Poison markers, or no PAGEMAP_SCAN to tell written pages from
 * swapped ones: the whole header is dropped instead.
 */
static int clear_prefix(struct ufpi_slots *s, uint32_t i, bool poisoned)
{
	unsigned char *start = ufpi_slot_start(s, i);
	if (!s->prefix)
		return 0;
	if (poisoned || s->pagemap_fd < 0)
		return ufpi_os_dontneed(start, s->prefix);
	return ufpi_dirty_scan(s->pagemap_fd, start, s->prefix, true,
			       prefix_run, NULL);
}

/* Bring the slot's mappings, protection and pages to what a memory of
 * `bytes` backed by img needs; the slot has no memory and is owned by the
 * caller. */
static int prepare_pages(struct ufpi_slots *s, uint32_t i,
			 const struct ufpi_image *img, uint64_t bytes,
			 bool poisoned, bool prot_dirty, bool *wiped,
			 bool *cold)
{
	struct ufpi_slot *slot = &s->slot[i];
	int err;

	err = clear_prefix(s, i, poisoned);
	if (err)
		return err;
	/* poison markers can sit anywhere that was read-write; they keep
	 * raising SIGBUS until the page is zapped */
	uint64_t len = slot->populated_hi;
	if (poisoned)
		len = max_u64(len, slot->prot_bytes);
	if (poisoned || slot->state == UFPI_SLOT_STALE ||
	    ((slot->populated_hi || slot->file_len) && slot->image != img)) {
		err = wipe(s, i, len, img);
		if (err)
			return err;
		*wiped = true;
		*cold = slot->file_len != 0; /* wipe mapped the image anew */
	}
	if ((s->backend == UFP_BACKEND_COW || s->minor) && img && img->npages &&
	    !slot->file_len) {
		/* the image's pages come straight from the page cache until
		 * written (copy-on-write) */
		err = map_image(s, i, img);
		if (err)
			return err;
		*cold = true;
	}
	err = set_protection(s, i, bytes, prot_dirty);
	if (err)
		return err;
	if (s->backend == UFP_BACKEND_COPY && img)
		copy_image(s, i, img);
	return 0;
}

/* Slot lock held, pages prepared: the slot holds img's reference and is
 * LIVE for a memory of `bytes`. True when its handler must be rung for a
 * prefetch. The lock is dropped and taken again around an image unref. */
static bool publish_live_locked(struct ufpi_slots *s, uint32_t i,
				struct ufpi_image *img, uint64_t bytes,
				bool cold)
{
	struct ufpi_slot *slot = &s->slot[i];
	if (slot->image != img) {
		/* no populated page here (else we wiped): the old
		 * reference, if any, has nothing left to protect */
		slot->nrefill = 0;
		struct ufpi_image *old = slot->image;
		ufpi_image_ref(img);
		slot->image = img;
		if (old) {
			pthread_mutex_unlock(&slot->lock);
			ufpi_image_unref(old);
			pthread_mutex_lock(&slot->lock);
		}
	}
	if (slot->populated_hi) /* kept pages of this image */
		UFPI_ADD(s->ctr, faults_avoided,
			 slot->kept_bytes / ufpi_page_size());
	slot->state = UFPI_SLOT_LIVE;
	slot->gen++;
	slot->accessible = bytes;
	slot->seq_next = UINT64_MAX;
	slot->win = s->window_min;
	if (slot->nrefill && img)
		refill_locked(s, i, bytes);
	slot->nrefill = 0;
	if (!cold)
		return false;
	struct ufpi_page_src src;
	uint64_t hi;
	ufpi_slot_source_locked(s, i, &src);
	bool wake = ufpi_prefetch_begin_locked(s, i, &src, &hi);
	populated_locked(slot, hi);
	return wake;
}

int ufpi_slot_prepare(struct ufpi_slots *s, uint32_t i, struct ufpi_image *img,
		      uint64_t bytes, bool *wiped)
{
	struct ufpi_slot *slot = &s->slot[i];

	*wiped = false;
	assert(slot->state != UFPI_SLOT_LIVE &&
	       slot->state != UFPI_SLOT_PURGING);
	for (;;) {
		pthread_mutex_lock(&slot->lock);
		bool poisoned = slot->poisoned;
		bool prot_dirty = slot->prot_dirty;
		slot->poisoned = false;
		slot->prot_dirty = false;
		pthread_mutex_unlock(&slot->lock);

		bool cold = false;
		int err = prepare_pages(s, i, img, bytes, poisoned, prot_dirty,
					wiped, &cold);
		pthread_mutex_lock(&slot->lock);
		if (err) {
			/* what we took over is still to be done next time:
			 * without it a page made PROT_NONE by the handler
			 * would survive into the next memory */
			slot->poisoned |= poisoned;
			slot->prot_dirty |= prot_dirty;
			pthread_mutex_unlock(&slot->lock);
			return err;
		}
		if (unlikely(slot->poisoned || slot->prot_dirty)) {
			/* a stale access was poisoned while we worked */
			pthread_mutex_unlock(&slot->lock);
			continue;
		}
		bool wake = publish_live_locked(s, i, img, bytes, cold);
		pthread_mutex_unlock(&slot->lock);
		if (wake)
			UFPI_IGNORE(ufpi_os_eventfd_signal(
				s->wake_efd[i % s->nuffd]));
		return 0;
	}
}

bool ufpi_slot_fault_window_locked(struct ufpi_slots *s, uint32_t i,
				   uint64_t in, uint64_t *start, uint64_t *end)
{
	const size_t page = ufpi_page_size();
	struct ufpi_slot *slot = &s->slot[i];

	if (slot->state != UFPI_SLOT_LIVE || in >= slot->accessible)
		return false;

	/* Like file readahead: a fault exactly where the last window ended
	 * doubles the window (up to window_max); any other fault halves it,
	 * starting from at most window_min (a jump out of a long sequential
	 * run is a new stream, not more of the old one) and down to
	 * window_floor, so that random access populates little more than
	 * it touches. A new memory starts at window_min. Every window is a
	 * page multiple: the configured sizes only have to be. */
	/* a learning cold start records what the windows cover: isolated
	 * faults shrink them down to one page */
	uint64_t floor =
		ufpi_prefetch_learning_locked(s, i) ? page : s->window_floor;
	if (in == slot->seq_next) {
		slot->win = slot->win * 2 > s->window_max ? s->window_max
							  : slot->win * 2;
		*start = in;
	} else {
		if (slot->seq_next != UINT64_MAX) {
			uint64_t w = slot->win < s->window_min ? slot->win
							       : s->window_min;
			w = (w / 2) & ~(uint64_t)(page - 1);
			slot->win = w < floor ? floor : w;
		}
		*start = in - in % slot->win;
	}
	*end = *start + slot->win;
	if (*end > slot->accessible)
		*end = slot->accessible;
	slot->seq_next = *end;
	populated_locked(slot, *end);
	ufpi_prefetch_note_locked(s, i, slot->image, *start / page,
				  *end / page);
	return true;
}

void ufpi_slot_source_locked(const struct ufpi_slots *s, uint32_t i,
			     struct ufpi_page_src *src)
{
	const struct ufpi_slot *slot = &s->slot[i];

	src->fd = s->uffd && s->nuffd ? s->uffd[i % s->nuffd] : -1;
	src->base = ufpi_slot_base(s, i);
	src->img = slot->image;
	src->file_pages = slot->file_len / ufpi_page_size();
	src->gen = slot->gen;
}

void ufpi_slot_header_source_locked(const struct ufpi_slots *s, uint32_t i,
				    struct ufpi_page_src *src)
{
	ufpi_slot_source_locked(s, i, src);
	src->base = ufpi_slot_start(s, i);
	src->img = NULL;
	src->file_pages = 0;
}

bool ufpi_slot_prefetch_step(struct ufpi_slots *s, unsigned k, uint32_t *cursor)
{
	const uint32_t nmine = (s->n - k + s->nuffd - 1) / s->nuffd;

	for (uint32_t t = 0; t < nmine; t++) {
		uint32_t i = k + (uint32_t)((*cursor + t) % nmine) * s->nuffd;
		struct ufpi_slot *slot = &s->slot[i];
		if (!ufpi_prefetch_pending(s, i))
			continue;
		struct ufpi_page_src src;
		uint64_t hi;
		pthread_mutex_lock(&slot->lock);
		ufpi_slot_source_locked(s, i, &src);
		bool more = ufpi_prefetch_chunk_locked(s, i, &src, &hi);
		/* the reset scans [0, populated_hi): a mapped page the
		 * memory writes must lie below it */
		populated_locked(slot, hi);
		pthread_mutex_unlock(&slot->lock);
		*cursor = (uint32_t)((*cursor + t + (more ? 0 : 1)) % nmine);
		return true; /* look again: this or another slot */
	}
	return false;
}

void ufpi_slot_filled_locked(struct ufpi_slots *s, uint32_t i, uint64_t pages)
{
	if (pages)
		s->slot[i].windows++;
}

void ufpi_slot_poisoned_locked(struct ufpi_slots *s, uint32_t i, bool prot_none)
{
	struct ufpi_slot *slot = &s->slot[i];
	slot->poisoned = true;
	if (prot_none)
		slot->prot_dirty = true;
}

int ufpi_slot_grow(struct ufpi_slots *s, uint32_t i, uint64_t new_bytes)
{
	struct ufpi_slot *slot = &s->slot[i];
	uint64_t old;

	/* publish the size before opening the pages, so that a fault on a
	 * new page never finds it out of bounds */
	pthread_mutex_lock(&slot->lock);
	assert(slot->state == UFPI_SLOT_LIVE && new_bytes >= slot->accessible);
	old = slot->accessible;
	slot->accessible = new_bytes;
	pthread_mutex_unlock(&slot->lock);
	int err = set_protection(s, i, new_bytes, false);
	if (err) {
		pthread_mutex_lock(&slot->lock);
		slot->accessible = old;
		pthread_mutex_unlock(&slot->lock);
	}
	return err;
}

/* Whether the page at addr holds what page p of a fresh memory holds. */
static bool page_matches_image(const struct ufpi_image *img, uint64_t p,
			       const unsigned char *addr)
{
	const unsigned char *src = ufpi_image_page(img, p);
	return src ? memcmp(addr, src, ufpi_page_size()) == 0
		   : ufpi_bytes_are_zero(addr, ufpi_page_size());
}

/*
 * Restore the present pages of [0, keep) to the image (or zero) in place
 * and drop the pages of that range that are not present: a page that was
 * swapped out is not present either, and would come back with the old
 * instance's bytes without a fault. Returns the bytes kept resident.
 */
static int restore_kept(struct ufpi_slots *s, uint32_t i,
			const struct ufpi_image *img, uint64_t keep,
			uint64_t *kept)
{
	const size_t page = ufpi_page_size();
	unsigned char *base = ufpi_slot_base(s, i);
	size_t npages = keep / page;
	unsigned char stackvec[1024];
	unsigned char *vec =
		npages <= sizeof(stackvec) ? stackvec : malloc(npages);
	uint64_t present = 0, restored = 0;
	int err = 0;

	*kept = 0;
	if (!vec)
		return -ENOMEM;
	err = ufpi_os_mincore(base, keep, vec);
	if (err)
		goto out;
	for (size_t p = 0; p < npages;) {
		if (vec[p] & 1) {
			unsigned char *dst = base + p * page;
			const unsigned char *src = ufpi_image_page(img, p);
			if (src) {
				memcpy(dst, src, page);
				restored++;
			} else if (!ufpi_bytes_are_zero(dst, page)) {
				/* reading first keeps zero-page mappings
				 * shared instead of copying them */
				memset(dst, 0, page);
				restored++;
			}
			present++;
			p++;
			continue;
		}
		size_t q = p + 1;
		while (q < npages && !(vec[q] & 1))
			q++;
		err = ufpi_os_dontneed(base + p * page, (q - p) * page);
		if (err)
			goto out;
		p = q;
	}
	*kept = present * page;
	UFPI_ADD(s->ctr, bytes_restored, restored * page);
	UFPI_ADD(s->ctr, pages_restored, restored);
out:
	if (vec != stackvec)
		free(vec);
	return err;
}

/* State of one dirty-tracking reset walk. */
struct dirty_reset {
	struct ufpi_slots *s;
	uint32_t i;
	const struct ufpi_image *img;
	unsigned char *base;
	uint64_t keep;
	uint64_t kept, restored, unchanged, dropped;
	uint64_t shared;	      /* page-cache bytes left mapped */
	bool mapped;		      /* some page stays mapped (even the
					 shared zero page, which costs
					 nothing but is not missing) */
	unsigned char *wp_lo, *wp_hi; /* span of restored pages */
	uint64_t readable;	      /* [0, readable) is read-write now */
	uint32_t nrefill;	      /* runs recorded in slot->refill */
	uint64_t refill_pages;	      /* pages in them */
	struct iovec drop[64];	      /* runs to drop, one call per batch */
	size_t ndrop;
};

/*
 * Minor mode: map the clean page-cache (or zero) page back where a written
 * page was just dropped. It costs the slot no private byte, and the next
 * memory of the module reads it without a fault and writes it with one
 * kernel copy-on-write fault, instead of a round trip to the handler
 * first. Only pages inside the last memory's accessible size (the rest is
 * PROT_NONE now). A page that cannot be mapped is left to fault in.
 */
static void remap_dropped(struct dirty_reset *d)
{
	const size_t page = ufpi_page_size();
	struct ufpi_slot *slot = &d->s->slot[d->i];
	struct ufpi_page_src src;
	unsigned char *stop;

	pthread_mutex_lock(&slot->lock);
	ufpi_slot_source_locked(d->s, d->i, &src);
	for (size_t k = 0; k < d->ndrop; k++) {
		uint64_t lo = (uint64_t)((unsigned char *)d->drop[k].iov_base -
					 d->base);
		/* the image only: beyond it a page of zeros would be mapped
		 * for nothing, and a memory written everywhere would pay a
		 * ZEROPAGE per page at every free */
		uint64_t hi = min_u64(lo + d->drop[k].iov_len,
				      min_u64(d->readable, slot->file_len));
		if (lo < hi) {
			UFPI_IGNORE(ufpi_fill_pages(d->s, &src, lo / page,
						    hi / page, 0, &stop, NULL));
			d->mapped = true; /* populated_hi must cover them */
		}
	}
	pthread_mutex_unlock(&slot->lock);
}

/* Each MADV_DONTNEED and each UFFDIO_WRITEPROTECT ends in a TLB flush,
 * which on a VM is an IPI to every CPU the process ran on: tens of
 * microseconds. So runs are collected and released with one
 * process_madvise call (one flush per call from Linux 6.16). */
static int flush_drops(struct dirty_reset *d)
{
	int err = ufpi_os_dontneed_vec(d->s->pidfd, d->drop, d->ndrop);
	if (!err && d->s->minor)
		remap_dropped(d);
	d->ndrop = 0;
	return err;
}

/* Copy page p of the image (or zeros) back over the page at addr. */
static void restore_page(struct dirty_reset *d, uint64_t p, unsigned char *addr)
{
	const size_t page = ufpi_page_size();
	const unsigned char *src = ufpi_image_page(d->img, p);
	if (src)
		memcpy(addr, src, page);
	else
		memset(addr, 0, page);
	d->restored += page;
}

/*
 * Bring written pages back to the image. A page that already equals it
 * is not rewritten, and counts as unchanged: a page that stayed writable
 * since an earlier reset (see reset_dirty) and that this instance did not
 * modify, or one written back to its original bytes.
 */
static void restore_written(struct dirty_reset *d, unsigned char *addr,
			    size_t len)
{
	const size_t page = ufpi_page_size();
	for (size_t off = 0; off < len; off += page) {
		uint64_t p = (uint64_t)(addr + off - d->base) / page;
		if (page_matches_image(d->img, p, addr + off)) {
			d->unchanged += page;
			continue;
		}
		restore_page(d, p, addr + off);
	}
	if (!d->wp_lo || addr < d->wp_lo)
		d->wp_lo = addr;
	if (addr + len > d->wp_hi)
		d->wp_hi = addr + len;
	d->kept += len;
	d->mapped = true;
}

/* Remember a dropped run of written pages for the next warm allocation
 * (the slot is LIVE and ours: nobody else reads slot->refill now). Out of
 * memory or beyond UFPI_REFILL_MAX, the rest will fault in instead. */
static void record_refill(struct dirty_reset *d, uint64_t p, uint64_t n)
{
	struct ufpi_slot *slot = &d->s->slot[d->i];
	if (p + n > UINT32_MAX || d->nrefill >= UFPI_REFILL_MAX ||
	    d->refill_pages >= UFPI_REFILL_MAX_PAGES)
		return;
	if (n > UFPI_REFILL_MAX_PAGES - d->refill_pages)
		n = UFPI_REFILL_MAX_PAGES - d->refill_pages;
	d->refill_pages += n;
	if (d->nrefill == slot->refill_cap) {
		uint32_t cap = slot->refill_cap ? slot->refill_cap * 2 : 16;
		struct ufpi_run *r = realloc(slot->refill, cap * sizeof(*r));
		if (!r)
			return;
		slot->refill = r;
		slot->refill_cap = cap;
	}
	slot->refill[d->nrefill++] =
		(struct ufpi_run){(uint32_t)p, (uint32_t)n};
}

/*
 * A written run about to be dropped: remember its pages that differ from
 * the image. A page equal to it was not modified by this instance (one
 * copied back writable at the allocation and left alone, or written back
 * to its bytes): copying it again at every allocation would only grow the
 * set to everything ever written. If the next instance reads it, one fault
 * brings it back, write-protected and clean.
 */
static void note_dropped_written(struct dirty_reset *d, unsigned char *addr,
				 size_t len)
{
	const size_t page = ufpi_page_size();
	const uint64_t p0 = (uint64_t)(addr - d->base) / page;
	uint64_t first = 0, cnt = 0, n = len / page;

	/* pages an earlier, larger memory wrote may lie beyond this one's
	 * size, PROT_NONE now: not ours to read, nor to copy back */
	if ((p0 + n) * page > d->readable)
		n = d->readable > p0 * page ? d->readable / page - p0 : 0;
	for (uint64_t k = 0; k <= n; k++) {
		if (k < n &&
		    !page_matches_image(d->img, p0 + k, addr + k * page)) {
			first = cnt ? first : k;
			cnt++;
			continue;
		}
		if (cnt)
			record_refill(d, p0 + first, cnt);
		cnt = 0;
	}
}

/* Release a run of written pages: written beyond keep, or not present
 * (swapped out: it would come back with the old instance's bytes without
 * a fault), or (anon scans) a kept page the last memory left unchanged. */
static int drop_run(struct dirty_reset *d, unsigned char *addr, size_t len,
		    bool present)
{
	d->dropped += present ? len : 0;
	/* copy mode only: dropped, a page of a file mapping is one minor
	 * fault away, with no copy */
	if (present && d->s->dirty)
		note_dropped_written(d, addr, len);
	d->drop[d->ndrop++] = (struct iovec){addr, len};
	return d->ndrop == sizeof(d->drop) / sizeof(d->drop[0]) ? flush_drops(d)
								: 0;
}

/*
 * Anon scans: a written page below keep that the last memory modified is
 * restored and kept (private: the next memory writes it without a fault);
 * one it left equal to the image (restored at an earlier reset, not
 * written since) is dropped, so that a slot keeps what its last memory
 * wrote and no more.
 */
static int keep_modified(struct dirty_reset *d, unsigned char *addr, size_t len)
{
	const size_t page = ufpi_page_size();
	size_t run = 0; /* unchanged pages before off, not yet dropped */
	int err = 0;

	for (size_t off = 0; off < len && !err; off += page) {
		uint64_t p = (uint64_t)(addr + off - d->base) / page;
		if (d->kept + page > d->s->keep_budget) {
			run += page; /* beyond the budget: dropped */
			continue;
		}
		if (page_matches_image(d->img, p, addr + off)) {
			d->unchanged += page;
			run += page;
			continue;
		}
		if (run)
			err = drop_run(d, addr + off - run, run, true);
		run = 0;
		restore_page(d, p, addr + off);
		d->kept += page;
		d->mapped = true;
	}
	if (run && !err)
		err = drop_run(d, addr + len - run, run, true);
	return err;
}

static int dirty_run(void *arg, void *addr_, size_t len, unsigned flags)
{
	struct dirty_reset *d = arg;
	unsigned char *addr = addr_;
	uint64_t off = (uint64_t)(addr - d->base);

	if (!(flags & UFPI_PG_WRITTEN)) {
		/* clean: identical to the image, stays for the next user of
		 * the same module (the shared zero page costs nothing, a
		 * page-cache page is shared: neither is kept privately) */
		if (flags & UFPI_PG_FILE)
			d->shared += len;
		else if (!(flags & UFPI_PG_ZERO))
			d->kept += len;
		d->mapped |= (flags & UFPI_PG_PRESENT) != 0;
		return 0;
	}
	if (flags & UFPI_PG_PRESENT && off < d->keep) {
		size_t n = d->keep - off < len ? (size_t)(d->keep - off) : len;
		if (d->s->anon_scan) {
			int err = keep_modified(d, addr, n);
			if (err)
				return err;
		} else {
			restore_written(d, addr, n);
		}
		addr += n;
		len -= n;
	}
	return len ? drop_run(d, addr, len, flags & UFPI_PG_PRESENT) : 0;
}

/* Anon scans go in chunks of this: see scan_range. */
#define UFPI_SCAN_CHUNK ((uint64_t)4 << 20)

/*
 * The reset's walk of [0, pop). With anonymous-page tracking, once the
 * keep budget is spent, what lies beyond the image's mapping holds no
 * clean page worth keeping (zero pages, written pages, or nothing): it is
 * dropped whole, unscanned, so that the free of a memory written
 * everywhere costs the drop of its range and not a walk of every page.
 */
static int scan_range(struct dirty_reset *d, uint64_t pop)
{
	struct ufpi_slots *s = d->s;
	const uint64_t flen = s->slot[d->i].file_len;
	for (uint64_t off = 0; off < pop;) {
		uint64_t end = s->anon_scan
				       ? min_u64(pop, off + UFPI_SCAN_CHUNK)
				       : pop;
		int err =
			ufpi_dirty_scan(s->pagemap_fd, d->base + off, end - off,
					s->anon_scan, dirty_run, d);
		if (err)
			return err;
		off = end;
		if (off < pop && off >= flen && s->anon_scan &&
		    d->kept + ufpi_page_size() > s->keep_budget)
			return drop_run(d, d->base + off, pop - off, true);
	}
	return 0;
}

static int reset_dirty(struct ufpi_slots *s, uint32_t i, uint64_t keep,
		       uint64_t pop, uint64_t readable, uint64_t *kept,
		       bool *mapped, uint32_t *nrefill)
{
	struct dirty_reset d = {
		.s = s,
		.i = i,
		.img = s->slot[i].image,
		.base = ufpi_slot_base(s, i),
		.keep = keep,
		.readable = readable,
	};
	const size_t page = ufpi_page_size();
	uint64_t t0 = ufpi_now_ns();
	int err = scan_range(&d, pop);
	if (!err)
		err = flush_drops(&d);
	/*
	 * Restored pages stay writable while most of them keep being
	 * written: re-protecting costs a TLB flush now and a write-protect
	 * fault per page the next instance writes again (both VM exits on a
	 * virtual machine), while restoring a page that
	 * is still writable costs a memcmp and a memcpy. A writable page reads
	 * as written to every later scan, so it is restored (or found
	 * unchanged) at every reset: correctness does not depend on the
	 * protection. Once at least half of the writable set came back
	 * unchanged, that set has gone cold: protect the span again (one
	 * ioctl; pages in it that are not restored are protected already or
	 * not present, where a marker is harmless: a MISSING fault still
	 * reaches the handler).
	 */
	if (!err && s->dirty && d.wp_lo && d.unchanged >= d.restored) {
		err = ufpi_uffd_writeprotect(s->uffd[i % s->nuffd], d.wp_lo,
					     (size_t)(d.wp_hi - d.wp_lo), true);
		UFPI_ADD(s->ctr, reprotects, 1);
	}

	UFPI_ADD(s->ctr, dirty_scans, 1);
	UFPI_ADD(s->ctr, dirty_scan_ns, ufpi_now_ns() - t0);
	UFPI_ADD(s->ctr, pages_restored, d.restored / page);
	UFPI_ADD(s->ctr, bytes_restored, d.restored);
	UFPI_ADD(s->ctr, pages_unchanged, d.unchanged / page);
	UFPI_ADD(s->ctr, pages_dropped, d.dropped / page);
	UFPI_ADD(s->ctr, bytes_dropped, d.dropped);
	*kept = d.kept;
	*mapped = d.mapped;
	*nrefill = d.nrefill;
	return err;
}

/* What a reset covers (slot lock taken here): *keep bytes from the base
 * that may stay, *pop the populated end, *readable what is read-write. */
static void reset_bounds(struct ufpi_slots *s, uint32_t i, uint64_t *keep,
			 uint64_t *pop, uint64_t *readable, uint64_t *windows)
{
	const size_t page = ufpi_page_size();
	struct ufpi_slot *slot = &s->slot[i];
	pthread_mutex_lock(&slot->lock);
	assert(slot->state == UFPI_SLOT_LIVE);
	/* first: no prefetch step maps anything above the bounds read here */
	ufpi_prefetch_end_locked(s, i, slot->image);
	*readable = min_u64(slot->accessible, slot->prot_bytes);
	/* without a handler nothing tracks what the memory touched */
	if (s->backend != UFP_BACKEND_UFFD &&
	    slot->populated_hi < slot->accessible)
		slot->populated_hi = slot->accessible;
	*pop = slot->populated_hi;
	*keep = min_u64(min_u64(s->keep_resident_bytes, slot->accessible),
			*pop);
	*keep -= *keep % page;
	*windows = slot->windows;
	pthread_mutex_unlock(&slot->lock);
}

/* The old instance's bytes may still be there: never let the next memory
 * see them. -EBUSY: the reset raced a use of the memory (a fault was
 * served while it scanned, and what that fault mapped was not scanned). */
static int reset_failed(struct ufpi_slots *s, uint32_t i, int err)
{
	struct ufpi_slot *slot = &s->slot[i];
	pthread_mutex_lock(&slot->lock);
	slot->state = UFPI_SLOT_STALE;
	slot->kept_bytes = 0;
	pthread_mutex_unlock(&slot->lock);
	log_wipe(s, i, UFP_LOG_ERROR,
		 err == -EBUSY ? "memory touched while being freed"
			       : "reset failed",
		 err);
	return err;
}

/* The reset kept *kept bytes: record it, and a slot left with nothing
 * mapped gives up its image: KEPT, or CLEAN. */
static void reset_done(struct ufpi_slots *s, uint32_t i, bool tracked,
		       uint64_t keep, uint64_t kept, bool mapped)
{
	struct ufpi_slot *slot = &s->slot[i];
	struct ufpi_image *old = NULL;
	pthread_mutex_lock(&slot->lock);
	/* with a scan clean pages anywhere below pop stay (and
	 * populated_hi only ever grew) */
	if (!tracked)
		slot->populated_hi = keep;
	slot->kept_bytes = kept;
	if (s->backend != UFP_BACKEND_UFFD) {
		/* no handler sees a use after free: whatever is read-write
		 * may be written from now on, and must be wiped before
		 * another image's memory */
		slot->populated_hi =
			max_u64(slot->populated_hi, slot->prot_bytes);
		mapped = true;
	}
	/* a slot with any page still mapped must be wiped before another
	 * image uses it: a zero page left there would hide that image's
	 * data from its next memory */
	if (!mapped && !slot->file_len) {
		slot->populated_hi = 0;
		slot->nrefill = 0;
		old = slot->image;
		slot->image = NULL;
		slot->state = UFPI_SLOT_CLEAN;
	}
	pthread_mutex_unlock(&slot->lock);
	ufpi_image_unref(old);
}

/*
 * The reset's step out of LIVE (KEPT until reset_done or reset_failed says
 * more). A scan sees only what was mapped when it ran: pages a fault
 * installed since (the memory touched while being freed) may have been
 * missed, so a tracked reset fails with -EBUSY (the slot is wiped before
 * reuse). Untracked, everything up to the populated_hi read here is
 * dropped, but a page below keep may have been mapped after the restore
 * looked at it: true then, the slot keeps its image (another image's
 * memory wipes it). *pop rises to populated_hi where it is dropped.
 */
static bool leave_live(struct ufpi_slots *s, uint32_t i, bool tracked,
		       uint64_t windows, uint32_t nrefill, int *err,
		       uint64_t *pop)
{
	struct ufpi_slot *slot = &s->slot[i];
	pthread_mutex_lock(&slot->lock);
	assert(slot->state == UFPI_SLOT_LIVE);
	slot->state = UFPI_SLOT_KEPT;
	slot->gen++;
	slot->accessible = 0;
	bool raced = slot->windows != windows;
	if (!*err && tracked && raced)
		*err = -EBUSY;
	slot->nrefill = *err ? 0 : nrefill;
	if (!tracked || *err)
		*pop = max_u64(*pop, slot->populated_hi);
	pthread_mutex_unlock(&slot->lock);
	return raced;
}

int ufpi_slot_reset(struct ufpi_slots *s, uint32_t i, uint64_t *kept)
{
	const size_t page = ufpi_page_size();
	struct ufpi_slot *slot = &s->slot[i];
	uint64_t keep, pop, readable, windows;
	/* a scan tells written pages from clean ones (else every populated
	 * page beyond keep is dropped) */
	const bool tracked = s->dirty || s->anon_scan;
	bool mapped = false;
	uint32_t nrefill = 0; /* runs recorded in slot->refill */
	int err;

	reset_bounds(s, i, &keep, &pop, &readable, &windows);
	/* Still LIVE while restoring: a page we touch is present (the scan
	 * said so), and were it not, the handler would serve it normally. */
	*kept = 0;
	if (tracked)
		err = reset_dirty(s, i, keep, pop, readable, kept, &mapped,
				  &nrefill);
	else
		err = keep ? restore_kept(s, i, slot->image, keep, kept) : 0;
	mapped |= *kept != 0;
	UFPI_IGNORE(ufpi_fi_hit(UFPI_FI_RESET_SCANNED)); /* tests' hook */

	mapped |= leave_live(s, i, tracked, windows, nrefill, &err, &pop);
	if (!err && !tracked) {
		err = ufpi_os_dontneed(ufpi_slot_base(s, i) + keep, pop - keep);
		if (!err) {
			UFPI_ADD(s->ctr, bytes_dropped, pop - keep);
			UFPI_ADD(s->ctr, pages_dropped, (pop - keep) / page);
		}
	}
	UFPI_ADD(s->ctr, resets, 1);
	if (err) {
		*kept = pop;
		return reset_failed(s, i, err);
	}
	reset_done(s, i, tracked, keep, *kept, mapped);
	return 0;
}

uint64_t ufpi_slot_mark_stale(struct ufpi_slots *s, uint32_t i)
{
	struct ufpi_slot *slot = &s->slot[i];
	pthread_mutex_lock(&slot->lock);
	assert(slot->state != UFPI_SLOT_LIVE);
	uint64_t kept = slot->kept_bytes;
	slot->state = UFPI_SLOT_STALE;
	slot->kept_bytes = 0;
	slot->nrefill = 0;
	pthread_mutex_unlock(&slot->lock);
	return kept;
}

uint64_t ufpi_slot_purge_begin(struct ufpi_slots *s, uint32_t i, size_t max,
			       uint64_t *len)
{
	struct ufpi_slot *slot = &s->slot[i];
	pthread_mutex_lock(&slot->lock);
	assert(slot->state != UFPI_SLOT_LIVE &&
	       slot->state != UFPI_SLOT_PURGING);
	*len = slot->populated_hi + s->prefix;
	uint64_t pieces = *len ? (*len - 1) / max + 1 : 0; /* max may be
							       SIZE_MAX */
	slot->state = UFPI_SLOT_PURGING;
	slot->purge_pending = (uint32_t)pieces;
	slot->purge_failed = false;
	pthread_mutex_unlock(&slot->lock);
	return pieces;
}

bool ufpi_slot_purge_piece_done(struct ufpi_slots *s, uint32_t i, int err)
{
	struct ufpi_slot *slot = &s->slot[i];
	pthread_mutex_lock(&slot->lock);
	assert(slot->state == UFPI_SLOT_PURGING && slot->purge_pending > 0);
	slot->purge_failed |= err != 0;
	bool last = --slot->purge_pending == 0;
	bool failed = slot->purge_failed;
	pthread_mutex_unlock(&slot->lock);
	if (!last)
		return false;
	if (failed)
		(void)ufpi_slot_mark_stale(s, i);
	else
		ufpi_slot_purged(s, i);
	return true;
}

void ufpi_slot_purged(struct ufpi_slots *s, uint32_t i)
{
	struct ufpi_slot *slot = &s->slot[i];

	if (slot->file_len &&
	    unmap_range(s, i, 0, max_u64(slot->file_len, slot->prot_bytes))) {
		/* the memfd is freed once no slot maps it: this one keeps
		 * the mapping (and the image) until it is wiped before its
		 * next use; nothing leaks */
		(void)ufpi_slot_mark_stale(s, i);
		return;
	}
	forget_contents(slot, true);
}

bool ufpi_slot_check(struct ufpi_slots *s, uint32_t i, const ufp_index *index)
{
	const struct ufpi_slot *slot = &s->slot[i];
	pthread_mutex_lock(&s->slot[i].lock);
	bool used = ufp_index_slot_in_use(index, i);
	bool live = slot->state == UFPI_SLOT_LIVE;
	bool ok = (!live || used) &&
		  (!live || slot->prot_bytes == slot->accessible) &&
		  (slot->state != UFPI_SLOT_PURGING || used) &&
		  /* a prepare fills a CLEAN slot before it publishes LIVE:
		   * only one the index has free must hold nothing */
		  (slot->state != UFPI_SLOT_CLEAN || used ||
		   (!slot->image && !slot->populated_hi)) &&
		  slot->populated_hi <= s->max_memory_bytes;
	pthread_mutex_unlock(&s->slot[i].lock);
	return ok;
}
