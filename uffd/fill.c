/* SPDX-License-Identifier: MIT */
/*
 * fill.c - the one place image pages are installed into a slot through
 * userfaultfd, for the handler (a fault's window) and for eager fills
 * (the reset re-mapping dropped pages in minor mode).
 *
 * A page comes from one of three sources: UFFDIO_CONTINUE maps the
 * page-cache page of the image's memfd where the slot maps it (minor
 * mode), UFFDIO_COPY installs a private copy of the image's bytes (copy
 * mode), UFFDIO_ZEROPAGE maps the zero page where the image has no data.
 * Runs of pages of one source are filled with one ioctl each, without
 * waking anyone (the caller wakes what it must).
 */
#include <assert.h>
#include <errno.h>

#include "fill.h"
#include "uffd.h"

/* How one ioctl fills a run of pages. */
enum fill_kind {
	FILL_ZERO,	/* UFFDIO_ZEROPAGE: no image data there */
	FILL_ZERO_COPY, /* UFFDIO_COPY of zeros: the same, written at once */
	FILL_COPY,	/* UFFDIO_COPY: a private copy of image pages */
	FILL_CONTINUE,	/* UFFDIO_CONTINUE: map the memfd's page-cache pages */
};

/* Pages a fill of `kind` installed: counted as refilled for a refill,
 * else by how they were installed. */
static void count(struct ufpi_slots *s, enum fill_kind kind, unsigned flags,
		  size_t pages)
{
	if (flags & UFPI_FILL_REFILL)
		UFPI_ADD(s->ctr, pages_refilled, pages);
	else if (kind == FILL_COPY)
		UFPI_ADD(s->ctr, pages_copied, pages);
	else if (kind == FILL_CONTINUE)
		UFPI_ADD(s->ctr, pages_continued, pages);
	else
		UFPI_ADD(s->ctr, pages_zeroed, pages);
}

/* One fill ioctl of `kind` over [dst, dst+len); *done: bytes filled. */
static int fill_once(struct ufpi_slots *s, int fd, enum fill_kind kind,
		     unsigned flags, unsigned char *dst,
		     const unsigned char *src, size_t len, size_t *done)
{
	int err;

	switch (kind) {
	case FILL_COPY:
		/* a refill's pages are written next: no write protection */
		err = ufpi_uffd_copy(fd, dst, src, len,
				     s->dirty && !(flags & UFPI_FILL_REFILL),
				     done);
		break;
	case FILL_CONTINUE:
		err = ufpi_uffd_continue(fd, dst, len, done);
		break;
	case FILL_ZERO_COPY:
		/* a private page of zeros, writable: the write that faulted
		 * does not fault again to copy the zero page */
		/* not write-protected: written at once, it reads as
		 * written to the reset's scan either way */
		err = ufpi_uffd_copy(fd, dst, s->zero_page,
				     len < s->zero_len ? len : s->zero_len,
				     false, done);
		/* longer than the zero source: fill_run goes on after it */
		if (!err && *done < len)
			err = -EAGAIN;
		break;
	default:
		err = ufpi_uffd_zeropage(fd, dst, len, done);
		break;
	}
	count(s, kind, flags, *done / ufpi_page_size());
	return err;
}

/*
 * EEXIST at dst. UFFDIO_ZEROPAGE refuses a pte that holds a uffd-wp marker
 * (left by MADV_DONTNEED or UFFDIO_WRITEPROTECT of a missing page once
 * WP_UNPOPULATED is on), while the fault path treats the marker as
 * missing: the thread would fault forever. UFFDIO_COPY accepts a marker,
 * so copy a page of zeros instead. False when the page was simply there.
 */
static bool zero_over_marker(struct ufpi_slots *s, int fd, enum fill_kind kind,
			     unsigned char *dst)
{
	size_t done;
	if (kind == FILL_ZERO && s->dirty && s->zero_page &&
	    ufpi_uffd_copy(fd, dst, s->zero_page, ufpi_page_size(), true,
			   &done) == 0) {
		UFPI_ADD(s->ctr, pages_zeroed, 1);
		return true;
	}
	UFPI_ADD(s->ctr, eexist_races, 1);
	return false;
}

