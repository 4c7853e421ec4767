/* SPDX-License-Identifier: MIT */
/*
 * support_model.c - the engine of the randomized model test (model.h).
 *
 * tests/CMakeLists.txt links every tests/support_*.c into every test
 * binary, and bench/soak_model.c includes this file into ufp-bench: so no
 * Criterion, no constructors, nothing global but thread-locals used by the
 * fault handler while a run is in progress.
 *
 * What the reference predicts, and why:
 *  - bytes: a fresh memory is its module's image over [0, initial) and zero
 *    elsewhere; writes (by the CPU or by the kernel through read(2)) stick;
 *    grow exposes zeros; bytes past the accessible size and in the guard
 *    cannot be read (a kernel read of them fails with EFAULT);
 *  - results: every call's return value, including -EAGAIN when every slot
 *    holds a live memory, and the argument errors of the header; no two
 *    live memories share a slot; base = slots_start + slot * slot_bytes;
 *  - -EAGAIN with a slot free is accepted only while a purge may be in
 *    flight (a drop, the free of a dropped module's last memory, or an
 *    idle eviction under max_resident_idle_bytes, with the io_uring engine
 *    where the calling thread only submits; concurrently, with any engine,
 *    while another thread is inside such a call) and must go away after
 *    ufp_pool_quiesce();
 *  - the library logs no error, ufpi_pool_check() passes at checkpoints;
 *  - resident bytes after everything is freed, dropped and quiesced: the
 *    baseline measured before any module existed, plus the pages that
 *    keep_resident_bytes lets slots of image-less memories keep (such slots
 *    are affine to no module, so no purge ever clears them). Those are
 *    modelled per slot (single-threaded runs only): a page written by a
 *    memory with no module stays resident after its free if it lies below
 *    min(keep_resident_bytes, size at free); without dirty tracking every
 *    kept page must lie below that bound again at each free, with dirty
 *    tracking a page kept earlier and not written since stays (it is
 *    clean). With userfaultfd a page that was only read maps the shared
 *    zero page (UFFDIO_ZEROPAGE), which is not resident, so without dirty
 *    tracking the prediction is exact; with it, a read page that held a
 *    uffd-wp marker is filled with a copied page of zeros (which then stays,
 *    clean), and with the COW and COPY backends the kernel's anonymous read
 *    fault decides (this machine's kernel allocates a page rather than map
 *    the zero page): read pages widen the prediction to a range, at least
 *    the kept written pages, at most those plus the touched ones. A memory
 *    of a module on the slot wipes it; an idle eviction may release it (an
 *    idle bound leaves only the upper end).
 *    Then every slot is allocated once more for a fresh empty module (so no
 *    slot may have been lost, and the next allocation is -EAGAIN), which
 *    wipes those pages; after its drop the resident bytes must equal the
 *    baseline exactly.
 *
 * A page fault that kills (SIGSEGV/SIGBUS on an accessible byte) is caught
 * and reported as a failure of the op; a run in which no op completes for
 * STALL_SECONDS is a hang: the watchdog prints what each thread was doing
 * and the fault counters, then aborts.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/ioctl.h>

#include "internal.h"	 /* ufpi_pool_check */
#include "kernel_uapi.h" /* PAGEMAP_SCAN, for per-slot diagnostics */
#include "model.h"

#define WASM_PAGE ((uint64_t)65536)
#define MAX_MODS 6	 /* modules alive at once */
#define LOG_WIDTH 240	 /* one op log line */
#define MT_LOG_TAIL 200	 /* ops printed per thread on a concurrent failure */
#define PIPE_CHUNK 65536 /* never more than the default pipe capacity */
#define STALL_SECONDS 60 /* no op completes for this long: a hang */

/* ---- small utilities ------------------------------------------------- */

static uint64_t mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t below(uint64_t *s, uint64_t n)
{
	return n ? mix(s) % n : 0;
}

static const char *backend_name(ufp_backend b)
{
	static const char *n[] = {"auto", "uffd", "cow", "copy"};
	return (unsigned)b < 4 ? n[b] : "?";
}

static const char *reclaim_name(ufp_reclaim r)
{
	static const char *n[] = {"auto", "uring", "sync", "process_madvise"};
	return (unsigned)r < 4 ? n[r] : "?";
}

static const char *strategy_name(ufp_strategy s)
{
	static const char *n[] = {"next_available", "random", "reuse_affinity",
				  "warm_lru"};
	return (unsigned)s < 4 ? n[s] : "?";
}

void ufpm_params_init(struct ufpm_params *p)
{
	memset(p, 0, sizeof(*p));
	p->backend = UFP_BACKEND_UFFD;
	p->reclaim = UFP_RECLAIM_URING;
	p->strategy = UFP_STRATEGY_REUSE_AFFINITY;
	p->dirty_tracking = UFP_DIRTY_AUTO;
	p->keep_resident_bytes = 0;
	p->slots = 8;
	p->max_memory_bytes = (uint64_t)1 << 20;
	p->guard_bytes = 64 << 10;
	p->seed = 1;
	p->ops = 300;
	p->checkpoint_every = 50;
	p->threads = 1;
}

void ufpm_params_from_seed(struct ufpm_params *p, uint64_t seed,
			   const ufp_backend *backends, size_t nb,
			   const ufp_reclaim *reclaims, size_t nr)
{
	uint64_t s = seed ^ 0x5eed5eed5eedULL;
	static const uint64_t keeps[] = {0, 64 << 10, 256 << 10, 1 << 20};
	static const uint32_t slots[] = {4, 8, 12};

	ufpm_params_init(p);
	p->seed = seed;
	if (nb)
		p->backend = backends[below(&s, nb)];
	if (nr)
		p->reclaim = reclaims[below(&s, nr)];
	p->strategy = (ufp_strategy)below(&s, 4);
	p->dirty_tracking = below(&s, 2) ? UFP_DIRTY_AUTO : UFP_DIRTY_OFF;
	p->keep_resident_bytes = keeps[below(&s, 4)];
	p->slots = slots[below(&s, 3)];
	p->max_memory_bytes = below(&s, 2) ? (uint64_t)1 << 20 : 512 << 10;
	if (p->keep_resident_bytes > p->max_memory_bytes)
		p->keep_resident_bytes = p->max_memory_bytes;
	p->threads = below(&s, 3) ? 1 : 3;
	p->ops = 200 + (uint32_t)below(&s, 1801);
	static const uint64_t windows[] = {0, 64 << 10, 256 << 10};
	p->fault_around_max_bytes = windows[below(&s, 3)];
	static const uint64_t idle[] = {0, 0, 64 << 10, 512 << 10};
	p->max_resident_idle_bytes = idle[below(&s, 4)];
}

int ufpm_describe(const struct ufpm_params *p, char *buf, size_t cap)
{
	char win[32] = "default";
	if (p->fault_around_max_bytes)
		snprintf(win, sizeof(win), "%" PRIu64 "K",
			 p->fault_around_max_bytes >> 10);
	char idle[32] = "";
	if (p->max_resident_idle_bytes)
		snprintf(idle, sizeof(idle), "/idle_max=%" PRIu64 "K",
			 p->max_resident_idle_bytes >> 10);
	return snprintf(
		buf, cap,
		"%s/%s/%s/keep=%" PRIu64 "K/dirty=%s/slots=%u/max=%" PRIu64
		"K/window_max=%s%s/seed=%" PRIu64 "/ops=%u/threads=%u",
		backend_name(p->backend), reclaim_name(p->reclaim),
		strategy_name(p->strategy), p->keep_resident_bytes >> 10,
		p->dirty_tracking == UFP_DIRTY_OFF ? "off" : "auto", p->slots,
		p->max_memory_bytes >> 10, win, idle, p->seed, p->ops,
		p->threads ? p->threads : 1);
}

/* ---- model state ------------------------------------------------------ */

struct mmod {
	int id;
	ufp_module *h;
	uint64_t initial;
	unsigned char *image; /* [0, initial) as the memory must start */
	bool dropped;	      /* (run->lock in concurrent runs) */
	uint32_t live;	      /* memories of it (single-threaded bookkeeping) */
	struct mmod *all_next;
};

struct mmem {
	int id;
	ufp_memory *h;
	struct mmod *mod; /* NULL: no image */
	uint64_t size;
	uint32_t slot;
	unsigned char *base;
	unsigned char *ref;   /* max_memory_bytes; [0, size) meaningful */
	unsigned char *pages; /* per page: PG_READ | PG_WRITTEN by it */
};

/* Per slot, single-threaded runs: pages an image-less memory left
 * resident (see the top of the file). */
struct mslot {
	unsigned char *resid;	 /* per page: kept for sure (written) */
	unsigned char *resid_hi; /* per page: may be kept (touched) */
	bool null_last;		 /* last memory on the slot had no module */
};

#define PG_READ 1
#define PG_WRITTEN 2

struct run;

struct worker {
	struct run *run;
	int tid;
	uint64_t rng;
	struct mmem **mems;
	uint32_t nmems, cap;
	unsigned char *scratch; /* max_memory_bytes */
	/* reference buffers of freed memories, reused: large malloc/free
	 * pairs are mmap/munmap under ASan, and each munmap is a TLB
	 * shootdown (an IPI per CPU on a VM) */
	unsigned char **spare;
	uint32_t nspare;
	int pipefd[2];
	char (*log)[LOG_WIDTH];
	size_t nlog, logcap;
	uint32_t step; /* ops done by this worker */
	struct ufpm_totals tot;
	bool failed;
	bool corrupted; /* the self-test hook fired */
	bool signalled; /* a signal interrupted it: the pool may hold locks */
	char msg[1024];
	pthread_t th;
	sigjmp_buf jb;
	pthread_mutex_t
		cur_lock; /* cur: the op in progress, for the watchdog */
	char cur[LOG_WIDTH];
};

