/* SPDX-License-Identifier: MIT */
/*
 * os.c - the syscall boundary of lib/: every mmap, mprotect, madvise,
 * mincore, pagemap and io_uring setup call goes through here.
 *
 * Each function returns 0 (or a count) or -errno and leaves errno as it
 * found it, so callers never have to think about errno. In builds with
 * UFP_FAULT_INJECTION, ufpi_fi_arm() makes a chosen operation fail with a
 * chosen errno on its Nth use, which is how tests reach the error paths.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "os.h"
#include "kernel_uapi.h"

/* ---- fault injection ---------------------------------------------------- */

#ifdef UFP_FAULT_INJECTION
static struct {
	_Atomic unsigned countdown;
	_Atomic int err;
	_Atomic bool sticky; /* keep failing once reached */
} fi[UFPI_FI_NOPS];
static void (*_Atomic fi_hook)(enum ufpi_fi_op, void *);
static void *_Atomic fi_hook_arg;

int ufpi_fi_hit(enum ufpi_fi_op op)
{
	unsigned n =
		atomic_load_explicit(&fi[op].countdown, memory_order_relaxed);
	while (n) {
		if (n == 1 && atomic_load(&fi[op].sticky))
			break;
		if (atomic_compare_exchange_weak(&fi[op].countdown, &n,
						 n - 1)) {
			if (n != 1)
				return 0;
			break;
		}
	}
	if (n != 1)
		return 0;
	void (*hook)(enum ufpi_fi_op, void *) = atomic_load(&fi_hook);
	if (hook)
		hook(op, atomic_load(&fi_hook_arg));
	return atomic_load(&fi[op].err);
}

static int fi_arm(enum ufpi_fi_op op, unsigned nth, int err, bool sticky)
{
	if ((unsigned)op >= UFPI_FI_NOPS || err >= 0)
		return -EINVAL;
	atomic_store(&fi[op].err, err);
	atomic_store(&fi[op].sticky, sticky);
	atomic_store(&fi[op].countdown, nth);
	return 0;
}

int ufpi_fi_arm(enum ufpi_fi_op op, unsigned nth, int err)
{
	return fi_arm(op, nth, err, false);
}

int ufpi_fi_arm_sticky(enum ufpi_fi_op op, unsigned nth, int err)
{
	return fi_arm(op, nth, err, true);
}

void ufpi_fi_set_hook(void (*fn)(enum ufpi_fi_op op, void *arg), void *arg)
{
	atomic_store(&fi_hook_arg, arg);
	atomic_store(&fi_hook, fn);
}

void ufpi_fi_reset(void)
{
	for (int i = 0; i < UFPI_FI_NOPS; i++) {
		atomic_store(&fi[i].countdown, 0);
		atomic_store(&fi[i].sticky, false);
	}
	atomic_store(&fi_hook, NULL);
}
#else
int ufpi_fi_arm(enum ufpi_fi_op op, unsigned nth, int err)
{
	(void)op, (void)nth, (void)err;
	return -ENOTSUP;
}

int ufpi_fi_arm_sticky(enum ufpi_fi_op op, unsigned nth, int err)
{
	(void)op, (void)nth, (void)err;
	return -ENOTSUP;
}

void ufpi_fi_set_hook(void (*fn)(enum ufpi_fi_op op, void *arg), void *arg)
{
	(void)fn, (void)arg;
}

void ufpi_fi_reset(void)
{
}
#endif

/* Run `expr` (a syscall returning -1 on error) and turn it into -errno,
 * preserving errno. */
#define SYSCALL_RET(expr)               \
	({                              \
		int saved_ = errno;     \
		long r_ = (long)(expr); \
		if (r_ == -1)           \
			r_ = -errno;    \
		errno = saved_;         \
		r_;                     \
	})

/* Threads may race to initialise it: every one computes the same value,
 * and relaxed atomics make that race well defined. */
size_t ufpi_page_size(void)
{
	static _Atomic size_t page;
	size_t v = atomic_load_explicit(&page, memory_order_relaxed);
	if (unlikely(!v)) {
		long p = sysconf(_SC_PAGESIZE);
		v = p > 0 ? (size_t)p : 4096;
		atomic_store_explicit(&page, v, memory_order_relaxed);
	}
	return v;
}

uint64_t ufpi_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Every mmap of lib/ goes through here, behind the MMAP injection point.
 * out may be NULL (MAP_FIXED: the address is known). */
