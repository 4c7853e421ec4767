/* SPDX-License-Identifier: MIT */
/*
 * reclaim.c - engines that release ranges of pool memory with
 * MADV_DONTNEED on behalf of a purge.
 *
 *  URING            IORING_OP_MADVISE requests, a batch per submit call
 *                   (one io_uring_enter). The submitting thread never waits
 *                   for the kernel; completions are reaped by the handler
 *                   thread (the ring's eventfd is in its poll set) or by
 *                   ufp_pool_quiesce. The kernel runs these requests in
 *                   io-wq workers: this buys asynchrony, not fewer TLB
 *                   flushes. At most cq_entries are in flight, so the
 *                   completion queue can never overflow; the rest waits in
 *                   a queue that each reap pumps.
 *  SYNC             plain madvise() per range, in the calling thread.
 *  PROCESS_MADVISE  process_madvise(2) on our own pidfd, up to IOV_MAX
 *                   ranges per call (MADV_DONTNEED from Linux 6.13).
 *
 * Every engine reaches the same end state: a failed or short request is
 * redone with plain madvise (repeating DONTNEED is harmless) and counted.
 * `done` runs once per range, outside the engine's lock, with the error
 * if even the madvise fallback failed (the range may still hold pages).
 */
#include <errno.h>
#include <limits.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "os.h"
#include "reclaim.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

struct ufpi_reclaim {
	ufp_reclaim kind;
	struct ufpi_counters *ctr;
	const struct ufpi_log *log;
	ufpi_reclaim_done_fn done;
	void *done_arg;
	pthread_mutex_t lock;

	/* URING */
	struct io_uring ring;
	int efd;
	unsigned cap;		/* max in flight (= CQ entries) */
	struct ufpi_range *inf; /* in-flight records, by user_data */
	uint32_t *free_ids;	/* stack of unused record ids */
	unsigned nfree;
	struct ufpi_range *queue; /* waiting for room in the ring */
	size_t qhead, qlen, qcap;

	int stuck_err; /* the last submit took nothing: its error */

	/* PROCESS_MADVISE */
	int pidfd;
};

static int redo_sync(struct ufpi_reclaim *r, const struct ufpi_range *rg,
		     int why)
{
	UFPI_ADD(r->ctr, reclaim_fallbacks, 1);
	ufpi_logf(r->log, UFP_LOG_DEBUG,
		  "reclaim: range %p+%zu failed (%s), redone with madvise",
		  rg->addr, rg->len, ufp_strerror(why));
	int err = ufpi_os_dontneed(rg->addr, rg->len);
	if (err)
		ufpi_logf(r->log, UFP_LOG_ERROR,
			  "reclaim: madvise(%p, %zu) failed: %s", rg->addr,
			  rg->len, ufp_strerror(err));
	return err;
}

/* The io_uring engine's ring, in-flight records and completion eventfd;
 * on failure nothing is left. */
static int ring_create(struct ufpi_reclaim *r, unsigned ring_entries)
{
	int err = ufpi_os_uring_init(ring_entries, &r->ring);
	if (err)
		return err;
	r->cap = r->ring.cq.ring_entries;
	r->inf = calloc(r->cap, sizeof(*r->inf));
	r->free_ids = calloc(r->cap, sizeof(*r->free_ids));
	if (!r->inf || !r->free_ids) {
		err = -ENOMEM;
	} else {
		for (unsigned k = 0; k < r->cap; k++)
			r->free_ids[r->nfree++] = r->cap - 1 - k;
		err = ufpi_os_eventfd(&r->efd);
	}
	if (!err)
		err = ufpi_os_uring_register_eventfd(&r->ring, r->efd);
	if (err) {
		ufpi_os_uring_exit(&r->ring);
		ufpi_os_close(r->efd);
		r->efd = -1;
		free(r->inf);
		free(r->free_ids);
	}
	return err;
}