struct run {
	const struct ufpm_params *p;
	ufp_pool *pool;
	size_t page;
	uint64_t max;
	uint64_t maxpages; /* wasm pages */
	size_t slot_bytes;
	ufp_backend backend; /* resolved */
	ufp_reclaim reclaim; /* resolved */
	int dirty;	     /* resolved */
	bool anon;	     /* written pages are the anonymous ones */
	uint64_t baseline;
	bool concurrent;
	bool evicts;	  /* frees may evict idle slots (purge engine) */
	uint32_t mem_cap; /* memories per worker */

	pthread_mutex_t lock; /* the module table and ids */
	struct mmod *mods[MAX_MODS];
	uint32_t nmods;
	struct mmod *all_mods;
	int next_mod_id;
	atomic_int next_mem_id;

	/* single-threaded only */
	struct mslot *slots;
	bool purge_maybe; /* a purge may be in flight (io_uring) */

	/* concurrent: slot -> memory id + 1 (0: free), to catch two live
	 * memories on one slot; -EAGAIN bookkeeping */
	atomic_int *slot_owner;
	atomic_uint_fast64_t purge_events, purge_active;
	atomic_bool stop;

	/* watchdog: a run that makes no progress for STALL_SECONDS is a hang
	 * (a thread stuck in a page fault cannot be unstuck): print what
	 * every thread was doing and the fault counters, then abort */
	atomic_uint_fast64_t progress;
	atomic_bool watch_stop;
	pthread_t watchdog;

	atomic_uintptr_t slots_start; /* base - slot * slot_bytes, first seen */

	/* the library's log: errors are failures, the last lines explain */
	pthread_mutex_t log_lock;
	uint64_t log_errors;
	char log_error[200];   /* the last error */
	char log_last[4][200]; /* the last lines, errors and warnings */
	unsigned log_n;
	struct worker *w;
	uint32_t nw;
};

static void mark(struct worker *w, struct mmem *m, uint64_t off, uint64_t len,
		 unsigned how);

/* ---- failure reporting and the fault handler --------------------------- */