static int map(void *addr, size_t len, int prot, int flags, int fd, void **out)
{
	int err = ufpi_fi_hit(UFPI_FI_MMAP);
	if (err)
		return err;
	int saved = errno;
	void *p = mmap(addr, len, prot, flags, fd, 0);
	if (p == MAP_FAILED)
		err = -errno;
	else if (out)
		*out = p;
	errno = saved;
	return err;
}

/* Replace [addr, addr+len): the new mapping is kept out of fork children,
 * as the reservation it replaces is. */
static int map_fixed(void *addr, size_t len, int prot, int flags, int fd)
{
	int err = map(addr, len, prot, flags | MAP_FIXED, fd, NULL);
	if (!err)
		ufpi_os_dontfork(addr, len);
	return err;
}

int ufpi_os_reserve(size_t len, void **out)
{
	return map(NULL, len, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, out);
}

int ufpi_os_map_anon(size_t len, void **out)
{
	return map(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, out);
}

int ufpi_os_unmap(void *addr, size_t len)
{
	if (!len)
		return 0;
	return (int)SYSCALL_RET(munmap(addr, len));
}

/* mprotect and madvise alike: a range and an int, each behind its own
 * injection point; an empty range is no call. */
static int range_call(enum ufpi_fi_op op, int (*call)(void *, size_t, int),
		      void *addr, size_t len, int arg)
{
	if (!len)
		return 0;
	int err = ufpi_fi_hit(op);
	if (err)
		return err;
	return (int)SYSCALL_RET(call(addr, len, arg));
}

int ufpi_os_protect(void *addr, size_t len, int prot)
{
	return range_call(UFPI_FI_MPROTECT, mprotect, addr, len, prot);
}

int ufpi_os_dontneed(void *addr, size_t len)
{
	return range_call(UFPI_FI_MADVISE, madvise, addr, len, MADV_DONTNEED);
}

int ufpi_os_dontfork(void *addr, size_t len)
{
	return (int)SYSCALL_RET(madvise(addr, len, MADV_DONTFORK));
}

int ufpi_os_mincore(void *addr, size_t len, unsigned char *vec)
{
	return (int)SYSCALL_RET(mincore(addr, len, vec));
}