int ufpi_reclaim_create(ufp_reclaim kind, unsigned ring_entries,
			const struct ufpi_features *feat,
			struct ufpi_counters *ctr, const struct ufpi_log *log,
			ufpi_reclaim_done_fn done, void *done_arg,
			struct ufpi_reclaim **out)
{
	struct ufpi_reclaim *r = calloc(1, sizeof(*r));
	int err = 0;

	if (!r)
		return -ENOMEM;
	r->kind = kind;
	r->ctr = ctr;
	r->log = log;
	r->done = done;
	r->done_arg = done_arg;
	r->efd = -1;
	r->pidfd = -1;
	pthread_mutex_init(&r->lock, NULL);

	switch (kind) {
	case UFP_RECLAIM_URING:
		err = feat->uring_madvise != 1
			      ? (feat->uring_madvise < 0 ? feat->uring_madvise
							 : -ENOTSUP)
			      : ring_create(r, ring_entries);
		break;
	case UFP_RECLAIM_PROCESS_MADVISE:
		if (feat->process_madvise != 1) {
			err = feat->process_madvise < 0 ? feat->process_madvise
							: -ENOTSUP;
			break;
		}
		err = ufpi_os_pidfd_self(&r->pidfd);
		break;
	case UFP_RECLAIM_SYNC:
		break;
	default:
		err = -EINVAL;
	}
	if (err) {
		pthread_mutex_destroy(&r->lock);
		free(r);
		return err;
	}
	*out = r;
	return 0;
}

