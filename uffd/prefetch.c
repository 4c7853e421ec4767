/* SPDX-License-Identifier: MIT */
/*
 * prefetch.c - working-set prefetch for minor-fault mode.
 *
 * A cold start (a memory in a slot whose image mapping is new) is where a
 * fault-driven pool pays most: one handler round trip per window. The
 * handler sees every first touch, so it can learn which image pages a
 * module's memories touch, and in which order, and map that set at the
 * next cold start with a few large UFFDIO_CONTINUE calls while the
 * instance already runs.
 *
 * Record. A learning cold start records the windows the handler fills, in
 * fault order, merged into runs; its windows shrink down to one page on
 * isolated faults (instead of fault_around_min_bytes), so that random
 * access records what was touched and little else. At the end of the
 * memory (reset) the record becomes the image's set: image pages only
 * (zero pages cost nothing to fault), each page once, at most
 * prefetch_max_pages. The first cold start of an image learns, and every
 * UFPI_RELEARN-th after it, so that a set follows a module whose working
 * set changes; the other cold starts prefetch the set learned last.
 *
 * Prefetch. The allocation maps a first, larger step itself (up to
 * UFPI_PF_FIRST pages and UFPI_PF_FIRST_RUNS runs: a small set is done
 * then, before the instance can fault on it), publishes the rest (slot fields under the slot lock) and
 * rings the slot's handler thread, without waiting. That thread maps the
 * set in first-touch order, at most UFPI_PF_CHUNK pages and UFPI_PF_RUNS
 * runs at a time under the slot lock, and polls its userfaultfd between
 * steps: the faults waiting are always served before the next step, and
 * then one step runs even if more faults come (an instance faulting on
 * every page ahead of the prefetch would otherwise starve it for the whole
 * cold start). A chunk first checks that the slot is
 * still LIVE with the generation the work was published for: a freed,
 * purged or re-allocated slot stops at once, and no page of the old
 * module reaches a new memory. UFFDIO_CONTINUE never replaces a present
 * page (EEXIST), so a page the instance wrote before the prefetch got
 * there keeps its bytes.
 *
 * What a mapped page's reads leave behind is the accessed bit of its page
 * table entry, which Linux exposes only process-wide (clear_refs, idle
 * page tracking): the library counts pages prefetched and the faults a
 * prefetched memory still takes; which prefetched pages were touched is
 * measured by ufp-bench, which knows what it touched.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fill.h"

#define UFPI_RELEARN 16	       /* learn again every this many cold starts */
#define UFPI_PF_CHUNK 256      /* pages mapped per step (1 MiB of 4 KiB) */
#define UFPI_PF_RUNS 32	       /* and runs (ioctls): a fault waits behind one */
#define UFPI_PF_FIRST 1024     /* the allocation's own first step: pages */
#define UFPI_PF_FIRST_RUNS 128 /* and runs */
#define UFPI_LEARN_RUNS 65536  /* runs recorded per learning memory */

/*
 * Slot i's prefetch state: this file's alone, guarded by slot i's lock
 * (`pending` is also read without it). The slot layer says when a memory
 * starts cold (ufpi_prefetch_begin_locked) and ends (ufpi_prefetch_end),
 * and asks whether it learns; it holds none of these fields.
 */
struct ufpi_prefetch {
	bool learning;		/* this memory's windows are recorded */
	bool prefetched;	/* this memory was prefetched */
	_Atomic bool pending;	/* prefetch work left */
	uint32_t gen;		/* the slot generation the work is for */
	uint32_t run, off;	/* next page of the set: run, page in run */
	struct ufpi_run *learn; /* nlearn runs recorded, learn_cap */
	uint32_t nlearn, learn_cap;
	uint64_t learn_pages;
};

int ufpi_prefetch_create(struct ufpi_slots *s)
{
	s->pf = calloc(s->n ? s->n : 1, sizeof(*s->pf));
	return s->pf ? 0 : -ENOMEM;
}

void ufpi_prefetch_destroy(struct ufpi_slots *s)
{
	for (uint32_t i = 0; s->pf && i < s->n; i++)
		free(s->pf[i].learn);
	free(s->pf);
	s->pf = NULL;
}

static bool map_chunk(struct ufpi_slots *s, uint32_t i,
		      const struct ufpi_page_src *src, uint64_t budget,
		      unsigned max_runs, uint64_t *hi);