int ufpi_os_pagemap_open(void)
{
	return (int)SYSCALL_RET(
		open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
}

int ufpi_os_close(int fd)
{
	if (fd < 0)
		return 0;
	return (int)SYSCALL_RET(close(fd));
}

int ufpi_os_eventfd(int *out)
{
	long fd = SYSCALL_RET(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	if (fd < 0)
		return (int)fd;
	*out = (int)fd;
	return 0;
}

int ufpi_os_eventfd_signal(int fd)
{
	uint64_t one = 1;
	long r = SYSCALL_RET(write(fd, &one, sizeof(one)));
	/* EAGAIN: the counter is saturated, the reader will wake anyway */
	return r < 0 && r != -EAGAIN ? (int)r : 0;
}

int ufpi_os_eventfd_drain(int fd)
{
	uint64_t v;
	long r = SYSCALL_RET(read(fd, &v, sizeof(v)));
	return r < 0 && r != -EAGAIN ? (int)r : 0;
}

int ufpi_os_pagemap_scan(int fd, void *addr, size_t len,
			 const struct ufpi_pm_query *q, ufpi_pm_fn fn,
			 void *arg)
{
	struct page_region regs[128];
	uint64_t start = (uint64_t)(uintptr_t)addr, end = start + len;
	int saved = errno;

	/* PAGEMAP_SCAN walks page tables and reports runs, so a sparse
	 * terabyte reservation costs what is populated, not what is
	 * reserved; a full vec ends the call early: go on from walk_end
	 * until the whole range is covered */
	while (start < end) {
		struct pm_scan_arg a = {
			.size = sizeof(a),
			.start = start,
			.end = end,
			.vec = (uint64_t)(uintptr_t)regs,
			.vec_len = sizeof(regs) / sizeof(regs[0]),
			.category_mask = q->mask,
			.category_inverted = q->inverted,
			.category_anyof_mask = q->anyof,
			.return_mask = q->ret,
		};
		int n = ioctl(fd, PAGEMAP_SCAN, &a);
		if (n < 0) {
			int err = -errno;
			errno = saved;
			return err;
		}
		for (int k = 0; k < n; k++) {
			int err = fn(arg, regs[k].start, regs[k].end,
				     regs[k].categories);
			if (err)
				return err;
		}
		if (a.walk_end <= start)
			break;
		start = a.walk_end;
	}
	return 0;
}

struct split {
	uint64_t priv, shared;
};

static int add_split(void *arg, uint64_t start, uint64_t end, uint64_t cats)
{
	struct split *sp = arg;
	if (cats & PAGE_IS_FILE)
		sp->shared += end - start;
	else
		sp->priv += end - start;
	return 0;
}

/* Present pages other than the shared zero page, split by file-backed. */
static int resident_scan(int fd, uint64_t start, uint64_t end,
			 uint64_t *private_bytes, uint64_t *shared_bytes)
{
	const struct ufpi_pm_query q = {
		.mask = PAGE_IS_PRESENT | PAGE_IS_PFNZERO,
		.inverted = PAGE_IS_PFNZERO,
		.ret = PAGE_IS_PRESENT | PAGE_IS_FILE,
	};
	struct split sp = {0, 0};
	int err = ufpi_os_pagemap_scan(fd, (void *)(uintptr_t)start,
				       end - start, &q, add_split, &sp);
	if (!err) {
		*private_bytes = sp.priv;
		*shared_bytes = sp.shared;
	}
	return err;
}

static int resident_mincore(unsigned char *addr, size_t len, uint64_t *out)
{
	const size_t page = ufpi_page_size();
	const size_t chunk_pages = 1u << 16;
	unsigned char *vec = malloc(chunk_pages);
	uint64_t total = 0;

	if (!vec)
		return -ENOMEM;
	for (size_t off = 0; off < len; off += chunk_pages * page) {
		size_t n = len - off < chunk_pages * page ? len - off
							  : chunk_pages * page;
		int err = ufpi_os_mincore(addr + off, n, vec);
		if (err) {
			free(vec);
			return err;
		}
		for (size_t i = 0; i < (n + page - 1) / page; i++)
			total += (vec[i] & 1) ? page : 0;
	}
	free(vec);
	*out = total;
	return 0;
}

int ufpi_os_resident_split(int pagemap_fd, void *addr, size_t len,
			   uint64_t *private_bytes, uint64_t *shared_bytes)
{
	if (pagemap_fd >= 0) {
		int err = resident_scan(pagemap_fd, (uint64_t)(uintptr_t)addr,
					(uint64_t)(uintptr_t)addr + len,
					private_bytes, shared_bytes);
		if (err != -ENOTTY && err != -EINVAL)
			return err;
	}
	*shared_bytes = 0;
	return resident_mincore(addr, len, private_bytes);
}

int ufpi_os_resident(int pagemap_fd, void *addr, size_t len, uint64_t *out)
{
	uint64_t priv, shared;
	int err = ufpi_os_resident_split(pagemap_fd, addr, len, &priv, &shared);
	if (!err)
		*out = priv + shared;
	return err;
}

static int read_u64_file(const char *path, uint64_t *out)
{
	int saved = errno;
	FILE *f = fopen(path, "re");
	unsigned long long v;
	int ok;

	if (!f) {
		int err = -errno;
		errno = saved;
		return err;
	}
	ok = fscanf(f, "%llu", &v) == 1;
	fclose(f);
	errno = saved;
	if (!ok)
		return -EIO;
	*out = v;
	return 0;
}

int ufpi_os_max_map_count(uint64_t *max, uint64_t *used)
{
	int saved = errno;
	int err = read_u64_file("/proc/sys/vm/max_map_count", max);
	if (err)
		return err;
	FILE *f = fopen("/proc/self/maps", "re");
	uint64_t n = 0;
	int c;
	if (!f) {
		err = -errno;
		errno = saved;
		return err;
	}
	while ((c = getc_unlocked(f)) != EOF)
		n += c == '\n';
	fclose(f);
	errno = saved;
	*used = n;
	return 0;
}

int ufpi_os_rlimit_as(uint64_t *limit)
{
	struct rlimit rl;
	long r = SYSCALL_RET(getrlimit(RLIMIT_AS, &rl));
	if (r < 0)
		return (int)r;
	*limit = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
	return 0;
}

void ufpi_sleep_ns(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
			      .tv_nsec = (long)(ns % 1000000000u)};
	int saved = errno;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	errno = saved;
}

int ufpi_os_tgkill(uint32_t tid, int sig)
{
	return (int)SYSCALL_RET(
		syscall(SYS_tgkill, (int)getpid(), (int)tid, sig));
}

int ufpi_os_pidfd_self(int *out)
{
	long fd = SYSCALL_RET(syscall(SYS_pidfd_open, getpid(), 0));
	if (fd < 0)
		return (int)fd;
	if (fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0) {
		/* cannot happen on a fresh fd; keep going either way */
	}
	*out = (int)fd;
	return 0;
}

long ufpi_os_process_dontneed(int pidfd, const struct iovec *iov, size_t n)
{
	int err = ufpi_fi_hit(UFPI_FI_MADVISE);
	if (err)
		return err;
	return SYSCALL_RET(
		syscall(SYS_process_madvise, pidfd, iov, n, MADV_DONTNEED, 0));
}

int ufpi_os_dontneed_vec(int pidfd, const struct iovec *iov, size_t n)
{
	size_t done = 0, k = 0;
	if (!n)
		return 0;
	if (pidfd >= 0) {
		long r = ufpi_os_process_dontneed(pidfd, iov, n);
		done = r > 0 ? (size_t)r : 0;
	}
	/* the kernel advises the vector in order: skip what it did */
	for (; k < n && done >= iov[k].iov_len; k++)
		done -= iov[k].iov_len;
	for (; k < n; k++) {
		int err = ufpi_os_dontneed((char *)iov[k].iov_base + done,
					   iov[k].iov_len - done);
		if (err)
			return err;
		done = 0;
	}
	return 0;
}

int ufpi_os_uring_init(unsigned entries, struct io_uring *ring)
{
	int err = ufpi_fi_hit(UFPI_FI_URING_INIT);
	if (err)
		return err;
	int saved = errno;
	/* SUBMIT_ALL (5.18): an SQE the kernel rejects does not stop the
	 * submission of the ones behind it. liburing returns -errno. */
	err = io_uring_queue_init(entries, ring, IORING_SETUP_SUBMIT_ALL);
	if (err == -EINVAL)
		err = io_uring_queue_init(entries, ring, 0);
	errno = saved;
	return err;
}

void ufpi_os_uring_exit(struct io_uring *ring)
{
	int saved = errno;
	io_uring_queue_exit(ring);
	errno = saved;
}

int ufpi_os_uring_has_madvise(void)
{
	int saved = errno;
	struct io_uring_probe *p = io_uring_get_probe();
	int r = ufpi_fi_hit(UFPI_FI_URING_PROBE);

	if (r) {
		io_uring_free_probe(p);
		p = NULL;
		errno = -r; /* what a stale errno looks like */
	}

	if (!p) {
		/* liburing 2.3 reports the probe's failure by return value
		 * only (io_uring_get_probe_ring may not set errno): errno
		 * here can be stale from any earlier call. Ask the kernel
		 * directly for the reason. */
		struct io_uring ring;
		r = io_uring_queue_init(1, &ring, 0);
		if (r == 0) {
			io_uring_queue_exit(&ring);
			r = -ENOTSUP; /* a ring, but no opcode probe */
		}
		errno = saved;
		return r;
	}
	r = io_uring_opcode_supported(p, IORING_OP_MADVISE) ? 1 : 0;
	io_uring_free_probe(p);
	errno = saved;
	return r;
}

int ufpi_os_uring_register_eventfd(struct io_uring *ring, int efd)
{
	int saved = errno;
	int r = io_uring_register_eventfd(ring, efd);
	errno = saved;
	return r;
}

/* liburing 2.3's io_uring_prep_madvise stores the length in the 32-bit
 * sqe->len: callers split ranges well below 4 GiB. */
int ufpi_os_uring_queue_madvise(struct io_uring *ring, void *addr, size_t len,
				uint64_t user_data)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_madvise(sqe, addr, (off_t)len, MADV_DONTNEED);
	io_uring_sqe_set_data64(sqe, user_data);
	return 0;
}

