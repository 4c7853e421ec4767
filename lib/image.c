/* SPDX-License-Identifier: MIT */
/*
 * image.c - a module's initial memory contents, built from data segments.
 *
 * Segments are applied in order onto a scratch mapping of initial_bytes
 * (MAP_NORESERVE: pages no segment touches are never faulted in), so later
 * segments overwrite earlier ones as WebAssembly specifies. Then only the
 * pages holding a non-zero byte are copied, in page order, into one
 * page-aligned resident buffer; a page map says where each lives. The
 * handler copies straight from that buffer with UFFDIO_COPY, and runs of
 * consecutive present pages are contiguous in it, so a run is one ioctl.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "image.h"

bool ufpi_bytes_are_zero(const unsigned char *p, size_t len)
{
	const uint64_t *w = (const uint64_t *)p;
	for (size_t i = 0; i < len / sizeof(*w); i++)
		if (w[i])
			return false;
	return true;
}

/* Segments inside [0, initial_bytes), with bytes; pages countable. */
static int check_segments(const ufp_segment *segs, size_t nsegs,
			  uint64_t initial_bytes, uint64_t npages)
{
	for (size_t i = 0; i < nsegs; i++) {
		if (segs[i].len && !segs[i].bytes)
			return -EINVAL;
		if (segs[i].offset > initial_bytes ||
		    segs[i].len > initial_bytes - segs[i].offset)
			return -ERANGE;
	}
	return npages >= UFPI_IMAGE_ZERO ? -E2BIG : 0;
}

/* The segments applied in order onto a scratch mapping of initial_bytes
 * (NULL when no segment has bytes), and the pages they touched marked. */
static int apply_segments(const ufp_segment *segs, size_t nsegs,
			  uint64_t initial_bytes, unsigned char **scratch,
			  uint8_t *touched)
{
	const size_t page = ufpi_page_size();
	size_t nonempty = 0;
	for (size_t i = 0; i < nsegs; i++)
		nonempty += segs[i].len != 0;
	if (!nonempty)
		return 0;
	int err = ufpi_os_reserve(initial_bytes, (void **)scratch);
	if (!err)
		err = ufpi_os_protect(*scratch, initial_bytes,
				      PROT_READ | PROT_WRITE);
	if (err)
		return err;
	for (size_t i = 0; i < nsegs; i++) {
		if (!segs[i].len)
			continue;
		memcpy(*scratch + segs[i].offset, segs[i].bytes, segs[i].len);
		for (uint64_t p = segs[i].offset / page;
		     p <= (segs[i].offset + segs[i].len - 1) / page; p++)
			touched[p] = 1;
	}
	return 0;
}

/* The touched pages holding a non-zero byte, one after the other in one
 * buffer; the map says where each is. */
static int store_data(struct ufpi_image *img, const unsigned char *scratch,
		      const uint8_t *touched)
{
	const size_t page = ufpi_page_size();
	uint64_t ndata = 0;
	for (uint64_t p = 0; p < img->npages; p++)
		if (touched[p] &&
		    !ufpi_bytes_are_zero(scratch + p * page, page))
			img->map[p] = (uint32_t)ndata++;
	img->ndata = (uint32_t)ndata;
	if (!ndata)
		return 0;
	img->data_len = ndata * page;
	int err = ufpi_os_map_anon(img->data_len, (void **)&img->data);
	if (err)
		return err;
	for (uint64_t p = 0; p < img->npages; p++)
		if (img->map[p] != UFPI_IMAGE_ZERO)
			memcpy(img->data + (size_t)img->map[p] * page,
			       scratch + p * page, page);
	return 0;
}

