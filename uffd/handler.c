/* SPDX-License-Identifier: MIT */
/*
 * handler.c - the userfaultfd handler thread(s).
 *
 * Thread k polls uffd k (slots i with i % nuffd == k), a shutdown eventfd,
 * its prefetch doorbell and, for thread 0, the reclaim engine's completion
 * eventfd. A fault is located by arithmetic (slot = offset / slot_bytes)
 * and served under that slot's lock, the lock every state change takes:
 * a page of module A can never land in a slot that was meanwhile handed to
 * module B.
 *
 * Serving a fault fills a fault-around window through uffd/fill.c (the
 * faulting page's run first, the rest best-effort), all with DONTWAKE,
 * then one UFFDIO_WAKE. The window starts at window_min, doubles while
 * faults in a slot arrive in sequence and halves on faults that do not,
 * like file readahead, down to window_floor (one page while a cold start
 * learns its working set). Between rounds of faults the thread maps
 * prefetch work one step at a time (uffd/prefetch.c).
 *
 * The handler never touches pool memory and never waits on a lock that a
 * faulting thread may hold while it faults: either would deadlock; for the
 * same reason its log lines wait for an embedder thread. A fault in a slot
 * with no live memory is poisoned (SIGBUS), or with no UFFDIO_POISON
 * (< 6.6) the page is made PROT_NONE (SIGSEGV), or, if that fails too, the
 * thread is sent SIGBUS: the faulting thread never hangs.
 */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fill.h"
#include "handler.h"
#include "uffd.h"

struct handler_thread {
	struct ufpi_handler *h;
	unsigned k;
	pthread_t tid;
	bool started;
};

struct ufpi_handler {
	struct ufpi_slots *s;
	int stop_efd;
	int reclaim_efd;
	ufpi_reap_fn reap;
	void *reap_arg;
	unsigned n;
	struct handler_thread th[UFPI_MAX_HANDLERS];
};

static void poison_locked(struct ufpi_slots *s, uint32_t i, int fd,
			  unsigned char *page_addr, uint32_t tid);

/* The runtime's header before a memory's base holds no image: a zero page,
 * or for a write a private page of zeros, whatever the slot's state (each
 * prepare zeroes the header, so nothing of an earlier memory is there). */
static void prefix_fault(struct ufpi_slots *s, uint32_t i, int fd,
			 unsigned char *fault, uint32_t tid, bool write)
{
	const size_t page = ufpi_page_size();
	struct ufpi_page_src src;
	unsigned char *stop;

	ufpi_slot_header_source_locked(s, i, &src);
	uint64_t p = (uint64_t)(fault - src.base) / page;
	int err = ufpi_fill_pages(s, &src, p, p + 1,
				  write ? UFPI_FILL_WRITE : 0, &stop, NULL);
	if (err) {
		UFPI_ADD(s->ctr, fault_errors, 1);
		poison_locked(s, i, fd, fault, tid);
		return;
	}
	ufpi_uffd_wake(fd, fault, page);
}

/*
 * Fill the window [start, end) of slot i for a fault at offset `in`: the
 * faulting page's run first; the rest of the window is best-effort (an
 * error on a page the instance did not ask for, a transient ENOMEM, must
 * not cost it its life). Returns the faulting page's error, or 0.
 */
static int fill_window(struct ufpi_slots *s, uint32_t i,
		       const struct ufpi_page_src *src, uint64_t in,
		       uint64_t start, uint64_t end, bool write,
		       uint64_t *filled)
{
	const size_t page = ufpi_page_size();
	unsigned char *fault = src->base + in - in % page;
	uint64_t fp = in / page, startp = start / page, endp = end / page;
	unsigned char *stop = NULL, *rstop;
	uint64_t fq = ufpi_fill_run_end(src, fp, endp);
	int err = ufpi_fill_pages(s, src, fp, fq, write ? UFPI_FILL_WRITE : 0,
				  &stop, filled);
	int rest = ufpi_fill_pages(s, src, startp, fp, 0, &rstop, filled);
	int rest2 = ufpi_fill_pages(s, src, fq, endp, 0, &rstop, filled);
	rest = rest ? rest : rest2;
	if (unlikely(err && stop != fault)) {
		rest = err; /* the faulting page itself was filled */
		err = 0;
	}
	if (unlikely(rest)) {
		UFPI_ADD(s->ctr, fault_errors, 1);
		ufpi_logf(s->log, UFP_LOG_DEBUG,
			  "handler: slot %u: part of the window around "
			  "offset %llu not filled: %s",
			  i, (unsigned long long)in, ufp_strerror(rest));
	}
	return err;
}