bool ufpi_prefetch_begin_locked(struct ufpi_slots *s, uint32_t i,
				const struct ufpi_page_src *src, uint64_t *hi)
{
	*hi = 0;
	if (!s->pf)
		return false;
	struct ufpi_prefetch *pf = &s->pf[i];
	pf->learning = pf->prefetched = false;
	atomic_store_explicit(&pf->pending, false, memory_order_relaxed);
	if (!s->prefetch || !src->img || !src->img->ndata || !src->file_pages)
		return false;
	if (ufpi_image_cold_start(src->img, UFPI_RELEARN)) {
		pf->learning = true;
		pf->nlearn = 0;
		pf->learn_pages = 0;
		UFPI_ADD(s->ctr, prefetch_learns, 1);
		return false;
	}
	pf->prefetched = true;
	pf->gen = src->gen;
	pf->run = pf->off = 0;
	UFPI_ADD(s->ctr, prefetch_starts, 1);
	/* The first step here, before the memory is handed out: a bounded
	 * number of ioctls, cheaper than the doorbell's thread wake-up and
	 * the faults the instance would take meanwhile (docs/benchmarks.md,
	 * real modules cold); a small set is done with it. The rest goes to
	 * the handler thread. */
	if (!map_chunk(s, i, src, UFPI_PF_FIRST, UFPI_PF_FIRST_RUNS, hi))
		return false;
	atomic_store_explicit(&pf->pending, true, memory_order_release);
	return true;
}

bool ufpi_prefetch_learning_locked(const struct ufpi_slots *s, uint32_t i)
{
	return s->pf && s->pf[i].learning;
}

/* Append pages [p, q) to the record, merged into the last run when they
 * follow it. */
static void record(struct ufpi_prefetch *pf, uint64_t p, uint64_t q)
{
	if (pf->nlearn &&
	    pf->learn[pf->nlearn - 1].page + pf->learn[pf->nlearn - 1].n == p) {
		pf->learn[pf->nlearn - 1].n += (uint32_t)(q - p);
	} else {
		if (pf->nlearn == pf->learn_cap) {
			uint32_t cap = pf->learn_cap ? 2 * pf->learn_cap : 64;
			struct ufpi_run *r;
			if (cap > UFPI_LEARN_RUNS ||
			    !(r = realloc(pf->learn, cap * sizeof(*r))))
				return; /* the record stays what it is */
			pf->learn = r;
			pf->learn_cap = cap;
		}
		pf->learn[pf->nlearn++] =
			(struct ufpi_run){(uint32_t)p, (uint32_t)(q - p)};
	}
	pf->learn_pages += q - p;
}

void ufpi_prefetch_note_locked(struct ufpi_slots *s, uint32_t i,
			       const struct ufpi_image *img, uint64_t p,
			       uint64_t q)
{
	uint64_t ipages = img ? img->npages : 0;

	if (!s->pf)
		return;
	struct ufpi_prefetch *pf = &s->pf[i];
	if (pf->prefetched)
		UFPI_ADD(s->ctr, prefetch_faults, 1);
	if (!pf->learning || p >= ipages ||
	    pf->learn_pages >= s->prefetch_max_pages)
		return;
	record(pf, p, q < ipages ? q : ipages);
}

/* The recorded windows as the image's set: data pages only, each once, in
 * first-touch order, at most max pages. NULL when nothing is left. */
static struct ufpi_run *build_set(const struct ufpi_prefetch *pf,
				  const struct ufpi_image *img, uint64_t max,
				  uint32_t *nout)
{
	uint8_t *seen = calloc((img->npages + 7) / 8, 1);
	struct ufpi_run *out = malloc(pf->nlearn * 2 * sizeof(*out) + 1);
	uint32_t n = 0;
	uint64_t pages = 0;

	if (!seen || !out) {
		free(seen);
		free(out);
		return NULL;
	}
	for (uint32_t k = 0; k < pf->nlearn && pages < max; k++) {
		uint64_t end = (uint64_t)pf->learn[k].page + pf->learn[k].n;
		for (uint64_t p = pf->learn[k].page; p < end && pages < max;
		     p++) {
			if ((seen[p / 8] >> (p % 8)) & 1 ||
			    !ufpi_image_page(img, p))
				continue;
			seen[p / 8] |= (uint8_t)(1u << (p % 8));
			if (n && out[n - 1].page + out[n - 1].n == p) {
				out[n - 1].n++;
			} else if (n < pf->nlearn * 2) {
				out[n++] = (struct ufpi_run){(uint32_t)p, 1};
			} else {
				break;
			}
			pages++;
		}
	}
	free(seen);
	*nout = n;
	if (!n) {
		free(out);
		return NULL;
	}
	return out;
}