static _Atomic uint64_t uring_enters;

uint64_t ufpi_os_uring_enters(void)
{
	return atomic_load_explicit(&uring_enters, memory_order_relaxed);
}

unsigned ufpi_os_uring_sq_pending(const struct io_uring *ring)
{
	return io_uring_sq_ready(ring);
}

/* Withdraw the SQEs the kernel has not taken: without SQPOLL it reads
 * the SQ tail only inside io_uring_enter, so moving the tail back to its
 * head (under the caller's lock) un-queues them. Their user_data go to
 * ids (at most max); returns how many. */
unsigned ufpi_os_uring_unqueue(struct io_uring *ring, uint64_t *ids,
			       unsigned max)
{
	struct io_uring_sq *sq = &ring->sq;
	unsigned head = io_uring_smp_load_acquire(sq->khead);
	unsigned n = 0;
	for (unsigned k = head; k != sq->sqe_tail && n < max; k++)
		ids[n++] = sq->sqes[k & sq->ring_mask].user_data;
	sq->sqe_head = sq->sqe_tail = head;
	io_uring_smp_store_release(sq->ktail, head);
	return n;
}

#ifdef UFP_FAULT_INJECTION
/* What io_uring_submit does, but the kernel is told about one SQE only:
 * a real short submit, the rest stays in the ring (liburing 2.3's
 * __io_uring_flush_sq, then io_uring_enter with to_submit = 1). */