void ufpi_handler_fault(struct ufpi_slots *s, int fd, uint64_t addr,
			uint32_t tid, bool write)
{
	const size_t page = ufpi_page_size();
	unsigned char *fault =
		(unsigned char *)(uintptr_t)(addr & ~(uint64_t)(page - 1));
	uint64_t off = (uint64_t)(fault - s->start);

	UFPI_ADD(s->ctr, faults, 1);
	if (unlikely(fault < s->start ||
		     off >= (uint64_t)s->n * s->slot_bytes)) {
		/* not ours: registered ranges are exactly the slots */
		UFPI_ADD(s->ctr, fault_errors, 1);
		ufpi_uffd_wake(fd, fault, page);
		return;
	}
	uint32_t i = (uint32_t)(off / s->slot_bytes);
	uint64_t in = off % s->slot_bytes;

	ufpi_slot_lock(s, i);
	if (unlikely(in < s->prefix)) {
		prefix_fault(s, i, fd, fault, tid, write);
		goto out;
	}
	in -= s->prefix;
	uint64_t start, end;
	if (unlikely(!ufpi_slot_fault_window_locked(s, i, in, &start, &end))) {
		UFPI_ADD(s->ctr, poisoned_faults, 1);
		poison_locked(s, i, fd, fault, tid);
		goto out;
	}
	UFPI_ADD(s->ctr, windows, 1);
	struct ufpi_page_src src;
	ufpi_slot_source_locked(s, i, &src);
	uint64_t filled = 0;
	int err = fill_window(s, i, &src, in, start, end, write, &filled);
	ufpi_slot_filled_locked(s, i, filled);
	if (unlikely(err)) {
		UFPI_ADD(s->ctr, fault_errors, 1);
		ufpi_logf(s->log, UFP_LOG_ERROR,
			  "handler: slot %u offset %llu: fill failed: %s", i,
			  (unsigned long long)in, ufp_strerror(err));
		/* never leave the faulting thread hanging, nor faulting
		 * again forever: it gets SIGBUS (poison) or SIGSEGV
		 * (PROT_NONE) instead */
		poison_locked(s, i, fd, fault, tid);
	}
	if (unlikely(ufpi_uffd_wake(fd, src.base + start, end - start))) {
		/* never leave the faulting thread asleep */
		UFPI_ADD(s->ctr, fault_errors, 1);
		ufpi_uffd_wake(fd, fault, page);
	}
out:
	ufpi_slot_unlock(s, i);
}

/*
 * A fault that must not be served: the thread gets SIGBUS from a poison
 * marker (UFFDIO_POISON, 6.6), else SIGSEGV from PROT_NONE. If neither
 * can be set up, it is sent SIGBUS directly (the thread id comes with
 * UFFD_FEATURE_THREAD_ID): woken on an empty page it would only fault
 * again, for ever.
 */
static void poison_locked(struct ufpi_slots *s, uint32_t i, int fd,
			  unsigned char *page_addr, uint32_t tid)
{
	const size_t page = ufpi_page_size();
	int err;

	ufpi_slot_poisoned_locked(s, i, false);
	if (s->uffd_poison) {
		/* wakes the faulting thread, which then gets SIGBUS */
		err = ufpi_uffd_poison(fd, page_addr, page);
		if (!err || err == -EEXIST)
			return;
	}
	ufpi_slot_poisoned_locked(s, i, true);
	err = ufpi_os_protect(page_addr, page, PROT_NONE);
	if (unlikely(err)) {
		UFPI_ADD(s->ctr, fault_errors, 1);
		ufpi_logf(s->log, UFP_LOG_ERROR,
			  "handler: cannot poison %p (%s): sending SIGBUS to "
			  "thread %u",
			  (void *)page_addr, ufp_strerror(err), tid);
		if (tid)
			ufpi_os_tgkill(tid, SIGBUS);
	}
	ufpi_uffd_wake(fd, page_addr, page);
}

static void drain_faults(struct ufpi_slots *s, int fd)
{
	struct uffd_msg msg[64];

	for (;;) {
		ssize_t n = read(fd, msg, sizeof(msg));
		if (n <= 0)
			return; /* EAGAIN: drained; EINTR: poll again */
		for (size_t k = 0; k < (size_t)n / sizeof(msg[0]); k++)
			if (msg[k].event == UFFD_EVENT_PAGEFAULT)
				ufpi_handler_fault(
					s, fd, msg[k].arg.pagefault.address,
					msg[k].arg.pagefault.feat.ptid,
					msg[k].arg.pagefault.flags &
						UFFD_PAGEFAULT_FLAG_WRITE);
	}
}

