/* SPDX-License-Identifier: MIT */
/*
 * criterion_shim.c - runtime of the Criterion 2.4 stand-in used by the
 * ThreadSanitizer build of the tests (why: see shim/criterion/criterion.h).
 *
 * main() collects the tests registered by Test()/ParameterizedTest()
 * constructors, sorts them by suite and name, and runs each in a fork()ed
 * child (no exec), up to --jobs at a time. The parent enforces timeouts
 * (SIGKILL to the child's process group), checks .signal / .exit_code, and
 * prints the results. The child reports assertion failures and skips
 * through a MAP_SHARED slot, so they survive a crash.
 *
 * Output (stderr, like Criterion): per failure "[----] file:line: message",
 * per failed test "[FAIL] suite::name: reason", per skip "[SKIP] ...", with
 * --verbose also "[RUN ]" / "[PASS]". It ends with
 *   N passed, N failed, N skipped
 *   Synthesis: Tested: N | Passing: P | Failing: F | Crashing: C
 * where, as in Criterion, Tested excludes skipped tests and Failing
 * includes crashed and timed-out ones. Exit status 1 if any test failed.
 */
#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "criterion/criterion.h"

/*
 * TSan's own SIGSEGV/SIGBUS handler would turn a `.signal = SIGSEGV` test's
 * expected fault into a report and exit code 66 (as ASan's would; the test
 * environment sets handle_segv=0 for ASan too). These are defaults:
 * TSAN_OPTIONS from the environment still override them.
 */
__attribute__((used, visibility("default"))) const char *
__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "handle_segv=0:handle_sigbus=0";
}

/* ---- registration -------------------------------------------------------- */

static struct crs_test *crs_tests;
static struct crs_suite *crs_suites;

void crs_register_test(struct crs_test *t)
{
	t->next = crs_tests;
	crs_tests = t;
}

void crs_register_suite(struct crs_suite *s)
{
	s->next = crs_suites;
	crs_suites = s;
}

/* ---- state shared between a test child and the runner ------------------- */

enum { PH_START, PH_INIT, PH_BODY, PH_FINI, PH_DONE };
#define CRS_LOG_CAP (32 * 1024)

struct crs_slot {
	atomic_int failed;   /* failed assertions (fatal or not) */
	atomic_int skipped;  /* cr_skip_test called */
	atomic_int phase;    /* PH_* reached by the child */
	atomic_uint log_len; /* bytes reserved in log[] */
	char skip_msg[512];
	char log[CRS_LOG_CAP];
};

static const char *phase_name[] = {"during startup", "in setup (.init)",
				   "in the test body", "in teardown (.fini)",
				   "after the test completed"};

/* ---- child side ------------------------------------------------------------ */

static struct crs_slot *crs_cur;  /* set in the test child only */
static pthread_t crs_main_thread; /* thread that runs init/body/fini */
static sigjmp_buf crs_jmp;
static int crs_verbose;

static void crs_log_append(const char *s, size_t n)
{
	struct crs_slot *sl = crs_cur;
	unsigned off = atomic_fetch_add(&sl->log_len, (unsigned)n);
	if (off >= CRS_LOG_CAP)
		return;
	if (n > CRS_LOG_CAP - off)
		n = CRS_LOG_CAP - off;
	memcpy(sl->log + off, s, n);
}

static void crs_vreport(const char *file, unsigned line, const char *dflt,
			const char *xfmt, va_list ap)
{
	char msg[4096];
	char out[4096 + 512];
	vsnprintf(msg, sizeof(msg), xfmt, ap);
	const char *text = msg[1] ? msg + 1 : dflt; /* skip the "x" */
	int n = snprintf(out, sizeof(out),
			 "[----] %s:%u: Assertion failed: %s\n", file, line,
			 text);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(out))
		n = sizeof(out) - 1;
	if (!crs_cur) { /* assertion outside a test (e.g. a constructor) */
		(void)!write(2, out, (size_t)n);
		return;
	}
	atomic_fetch_add(&crs_cur->failed, 1);
	crs_log_append(out, (size_t)n);
}

/* Leave the running test: back to the runner's jump point from the test
 * thread, or end the process from any other thread. */
static _Noreturn void crs_leave(void)
{
	if (!crs_cur)
		abort();
	if (!pthread_equal(pthread_self(), crs_main_thread)) {
		fflush(NULL);
		_exit(0);
	}
	siglongjmp(crs_jmp, 1);
}