/* Fill [dst, dst+len) as `kind` (src: the image bytes, for FILL_COPY).
 * EEXIST (a page already there: a racing fault, a write, a prefetch) and
 * EAGAIN (partial fill) are normal: go on after the page. Each present page
 * costs an ioctl, so unless UFPI_FILL_PATIENT, two present pages in a row end the
 * run: the rest is most likely there too (a window over pages a prefetch
 * mapped), and a page left out only faults later. Returns 0 or the first
 * unexpected -errno, with *stop at the first page not filled. */
static int fill_run(struct ufpi_slots *s, int fd, enum fill_kind kind,
		    unsigned char *dst, const unsigned char *src, size_t len,
		    unsigned flags, unsigned char **stop, uint64_t *filled)
{
	const size_t page = ufpi_page_size();
	unsigned again = 0, present = 0;

	while (len) {
		size_t done = 0;
		int err = fill_once(s, fd, kind, flags, dst, src, len, &done);
		if (done) {
			*filled += done / page;
			dst += done;
			src = src ? src + done : NULL;
			len -= done;
			again = present = 0;
		}
		if (!err)
			return 0;
		if (err == -EEXIST && !done) {
			if (!zero_over_marker(s, fd, kind, dst) &&
			    ++present == 2 && !(flags & UFPI_FILL_PATIENT))
				return 0;
			dst += page;
			src = src ? src + page : NULL;
			len -= page;
			continue;
		}
		/* EAGAIN without progress: the mm is changing (fork, mremap);
		 * retrying is what the kernel asks for, but boundedly */
		if (err == -EAGAIN && (done || ++again < 1000))
			continue;
		/* ENOENT: the range is not inside one VMA. Adjacent
		 * read-write ranges of a slot can stay separate VMAs (mprotect
		 * does not merge anonymous VMAs with different anon_vmas), so
		 * a window may straddle two: fill it page by page. */
		if (err == -ENOENT && len > page) {
			for (size_t off = 0; off < len; off += page) {
				int e = fill_run(s, fd, kind, dst + off,
						 src ? src + off : NULL, page,
						 flags, stop, filled);
				if (e)
					return e;
			}
			return 0;
		}
		*stop = dst;
		return err;
	}
	return 0;
}

/* The run of pages [p, return) that one ioctl fills, and how: image pages
 * stored one after the other (CONTINUE where the slot maps the image's
 * memfd, COPY elsewhere), or pages without data (ZEROPAGE). */
static uint64_t run_at(const struct ufpi_page_src *src, uint64_t p,
		       uint64_t endp, enum fill_kind *kind)
{
	const uint64_t fpages = src->file_pages;
	if (p < fpages && endp > fpages)
		endp = fpages; /* the file mapping ends there */
	bool data = ufpi_image_page(src->img, p) != NULL;
	*kind = !data ? FILL_ZERO : p < fpages ? FILL_CONTINUE : FILL_COPY;
	return ufpi_image_run_end(src->img, p, endp);
}

uint64_t ufpi_fill_run_end(const struct ufpi_page_src *src, uint64_t p,
			   uint64_t endp)
{
	enum fill_kind kind;
	return run_at(src, p, endp, &kind);
}

int ufpi_fill_pages(struct ufpi_slots *s, const struct ufpi_page_src *src,
		    uint64_t p, uint64_t q, unsigned flags,
		    unsigned char **stop, uint64_t *filled)
{
	uint64_t ignored = 0;
	const size_t page = ufpi_page_size();
	int first = 0;

	/* a refill's pages are private copies: where the slot maps the
	 * memfd a page comes from the page cache (there is no refill in
	 * minor mode, and must not be) */
	assert(!(flags & UFPI_FILL_REFILL) || !src->file_pages);

	while (p < q) {
		enum fill_kind kind;
		unsigned char *at = NULL;
		uint64_t r = run_at(src, p, q, &kind);
		if (kind == FILL_ZERO &&
		    (flags & (UFPI_FILL_WRITE | UFPI_FILL_REFILL)))
			kind = FILL_ZERO_COPY;
		int err = fill_run(s, src->fd, kind, src->base + p * page,
				   ufpi_image_page(src->img, p), (r - p) * page,
				   flags, &at, filled ? filled : &ignored);
		if (err && !first) {
			first = err;
			*stop = at;
		}
		p = r;
	}
	return first;
}