int ufpi_image_create(const ufp_segment *segs, size_t nsegs,
		      uint64_t initial_bytes, struct ufpi_image **out)
{
	const size_t page = ufpi_page_size();
	struct ufpi_image *img;
	unsigned char *scratch = NULL;
	uint8_t *touched = NULL;
	uint64_t npages = (initial_bytes + page - 1) / page;
	int err;

	err = check_segments(segs, nsegs, initial_bytes, npages);
	if (err)
		return err;
	img = calloc(1, sizeof(*img));
	if (!img)
		return -ENOMEM;
	atomic_init(&img->refs, 1);
	pthread_mutex_init(&img->wset_lock, NULL);
	img->memfd = -1;
	img->npages = (uint32_t)npages;
	img->map = malloc((npages ? npages : 1) * sizeof(*img->map));
	touched = calloc(npages ? npages : 1, 1);
	if (!img->map || !touched) {
		err = -ENOMEM;
		goto fail;
	}
	for (uint64_t p = 0; p < npages; p++)
		img->map[p] = UFPI_IMAGE_ZERO;

	err = apply_segments(segs, nsegs, initial_bytes, &scratch, touched);
	if (err)
		goto fail;
	err = store_data(img, scratch, touched);
	if (err)
		goto fail;
	if (scratch)
		ufpi_os_unmap(scratch, initial_bytes);
	free(touched);
	*out = img;
	return 0;
fail:
	if (scratch)
		ufpi_os_unmap(scratch, initial_bytes);
	free(touched);
	free(img->map);
	pthread_mutex_destroy(&img->wset_lock);
	free(img);
	return err;
}

int ufpi_image_make_memfd(struct ufpi_image *img)
{
	const size_t page = ufpi_page_size();
	int fd, err;

	err = ufpi_os_memfd_image("ufp-image", (size_t)img->npages * page, &fd);
	if (err)
		return err;
	/* pages not written stay holes and read as zero */
	for (uint64_t p = 0; p < img->npages && !err; p++)
		if (img->map[p] != UFPI_IMAGE_ZERO)
			err = ufpi_os_pwrite_all(fd, ufpi_image_page(img, p),
						 page, p * page);
	if (!err)
		err = ufpi_os_seal(fd);
	/* The memfd's page cache is the copy every slot maps: read the
	 * image from it too, and give back the anonymous copy, so that the
	 * image is resident once. Holes are never read through the view (a
	 * read would allocate a page-cache page for them). */
	void *view = NULL;
	size_t view_len = (size_t)img->npages * page;
	if (!err)
		err = ufpi_os_map_file_ro(fd, view_len, &view);
	if (err) {
		ufpi_os_close(fd);
		return err;
	}
	if (img->data)
		ufpi_os_unmap(img->data, img->data_len);
	img->data = view;
	img->data_len = view_len;
	for (uint64_t p = 0; p < img->npages; p++)
		if (img->map[p] != UFPI_IMAGE_ZERO)
			img->map[p] = (uint32_t)p;
	img->memfd = fd;
	return 0;
}

/* ---- contents, for lookups by content ------------------------------------ */

/*
 * The pages ufpi_image_create would store, built in heap memory: no
 * scratch mapping, no image buffer, so that a lookup that finds its module
 * costs a copy of the segments' bytes. Pages touched by a segment get
 * consecutive places in page order, so each segment is one memcpy; pages
 * that end up all zero are then squeezed out, which leaves exactly the
 * image's page map and data.
 */