_Noreturn void crs_fail_abort(const char *file, unsigned line, const char *dflt,
			      const char *xfmt, ...)
{
	va_list ap;
	va_start(ap, xfmt);
	crs_vreport(file, line, dflt, xfmt, ap);
	va_end(ap);
	crs_leave();
}

void crs_fail_continue(const char *file, unsigned line, const char *dflt,
		       const char *xfmt, ...)
{
	va_list ap;
	va_start(ap, xfmt);
	crs_vreport(file, line, dflt, xfmt, ap);
	va_end(ap);
}

/* Record a skip (the first reason wins) and leave the test. */
static _Noreturn void crs_skip_with(const char *file, unsigned line,
				    const char *msg)
{
	if (!crs_cur) {
		fprintf(stderr, "%s:%u: cr_skip_test outside a test\n", file,
			line);
		abort();
	}
	if (!atomic_exchange(&crs_cur->skipped, 1))
		snprintf(crs_cur->skip_msg, sizeof(crs_cur->skip_msg), "%s",
			 *msg ? msg : "skipped");
	crs_leave();
}

_Noreturn void crs_skip(const char *file, unsigned line, const char *xfmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, xfmt);
	vsnprintf(msg, sizeof(msg), xfmt, ap);
	va_end(ap);
	crs_skip_with(file, line, msg + 1); /* skip the "x" */
}

_Noreturn void criterion_skip_test(const char *format, ...)
{
	char msg[512] = "";
	if (format) {
		va_list ap;
		va_start(ap, format);
		vsnprintf(msg, sizeof(msg), format, ap);
		va_end(ap);
	}
	crs_skip_with("?", 0, msg);
}

_Noreturn void criterion_abort_test(void)
{
	if (crs_cur)
		atomic_fetch_add(&crs_cur->failed, 1);
	crs_leave();
}

void criterion_continue_test(void)
{
}

void criterion_test_die(const char *msg, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, msg);
	vsnprintf(buf, sizeof(buf), msg, ap);
	va_end(ap);
	crs_fail_abort("?", 0, buf, "x");
}

const char *crs_msgf(const char *fmt, ...)
{
	static _Thread_local char ring[4][2048];
	static _Thread_local unsigned next;
	char *buf = ring[next++ % 4];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(ring[0]), fmt, ap);
	va_end(ap);
	return buf;
}

size_t crs_memdiff(const void *a, const void *b, size_t size)
{
	const unsigned char *p = a, *q = b;
	size_t i = 0;
	while (i < size && p[i] == q[i])
		i++;
	return i;
}

void cr_log(enum criterion_severity severity, const char *msg, ...)
{
	static const char *tag[] = {"[INFO]", "[WARN]", "[ERR ]"};
	if (severity == CR_LOG_INFO && !crs_verbose)
		return;
	char text[2048], line[2100];
	va_list ap;
	va_start(ap, msg);
	vsnprintf(text, sizeof(text), msg, ap);
	va_end(ap);
	int n = snprintf(line, sizeof(line), "%s %s\n",
			 tag[(unsigned)severity < 3 ? severity : 2], text);
	if (n > 0)
		(void)!write(2, line,
			     (size_t)n < sizeof(line) ? (size_t)n
						      : sizeof(line) - 1);
}

/* ---- the runner ----------------------------------------------------------- */

struct crs_entry {
	struct crs_test *t;
	struct crs_suite *s; /* NULL when the suite has no TestSuite() */
	void *param;	     /* ParameterizedTest: this instance's parameter */
	long index;	     /* parameter index, -1 for plain tests */
	char label[256];     /* suite::name or suite::name[i] */
};

struct crs_job {
	pid_t pid;
	struct crs_entry *e;
	struct crs_slot *slot;
	double start, deadline; /* monotonic seconds; deadline 0 = none */
};

static struct {
	int jobs;
	const char *filter;
	double timeout; /* default for tests with none */
	int fail_fast;
	int list;
} opt = {.jobs = 1};