static int submit_one(struct io_uring *ring)
{
	struct io_uring_sq *sq = &ring->sq;
	unsigned tail = sq->sqe_tail;
	if (sq->sqe_head != tail) {
		sq->sqe_head = tail;
		io_uring_smp_store_release(sq->ktail, tail);
	}
	return (int)SYSCALL_RET(
		syscall(__NR_io_uring_enter, ring->ring_fd, 1, 0, 0, NULL, 0));
}
#endif

int ufpi_os_uring_submit(struct io_uring *ring)
{
	int err = ufpi_fi_hit(UFPI_FI_URING_SUBMIT);
	if (err)
		return err;
	atomic_fetch_add_explicit(&uring_enters, 1, memory_order_relaxed);
#ifdef UFP_FAULT_INJECTION
	if (ufpi_fi_hit(UFPI_FI_URING_SUBMIT_SHORT) &&
	    io_uring_sq_ready(ring) > 1)
		return submit_one(ring);
#endif
	int saved = errno;
	int r = io_uring_submit(ring);
	errno = saved;
	return r;
}

int ufpi_os_uring_peek(struct io_uring *ring, uint64_t *user_data, int *res)
{
	struct io_uring_cqe *cqe;
	int saved = errno;
	int r = io_uring_peek_cqe(ring, &cqe);
	errno = saved;
	if (r < 0)
		return r; /* -EAGAIN: nothing completed */
	*user_data = io_uring_cqe_get_data64(cqe);
	*res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	int injected = ufpi_fi_hit(UFPI_FI_URING_CQE);
	if (injected)
		*res = injected;
	return 0;
}

/* ---- memfd images for the COW backend ----------------------------------- */

int ufpi_os_memfd_image(const char *name, size_t len, int *out)
{
	int saved = errno;
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		int err = -errno;
		errno = saved;
		return err;
	}
	if (ftruncate(fd, (off_t)len) < 0) {
		int err = -errno;
		close(fd);
		errno = saved;
		return err;
	}
	*out = fd;
	return 0;
}

int ufpi_os_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	int saved = errno;
	const char *p = buf;
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			int err = -errno;
			if (err == -EINTR)
				continue;
			errno = saved;
			return err;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	errno = saved;
	return 0;
}

/* Sealed: nobody can change the image under the slots that map it. */
int ufpi_os_seal(int fd)
{
	return (int)SYSCALL_RET(fcntl(fd, F_ADD_SEALS,
				      F_SEAL_SHRINK | F_SEAL_GROW |
					      F_SEAL_WRITE | F_SEAL_SEAL));
}

/* Map fd copy-on-write over [addr, addr+len), replacing what was there. */
int ufpi_os_map_fixed_file(void *addr, size_t len, int fd)
{
	return map_fixed(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);
}

/* A read-only shared view of fd (sealed against writes: no writable
 * shared mapping could exist anyway). */
int ufpi_os_map_file_ro(int fd, size_t len, void **out)
{
	return map(NULL, len, PROT_READ, MAP_SHARED, fd, out);
}

/* Replace [addr, addr+len) with fresh PROT_NONE anonymous memory: the
 * old mapping (and its hold on a memfd) is gone. */
int ufpi_os_map_fixed_none(void *addr, size_t len)
{
	if (!len)
		return 0;
	return map_fixed(addr, len, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);
}