static _Thread_local sigjmp_buf *tl_jb;
static _Thread_local volatile int tl_sig;
static _Thread_local void *volatile tl_addr;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (tl_jb) {
		tl_sig = sig;
		tl_addr = si->si_addr;
		siglongjmp(*tl_jb, 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static int fail(struct worker *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(struct worker *w, const char *fmt, ...)
{
	va_list ap;
	if (w->failed)
		return -1;
	w->failed = true;
	va_start(ap, fmt);
	vsnprintf(w->msg, sizeof(w->msg), fmt, ap);
	va_end(ap);
	if (w->run->concurrent)
		atomic_store(&w->run->stop, true);
	return -1;
}

/* Append a line to the op log (and print it when verbose). */
static void logop(struct worker *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void logop(struct worker *w, const char *fmt, ...)
{
	va_list ap;
	if (w->nlog == w->logcap) {
		size_t cap = w->logcap ? w->logcap * 2 : 256;
		void *n = realloc(w->log, cap * LOG_WIDTH);
		if (!n)
			return;
		w->log = n;
		w->logcap = cap;
	}
	char *line = w->log[w->nlog++];
	int k = w->step == UINT32_MAX
			? snprintf(line, LOG_WIDTH, "t%d end ", w->tid)
			: snprintf(line, LOG_WIDTH, "t%d #%u ", w->tid,
				   w->step + 1);
	va_start(ap, fmt);
	vsnprintf(line + k, LOG_WIDTH - (size_t)k, fmt, ap);
	va_end(ap);
	if (w->run->p->verbose)
		fprintf(stderr, "%s\n", line);
	pthread_mutex_lock(&w->cur_lock);
	memcpy(w->cur, line, LOG_WIDTH);
	pthread_mutex_unlock(&w->cur_lock);
	atomic_fetch_add(&w->run->progress, 1);
}

/* Amend the last log line with the outcome. */
static void logres(struct worker *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void logres(struct worker *w, const char *fmt, ...)
{
	va_list ap;
	if (!w->nlog)
		return;
	char *line = w->log[w->nlog - 1];
	size_t k = strlen(line);
	va_start(ap, fmt);
	vsnprintf(line + k, LOG_WIDTH - k, fmt, ap);
	va_end(ap);
}

static void on_log(void *arg, ufp_log_level level, const char *msg)
{
	struct run *run = arg;
	pthread_mutex_lock(&run->log_lock);
	if (level == UFP_LOG_ERROR) {
		run->log_errors++;
		snprintf(run->log_error, sizeof(run->log_error), "%s", msg);
	}
	snprintf(run->log_last[run->log_n++ % 4], sizeof(run->log_last[0]),
		 "%s: %s", level == UFP_LOG_ERROR ? "error" : "warning", msg);
	pthread_mutex_unlock(&run->log_lock);
	if (run->p->verbose)
		fprintf(stderr, "  library %s: %s\n",
			level == UFP_LOG_ERROR ? "error" : "warning", msg);
}

/* Fail when the library logged an error since the run started. */
static int check_log(struct worker *w)
{
	struct run *run = w->run;
	char last[200] = "";
	pthread_mutex_lock(&run->log_lock);
	uint64_t n = run->log_errors;
	memcpy(last, run->log_error, sizeof(last));
	pthread_mutex_unlock(&run->log_lock);
	if (n)
		return fail(w,
			    "the library logged %" PRIu64 " error(s); last: %s",
			    n, last);
	return 0;
}

/* "mem3 (slot 2) offset 0x1234" for an address in the pool, for signals. */
static void describe_addr(struct worker *w, const void *addr, char *buf,
			  size_t cap)
{
	struct run *run = w->run;
	uintptr_t a = (uintptr_t)addr, start = atomic_load(&run->slots_start);
	snprintf(buf, cap, "outside the pool");
	if (!start || a < start || a >= start + run->p->slots * run->slot_bytes)
		return;
	uint32_t slot = (uint32_t)((a - start) / run->slot_bytes);
	uint64_t off = (a - start) % run->slot_bytes;
	snprintf(buf, cap,
		 "slot %u offset %#" PRIx64 " (no memory of this "
		 "thread there)",
		 slot, off);
	for (uint32_t i = 0; i < w->nmems; i++)
		if (w->mems[i]->slot == slot)
			snprintf(buf, cap,
				 "mem%d (slot %u, size %#" PRIx64
				 ") offset %#" PRIx64 "%s",
				 w->mems[i]->id, slot, w->mems[i]->size, off,
				 off < w->mems[i]->size ? ", accessible"
							: " past its size");
}

/* ---- comparisons ------------------------------------------------------- */

static int compare(struct worker *w, struct mmem *m, uint64_t off, uint64_t len,
		   const char *what)
{
	if (!len)
		return 0;
	const unsigned char *got = m->base + off, *want = m->ref + off;
	w->tot.bytes_compared += len;
	mark(w, m, off, len, PG_READ);
	if (!memcmp(got, want, len))
		return 0;
	uint64_t first = UINT64_MAX, last = 0, n = 0;
	for (uint64_t i = 0; i < len; i++)
		if (got[i] != want[i]) {
			if (first == UINT64_MAX)
				first = i;
			last = i;
			n++;
		}
	uint64_t at = off + first;
	char img[64] = "a memory with no module";
	if (m->mod && at >= m->mod->initial)
		snprintf(img, sizeof(img), "past m%d's image", m->mod->id);
	else if (m->mod && m->mod->image)
		snprintf(img, sizeof(img), "m%d's image byte there is %#04x",
			 m->mod->id, m->mod->image[at]);
	else if (m->mod)
		snprintf(img, sizeof(img), "inside m%d's image (dropped)",
			 m->mod->id);
	return fail(w,
		    "%s: mem%d (slot %u, size %#" PRIx64 "): byte %#" PRIx64
		    " (page %" PRIu64 ") is %#04x, expected %#04x; %" PRIu64
		    " byte(s) differ in [%#" PRIx64 ", %#" PRIx64 "] of the "
		    "compared [%#" PRIx64 ", %#" PRIx64 "); %s",
		    what, m->id, m->slot, m->size, at, at / w->run->page,
		    got[first], want[first], n, off + first, off + last, off,
		    off + len, img);
}

/* 1 if a kernel read of addr fails with EFAULT (inaccessible). */
static int kernel_cannot_read(struct worker *w, const void *addr)
{
	ssize_t n = write(w->pipefd[1], addr, 1);
	if (n == 1) {
		char c;
		if (read(w->pipefd[0], &c, 1) != 1)
			return -1;
		return 0;
	}
	return n < 0 && errno == EFAULT;
}

/* Past the accessible size and in the guard nothing can be read. */
static int probe_bounds(struct worker *w, struct mmem *m)
{
	struct run *run = w->run;
	if (m->size < run->max && kernel_cannot_read(w, m->base + m->size) != 1)
		return fail(w,
			    "mem%d (slot %u, size %#" PRIx64 "): the byte "
			    "just past the accessible size can be read",
			    m->id, m->slot, m->size);
	if (run->p->guard_bytes &&
	    kernel_cannot_read(w, m->base + run->max) != 1)
		return fail(w,
			    "mem%d (slot %u): the first guard byte can be "
			    "read",
			    m->id, m->slot);
	return 0;
}

/* ---- choices ------------------------------------------------------------ */

/* A range in [0, size): tiny, across a page boundary, up to 64 KiB, large. */
static void pick_range(struct worker *w, uint64_t size, uint64_t maxlen,
		       uint64_t *off, uint64_t *len)
{
	uint64_t *s = &w->rng, page = w->run->page, o, l;
	switch (below(s, 4)) {
	case 0:
		o = below(s, size);
		l = 1 + below(s, 16);
		break;
	case 1:
		o = (below(s, size / page + 1)) * page;
		o = o > 64 ? o - below(s, 64) : 0;
		l = 1 + below(s, 2 * page);
		break;
	case 2:
		o = below(s, size);
		l = 1 + below(s, 64 << 10);
		break;
	default:
		/* large: the checkpoints compare everything anyway */
		o = below(s, size / 2);
		l = 1 + below(s, size / 4);
		break;
	}
	if (o >= size)
		o = size - 1;
	if (l > size - o)
		l = size - o;
	if (l > maxlen)
		l = maxlen;
	*off = o;
	*len = l;
}

static const char *fill_kind_name[] = {"rand", "zero", "ones", "sparse"};

static void fill(unsigned char *buf, uint64_t len, unsigned kind, uint64_t seed)
{
	switch (kind) {
	case 1:
		memset(buf, 0, len);
		break;
	case 2:
		memset(buf, 0xff, len);
		break;
	case 3:
		memset(buf, 0, len);
		for (uint64_t i = 0; i < len; i += 1 + mix(&seed) % 509)
			buf[i] = (unsigned char)(1 + mix(&seed) % 255);
		break;
	default:
		for (uint64_t i = 0; i < len; i += 8) {
			uint64_t v = mix(&seed);
			memcpy(buf + i, &v, len - i < 8 ? len - i : 8);
		}
	}
}

static unsigned pick_fill(struct worker *w)
{
	uint64_t k = below(&w->rng, 10);
	return k < 6 ? 0 : k < 8 ? 3 : k == 8 ? 1 : 2;
}

static void mark(struct worker *w, struct mmem *m, uint64_t off, uint64_t len,
		 unsigned how)
{
	if (!len)
		return;
	for (uint64_t p = off / w->run->page;
	     p <= (off + len - 1) / w->run->page; p++)
		m->pages[p] |= (unsigned char)how;
}

/* "m3", or "none" for a memory without a module. */
static const char *mname(const struct mmod *m, char buf[16])
{
	if (!m)
		return "none";
	snprintf(buf, 16, "m%d", m->id);
	return buf;
}

/* ---- module table ------------------------------------------------------- */

static void lock(struct run *run)
{
	if (run->concurrent)
		pthread_mutex_lock(&run->lock);
}

static void unlock(struct run *run)
{
	if (run->concurrent)
		pthread_mutex_unlock(&run->lock);
}

/* A random live module of the table, or NULL. */
static struct mmod *pick_module(struct worker *w)
{
	struct run *run = w->run;
	struct mmod *m = NULL;
	lock(run);
	if (run->nmods)
		m = run->mods[below(&w->rng, run->nmods)];
	unlock(run);
	return m;
}

/* ---- operations ---------------------------------------------------------- */

static int op_create(struct worker *w)
{
	struct run *run = w->run;
	uint64_t *s = &w->rng, page = run->page;
	uint64_t pages = below(s, 3) ? below(s, run->maxpages / 2 + 1)
				     : below(s, run->maxpages + 1);
	uint64_t initial = pages * WASM_PAGE;
	ufp_segment segs[5];
	unsigned char *bufs[5] = {0};
	size_t nsegs = (size_t)below(s, 5);
	bool bad = initial && initial < run->max && below(s, 20) == 0;
	char desc[160] = "";
	size_t dl = 0;
	int rc = 0;

	for (size_t i = 0; i < nsegs; i++) {
		uint64_t off = 0, len = 0;
		if (initial) {
			if (i && below(s, 3) == 0) {
				/* overlap the previous segment */
				off = segs[i - 1].offset +
				      below(s, segs[i - 1].len + 1);
				if (off >= initial)
					off = initial - 1;
			} else {
				off = below(s, initial);
			}
			switch (below(s, 3)) {
			case 0:
				len = 1 + below(s, 64);
				break;
			case 1:
				len = 1 + below(s, 3 * page);
				break;
			default:
				len = 1 + below(s, initial / 4);
			}
			if (len > initial - off)
				len = initial - off;
		}
		unsigned kind = pick_fill(w);
		bufs[i] = malloc(len ? len : 1);
		if (!bufs[i]) {
			rc = fail(w, "out of memory (model)");
			goto out;
		}
		fill(bufs[i], len, kind, mix(s));
		segs[i] = (ufp_segment){off, bufs[i], len};
		if (dl < sizeof(desc))
			dl += (size_t)snprintf(desc + dl, sizeof(desc) - dl,
					       " (%#" PRIx64 ",+%#" PRIx64
					       ",%s)",
					       off, len, fill_kind_name[kind]);
	}
	if (bad) {
		/* a segment past initial_bytes: -ERANGE, nothing changes */
		uint64_t k = nsegs < 5 ? nsegs++ : 4;
		free(bufs[k]);
		bufs[k] = calloc(1, page + 1);
		if (!bufs[k]) {
			rc = fail(w, "out of memory (model)");
			goto out;
		}
		bufs[k][0] = 1;
		segs[k] = (ufp_segment){initial - below(s, page) - 1, bufs[k],
					page + 1};
	}

	struct mmod *m = calloc(1, sizeof(*m));
	if (!m || !(m->image = calloc(1, initial ? initial : 1))) {
		free(m);
		rc = fail(w, "out of memory (model)");
		goto out;
	}
	m->initial = initial;
	for (size_t i = 0; i < nsegs && !bad; i++)
		memcpy(m->image + segs[i].offset, segs[i].bytes, segs[i].len);

	lock(run);
	m->id = run->next_mod_id++;
	unlock(run);
	logop(w, "create m%d initial=%#" PRIx64 "%s%s", m->id, initial,
	      bad ? " bad-segment" : "", desc);
	rc = ufp_module_create(run->pool, segs, nsegs, initial, &m->h);
	logres(w, " -> %d", rc);
	if (bad) {
		free(m->image);
		free(m);
		if (rc != -ERANGE)
			rc = fail(w,
				  "module_create with a segment past "
				  "initial_bytes returned %d (%s), expected "
				  "-ERANGE",
				  rc, ufp_strerror(rc));
		else
			w->tot.rejected++, rc = 0;
		goto out;
	}
	if (rc) {
		free(m->image);
		free(m);
		rc = fail(w,
			  "module_create(initial %#" PRIx64 ", %zu segments) "
			  "= %d (%s)",
			  initial, nsegs, rc, ufp_strerror(rc));
		goto out;
	}
	w->tot.modules++;
	lock(run);
	bool full = run->nmods == MAX_MODS; /* other threads filled it */
	if (!full)
		run->mods[run->nmods++] = m;
	m->dropped = full;
	m->all_next = run->all_mods;
	run->all_mods = m;
	unlock(run);
	if (full) {
		logres(w, " (table full: dropped at once)");
		rc = ufp_module_drop(m->h);
		if (rc)
			rc = fail(w, "module_drop(m%d) = %d (%s)", m->id, rc,
				  ufp_strerror(rc));
	}
out:
	for (size_t i = 0; i < 5; i++)
		free(bufs[i]);
	return rc;
}

static int op_drop(struct worker *w)
{
	struct run *run = w->run;
	struct mmod *m;

	lock(run);
	if (!run->nmods) {
		unlock(run);
		return 0;
	}
	uint32_t k = (uint32_t)below(&w->rng, run->nmods);
	m = run->mods[k];
	run->mods[k] = run->mods[--run->nmods];
	m->dropped = true;
	unlock(run);
	/* concurrent: and the other order, allocations already past their
	 * pick running into the drop */
	if (run->concurrent && below(&w->rng, 2))
		sched_yield();

	if (run->concurrent)
		logop(w, "drop m%d", m->id);
	else
		logop(w, "drop m%d (live memories %u)", m->id, m->live);
	if (run->concurrent) {
		atomic_fetch_add(&run->purge_events, 1);
		atomic_fetch_add(&run->purge_active, 1);
	}
	int rc = ufp_module_drop(m->h);
	if (run->concurrent)
		atomic_fetch_sub(&run->purge_active, 1);
	logres(w, " -> %d", rc);
	if (!run->concurrent) {
		run->purge_maybe = true;
		/* memories copied the image at allocation */
		free(m->image);
		m->image = NULL;
	}
	if (rc)
		return fail(w, "module_drop(m%d) = %d (%s)", m->id, rc,
			    ufp_strerror(rc));
	return 0;
}

static void slot_alloc_model(struct worker *w, struct mmem *mem)
{
	struct run *run = w->run;
	if (run->concurrent)
		return;
	struct mslot *sl = &run->slots[mem->slot];
	if (mem->mod || !sl->null_last) {
		memset(sl->resid, 0, run->max / run->page);
		memset(sl->resid_hi, 0, run->max / run->page);
	}
	sl->null_last = !mem->mod;
}

static bool page_zero(const unsigned char *p, size_t len)
{
	for (size_t k = 0; k < len; k++)
		if (p[k])
			return false;
	return true;
}

static void slot_free_model(struct worker *w, struct mmem *mem)
{
	struct run *run = w->run;
	if (run->concurrent || mem->mod)
		return;
	struct mslot *sl = &run->slots[mem->slot];
	uint64_t keep = run->p->keep_resident_bytes;
	if (keep > mem->size)
		keep = mem->size;
	uint64_t kp = keep / run->page;
	uint64_t Kp = run->p->keep_resident_bytes / run->page;
	for (uint64_t p = 0; p < run->max / run->page; p++) {
		bool wr = mem->pages[p] & PG_WRITTEN, any = mem->pages[p] != 0;
		if (run->anon) {
			/* kept: exactly the pages this memory left different
			 * from its image (zero here); a page restored earlier
			 * and left alone is dropped, a page only read is the
			 * zero page or a page of zeros, dropped too */
			bool mod =
				wr && p < kp &&
				!page_zero(mem->ref + p * run->page, run->page);
			sl->resid[p] = sl->resid_hi[p] = mod;
		} else if (run->dirty) {
			/* a page only read may hold a real page of zeros:
			 * the handler fills a uffd-wp marker (left inside
			 * the span an earlier reset re-protected, below
			 * keep_resident_bytes) with UFFDIO_COPY, as
			 * UFFDIO_ZEROPAGE refuses markers; clean, it stays */
			if (wr)
				sl->resid[p] = sl->resid_hi[p] = p < kp;
			else if (any && p < Kp)
				sl->resid_hi[p] = 1;
			/* a page restored by an earlier reset may have been
			 * left writable (lib/slot.c, reset_dirty): it reads
			 * as written, and beyond this memory's keep it is
			 * dropped now */
			if (!wr && p >= kp)
				sl->resid[p] = 0;
		} else {
			sl->resid[p] = (sl->resid[p] || wr) && p < kp;
			sl->resid_hi[p] = (sl->resid_hi[p] || any) && p < kp;
		}
	}
}

static int check_new_memory(struct worker *w, struct mmem *mem)
{
	struct run *run = w->run;
	if (!mem->base || mem->slot >= run->p->slots)
		return fail(w, "mem%d: base %p slot %u", mem->id,
			    (void *)mem->base, mem->slot);
	uintptr_t start = (uintptr_t)mem->base -
			  (uintptr_t)mem->slot * run->slot_bytes,
		  want = 0;
	if (!atomic_compare_exchange_strong(&run->slots_start, &want, start) &&
	    want != start)
		return fail(w,
			    "mem%d: base %p of slot %u is not slots_start + "
			    "slot * slot_bytes (%#zx)",
			    mem->id, (void *)mem->base, mem->slot,
			    run->slot_bytes);
	if (ufp_memory_size(mem->h) != mem->size)
		return fail(w,
			    "mem%d: ufp_memory_size %#" PRIx64 ", expected "
			    "%#" PRIx64,
			    mem->id, ufp_memory_size(mem->h), mem->size);
	if (run->concurrent) {
		int none = 0;
		if (!atomic_compare_exchange_strong(&run->slot_owner[mem->slot],
						    &none, mem->id + 1))
			return fail(w,
				    "mem%d got slot %u, which mem%d still "
				    "holds",
				    mem->id, mem->slot, none - 1);
	} else {
		for (struct worker *o = run->w; o < run->w + run->nw; o++)
			for (uint32_t i = 0; i < o->nmems; i++)
				if (o->mems[i] != mem &&
				    o->mems[i]->slot == mem->slot)
					return fail(w,
						    "mem%d got slot %u, "
						    "which mem%d still holds",
						    mem->id, mem->slot,
						    o->mems[i]->id);
	}
	return 0;
}

/* ufp_memory_alloc, with the model's expectation of -EAGAIN. */
static int alloc_call(struct worker *w, struct mmod *m, uint64_t bytes,
		      ufp_memory **out, bool *eagain_ok)
{
	struct run *run = w->run;
	ufp_module *h = m ? m->h : NULL;
	uint32_t live = 0;
	for (struct worker *o = run->w;
	     !run->concurrent && o < run->w + run->nw; o++)
		live += o->nmems;

	int rc = ufp_memory_alloc(run->pool, h, bytes, out);
	*eagain_ok = false;
	if (rc != -EAGAIN)
		return rc;
	if (!run->concurrent) {
		if (live >= run->p->slots) {
			*eagain_ok = true;
			w->tot.eagain_full++;
			return rc;
		}
		if (!run->purge_maybe || run->reclaim != UFP_RECLAIM_URING)
			return rc; /* a slot is free and no purge can hold it */
		w->tot.eagain_purge++;
		int q = ufp_pool_quiesce(run->pool);
		run->purge_maybe = false;
		if (q)
			return fail(w, "pool_quiesce = %d", q), q;
		logres(w, " (EAGAIN with a purge in flight: quiesce, retry)");
		return ufp_memory_alloc(run->pool, h, bytes, out);
	}
	/* concurrent: at most mem_cap memories per thread keep the pool from
	 * filling; -EAGAIN is acceptable only while a drop or free (which
	 * may purge) runs or ran since we started waiting */
	w->tot.eagain_purge++;
	for (int tries = 0; rc == -EAGAIN && tries < 1000; tries++) {
		uint64_t e0 = atomic_load(&run->purge_events);
		uint64_t a0 = atomic_load(&run->purge_active);
		int q = ufp_pool_quiesce(run->pool);
		if (q)
			return fail(w, "pool_quiesce = %d", q), q;
		rc = ufp_memory_alloc(run->pool, h, bytes, out);
		if (rc == -EAGAIN && !a0 &&
		    atomic_load(&run->purge_events) == e0)
			return rc; /* no purge could hold a slot: a bug */
		if (rc == -EINVAL && m) {
			lock(run);
			bool dropped = m->dropped;
			unlock(run);
			if (dropped)
				return rc;
		}
	}
	return rc;
}

static int op_alloc(struct worker *w)
{
	struct run *run = w->run;
	uint64_t *s = &w->rng;
	struct mmod *m = below(s, 4) ? pick_module(w) : NULL;
	uint64_t minpages = m ? m->initial / WASM_PAGE : 0;
	uint64_t bytes =
		(minpages + below(s, run->maxpages - minpages + 1)) * WASM_PAGE;
	uint64_t v = below(s, 100);
	int want_err = 0;
	const char *variant = "";

	if (v < 10) {
		bytes = 0;
		variant = " (0: module's size)";
	} else if (v < 14) {
		bytes = m ? m->initial + run->page : run->page;
		want_err = -EINVAL;
		variant = " (not a 64 KiB multiple)";
	} else if (v < 18) {
		bytes = run->max + WASM_PAGE;
		want_err = -E2BIG;
		variant = " (beyond max)";
	} else if (v < 22 && m && m->initial > WASM_PAGE) {
		bytes = m->initial - WASM_PAGE;
		want_err = -ERANGE;
		variant = " (below the module's initial)";
	}
	uint64_t size = bytes ? bytes : m ? m->initial : 0;

	int id = atomic_fetch_add(&run->next_mem_id, 1);
	/* concurrent: give a drop of m by another thread a chance to land
	 * between our pick and our call */
	if (run->concurrent && m && below(s, 2))
		sched_yield();
	char mn[16];
	logop(w, "alloc mem%d module %s bytes=%#" PRIx64 "%s", id, mname(m, mn),
	      bytes, variant);
	ufp_memory *h = NULL;
	bool eagain_ok = false;
	int rc = alloc_call(w, m, bytes, &h, &eagain_ok);
	if (w->failed)
		return -1;
	if (rc == -EINVAL && m && run->concurrent) {
		lock(run);
		bool dropped = m->dropped;
		unlock(run);
		if (dropped) {
			logres(w, " -> %d (module dropped meanwhile: ok)", rc);
			w->tot.einval_dropped++;
			return 0;
		}
	}
	if (want_err) {
		logres(w, " -> %d", rc);
		if (rc != want_err) {
			if (!rc)
				UFPI_IGNORE(ufp_memory_free(h));
			return fail(w,
				    "memory_alloc(module %s, %#" PRIx64
				    ") = %d (%s), expected %d (%s)",
				    mname(m, mn), bytes, rc, ufp_strerror(rc),
				    want_err, ufp_strerror(want_err));
		}
		w->tot.rejected++;
		return 0;
	}
	if (eagain_ok) {
		logres(w, " -> -EAGAIN (pool full: ok)");
		return 0;
	}
	if (rc) {
		logres(w, " -> %d", rc);
		return fail(w,
			    "memory_alloc(module %s, %#" PRIx64 ") = %d (%s) "
			    "with %u memories of this thread live",
			    mname(m, mn), bytes, rc, ufp_strerror(rc),
			    w->nmems);
	}

	struct mmem *mem = calloc(1, sizeof(*mem));
	if (mem)
		mem->ref = w->nspare ? w->spare[--w->nspare] : malloc(run->max);
	if (!mem || !mem->ref ||
	    !(mem->pages = calloc(1, run->max / run->page))) {
		if (mem)
			free(mem->ref);
		free(mem);
		UFPI_IGNORE(ufp_memory_free(h));
		return fail(w, "out of memory (model)");
	}
	mem->id = id;
	mem->h = h;
	mem->mod = m;
	mem->size = size;
	mem->slot = ufp_memory_slot(h);
	mem->base = ufp_memory_base(h);
	memset(mem->ref, 0, size);
	if (m)
		memcpy(mem->ref, m->image, m->initial);
	w->mems[w->nmems++] = mem;
	w->tot.memories++;
	if (m && !run->concurrent)
		m->live++;
	logres(w, " -> slot %u size %#" PRIx64, mem->slot, mem->size);
	if (check_new_memory(w, mem))
		return -1;
	slot_alloc_model(w, mem);
	if (mem->size && below(s, 2)) {
		uint64_t off, len;
		pick_range(w, mem->size, UINT64_MAX, &off, &len);
		logres(w, " probe [%#" PRIx64 ",+%#" PRIx64 ")", off, len);
		return compare(w, mem, off, len, "fresh memory");
	}
	return 0;
}

static int free_mem(struct worker *w, uint32_t k, bool twice)
{
	struct run *run = w->run;
	struct mmem *mem = w->mems[k];
	w->mems[k] = w->mems[--w->nmems];

	/* a free purges when it was the last memory of a dropped module, and
	 * evicts idle slots through the purge engine under an idle bound */
	bool may_purge = mem->mod || run->evicts;
	if (run->concurrent) {
		atomic_store(&run->slot_owner[mem->slot], 0);
		if (may_purge) {
			atomic_fetch_add(&run->purge_events, 1);
			atomic_fetch_add(&run->purge_active, 1);
		}
	}
	int rc = ufp_memory_free(mem->h);
	if (run->concurrent && may_purge)
		atomic_fetch_sub(&run->purge_active, 1);
	if (!run->concurrent && mem->mod) {
		mem->mod->live--;
		if (mem->mod->dropped)
			run->purge_maybe = true;
	}
	if (!run->concurrent && run->evicts)
		run->purge_maybe = true;
	if (!rc)
		slot_free_model(w, mem);
	int rc2 = twice ? ufp_memory_free(mem->h) : -EINVAL;
	int id = mem->id;
	w->spare[w->nspare++] = mem->ref;
	free(mem->pages);
	free(mem);
	if (rc)
		return fail(w, "memory_free(mem%d) = %d (%s)", id, rc,
			    ufp_strerror(rc));
	if (rc2 != -EINVAL)
		return fail(w,
			    "second memory_free(mem%d) = %d, expected "
			    "-EINVAL",
			    id, rc2);
	if (twice)
		w->tot.rejected++;
	return 0;
}

static int op_free(struct worker *w)
{
	uint32_t k = (uint32_t)below(&w->rng, w->nmems);
	bool twice = below(&w->rng, 10) == 0;
	logop(w, "free mem%d%s", w->mems[k]->id, twice ? " (then again)" : "");
	return free_mem(w, k, twice);
}

static struct mmem *pick_mem(struct worker *w)
{
	return w->mems[below(&w->rng, w->nmems)];
}

static int op_write(struct worker *w)
{
	struct mmem *m = pick_mem(w);
	uint64_t off, len;
	if (!m->size) {
		logop(w, "write mem%d (size 0: nothing)", m->id);
		return 0;
	}
	pick_range(w, m->size, UINT64_MAX, &off, &len);
	unsigned kind = pick_fill(w);
	uint64_t seed = mix(&w->rng);
	logop(w, "write mem%d [%#" PRIx64 ",+%#" PRIx64 ") %s", m->id, off, len,
	      fill_kind_name[kind]);
	fill(w->scratch, len, kind, seed);
	memcpy(m->base + off, w->scratch, len);
	memcpy(m->ref + off, w->scratch, len);
	mark(w, m, off, len, PG_WRITTEN);
	uint64_t lo = off > w->run->page ? off - w->run->page : 0;
	uint64_t hi = off + len + w->run->page;
	if (hi > m->size)
		hi = m->size;
	return compare(w, m, lo, hi - lo, "after write");
}

static int op_read(struct worker *w)
{
	struct mmem *m = pick_mem(w);
	uint64_t off, len;
	if (!m->size) {
		logop(w, "read mem%d (size 0: nothing)", m->id);
		return 0;
	}
	pick_range(w, m->size, UINT64_MAX, &off, &len);
	logop(w, "read mem%d [%#" PRIx64 ",+%#" PRIx64 ")", m->id, off, len);
	return compare(w, m, off, len, "read");
}

/* One byte per page, at a random place in each page of a range. */
static int op_touch(struct worker *w)
{
	struct mmem *m = pick_mem(w);
	uint64_t off, len, page = w->run->page;
	if (!m->size) {
		logop(w, "touch mem%d (size 0: nothing)", m->id);
		return 0;
	}
	pick_range(w, m->size, UINT64_MAX, &off, &len);
	logop(w, "touch mem%d [%#" PRIx64 ",+%#" PRIx64 ")", m->id, off, len);
	for (uint64_t p = off - off % page; p < off + len; p += page) {
		uint64_t at = p + below(&w->rng, page);
		if (at < off || at >= off + len)
			at = p < off ? off : p;
		if (compare(w, m, at, 1, "touch"))
			return -1;
	}
	return 0;
}

/* The kernel reads the memory: write(2) from it into a pipe. */
static int op_sysread(struct worker *w)
{
	struct mmem *m = pick_mem(w);
	uint64_t off, len;
	if (!m->size) {
		logop(w, "sysread mem%d (size 0: nothing)", m->id);
		return 0;
	}
	pick_range(w, m->size, PIPE_CHUNK, &off, &len);
	logop(w, "sysread mem%d [%#" PRIx64 ",+%#" PRIx64 ")", m->id, off, len);
	ssize_t n = write(w->pipefd[1], m->base + off, len);
	if (n != (ssize_t)len) {
		int e = errno;
		while (n > 0) {
			ssize_t k = read(w->pipefd[0], w->scratch, (size_t)n);
			n = k > 0 ? n - k : 0;
		}
		return fail(w,
			    "write(pipe) from mem%d [%#" PRIx64 ",+%#" PRIx64
			    ") = %zd (%s): a kernel read of live memory failed",
			    m->id, off, len, n, strerror(e));
	}
	for (uint64_t got = 0; got < len;) {
		ssize_t k = read(w->pipefd[0], w->scratch + got, len - got);
		if (k <= 0)
			return fail(w, "read(pipe) = %zd", k);
		got += (uint64_t)k;
	}
	w->tot.bytes_compared += len;
	mark(w, m, off, len, PG_READ);
	if (memcmp(w->scratch, m->ref + off, len)) {
		uint64_t i = 0;
		while (w->scratch[i] == m->ref[off + i])
			i++;
		return fail(w,
			    "sysread: mem%d (slot %u) byte %#" PRIx64 " read "
			    "by the kernel is %#04x, expected %#04x",
			    m->id, m->slot, off + i, w->scratch[i],
			    m->ref[off + i]);
	}
	return 0;
}

/* The kernel writes the memory: read(2) from a pipe into it. */
static int op_syswrite(struct worker *w)
{
	struct mmem *m = pick_mem(w);
	uint64_t off, len;
	if (!m->size) {
		logop(w, "syswrite mem%d (size 0: nothing)", m->id);
		return 0;
	}
	pick_range(w, m->size, PIPE_CHUNK, &off, &len);
	unsigned kind = pick_fill(w);
	logop(w, "syswrite mem%d [%#" PRIx64 ",+%#" PRIx64 ") %s", m->id, off,
	      len, fill_kind_name[kind]);
	fill(w->scratch, len, kind, mix(&w->rng));
	if (write(w->pipefd[1], w->scratch, len) != (ssize_t)len)
		return fail(w, "write(pipe, %#" PRIx64 ") failed", len);
	for (uint64_t got = 0; got < len;) {
		ssize_t k = read(w->pipefd[0], m->base + off + got, len - got);
		if (k <= 0) {
			int e = errno;
			/* drain so the next op starts clean */
			while (got < len) {
				k = read(w->pipefd[0], w->scratch, len - got);
				got += k > 0 ? (uint64_t)k : len;
			}
			return fail(w,
				    "read(pipe) into mem%d [%#" PRIx64
				    ",+%#" PRIx64 ") failed (%s): a kernel "
				    "write of live memory failed",
				    m->id, off, len, strerror(e));
		}
		got += (uint64_t)k;
	}
	memcpy(m->ref + off, w->scratch, len);
	mark(w, m, off, len, PG_WRITTEN);
	return compare(w, m, off, len, "after syswrite");
}

static int op_grow(struct worker *w)
{
	struct run *run = w->run;
	struct mmem *m = pick_mem(w);
	uint64_t *s = &w->rng, v = below(s, 100), old = m->size;
	uint64_t pages = old / WASM_PAGE;
	uint64_t to = (pages + below(s, run->maxpages - pages + 1)) * WASM_PAGE;
	int want = 0;
	if (v < 5) {
		to = run->max + WASM_PAGE;
		want = -E2BIG;
	} else if (v < 10 && old) {
		to = old - WASM_PAGE;
		want = -EINVAL;
	} else if (v < 13) {
		to = old + run->page;
		want = -EINVAL;
	}
	logop(w, "grow mem%d %#" PRIx64 " -> %#" PRIx64, m->id, old, to);
	int rc = ufp_memory_grow(m->h, to);
	logres(w, " -> %d", rc);
	if (rc != want)
		return fail(w,
			    "memory_grow(mem%d, %#" PRIx64 " -> %#" PRIx64
			    ") = %d (%s), expected %d",
			    m->id, old, to, rc, ufp_strerror(rc), want);
	if (want) {
		w->tot.rejected++;
		to = old;
	}
	if (to > old)
		memset(m->ref + old, 0, to - old);
	m->size = to;
	if (ufp_memory_size(m->h) != to)
		return fail(w,
			    "mem%d: size %#" PRIx64 " after grow, expected "
			    "%#" PRIx64,
			    m->id, ufp_memory_size(m->h), to);
	if (to > old) {
		/* new bytes read as zero: all of them, or a sample */
		uint64_t off, len;
		if (below(s, 4) == 0) {
			off = old;
			len = to - old;
		} else {
			pick_range(w, to - old, UINT64_MAX, &off, &len);
			off += old;
		}
		if (compare(w, m, off, len, "grown bytes"))
			return -1;
	}
	return probe_bounds(w, m);
}

static int op_quiesce(struct worker *w)
{
	logop(w, "quiesce");
	int rc = ufp_pool_quiesce(w->run->pool);
	if (rc)
		return fail(w, "pool_quiesce = %d", rc);
	if (!w->run->concurrent) {
		ufp_stats st = {.size = sizeof(st)};
		w->run->purge_maybe = false;
		if (ufp_pool_stats(w->run->pool, &st) == 0 &&
		    st.purges_inflight)
			return fail(w,
				    "%" PRIu64 " purges in flight after "
				    "quiesce",
				    st.purges_inflight);
	}
	return 0;
}

/* Every accessible byte of every memory this worker owns (all of them in
 * single-threaded runs), the bounds, and the pool's invariants. */
static int checkpoint(struct worker *w)
{
	struct run *run = w->run;
	logop(w, "checkpoint (%u memories)", w->nmems);
	w->tot.checkpoints++;
	for (uint32_t i = 0; i < w->nmems; i++) {
		if (compare(w, w->mems[i], 0, w->mems[i]->size, "checkpoint") ||
		    probe_bounds(w, w->mems[i]))
			return -1;
	}
	if (check_log(w))
		return -1;
	/* concurrent grows make prot_bytes != accessible for a moment: the
	 * walker is meant for quiet pools */
	if (!run->concurrent) {
		int rc = ufpi_pool_check(run->pool);
		if (rc)
			return fail(w, "ufpi_pool_check = %d (%s)", rc,
				    ufp_strerror(rc));
	}
	return 0;
}

enum opk {
	OP_CREATE,
	OP_DROP,
	OP_ALLOC,
	OP_FREE,
	OP_WRITE,
	OP_READ,
	OP_TOUCH,
	OP_SYSREAD,
	OP_SYSWRITE,
	OP_GROW,
	OP_QUIESCE,
	OP_N
};

static int step(struct worker *w)
{
	struct run *run = w->run;
	unsigned wt[OP_N] = {0};
	uint32_t nmods;

	lock(run);
	nmods = run->nmods;
	unlock(run);
	bool any = w->nmems > 0;
	wt[OP_CREATE] = nmods < MAX_MODS ? 7 : 0;
	wt[OP_DROP] = nmods ? 4 : 0;
	wt[OP_ALLOC] = w->nmems < w->cap ? 14 : 0;
	wt[OP_FREE] = any ? 8 : 0;
	wt[OP_WRITE] = any ? 14 : 0;
	wt[OP_READ] = any ? 8 : 0;
	wt[OP_TOUCH] = any ? 6 : 0;
	wt[OP_SYSREAD] = any ? 3 : 0;
	wt[OP_SYSWRITE] = any ? 3 : 0;
	wt[OP_GROW] = any ? 6 : 0;
	wt[OP_QUIESCE] = 2;
	unsigned total = 0;
	for (int k = 0; k < OP_N; k++)
		total += wt[k];
	unsigned x = (unsigned)below(&w->rng, total);
	int k = 0;
	while (x >= wt[k])
		x -= wt[k++];

	sigjmp_buf *volatile saved = tl_jb;
	tl_jb = &w->jb;
	if (sigsetjmp(w->jb, 1)) {
		tl_jb = saved;
		w->signalled = true;
		logres(w, " -> SIG%s", tl_sig == SIGBUS ? "BUS" : "SEGV");
		w->tot.ops++;
		char where[160], last[200] = "none";
		describe_addr(w, tl_addr, where, sizeof(where));
		pthread_mutex_lock(&run->log_lock);
		if (run->log_n)
			memcpy(last, run->log_last[(run->log_n - 1) % 4],
			       sizeof(last));
		pthread_mutex_unlock(&run->log_lock);
		return fail(w,
			    "SIG%s at %p, %s, during: %s; last library "
			    "log line: %s",
			    tl_sig == SIGBUS ? "BUS" : "SEGV", tl_addr, where,
			    w->nlog ? w->log[w->nlog - 1] : "?", last);
	}
	int rc;
	switch (k) {
	case OP_CREATE:
		rc = op_create(w);
		break;
	case OP_DROP:
		rc = op_drop(w);
		break;
	case OP_ALLOC:
		rc = op_alloc(w);
		break;
	case OP_FREE:
		rc = op_free(w);
		break;
	case OP_WRITE:
		rc = op_write(w);
		break;
	case OP_READ:
		rc = op_read(w);
		break;
	case OP_TOUCH:
		rc = op_touch(w);
		break;
	case OP_SYSREAD:
		rc = op_sysread(w);
		break;
	case OP_SYSWRITE:
		rc = op_syswrite(w);
		break;
	case OP_GROW:
		rc = op_grow(w);
		break;
	default:
		rc = op_quiesce(w);
		break;
	}
	if (!rc && run->p->corrupt_at && !w->corrupted &&
	    w->step + 1 >= run->p->corrupt_at) {
		for (uint32_t i = 0; i < w->nmems; i++) {
			struct mmem *m = w->mems[i];
			if (!m->size)
				continue;
			m->base[m->size / 2] ^= 0x5a;
			w->corrupted = true;
			logres(w,
			       " (self-test: flipped mem%d byte %#" PRIx64
			       " behind the model's back)",
			       m->id, m->size / 2);
			/* a checkpoint now: a later write over the byte or
			 * the memory's free would hide it */
			rc = checkpoint(w);
			break;
		}
	}
	if (!rc && run->p->checkpoint_every &&
	    (w->step + 1) % run->p->checkpoint_every == 0)
		rc = checkpoint(w);
	tl_jb = saved;
	w->tot.ops++;
	return rc;
}

/* ---- runs --------------------------------------------------------------- */

static void *watchdog_main(void *arg)
{
	struct run *run = arg;
	uint64_t last = atomic_load(&run->progress);
	unsigned quiet = 0;

	while (!atomic_load(&run->watch_stop)) {
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
		uint64_t now = atomic_load(&run->progress);
		quiet = now == last ? quiet + 1 : 0;
		last = now;
		if (quiet < STALL_SECONDS * 10)
			continue;
		char d[256];
		ufp_stats a = {.size = sizeof(a)}, b = a;
		ufpm_describe(run->p, d, sizeof(d));
		UFPI_IGNORE(ufp_pool_stats(run->pool, &a));
		sleep(1);
		UFPI_IGNORE(ufp_pool_stats(run->pool, &b));
		fprintf(stderr,
			"model: %s (seed %" PRIu64 "): no operation "
			"completed for %d s: a hang. Threads were doing:\n",
			d, run->p->seed, STALL_SECONDS);
		for (uint32_t i = 0; i < run->nw; i++) {
			pthread_mutex_lock(&run->w[i].cur_lock);
			fprintf(stderr, "  %s\n", run->w[i].cur);
			pthread_mutex_unlock(&run->w[i].cur_lock);
		}
		fprintf(stderr,
			"  in one second: faults +%" PRIu64 ", EEXIST +%" PRIu64
			", windows +%" PRIu64 ", fault errors +%" PRIu64
			", poisoned +%" PRIu64 "; purges in flight %" PRIu64
			"\n",
			b.faults - a.faults, b.eexist_races - a.eexist_races,
			b.windows - a.windows, b.fault_errors - a.fault_errors,
			b.poisoned_faults - a.poisoned_faults,
			b.purges_inflight);
		pthread_mutex_lock(&run->log_lock);
		for (unsigned k = run->log_n > 4 ? run->log_n - 4 : 0;
		     k < run->log_n; k++)
			fprintf(stderr, "  library %s\n", run->log_last[k % 4]);
		pthread_mutex_unlock(&run->log_lock);
		fflush(stderr);
		abort();
	}
	return NULL;
}

static int worker_init(struct run *run, struct worker *w, int tid)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->cur_lock, NULL);
	w->run = run;
	w->tid = tid;
	w->rng = run->p->seed * 0x100000001b3ULL + (uint64_t)tid * 7919 + 1;
	w->cap = run->mem_cap;
	w->pipefd[0] = w->pipefd[1] = -1;
	w->mems = calloc(w->cap + 1, sizeof(*w->mems));
	w->spare = calloc(w->cap + 1, sizeof(*w->spare));
	w->scratch = malloc(run->max);
	if (!w->mems || !w->spare || !w->scratch || pipe(w->pipefd))
		return -1;
	return 0;
}

static void worker_fini(struct worker *w, bool leak_handles)
{
	if (!w->run)
		return; /* never initialised */
	for (uint32_t i = 0; i < w->nmems; i++) {
		if (!leak_handles)
			UFPI_IGNORE(ufp_memory_free(w->mems[i]->h));
		free(w->mems[i]->ref);
		free(w->mems[i]->pages);
		free(w->mems[i]);
	}
	w->nmems = 0;
	for (uint32_t i = 0; i < w->nspare; i++)
		free(w->spare[i]);
	free(w->spare);
	free(w->mems);
	free(w->scratch);
	free(w->log);
	pthread_mutex_destroy(&w->cur_lock);
	if (w->pipefd[0] >= 0)
		close(w->pipefd[0]);
	if (w->pipefd[1] >= 0)
		close(w->pipefd[1]);
}

struct thread_arg {
	struct worker *w;
	uint32_t n;
};

static void *worker_main(void *arg)
{
	struct thread_arg *a = arg;
	struct worker *w = a->w;
	for (w->step = 0; w->step < a->n && !atomic_load(&w->run->stop);
	     w->step++)
		if (step(w))
			break;
	return NULL;
}

static void print_log(FILE *out, const struct worker *w, size_t tail)
{
	size_t from = tail && w->nlog > tail ? w->nlog - tail : 0;
	if (from)
		fprintf(out, "  (t%d: %zu earlier ops not shown)\n", w->tid,
			from);
	for (size_t i = from; i < w->nlog; i++)
		fprintf(out, "  %s\n", w->log[i]);
}

static void add_totals(struct ufpm_totals *t, const struct ufpm_totals *x)
{
	t->ops += x->ops;
	t->modules += x->modules;
	t->memories += x->memories;
	t->bytes_compared += x->bytes_compared;
	t->checkpoints += x->checkpoints;
	t->eagain_full += x->eagain_full;
	t->eagain_purge += x->eagain_purge;
	t->einval_dropped += x->einval_dropped;
	t->rejected += x->rejected;
}

/* Bytes resident (present, not the zero page) in slot i, measured like
 * ufp_pool_resident_bytes, for diagnostics; UINT64_MAX if unknown. */
static uint64_t slot_resident(struct run *run, uint32_t i)
{
	uintptr_t start = atomic_load(&run->slots_start);
	uint64_t total = 0;
	if (!start)
		return UINT64_MAX;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return UINT64_MAX;
	uint64_t lo = start + (uint64_t)i * run->slot_bytes;
	uint64_t hi = lo + run->slot_bytes;
	while (lo < hi) {
		struct page_region regs[64];
		struct pm_scan_arg a = {
			.size = sizeof(a),
			.start = lo,
			.end = hi,
			.vec = (uint64_t)(uintptr_t)regs,
			.vec_len = 64,
			.category_mask = PAGE_IS_PRESENT | PAGE_IS_PFNZERO,
			.category_inverted = PAGE_IS_PFNZERO,
			.return_mask = PAGE_IS_PRESENT,
		};
		int n = ioctl(fd, PAGEMAP_SCAN, &a);
		if (n < 0) {
			total = UINT64_MAX;
			break;
		}
		for (int k = 0; k < n; k++)
			total += regs[k].end - regs[k].start;
		if (a.walk_end <= lo)
			break;
		lo = a.walk_end;
	}
	close(fd);
	return total;
}

static int resident(struct worker *w, uint64_t *out)
{
	int rc = ufp_pool_resident_bytes(w->run->pool, out);
	if (rc)
		return fail(w, "pool_resident_bytes = %d (%s)", rc,
			    ufp_strerror(rc));
	return 0;
}

/* Teardown checks, run by worker 0 once every worker stopped. */
static int teardown(struct run *run)
{
	struct worker *w = &run->w[0];
	uint64_t page = run->page, res;

	w->step = UINT32_MAX;
	logop(w, "teardown: compare and free every memory, drop every module, "
		 "quiesce");
	sigjmp_buf *volatile saved = tl_jb;
	tl_jb = &w->jb;
	if (sigsetjmp(w->jb, 1)) {
		tl_jb = saved;
		w->signalled = true;
		return fail(w, "SIG%s at %p during the teardown",
			    tl_sig == SIGBUS ? "BUS" : "SEGV", tl_addr);
	}
	for (struct worker *o = run->w; o < run->w + run->nw; o++) {
		while (o->nmems) {
			struct mmem *m = o->mems[o->nmems - 1];
			if (compare(w, m, 0, m->size, "teardown"))
				goto out;
			/* free_mem works on the owner's list */
			bool f = o->failed;
			if (free_mem(o, o->nmems - 1, false) && !f) {
				fail(w, "%s", o->msg);
				goto out;
			}
		}
	}
	while (run->nmods)
		if (op_drop(w))
			goto out;
	if (ufp_pool_quiesce(run->pool)) {
		fail(w, "pool_quiesce failed");
		goto out;
	}
	ufp_stats st = {.size = sizeof(st)};
	uint64_t allocs = 0;
	for (struct worker *o = run->w; o < run->w + run->nw; o++)
		allocs += o->tot.memories;
	if (ufp_pool_stats(run->pool, &st) == 0 &&
	    (st.purges_inflight || st.allocs != allocs)) {
		fail(w,
		     "stats after quiesce: %" PRIu64
		     " purges in flight, %" PRIu64
		     " memories allocated (the model counted %" PRIu64 ")",
		     st.purges_inflight, st.allocs, allocs);
		goto out;
	}
	int rc = ufpi_pool_check(run->pool);
	if (rc) {
		fail(w, "ufpi_pool_check = %d after the teardown", rc);
		goto out;
	}
	if (check_log(w))
		goto out;
	if (resident(w, &res))
		goto out;
	if (!run->concurrent || !run->p->keep_resident_bytes) {
		uint64_t want = run->baseline, want_hi = run->baseline;
		char detail[256] = "";
		size_t dl = 0;
		for (uint32_t i = 0; !run->concurrent && i < run->p->slots;
		     i++) {
			uint64_t n = 0, nhi = 0;
			if (!run->slots[i].null_last)
				continue;
			for (uint64_t p = 0; p < run->max / page; p++) {
				n += run->slots[i].resid[p];
				nhi += run->slots[i].resid_hi[p];
			}
			if (run->backend == UFP_BACKEND_UFFD && !run->dirty)
				nhi = n; /* only read: the zero page */
			want += n * page;
			want_hi += nhi * page;
			if (nhi && dl < sizeof(detail))
				dl += (size_t)snprintf(
					detail + dl, sizeof(detail) - dl,
					" slot %u: %" PRIu64 "%s", i, n,
					n == nhi ? ";" : "");
			if (nhi != n && dl < sizeof(detail))
				dl += (size_t)snprintf(detail + dl,
						       sizeof(detail) - dl,
						       "..%" PRIu64 ";", nhi);
		}
		/* eviction may have released any idle slot's pages */
		if (run->evicts)
			want = run->baseline;
		logres(w,
		       " -> resident %" PRIu64 " (model %" PRIu64 "..%" PRIu64
		       ")",
		       res, want, want_hi);
		if (res < want || res > want_hi) {
			char meas[256] = "";
			size_t ml = 0;
			for (uint32_t i = 0; i < run->p->slots; i++) {
				uint64_t b = slot_resident(run, i);
				if (b && ml < sizeof(meas))
					ml += (size_t)snprintf(
						meas + ml, sizeof(meas) - ml,
						" slot %u: %" PRId64 ";", i,
						b == UINT64_MAX
							? -1
							: (int64_t)(b / page));
			}
			fail(w,
			     "after freeing every memory, dropping every "
			     "module and quiescing, %" PRIu64 " bytes are "
			     "resident; the model predicts %" PRIu64
			     "..%" PRIu64 " (baseline %" PRIu64
			     " + pages kept by slots of "
			     "image-less memories:%s); resident pages "
			     "measured per slot:%s",
			     res, want, want_hi, run->baseline,
			     dl ? detail : " none", ml ? meas : " none");
			goto out;
		}
	}

	/* every slot once more, for a fresh module: none was lost, none
	 * shows old bytes, and the wipe leaves exactly the baseline */
	logop(w, "teardown: sweep every slot with an empty module");
	ufp_module *sweep = NULL;
	ufp_memory **all = calloc(run->p->slots, sizeof(*all));
	if (!all) {
		fail(w, "out of memory (model)");
		goto out;
	}
	rc = ufp_module_create(run->pool, NULL, 0, WASM_PAGE, &sweep);
	if (rc) {
		free(all);
		fail(w, "module_create(empty) = %d", rc);
		goto out;
	}
	for (uint32_t i = 0; i < run->p->slots && !w->failed; i++) {
		rc = ufp_memory_alloc(run->pool, sweep, 0, &all[i]);
		if (rc) {
			fail(w,
			     "sweep: memory_alloc %u of %u = %d (%s): a slot "
			     "was lost",
			     i + 1, run->p->slots, rc, ufp_strerror(rc));
			break;
		}
		unsigned char *b = ufp_memory_base(all[i]);
		w->tot.bytes_compared += WASM_PAGE;
		for (uint64_t k = 0; k < WASM_PAGE; k++)
			if (b[k]) {
				fail(w,
				     "sweep: slot %u byte %#" PRIx64 " of a "
				     "fresh empty module is %#04x",
				     ufp_memory_slot(all[i]), k, b[k]);
				break;
			}
	}
	if (!w->failed) {
		ufp_memory *extra = NULL;
		rc = ufp_memory_alloc(run->pool, sweep, 0, &extra);
		if (rc != -EAGAIN)
			fail(w,
			     "sweep: alloc with every slot live = %d, "
			     "expected -EAGAIN",
			     rc);
		if (!rc)
			UFPI_IGNORE(ufp_memory_free(extra));
	}
	for (uint32_t i = 0; i < run->p->slots; i++)
		if (all[i] && ufp_memory_free(all[i]) && !w->failed)
			fail(w, "sweep: memory_free failed");
	free(all);
	rc = ufp_module_drop(sweep);
	if (rc && !w->failed)
		fail(w, "sweep: module_drop = %d", rc);
	if (w->failed)
		goto out;
	UFPI_IGNORE(ufp_pool_quiesce(run->pool));
	if (resident(w, &res))
		goto out;
	logres(w, " -> resident %" PRIu64, res);
	if (res != run->baseline) {
		fail(w,
		     "after the sweep module was dropped and the pool "
		     "quiesced, %" PRIu64
		     " bytes are resident; baseline %" PRIu64,
		     res, run->baseline);
		goto out;
	}
	rc = ufpi_pool_check(run->pool);
	if (rc)
		fail(w, "ufpi_pool_check = %d after the sweep", rc);
	else
		check_log(w);
out:
	tl_jb = saved;
	return w->failed ? -1 : 0;
}

enum ufpm_status ufpm_run(const struct ufpm_params *p, uint32_t limit,
			  struct ufpm_totals *t, struct ufpm_result *r,
			  FILE *oplog)
{
	struct run run = {.p = p};
	struct sigaction sa, old_segv, old_bus;
	ufp_config cfg;
	uint32_t nops = limit < p->ops ? limit : p->ops;
	uint32_t nthreads = p->threads > 1 ? p->threads : 1;

	memset(r, 0, sizeof(*r));
	run.concurrent = nthreads > 1;
	/* ufp_memory_free evicts under max_resident_idle_bytes, and for
	 * WARM_LRU beyond max_unused_warm_slots (default 100: never here) */
	run.evicts = p->max_resident_idle_bytes != 0;
	run.page = (size_t)sysconf(_SC_PAGESIZE);
	run.max = p->max_memory_bytes;
	run.maxpages = run.max / WASM_PAGE;
	run.slot_bytes =
		(size_t)((p->max_memory_bytes + p->guard_bytes + run.page - 1) /
			 run.page * run.page);
	/* single-threaded: one more than the slots, so that allocating with
	 * every slot live (-EAGAIN) is exercised; concurrent: few enough that
	 * the pool never fills, so -EAGAIN can only come from a purge */
	run.mem_cap = run.concurrent ? (p->slots - 1) / nthreads : p->slots + 1;
	if (!run.mem_cap)
		run.mem_cap = 1;
	pthread_mutex_init(&run.lock, NULL);
	pthread_mutex_init(&run.log_lock, NULL);

	ufp_config_init(&cfg);
	cfg.slots = p->slots;
	cfg.max_memory_bytes = p->max_memory_bytes;
	cfg.guard_bytes = p->guard_bytes;
	cfg.backend = p->backend;
	cfg.reclaim = p->reclaim;
	cfg.strategy = p->strategy;
	cfg.dirty_tracking = p->dirty_tracking;
	cfg.keep_resident_bytes = p->keep_resident_bytes;
	/* ctest runs the suite again in copy mode (tests/CMakeLists.txt) */
	const char *fill = getenv("UFP_TEST_FILL");
	if (fill && !strcmp(fill, "copy"))
		cfg.fill_mode = UFP_FILL_COPY;
	cfg.random_seed = p->seed;
	if (p->fault_around_max_bytes)
		cfg.fault_around_max_bytes = p->fault_around_max_bytes;
	cfg.max_resident_idle_bytes = p->max_resident_idle_bytes;
	cfg.log = on_log;
	cfg.log_arg = &run;
	cfg.log_level = UFP_LOG_WARN;
	int rc = ufp_pool_create(&cfg, &run.pool);
	if (rc == -EPERM || rc == -ENOSYS || rc == -ENOTSUP) {
		r->status = UFPM_SKIP;
		r->create_err = rc;
		snprintf(r->msg, sizeof(r->msg), "pool_create(%s, %s): %s",
			 backend_name(p->backend), reclaim_name(p->reclaim),
			 ufp_strerror(rc));
		pthread_mutex_destroy(&run.lock);
		pthread_mutex_destroy(&run.log_lock);
		t->skips++;
		return r->status;
	}
	if (rc) {
		r->status = UFPM_FAIL;
		r->fail_step = 1;
		snprintf(r->msg, sizeof(r->msg), "pool_create = %d (%s)", rc,
			 ufp_strerror(rc));
		pthread_mutex_destroy(&run.lock);
		pthread_mutex_destroy(&run.log_lock);
		t->failures++;
		return r->status;
	}
	UFPI_IGNORE(ufp_pool_info(run.pool, &run.backend, &run.reclaim,
				  &run.dirty));
	run.anon = run.pool->slots.anon_scan;

	run.nw = nthreads;
	run.w = calloc(nthreads, sizeof(*run.w));
	run.slots = calloc(p->slots, sizeof(*run.slots));
	run.slot_owner = calloc(p->slots, sizeof(*run.slot_owner));
	bool ok = run.w && run.slots && run.slot_owner;
	for (uint32_t i = 0; ok && i < p->slots; i++)
		ok = (run.slots[i].resid = calloc(1, run.max / run.page)) &&
		     (run.slots[i].resid_hi = calloc(1, run.max / run.page));
	for (uint32_t i = 0; ok && i < nthreads; i++)
		ok = worker_init(&run, &run.w[i], (int)i) == 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);

	struct worker *w0 = run.w;
	if (!ok) {
		snprintf(r->msg, sizeof(r->msg), "out of memory (model setup)");
		r->status = UFPM_FAIL;
		goto done;
	}
	if (ufp_pool_resident_bytes(run.pool, &run.baseline)) {
		snprintf(r->msg, sizeof(r->msg), "pool_resident_bytes failed");
		r->status = UFPM_FAIL;
		goto done;
	}

	bool watching =
		pthread_create(&run.watchdog, NULL, watchdog_main, &run) == 0;
	if (!run.concurrent) {
		struct thread_arg a = {w0, nops};
		worker_main(&a);
	} else {
		struct thread_arg a[64];
		uint32_t started = 0;
		for (uint32_t i = 0; i < nthreads && i < 64; i++) {
			a[i] = (struct thread_arg){
				&run.w[i],
				nops / nthreads + (i < nops % nthreads)};
			if (pthread_create(&run.w[i].th, NULL, worker_main,
					   &a[i]))
				break;
			started++;
		}
		for (uint32_t i = 0; i < started; i++)
			pthread_join(run.w[i].th, NULL);
		if (started < nthreads)
			fail(w0, "pthread_create failed");
	}
	for (uint32_t i = 0; i < nthreads; i++)
		r->ops_run += (uint32_t)run.w[i].tot.ops;

	struct worker *bad = NULL;
	for (uint32_t i = 0; i < nthreads && !bad; i++)
		if (run.w[i].failed)
			bad = &run.w[i];
	if (bad) {
		r->fail_step = bad->step + 1;
		snprintf(r->msg, sizeof(r->msg), "t%d op #%u: %.960s", bad->tid,
			 bad->step + 1, bad->msg);
	} else if (teardown(&run)) {
		bad = w0;
		r->fail_step = r->ops_run + 1;
		snprintf(r->msg, sizeof(r->msg),
			 "teardown after %u ops: %.960s", r->ops_run, w0->msg);
	}
	atomic_store(&run.watch_stop, true);
	if (watching)
		pthread_join(run.watchdog, NULL);
	r->status = bad ? UFPM_FAIL : UFPM_OK;
	if (bad && oplog) {
		char d[256];
		ufpm_describe(p, d, sizeof(d));
		fprintf(oplog, "model run %s failed:\n  %s\noperations:\n", d,
			r->msg);
		for (uint32_t i = 0; i < nthreads; i++)
			print_log(oplog, &run.w[i],
				  run.concurrent ? MT_LOG_TAIL : 0);
	}

done:;
	bool signalled = false;
	for (uint32_t i = 0; run.w && i < nthreads; i++)
		signalled |= run.w[i].signalled;
	if (signalled) {
		/* a fault may have left a library lock held: leak the pool
		 * rather than hang in its teardown */
		run.nmods = 0;
	}
	for (uint32_t i = 0; run.w && i < nthreads; i++) {
		add_totals(t, &run.w[i].tot);
		worker_fini(&run.w[i], signalled);
	}
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	t->runs++;
	if (r->status == UFPM_FAIL)
		t->failures++;
	/* after a failure the pool may hold anything: release what we can */
	while (run.nmods) {
		struct mmod *m = run.mods[--run.nmods];
		UFPI_IGNORE(ufp_module_drop(m->h));
	}
	rc = signalled ? 0 : ufp_pool_destroy(run.pool);
	if (rc && r->status == UFPM_OK) {
		r->status = UFPM_FAIL;
		t->failures++;
		snprintf(r->msg, sizeof(r->msg), "pool_destroy = %d (%s)", rc,
			 ufp_strerror(rc));
	}
	for (struct mmod *m = run.all_mods, *nx; m; m = nx) {
		nx = m->all_next;
		free(m->image);
		free(m);
	}
	for (uint32_t i = 0; run.slots && i < p->slots; i++)
		free(run.slots[i].resid), free(run.slots[i].resid_hi);
	free(run.slots);
	free(run.slot_owner);
	free(run.w);
	pthread_mutex_destroy(&run.lock);
	pthread_mutex_destroy(&run.log_lock);
	return r->status;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int ufpm_shrink(const struct ufpm_params *p, const struct ufpm_result *full,
		double max_seconds, FILE *out)
{
	char d[256];
	ufpm_describe(p, d, sizeof(d));
	if (p->threads > 1) {
		fprintf(out,
			"model: %s failed (concurrent runs are not "
			"shrunk; seed %" PRIu64 "): %s\n",
			d, p->seed, full->msg);
		return -1;
	}
	uint32_t maxn = full->fail_step > p->ops ? p->ops : full->fail_step;
	double deadline = max_seconds > 0 ? now_s() + max_seconds : 0;
	struct ufpm_totals t = {0};
	struct ufpm_result r;
	for (uint32_t n = 0; n <= maxn; n++) {
		if (deadline && now_s() > deadline && n < maxn) {
			fprintf(out,
				"model: %s: prefixes up to %u ops pass; out "
				"of time, the failing run (%u ops) is the "
				"shortest known (seed %" PRIu64 ")\n",
				d, n - 1, maxn, p->seed);
			n = maxn;
		}
		if (ufpm_run(p, n, &t, &r, NULL) != UFPM_FAIL)
			continue;
		fprintf(out,
			"model: %s: shortest failing prefix is %u of the "
			"%u ops (seed %" PRIu64 ")\n",
			d, n, full->ops_run, p->seed);
		/* once more, printing its operations */
		ufpm_run(p, n, &t, &r, out);
		return (int)n;
	}
	fprintf(out,
		"model: %s (seed %" PRIu64 ") failed once but no prefix "
		"up to %u ops failed again: %s\n",
		d, p->seed, maxn, full->msg);
	return -1;
}