static struct {
	int passed, failed, crashed, skipped;
} stats;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct crs_suite *find_suite(const char *name)
{
	for (struct crs_suite *s = crs_suites; s; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

static const struct criterion_test_extra_data *sdata(const struct crs_entry *e)
{
	return e->s ? e->s->data : NULL;
}

static double test_timeout(const struct crs_entry *e)
{
	if (e->t->data->timeout > 0)
		return e->t->data->timeout;
	if (sdata(e) && sdata(e)->timeout > 0)
		return sdata(e)->timeout;
	return opt.timeout;
}

static int test_signal(const struct crs_entry *e)
{
	if (e->t->data->signal)
		return e->t->data->signal;
	return sdata(e) ? sdata(e)->signal : 0;
}

static int test_exit_code(const struct crs_entry *e)
{
	if (e->t->data->exit_code)
		return e->t->data->exit_code;
	return sdata(e) ? sdata(e)->exit_code : 0;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct crs_entry *x = a, *y = b;
	int c = strcmp(x->t->suite, y->t->suite);
	if (!c)
		c = strcmp(x->t->name, y->t->name);
	if (!c)
		c = (x->index > y->index) - (x->index < y->index);
	return c;
}

static _Noreturn void run_child(struct crs_entry *e, struct crs_slot *slot,
				pid_t runner)
{
	setpgid(0, 0); /* so a timeout can kill the test's own children too */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != runner)
		_exit(127);
	crs_cur = slot;
	crs_main_thread = pthread_self();
	const struct criterion_test_extra_data *sd = sdata(e), *td = e->t->data;

	atomic_store(&slot->phase, PH_INIT);
	if (!sigsetjmp(crs_jmp, 1)) {
		if (sd && sd->init)
			sd->init();
		if (td->init)
			td->init();
		atomic_store(&slot->phase, PH_BODY);
		if (e->t->param)
			((void (*)(void *))e->t->fn)(e->param);
		else
			e->t->fn();
	}
	/* As in Criterion, teardown runs after the body even when it failed,
	 * but not when the setup itself did not complete. */
	if (atomic_load(&slot->phase) == PH_BODY) {
		atomic_store(&slot->phase, PH_FINI);
		if (!sigsetjmp(crs_jmp, 1)) {
			if (td->fini)
				td->fini();
			if (sd && sd->fini)
				sd->fini();
		}
	}
	atomic_store(&slot->phase, PH_DONE);
	fflush(NULL);
	_exit(0);
}

static void print_log(struct crs_slot *sl)
{
	unsigned len = atomic_load(&sl->log_len);
	if (len > CRS_LOG_CAP) {
		fwrite(sl->log, 1, CRS_LOG_CAP, stderr);
		fprintf(stderr,
			"[----] (%u more bytes of failure messages dropped)\n",
			len - CRS_LOG_CAP);
	} else {
		fwrite(sl->log, 1, len, stderr);
	}
}

static const char *signame(int sig)
{
	const char *d = sigdescr_np(sig);
	const char *a = sigabbrev_np(sig);
	static char buf[96];
	snprintf(buf, sizeof(buf), "%d (SIG%s: %s)", sig, a ? a : "?",
		 d ? d : "?");
	return buf;
}

/* Classify a finished (or killed) child; returns 1 if the test failed. */
static int finish(struct crs_job *j, int status, int timed_out)
{
	struct crs_entry *e = j->e;
	struct crs_slot *sl = j->slot;
	double secs = now() - j->start;
	int failed = atomic_load(&sl->failed);
	int skipped = atomic_load(&sl->skipped);
	int phase = atomic_load(&sl->phase);
	int want_sig = test_signal(e), want_code = test_exit_code(e);
	char why[512] = "";
	enum { PASS, FAIL, CRASH, SKIP } r;

	if (phase < PH_START || phase > PH_DONE)
		phase = PH_START;
	if (timed_out) {
		r = FAIL;
		snprintf(why, sizeof(why), "Timed out after %.3gs %s.",
			 test_timeout(e), phase_name[phase]);
	} else if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		if (want_sig && sig == want_sig && !failed) {
			r = PASS;
		} else if (want_sig && sig == want_sig) {
			r = FAIL;
			snprintf(why, sizeof(why),
				 "%d assertion(s) failed before "
				 "the expected signal.",
				 failed);
		} else {
			r = CRASH;
			snprintf(why, sizeof(why),
				 "CRASH! Killed by signal %s %s%s.",
				 signame(sig), phase_name[phase],
				 want_sig ? " (another signal was expected)"
					  : "");
		}
	} else {
		int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		if (failed) {
			r = FAIL;
			snprintf(why, sizeof(why), "%d assertion(s) failed.",
				 failed);
		} else if (skipped) {
			r = SKIP;
		} else if (want_sig) {
			r = FAIL;
			snprintf(why, sizeof(why),
				 "Exited with status %d %s but "
				 "signal %s was expected.",
				 code, phase_name[phase], signame(want_sig));
		} else if (code != want_code) {
			r = FAIL;
			snprintf(why, sizeof(why),
				 "Exited with status %d %s, "
				 "expected %d%s.",
				 code, phase_name[phase], want_code,
				 code == 66 ? " (66 is ThreadSanitizer's exit "
					      "code: see "
					      "its report above)"
					    : "");
		} else {
			r = PASS;
		}
	}

	print_log(sl);
	switch (r) {
	case PASS:
		stats.passed++;
		if (crs_verbose)
			fprintf(stderr, "[PASS] %s: (%.2fs)\n", e->label, secs);
		return 0;
	case SKIP:
		stats.skipped++;
		fprintf(stderr, "[SKIP] %s: %s\n", e->label, sl->skip_msg);
		return 0;
	case CRASH:
		stats.crashed++; /* a crash is also a failure, as in Criterion */
				 /* fall through */
	case FAIL:
		stats.failed++;
		fprintf(stderr, "[FAIL] %s: %s (%.2fs)\n", e->label, why, secs);
		return 1;
	}
	return 1;
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [--filter GLOB] [--jobs N] [--timeout SECONDS] "
		"[--verbose] [--fail-fast] [--list]\n"
		"Criterion 2.4 stand-in for ThreadSanitizer builds "
		"(tests/shim); GLOB is matched against suite/name; other "
		"options are ignored.\n",
		argv0);
}

