/* SPDX-License-Identifier: MIT */
/*
 * image.h - floor 2: module images and their working sets (image.c).
 */
#ifndef UFPI_IMAGE_H
#define UFPI_IMAGE_H

#include "os.h"

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
	 * order; replaced at the end of each learning run (written only by
	 * ufpi_image_set_wset, read under wset_lock). */
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
/* Whether len bytes at p (8-byte aligned, len a multiple of 8) are 0. */
bool ufpi_bytes_are_zero(const unsigned char *p, size_t len);
void ufpi_image_ref(struct ufpi_image *img);
void ufpi_image_unref(struct ufpi_image *img);
/* A cold start of img: true when it learns its working set (none learned
 * yet, or this is the relearn-th cold start since it was). */
bool ufpi_image_cold_start(struct ufpi_image *img, uint32_t relearn);
/* Make `set` (n runs, malloc'd; img takes it) img's working set. */
void ufpi_image_set_wset(struct ufpi_image *img, struct ufpi_run *set,
			 uint32_t n);
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

#endif /* UFPI_IMAGE_H */