void ufpi_prefetch_end_locked(struct ufpi_slots *s, uint32_t i,
			      struct ufpi_image *img)
{
	if (!s->pf)
		return;
	struct ufpi_prefetch *pf = &s->pf[i];
	struct ufpi_run *set = NULL;
	uint32_t n = 0;
	atomic_store_explicit(&pf->pending, false, memory_order_relaxed);
	pf->prefetched = false;
	if (pf->learning && img)
		set = build_set(pf, img, s->prefetch_max_pages, &n);
	pf->learning = false;
	if (set) /* lock order: the slot's, then the image's wset_lock */
		ufpi_image_set_wset(img, set, n);
}

/* Map the next chunk of slot i's set (slot lock held, work current, src
 * the slot's source); *hi rises to the end of what it maps. False when the
 * set is done. */
static bool map_chunk(struct ufpi_slots *s, uint32_t i,
		      const struct ufpi_page_src *src, uint64_t budget,
		      unsigned max_runs, uint64_t *hi)
{
	struct ufpi_prefetch *pf = &s->pf[i];
	struct ufpi_image *img = src->img;
	const uint64_t limit = src->file_pages;
	uint64_t filled = 0, raced = 0;
	unsigned runs = 0;
	unsigned char *stop;

	/* the set is read under the image's wset_lock: a learning memory
	 * of another slot may replace it */
	pthread_mutex_lock(&img->wset_lock);
	while (budget && runs++ < max_runs && pf->run < img->nwset) {
		const struct ufpi_run *r = &img->wset[pf->run];
		uint64_t p = (uint64_t)r->page + pf->off;
		uint64_t q = (uint64_t)r->page + r->n;
		if (q - p > budget)
			q = p + budget;
		if (q > limit)
			q = limit > p ? limit : p;
		uint64_t got = 0;
		if (p < q) {
			if (q * ufpi_page_size() > *hi)
				*hi = q * ufpi_page_size();
			UFPI_IGNORE(ufpi_fill_pages(
				s, src, p, q, UFPI_FILL_PATIENT, &stop, &got));
		}
		filled += got;
		raced += (q - p) - got;
		budget -= q - p ? q - p : 1;
		pf->off += (uint32_t)(q - p);
		if (p >= q || r->page + pf->off >= (uint64_t)r->page + r->n) {
			pf->run++;
			pf->off = 0;
		}
	}
	bool more = pf->run < img->nwset;
	pthread_mutex_unlock(&img->wset_lock);
	UFPI_ADD(s->ctr, pages_prefetched, filled);
	UFPI_ADD(s->ctr, prefetch_raced, raced);
	return more;
}

bool ufpi_prefetch_chunk_locked(struct ufpi_slots *s, uint32_t i,
				const struct ufpi_page_src *src, uint64_t *hi)
{
	struct ufpi_prefetch *pf = &s->pf[i];
	bool more = false;

	*hi = 0;
	/* the same generation: still the memory the work was for (it
	 * changes as the slot leaves LIVE) */
	if (src->gen == pf->gen && pf->prefetched && src->img)
		more = map_chunk(s, i, src, UFPI_PF_CHUNK, UFPI_PF_RUNS, hi);
	if (!more)
		atomic_store_explicit(&pf->pending, false,
				      memory_order_relaxed);
	return more;
}

bool ufpi_prefetch_pending(const struct ufpi_slots *s, uint32_t i)
{
	return s->pf &&
	       atomic_load_explicit(&s->pf[i].pending, memory_order_acquire);
}

bool ufpi_prefetch_rewind_locked(struct ufpi_slots *s, uint32_t i, uint32_t gen)
{
	if (!s->pf)
		return false;
	struct ufpi_prefetch *pf = &s->pf[i];
	if (!pf->prefetched || pf->gen != gen)
		return false;
	pf->run = pf->off = 0;
	atomic_store_explicit(&pf->pending, true, memory_order_release);
	return true;
}