/* --name VALUE or --name=VALUE; also -xVALUE / -x VALUE for `shrt`. */
static const char *optval(int argc, char **argv, int *i, const char *name,
			  char shrt)
{
	const char *a = argv[*i];
	size_t n = strlen(name);
	if (strncmp(a, name, n) == 0) {
		if (a[n] == '=')
			return a + n + 1;
		if (a[n] == '\0' && *i + 1 < argc)
			return argv[++*i];
		return NULL;
	}
	if (shrt && a[0] == '-' && a[1] == shrt) {
		if (a[2])
			return a + 2;
		if (*i + 1 < argc)
			return argv[++*i];
	}
	return NULL;
}

static void parse_args(int argc, char **argv)
{
	const char *v;
	if ((v = getenv("CRITERION_JOBS")))
		opt.jobs = atoi(v);
	if ((v = getenv("CRITERION_TEST_PATTERN")))
		opt.filter = v;
	if ((v = getenv("CRITERION_VERBOSITY_LEVEL")))
		crs_verbose = atoi(v) <= 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(argv[0]);
			exit(0);
		} else if (strncmp(a, "--verbose", 9) == 0 ||
			   strcmp(a, "-V") == 0) {
			crs_verbose = 1;
		} else if (strcmp(a, "--fail-fast") == 0) {
			opt.fail_fast = 1;
		} else if (strcmp(a, "--list") == 0 || strcmp(a, "-l") == 0) {
			opt.list = 1;
		} else if (strncmp(a, "--filter", 8) == 0 ||
			   strncmp(a, "--pattern", 9) == 0) {
			v = optval(argc, argv, &i,
				   a[2] == 'f' ? "--filter" : "--pattern", 0);
			if (v)
				opt.filter = v;
		} else if (strncmp(a, "--jobs", 6) == 0 ||
			   strncmp(a, "-j", 2) == 0) {
			v = optval(argc, argv, &i, "--jobs", 'j');
			if (v)
				opt.jobs = atoi(v);
		} else if (strncmp(a, "--timeout", 9) == 0) {
			v = optval(argc, argv, &i, "--timeout", 0);
			if (v)
				opt.timeout = atof(v);
		} else if (crs_verbose) {
			fprintf(stderr,
				"[WARN] criterion shim: ignoring option %s\n",
				a);
		}
	}
	if (opt.jobs <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		opt.jobs = n > 0 ? (int)n : 1;
	}
}

/* Expand registrations into runnable entries (one per parameter). */
static struct crs_entry *collect(size_t *count)
{
	size_t n = 0, cap = 64;
	struct crs_entry *v = malloc(cap * sizeof(*v));
	if (!v)
		abort();
	for (struct crs_test *t = crs_tests; t; t = t->next) {
		char id[256];
		snprintf(id, sizeof(id), "%s/%s", t->suite, t->name);
		if (opt.filter && fnmatch(opt.filter, id, 0) != 0)
			continue;
		struct criterion_test_params p = {0, NULL, 1, NULL};
		if (t->param)
			p = t->param();
		for (size_t k = 0; k < p.length; k++) {
			if (n == cap) {
				cap *= 2;
				v = realloc(v, cap * sizeof(*v));
				if (!v)
					abort();
			}
			struct crs_entry *e = &v[n++];
			e->t = t;
			e->s = find_suite(t->suite);
			e->param =
				t->param ? (char *)p.params + k * p.size : NULL;
			e->index = t->param ? (long)k : -1;
			if (t->param)
				snprintf(e->label, sizeof(e->label),
					 "%s::%s[%zu]", t->suite, t->name, k);
			else
				snprintf(e->label, sizeof(e->label), "%s::%s",
					 t->suite, t->name);
		}
		/* p.cleanup is not called: the parameters must outlive every
		 * fork()ed instance, and the process exits soon after. */
	}
	qsort(v, n, sizeof(*v), cmp_entry);
	*count = n;
	return v;
}

