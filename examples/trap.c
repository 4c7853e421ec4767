/* SPDX-License-Identifier: MIT */
/*
 * trap.c - a runtime's trap handler in front of uffdpool memories.
 *
 * An out-of-bounds access of a memory is a SIGSEGV from the PROT_NONE part
 * of its slot (the library installs no handler). The handler below turns a
 * SIGSEGV whose si_addr lies in the running memory's slot into a wasm trap
 * and recovers with siglongjmp; a SIGBUS there is a use after free (a
 * page the handler thread poisoned) - a runtime bug, reported as such;
 * anything else goes to the handler that was installed before. Exits
 * non-zero on any failure.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uffdpool.h>

#include "example.h"

/* [handler] */
/* What the running instance of this thread may touch: its slot, from base
 * to base + max_memory_bytes + guard_bytes (the pool does not export its
 * reservation: the runtime knows its memories). Volatile: the handler
 * reads it between two stores the compiler would otherwise merge. */
static _Thread_local volatile struct {
	uintptr_t lo, hi;
	sigjmp_buf *resume; /* NULL: no instance running */
} running;

/* Filled by the handler for the code that resumes. */
static _Thread_local volatile struct {
	int sig, code;
	uintptr_t addr;
} trap;

static struct sigaction prev_segv, prev_bus;

static void chain(int sig, siginfo_t *si, void *uc)
{
	const struct sigaction *prev = sig == SIGSEGV ? &prev_segv : &prev_bus;
	if (prev->sa_flags & SA_SIGINFO) {
		prev->sa_sigaction(sig, si, uc);
	} else if (prev->sa_handler == SIG_DFL || prev->sa_handler == SIG_IGN) {
		/* returning re-executes the access: with the default action
		 * it then kills the process as if we were not there */
		signal(sig, SIG_DFL);
	} else {
		prev->sa_handler(sig);
	}
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	if (!running.resume || a < running.lo || a >= running.hi) {
		chain(sig, si, uc); /* not ours */
		return;
	}
	/* SIGSEGV (si_code SEGV_ACCERR): PROT_NONE, out of bounds, a wasm
	 * trap. SIGBUS (si_code BUS_ADRERR on Linux 6.18): a page of a
	 * freed memory that the handler thread poisoned, a runtime bug. */
	trap.sig = sig;
	trap.code = si->si_code;
	trap.addr = a;
	siglongjmp(*running.resume, 1);
}

static void install(void)
{
	/* faults may come from a thread whose stack is exhausted: run the
	 * handler on an alternate stack (one per thread) */
	static char altstack[64 * 1024];
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaltstack(&ss, NULL) || sigaction(SIGSEGV, &sa, &prev_segv) ||
	    sigaction(SIGBUS, &sa, &prev_bus)) {
		perror("sigaction");
		exit(1);
	}
}
/* [handler] */

/* The host's own handler, installed before the runtime's: it owns one
 * PROT_NONE page and opens it on the first touch. */
static unsigned char *host_page;
static volatile int host_faults;

static void host_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	unsigned char *a = si->si_addr;
	if (sig == SIGSEGV && a >= host_page && a < host_page + 4096) {
		host_faults++;
		mprotect(host_page, 4096, PROT_READ | PROT_WRITE);
		return;
	}
	signal(sig, SIG_DFL);
}

/* [run] */
/* Run a piece of "wasm code" touching base[off]: 0 if it ran, 1 if it
 * trapped (trap.* says how). */
static int run_access(unsigned char *base, uint64_t span, uint64_t off)
{
	sigjmp_buf resume;
	running.lo = (uintptr_t)base;
	running.hi = (uintptr_t)base + span;
	if (sigsetjmp(resume, 1)) {
		running.resume = NULL;
		return 1;
	}
	running.resume = &resume;
	volatile unsigned char *p = base;
	p[off] = (unsigned char)(p[off] + 1);
	running.resume = NULL;
	return 0;
}
/* [run] */

