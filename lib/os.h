/* SPDX-License-Identifier: MIT */
/*
 * os.h - floor 1: the syscall boundary (os.c), with its fault injection.
 */
#ifndef UFPI_OS_H
#define UFPI_OS_H

#include "base.h"

/* ---- floor 1: the syscall boundary (os.c) ------------------------------ */
/*
 * Every mmap/mprotect/madvise/mincore/io_uring call of lib/ goes through
 * here and returns 0 (or a count) or -errno, with errno preserved. In
 * builds with UFP_FAULT_INJECTION each can be made to fail on its Nth use.
 */
enum ufpi_fi_op {
	UFPI_FI_MMAP,
	UFPI_FI_MPROTECT,
	UFPI_FI_MADVISE,
	UFPI_FI_URING_INIT,
	UFPI_FI_URING_CQE,
	UFPI_FI_UFFDIO_COPY,
	UFPI_FI_UFFDIO_REGISTER,
	UFPI_FI_USERFAULTFD,
	UFPI_FI_UFFDIO_CONTINUE,
	UFPI_FI_URING_SUBMIT,	    /* io_uring_submit fails, nothing sent */
	UFPI_FI_URING_SUBMIT_SHORT, /* the kernel takes one SQE only (the
				       armed errno is not used) */
	UFPI_FI_URING_PROBE,   /* io_uring_get_probe returns NULL (the armed
				errno is left in errno, stale) */
	UFPI_FI_RESET_SCANNED, /* not a call: the point of a reset after its
				  scan, before the slot leaves LIVE, where
				  a test's hook runs (the result is unused) */
	UFPI_FI_NOPS
};

/* Arm op to fail with -err on its nth use from now (n >= 1); n 0 disarms.
 * Returns -ENOTSUP when built without UFP_FAULT_INJECTION. */
int ufpi_fi_arm(enum ufpi_fi_op op, unsigned nth, int err);
/* The same, but every use from the nth on fails, until ufpi_fi_reset. */
int ufpi_fi_arm_sticky(enum ufpi_fi_op op, unsigned nth, int err);
/* Call fn(op, arg) in the failing thread just before an injected failure
 * is returned (tests use it to run something inside a failing call);
 * cleared by ufpi_fi_reset. A no-op without UFP_FAULT_INJECTION. */
void ufpi_fi_set_hook(void (*fn)(enum ufpi_fi_op op, void *arg), void *arg);
void ufpi_fi_reset(void);
#ifdef UFP_FAULT_INJECTION
int ufpi_fi_hit(enum ufpi_fi_op op); /* 0, or the armed -errno */
#else
static inline int ufpi_fi_hit(enum ufpi_fi_op op)
{
	(void)op;
	return 0;
}
#endif

size_t ufpi_page_size(void);
uint64_t ufpi_now_ns(void); /* CLOCK_MONOTONIC */
void ufpi_sleep_ns(uint64_t ns);
int ufpi_os_reserve(size_t len, void **out);  /* PROT_NONE, NORESERVE */
int ufpi_os_map_anon(size_t len, void **out); /* RW, private anon */
int ufpi_os_unmap(void *addr, size_t len);
int ufpi_os_protect(void *addr, size_t len, int prot);
int ufpi_os_dontneed(void *addr, size_t len);
int ufpi_os_dontfork(void *addr, size_t len);
int ufpi_os_mincore(void *addr, size_t len, unsigned char *vec);
int ufpi_os_pagemap_open(void); /* fd of /proc/self/pagemap */
int ufpi_os_close(int fd);
int ufpi_os_eventfd(int *out);
int ufpi_os_eventfd_signal(int fd);
int ufpi_os_eventfd_drain(int fd);
/* The one PAGEMAP_SCAN walker: fn gets every run of [addr, addr+len)
 * that matches q (the kernel's category_mask / _inverted / _anyof_mask),
 * with the q->ret categories, until the range is covered; a non-zero
 * return stops the walk and is returned. */
struct ufpi_pm_query {
	uint64_t mask, inverted, anyof, ret;
};
typedef int (*ufpi_pm_fn)(void *arg, uint64_t start, uint64_t end,
			  uint64_t categories);
int ufpi_os_pagemap_scan(int fd, void *addr, size_t len,
			 const struct ufpi_pm_query *q, ufpi_pm_fn fn,
			 void *arg);
/* Bytes resident in [addr, addr+len): PAGEMAP_SCAN (present, not the zero
 * page) when pagemap_fd >= 0 and the kernel has it, else mincore. */
int ufpi_os_resident(int pagemap_fd, void *addr, size_t len, uint64_t *out);
/* The same split into anonymous (private) and file-backed (shared page
 * cache) bytes. Without PAGEMAP_SCAN everything counts as private. */
int ufpi_os_resident_split(int pagemap_fd, void *addr, size_t len,
			   uint64_t *private_bytes, uint64_t *shared_bytes);
int ufpi_os_max_map_count(uint64_t *max, uint64_t *used);
int ufpi_os_rlimit_as(uint64_t *limit); /* UINT64_MAX when unlimited */
int ufpi_os_pidfd_self(int *out);
int ufpi_os_tgkill(uint32_t tid, int sig); /* a thread of this process */
/* process_madvise(MADV_DONTNEED) of up to n ranges; returns bytes or -errno */
long ufpi_os_process_dontneed(int pidfd, const struct iovec *iov, size_t n);
/* MADV_DONTNEED of n ranges: one process_madvise call when pidfd >= 0,
 * what it did not do (or everything, pidfd < 0) with madvise. */
int ufpi_os_dontneed_vec(int pidfd, const struct iovec *iov, size_t n);

int ufpi_os_memfd_image(const char *name, size_t len, int *out);
int ufpi_os_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
int ufpi_os_seal(int fd);
int ufpi_os_map_fixed_file(void *addr, size_t len, int fd);
int ufpi_os_map_fixed_none(void *addr, size_t len);
int ufpi_os_map_file_ro(int fd, size_t len, void **out);

struct io_uring;
int ufpi_os_uring_init(unsigned entries, struct io_uring *ring);
void ufpi_os_uring_exit(struct io_uring *ring);
int ufpi_os_uring_has_madvise(void); /* 1, 0, or -errno */
int ufpi_os_uring_register_eventfd(struct io_uring *ring, int efd);
/* Queue MADV_DONTNEED of [addr, addr+len) (len < 4 GiB); -EBUSY if the
 * submission queue is full. */
int ufpi_os_uring_queue_madvise(struct io_uring *ring, void *addr, size_t len,
				uint64_t user_data);
/* One io_uring_enter for every SQE queued and not yet taken by the
 * kernel: returns how many it took (may be fewer: a short submit leaves
 * the rest in the ring for the next call), or -errno. */
int ufpi_os_uring_submit(struct io_uring *ring);
/* SQEs queued and not yet taken by the kernel. */
unsigned ufpi_os_uring_sq_pending(const struct io_uring *ring);
/* Withdraw them all (the kernel never sees them); their user_data go to
 * ids. Returns how many. Not with SQPOLL. */
unsigned ufpi_os_uring_unqueue(struct io_uring *ring, uint64_t *ids,
			       unsigned max);
/* io_uring_enter calls made by ufpi_os_uring_submit in this process
 * (tests: a batch must be one enter, not one per range). */
uint64_t ufpi_os_uring_enters(void);
/* Pop one completion: 0 with its user_data and result, or -EAGAIN. */
int ufpi_os_uring_peek(struct io_uring *ring, uint64_t *user_data, int *res);

#endif /* UFPI_OS_H */