static int disabled(const struct crs_entry *e)
{
	return e->t->data->disabled || (sdata(e) && sdata(e)->disabled);
}

static void start(struct crs_job *j, struct crs_entry *e, pid_t runner)
{
	memset(j->slot, 0, sizeof(*j->slot));
	j->e = e;
	if (crs_verbose) {
		fprintf(stderr, "[RUN ] %s\n", e->label);
		if (e->t->data->description)
			fprintf(stderr, "[----]   %s\n",
				e->t->data->description);
	}
	fflush(NULL);
	j->start = now();
	double to = test_timeout(e);
	j->deadline = to > 0 ? j->start + to : 0;
	pid_t pid = fork();
	if (pid < 0) {
		perror("criterion shim: fork");
		exit(2);
	}
	if (pid == 0)
		run_child(e, j->slot, runner);
	setpgid(pid, pid); /* also done by the child; whichever runs first */
	j->pid = pid;
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	size_t n;
	struct crs_entry *tests = collect(&n);

	if (opt.list) {
		for (size_t i = 0; i < n; i++)
			printf("%s%s\n", tests[i].label,
			       disabled(&tests[i]) ? " (disabled)" : "");
		free(tests);
		return 0;
	}

	int jobs = opt.jobs;
	struct crs_job *job = calloc((size_t)jobs, sizeof(*job));
	struct crs_slot *slots =
		mmap(NULL, (size_t)jobs * sizeof(struct crs_slot),
		     PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!job || slots == MAP_FAILED) {
		perror("criterion shim: setup");
		return 2;
	}
	for (int k = 0; k < jobs; k++)
		job[k].slot = &slots[k];

	pid_t runner = getpid();
	size_t next = 0;
	int running = 0, stop = 0;
	while ((next < n && !stop) || running > 0) {
		/* fill free job slots */
		for (int k = 0; k < jobs && next < n && !stop; k++) {
			if (job[k].pid)
				continue;
			struct crs_entry *e = &tests[next++];
			if (disabled(e)) {
				stats.skipped++;
				fprintf(stderr, "[SKIP] %s: test is disabled\n",
					e->label);
				k--; /* this slot is still free */
				continue;
			}
			start(&job[k], e, runner);
			running++;
		}
		if (!running)
			continue;

		/* Peek at a finished child without reaping it, so that its pid
		 * (and process group id) cannot be reused while we kill what
		 * the test may have left in its group. */
		siginfo_t si;
		int status;
		memset(&si, 0, sizeof(si));
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 &&
		    errno != EINTR) {
			perror("criterion shim: waitid");
			return 2;
		}
		pid_t pid = si.si_pid;
		if (pid > 0) {
			kill(-pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			for (int k = 0; k < jobs; k++) {
				if (job[k].pid != pid)
					continue;
				if (finish(&job[k], status, 0) && opt.fail_fast)
					stop = 1;
				job[k].pid = 0;
				running--;
			}
			continue;
		}
		double t = now();
		for (int k = 0; k < jobs; k++) {
			if (!job[k].pid || !job[k].deadline ||
			    t < job[k].deadline)
				continue;
			kill(-job[k].pid, SIGKILL);
			kill(job[k].pid, SIGKILL);
			while (waitpid(job[k].pid, &status, 0) < 0 &&
			       errno == EINTR)
				;
			if (finish(&job[k], status, 1) && opt.fail_fast)
				stop = 1;
			job[k].pid = 0;
			running--;
		}
		struct timespec nap = {0, 2 * 1000 * 1000};
		nanosleep(&nap, NULL);
	}

	munmap(slots, (size_t)jobs * sizeof(struct crs_slot));
	free(job);
	free(tests);

	int tested = stats.passed + stats.failed;
	fprintf(stderr, "%d passed, %d failed, %d skipped\n", stats.passed,
		stats.failed, stats.skipped);
	fprintf(stderr,
		"Synthesis: Tested: %d | Passing: %d | Failing: %d | "
		"Crashing: %d\n",
		tested, stats.passed, stats.failed, stats.crashed);
	return stats.failed ? 1 : 0;
}