void ufpi_reclaim_destroy(struct ufpi_reclaim *r)
{
	if (!r)
		return;
	if (r->kind == UFP_RECLAIM_URING) {
		/* callers quiesce first; anything still queued is finished
		 * synchronously so no range is ever forgotten */
		while (ufpi_reclaim_inflight(r))
			if (!ufpi_reclaim_reap(r) && !ufpi_reclaim_rescue(r))
				sched_yield();
		ufpi_os_uring_exit(&r->ring);
		ufpi_os_close(r->efd);
		free(r->inf);
		free(r->free_ids);
		free(r->queue);
	}
	ufpi_os_close(r->pidfd);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

size_t ufpi_reclaim_max_range(const struct ufpi_reclaim *r)
{
	/* liburing 2.3's io_uring_prep_madvise takes an unsigned length */
	return r->kind == UFP_RECLAIM_URING ? (size_t)1 << 30 : SIZE_MAX;
}

ufp_reclaim ufpi_reclaim_kind(const struct ufpi_reclaim *r)
{
	return r->kind;
}

int ufpi_reclaim_eventfd(const struct ufpi_reclaim *r)
{
	return r ? r->efd : -1;
}

/* Send every SQE the kernel has not taken yet: one io_uring_enter. A
 * failed or short submit leaves them in the ring; the next pump (every
 * reap, every submit) sends them again, and ufpi_reclaim_rescue takes
 * them back if the kernel keeps refusing. */
static int send_locked(struct ufpi_reclaim *r)
{
	unsigned pending = ufpi_os_uring_sq_pending(&r->ring);
	if (!pending)
		return 0;
	int got = ufpi_os_uring_submit(&r->ring);
	if (got < 0 || (unsigned)got < pending) {
		/* no progress at all is what rescue looks for */
		r->stuck_err = got > 0 ? 0 : (got < 0 ? got : -EAGAIN);
		return got < 0 ? got : -EAGAIN;
	}
	r->stuck_err = 0;
	return 0;
}

/* Move queued ranges into the ring while there is room, then send. */
static int pump_locked(struct ufpi_reclaim *r)
{
	size_t n = 0;
	while (r->qlen && r->nfree) {
		struct ufpi_range *rg = &r->queue[r->qhead];
		uint32_t id = r->free_ids[r->nfree - 1];
		if (ufpi_os_uring_queue_madvise(&r->ring, rg->addr, rg->len,
						id)) {
			/* submission queue full: send it, then go on */
			if (send_locked(r))
				break;
			continue;
		}
		r->nfree--;
		r->inf[id] = *rg;
		r->qhead = (r->qhead + 1) % r->qcap;
		r->qlen--;
		n++;
	}
	if (n) {
		UFPI_ADD(r->ctr, purge_batches, 1);
		UFPI_ADD(r->ctr, purge_ranges, n);
	}
	return send_locked(r);
}

static int enqueue_locked(struct ufpi_reclaim *r, const struct ufpi_range *rg,
			  size_t n)
{
	if (r->qlen + n > r->qcap) {
		size_t cap = r->qcap ? r->qcap : 64;
		while (cap < r->qlen + n)
			cap *= 2;
		struct ufpi_range *q = malloc(cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		for (size_t k = 0; k < r->qlen; k++)
			q[k] = r->queue[(r->qhead + k) % r->qcap];
		free(r->queue);
		r->queue = q;
		r->qcap = cap;
		r->qhead = 0;
	}
	for (size_t k = 0; k < n; k++)
		r->queue[(r->qhead + r->qlen + k) % r->qcap] = rg[k];
	r->qlen += n;
	return 0;
}

static void submit_sync(struct ufpi_reclaim *r, const struct ufpi_range *rg,
			size_t n)
{
	UFPI_ADD(r->ctr, purge_batches, 1);
	UFPI_ADD(r->ctr, purge_ranges, n);
	for (size_t k = 0; k < n; k++) {
		int err = ufpi_os_dontneed(rg[k].addr, rg[k].len);
		if (err)
			err = redo_sync(r, &rg[k], err);
		r->done(r->done_arg, rg[k].tag, rg[k].len, err);
	}
}

static void submit_process_madvise(struct ufpi_reclaim *r,
				   const struct ufpi_range *rg, size_t n)
{
	struct iovec iov[IOV_MAX > 1024 ? 1024 : IOV_MAX];
	const size_t maxv = sizeof(iov) / sizeof(iov[0]);

	for (size_t at = 0; at < n;) {
		size_t m = n - at < maxv ? n - at : maxv;
		size_t want = 0;
		for (size_t k = 0; k < m; k++) {
			iov[k].iov_base = rg[at + k].addr;
			iov[k].iov_len = rg[at + k].len;
			want += rg[at + k].len;
		}
		long got = ufpi_os_process_dontneed(r->pidfd, iov, m);
		UFPI_ADD(r->ctr, purge_batches, 1);
		UFPI_ADD(r->ctr, purge_ranges, m);
		/* the kernel advises the vector in order and reports the
		 * bytes done: whatever lies past that is redone by hand */
		size_t ok = got > 0 ? (size_t)got : 0;
		for (size_t k = 0; k < m; k++) {
			const struct ufpi_range *x = &rg[at + k];
			int err = 0;
			if (ok >= x->len)
				ok -= x->len;
			else {
				err = redo_sync(r, x,
						got < 0 ? (int)got : -EAGAIN);
				ok = 0;
			}
			r->done(r->done_arg, x->tag, x->len, err);
		}
		(void)want;
		at += m;
	}
}

int ufpi_reclaim_submit(struct ufpi_reclaim *r, const struct ufpi_range *rg,
			size_t n)
{
	int err;

	if (!n)
		return 0;
	switch (r->kind) {
	case UFP_RECLAIM_SYNC:
		submit_sync(r, rg, n);
		return 0;
	case UFP_RECLAIM_PROCESS_MADVISE:
		submit_process_madvise(r, rg, n);
		return 0;
	default:
		break;
	}
	int sent = 0;
	pthread_mutex_lock(&r->lock);
	err = enqueue_locked(r, rg, n);
	if (!err)
		sent = pump_locked(r);
	pthread_mutex_unlock(&r->lock);
	/* logged outside the lock: the handler thread takes it to reap */
	if (sent)
		ufpi_logf(r->log, UFP_LOG_DEBUG,
			  "reclaim: io_uring submit refused or short (%s); "
			  "what the kernel did not take is sent again",
			  ufp_strerror(sent));
	if (err) {
		/* cannot even queue: do it here rather than lose it */
		submit_sync(r, rg, n);
		return 0;
	}
	/* a failed or short submit keeps its SQEs in the ring: every reap
	 * sends them again, and ufp_pool_quiesce falls back to madvise
	 * (ufpi_reclaim_rescue) if the kernel keeps refusing */
	return 0;
}

size_t ufpi_reclaim_reap(struct ufpi_reclaim *r)
{
	struct {
		struct ufpi_range rg;
		int res;
	} doneq[64];
	size_t total = 0;

	if (!r || r->kind != UFP_RECLAIM_URING)
		return 0;
	for (;;) {
		size_t n = 0;
		uint64_t id;
		int res;

		pthread_mutex_lock(&r->lock);
		while (n < sizeof(doneq) / sizeof(doneq[0]) &&
		       ufpi_os_uring_peek(&r->ring, &id, &res) == 0) {
			doneq[n].rg = r->inf[id];
			doneq[n].res = res;
			r->free_ids[r->nfree++] = (uint32_t)id;
			n++;
		}
		pump_locked(r);
		pthread_mutex_unlock(&r->lock);
		for (size_t k = 0; k < n; k++) {
			int err = 0;
			if (doneq[k].res < 0)
				err = redo_sync(r, &doneq[k].rg, doneq[k].res);
			r->done(r->done_arg, doneq[k].rg.tag, doneq[k].rg.len,
				err);
		}
		total += n;
		if (n < sizeof(doneq) / sizeof(doneq[0]))
			return total;
	}
}

size_t ufpi_reclaim_inflight(struct ufpi_reclaim *r)
{
	if (!r || r->kind != UFP_RECLAIM_URING)
		return 0;
	pthread_mutex_lock(&r->lock);
	size_t n = r->cap - r->nfree + r->qlen;
	pthread_mutex_unlock(&r->lock);
	return n;
}

/*
 * The kernel will not take our SQEs (submit failing or taking nothing):
 * take back every range it has not seen (SQEs still in the ring are
 * withdrawn, queued ranges leave the queue) and release them with plain
 * madvise here. Ranges the kernel already holds complete as usual.
 * Returns the ranges done here; 0 when the engine is not stuck.
 */
size_t ufpi_reclaim_rescue(struct ufpi_reclaim *r)
{
	struct ufpi_range *take = NULL;
	size_t n = 0;
	int why;

	if (!r || r->kind != UFP_RECLAIM_URING)
		return 0;
	pthread_mutex_lock(&r->lock);
	/* one last try: maybe the kernel takes them now */
	if (!r->stuck_err || !send_locked(r) || !r->stuck_err) {
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	why = r->stuck_err;
	unsigned pending = ufpi_os_uring_sq_pending(&r->ring);
	take = malloc((pending + r->qlen + 1) * sizeof(*take));
	if (!take) {
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	uint64_t *ids = (uint64_t *)malloc((pending + 1) * sizeof(*ids));
	unsigned got = ids ? ufpi_os_uring_unqueue(&r->ring, ids, pending) : 0;
	for (unsigned k = 0; k < got; k++) {
		take[n++] = r->inf[ids[k]];
		r->free_ids[r->nfree++] = (uint32_t)ids[k];
	}
	free(ids);
	for (; r->qlen; r->qlen--) {
		take[n++] = r->queue[r->qhead];
		r->qhead = (r->qhead + 1) % r->qcap;
	}
	r->stuck_err = 0;
	pthread_mutex_unlock(&r->lock);

	ufpi_logf(r->log, UFP_LOG_WARN,
		  "reclaim: io_uring takes no submissions (%s); %zu ranges "
		  "released with plain madvise instead",
		  ufp_strerror(why), n);
	for (size_t k = 0; k < n; k++) {
		int err = redo_sync(r, &take[k], why);
		r->done(r->done_arg, take[k].tag, take[k].len, err);
	}
	free(take);
	return n;
}