int main(void)
{
	const long page = sysconf(_SC_PAGESIZE);
	ufp_config cfg;
	ufp_pool *pool;
	ufp_memory *mem;
	ufp_backend backend;

	/* the host's handler first, then the runtime's, which chains */
	struct sigaction host;
	memset(&host, 0, sizeof(host));
	host.sa_sigaction = host_handler;
	host.sa_flags = SA_SIGINFO;
	sigemptyset(&host.sa_mask);
	EXPECT(sigaction(SIGSEGV, &host, NULL) == 0);
	host_page =
		mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	EXPECT(host_page != MAP_FAILED);
	install();

	ufp_config_init(&cfg);
	cfg.slots = 2;
	cfg.max_memory_bytes = 1 << 20; /* 1 MiB memories, 64 KiB guards */
	cfg.guard_bytes = 64 << 10;
	cfg.dirty_tracking = UFP_DIRTY_OFF; /* every freed page traps */
	CHECK(ufp_pool_create(&cfg, &pool));
	CHECK(ufp_pool_info(pool, &backend, NULL, NULL));
	CHECK(ufp_memory_alloc(pool, NULL, 2 * 65536, &mem));
	unsigned char *base = ufp_memory_base(mem);
	uint64_t size = ufp_memory_size(mem);
	uint64_t span = cfg.max_memory_bytes + cfg.guard_bytes;

	/* in bounds: runs */
	EXPECT(run_access(base, span, size - 1) == 0);
	EXPECT(base[size - 1] == 1);
	/* one byte past the end, the end of max_memory_bytes, the guard:
	 * each a SIGSEGV that becomes a trap, and execution goes on */
	uint64_t oob[] = {size, cfg.max_memory_bytes - 1, span - 1};
	for (size_t i = 0; i < 3; i++) {
		EXPECT(run_access(base, span, oob[i]) == 1);
		EXPECT(trap.sig == SIGSEGV && trap.code == SEGV_ACCERR);
		EXPECT(trap.addr == (uintptr_t)base + oob[i]);
	}
	printf("trap: out of bounds at +%llu, +%llu, +%llu: SIGSEGV "
	       "(SEGV_ACCERR), recovered\n",
	       (unsigned long long)oob[0], (unsigned long long)oob[1],
	       (unsigned long long)oob[2]);

	/* grow, then the former trap address is memory */
	CHECK(ufp_memory_grow(mem, size + 65536));
	EXPECT(run_access(base, span, size) == 0);

	/* a fault outside every memory goes to the host's handler */
	host_page[5] = 1;
	EXPECT(host_faults == 1 && host_page[5] == 1);
	printf("trap: a fault outside the pool went to the previous "
	       "handler\n");

	/* [fork] */
	/* The reservation is MADV_DONTFORK: a child has no pool memory (and
	 * no handler thread). It must not touch memories nor call the
	 * library; exec or _exit. */
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		volatile unsigned char *p = base;
		_exit(p[0] == 0 ? 10 : 11); /* never returns: SIGSEGV */
	}
	int status;
	EXPECT(pid > 0 && waitpid(pid, &status, 0) == pid);
	EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
	/* [fork] */
	printf("trap: a forked child has no pool memory (SIGSEGV)\n");

	/* use after free: with the UFFD backend the handler thread poisons
	 * the page (Linux >= 6.6, else PROT_NONE: SIGSEGV) */
	CHECK(ufp_memory_free(mem));
	if (backend == UFP_BACKEND_UFFD) {
		EXPECT(run_access(base, span, 0) == 1);
		EXPECT(trap.sig == SIGBUS || trap.sig == SIGSEGV);
		printf("trap: use after free: %s (si_code %d): a runtime "
		       "bug, not a wasm trap\n",
		       trap.sig == SIGBUS ? "SIGBUS" : "SIGSEGV", trap.code);
	}
	EXPECT((long)(span % (uint64_t)page) == 0);

	CHECK(ufp_pool_destroy(pool));
	printf("trap: ok\n");
	return 0;
}