/* Count every failure of the thread's own loop; log the first. */
static void handler_trouble(struct ufpi_handler *h, bool *said,
			    const char *what, int err)
{
	UFPI_ADD(h->s->ctr, fault_errors, 1);
	if (*said)
		return;
	*said = true;
	ufpi_logf(h->s->log, UFP_LOG_ERROR, "handler: %s failed: %s", what,
		  ufp_strerror(err));
}

/*
 * Thread k: faults first, then purge completions (thread 0), then one step
 * of prefetch work (poll with no timeout between steps, so a fault never
 * waits behind more than one step, and a stream of faults does not starve
 * the prefetch).
 */
static void *handler_main(void *arg)
{
	struct handler_thread *t = arg;
	struct ufpi_handler *h = t->h;
	struct ufpi_slots *s = h->s;
	int fd = s->uffd[t->k];
	struct pollfd pfd[4] = {
		{.fd = fd, .events = POLLIN},
		{.fd = h->stop_efd, .events = POLLIN},
		{.fd = t->k == 0 ? h->reclaim_efd : -1, .events = POLLIN},
		{.fd = s->wake_efd[t->k], .events = POLLIN},
	};
	bool said = false, work = false;
	uint32_t cursor = 0;

	/* the embedder's log callback may touch pool memory: it runs on
	 * the embedder's threads (ufpi_log_flush), never here */
	ufpi_log_defer_thread();

	for (;;) {
		int n = poll(pfd, 4, work ? 0 : -1);
		if (unlikely(n < 0)) {
			if (errno == EINTR)
				continue;
			/* ENOMEM and the like: no busy loop while the
			 * kernel recovers */
			handler_trouble(h, &said, "poll", -errno);
			ufpi_sleep_ns(1000000);
			continue;
		}
		if (pfd[1].revents)
			break;
		if (unlikely(pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL))) {
			/* the uffd is broken for good: stop polling it
			 * rather than spin; a thread that faults now is
			 * not woken, which the log says */
			handler_trouble(h, &said, "userfaultfd", -EIO);
			pfd[0].fd = -1;
		} else if (pfd[0].revents) {
			drain_faults(s, fd);
		}
		if (pfd[2].revents) {
			ufpi_os_eventfd_drain(h->reclaim_efd);
			h->reap(h->reap_arg);
		}
		if (pfd[3].revents) {
			ufpi_os_eventfd_drain(pfd[3].fd);
			work = true;
		}
		/* the faults that were waiting are served: one step */
		if (work)
			work = ufpi_slot_prefetch_step(s, t->k, &cursor);
	}
	return NULL;
}

int ufpi_handler_start(struct ufpi_slots *s, int reclaim_efd, ufpi_reap_fn reap,
		       void *reap_arg, struct ufpi_handler **out)
{
	struct ufpi_handler *h = calloc(1, sizeof(*h));
	sigset_t all, old;
	int err;

	if (!h)
		return -ENOMEM;
	h->s = s;
	h->n = s->nuffd;
	h->reclaim_efd = reap ? reclaim_efd : -1;
	h->reap = reap;
	h->reap_arg = reap_arg;
	err = ufpi_os_eventfd(&h->stop_efd);
	if (err) {
		free(h);
		return err;
	}
	for (unsigned k = 0; k < h->n && s->prefetch; k++) {
		err = ufpi_os_eventfd(&s->wake_efd[k]);
		if (err) {
			ufpi_handler_stop(h);
			return err;
		}
	}
	/* the embedder's signals are not ours to receive */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned k = 0; k < h->n; k++) {
		h->th[k].h = h;
		h->th[k].k = k;
		err = -pthread_create(&h->th[k].tid, NULL, handler_main,
				      &h->th[k]);
		if (err)
			break;
		h->th[k].started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		ufpi_handler_stop(h);
		return err;
	}
	*out = h;
	return 0;
}

void ufpi_handler_stop(struct ufpi_handler *h)
{
	if (!h)
		return;
	ufpi_os_eventfd_signal(h->stop_efd);
	for (unsigned k = 0; k < h->n; k++)
		if (h->th[k].started)
			pthread_join(h->th[k].tid, NULL);
	ufpi_os_close(h->stop_efd);
	for (unsigned k = 0; k < h->n; k++) {
		if (h->s->wake_efd[k] >= 0)
			ufpi_os_close(h->s->wake_efd[k]);
		h->s->wake_efd[k] = -1;
	}
	free(h);
}