int ufpi_contents_build(const ufp_segment *segs, size_t nsegs,
			uint64_t initial_bytes, struct ufpi_contents *out)
{
	const size_t page = ufpi_page_size();
	uint64_t npages = (initial_bytes + page - 1) / page;
	uint32_t *map;
	unsigned char *buf = NULL;
	uint64_t ntouched = 0;

	/* the checks of ufpi_image_create, in its order */
	int err = check_segments(segs, nsegs, initial_bytes, npages);
	if (err)
		return err;
	map = malloc((npages ? npages : 1) * sizeof(*map));
	if (!map)
		return -ENOMEM;
	for (uint64_t p = 0; p < npages; p++)
		map[p] = UFPI_IMAGE_ZERO;
	for (size_t i = 0; i < nsegs; i++)
		if (segs[i].len)
			for (uint64_t p = segs[i].offset / page;
			     p <= (segs[i].offset + segs[i].len - 1) / page;
			     p++)
				map[p] = 0; /* touched */
	for (uint64_t p = 0; p < npages; p++)
		if (map[p] == 0)
			map[p] = (uint32_t)ntouched++;
	if (ntouched) {
		buf = calloc(ntouched, page);
		if (!buf) {
			free(map);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < nsegs; i++)
		if (segs[i].len)
			memcpy(buf + (size_t)map[segs[i].offset / page] * page +
				       segs[i].offset % page,
			       segs[i].bytes, segs[i].len);
	uint32_t ndata = 0;
	for (uint64_t p = 0; p < npages; p++) {
		if (map[p] == UFPI_IMAGE_ZERO)
			continue;
		unsigned char *src = buf + (size_t)map[p] * page;
		if (ufpi_bytes_are_zero(src, page)) {
			map[p] = UFPI_IMAGE_ZERO;
			continue;
		}
		if (map[p] != ndata)
			memmove(buf + (size_t)ndata * page, src, page);
		map[p] = ndata++;
	}
	out->npages = (uint32_t)npages;
	out->ndata = ndata;
	out->map = map;
	out->data = buf;
	return 0;
}

void ufpi_contents_free(struct ufpi_contents *c)
{
	free(c->map);
	free(c->data);
	c->map = NULL;
	c->data = NULL;
}

static uint64_t mix(uint64_t h, uint64_t w)
{
	h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 29);
}

uint64_t ufpi_contents_hash(const struct ufpi_contents *c)
{
	const size_t page = ufpi_page_size();
	uint64_t h = mix(0x75667069, c->npages);

	/* which pages hold data, then the data: together the contents */
	for (uint64_t p = 0; p < c->npages; p++)
		if (c->map[p] != UFPI_IMAGE_ZERO)
			h = mix(h, p);
	const unsigned char *d = c->data;
	for (size_t i = 0; i < (size_t)c->ndata * page; i += sizeof(uint64_t)) {
		uint64_t w;
		memcpy(&w, d + i, sizeof(w));
		h = mix(h, w);
	}
	return h;
}

bool ufpi_image_matches(const struct ufpi_image *img,
			const struct ufpi_contents *c)
{
	const size_t page = ufpi_page_size();

	if (img->npages != c->npages || img->ndata != c->ndata)
		return false;
	/* page by page: an image read from its memfd stores page p at p,
	 * contents store their data pages one after the other */
	for (uint64_t p = 0; p < c->npages; p++) {
		const unsigned char *have = ufpi_image_page(img, p);
		if (!have != (c->map[p] == UFPI_IMAGE_ZERO))
			return false;
		if (have &&
		    memcmp(have, c->data + (size_t)c->map[p] * page, page))
			return false;
	}
	return true;
}

void ufpi_image_ref(struct ufpi_image *img)
{
	if (img)
		atomic_fetch_add_explicit(&img->refs, 1, memory_order_relaxed);
}

void ufpi_image_unref(struct ufpi_image *img)
{
	if (!img)
		return;
	if (atomic_fetch_sub_explicit(&img->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (img->data)
		ufpi_os_unmap(img->data, img->data_len);
	ufpi_os_close(img->memfd);
	free(img->map);
	free(img->wset);
	pthread_mutex_destroy(&img->wset_lock);
	free(img);
}

bool ufpi_image_cold_start(struct ufpi_image *img, uint32_t relearn)
{
	pthread_mutex_lock(&img->wset_lock);
	bool learn = !img->nwset || ++img->cold_starts % relearn == 0;
	pthread_mutex_unlock(&img->wset_lock);
	return learn;
}

void ufpi_image_set_wset(struct ufpi_image *img, struct ufpi_run *set,
			 uint32_t n)
{
	pthread_mutex_lock(&img->wset_lock);
	struct ufpi_run *old = img->wset;
	img->wset = set;
	img->nwset = n;
	img->cold_starts = 0;
	pthread_mutex_unlock(&img->wset_lock);
	free(old);
}
