/* SPDX-License-Identifier: MIT */
/*
 * check.c - `ufp-bench --check` / `ufp-bench check`: what this machine
 * offers uffdpool and what AUTO makes of it.
 *
 * Prints the kernel feature probe (lib/probe.c), the permissions that
 * decide whether userfaultfd may be opened, the limits pool creation checks
 * (vm.max_map_count, RLIMIT_AS), and the backend / fill mode / reclaim
 * engine / dirty tracking a pool with every mechanism on AUTO actually
 * resolved to (fill mode MINOR needs the probe's MINOR_SHMEM), with
 * the library's own log lines as the reason for each fallback. Exit 0 when
 * such a pool could be created, 1 otherwise. Changes nothing on the system.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "internal.h"

#define CAP_SYS_PTRACE_BIT 19
#define MAX_LOG 32

/* UFFD_FEATURE_* bit names, in bit order (linux/userfaultfd.h). */
static const char *const uffd_bits[] = {
	"PAGEFAULT_FLAG_WP",
	"EVENT_FORK",
	"EVENT_REMAP",
	"EVENT_REMOVE",
	"MISSING_HUGETLBFS",
	"MISSING_SHMEM",
	"EVENT_UNMAP",
	"SIGBUS",
	"THREAD_ID",
	"MINOR_HUGETLBFS",
	"MINOR_SHMEM",
	"EXACT_ADDRESS",
	"WP_HUGETLBFS_SHMEM",
	"WP_UNPOPULATED",
	"POISON",
	"WP_ASYNC",
	"MOVE",
};
#define NBITS (sizeof(uffd_bits) / sizeof(uffd_bits[0]))

struct logbuf {
	unsigned n;
	ufp_log_level level[MAX_LOG];
	char *line[MAX_LOG];
};

static void capture(void *arg, ufp_log_level level, const char *msg)
{
	struct logbuf *l = arg;
	if (l->n < MAX_LOG) {
		l->level[l->n] = level;
		l->line[l->n] = strdup(msg);
		if (l->line[l->n])
			l->n++;
	}
}

static const char *level_name(ufp_log_level l)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	return (unsigned)l < 4 ? names[l] : "?";
}

/* JSON string body: quotes, backslashes and control bytes escaped. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* "yes" / "no" / "unusable: <why>" for the tri-state probes. */
static const char *tri(int v, char *buf, size_t cap)
{
	if (v == 1)
		return "yes";
	if (v == 0)
		return "no";
	snprintf(buf, cap, "unusable: %s", ufp_strerror(v));
	return buf;
}

struct perms {
	uid_t euid;
	int unpriv;	   /* vm.unprivileged_userfaultfd, -1 unknown */
	bool dev;	   /* /dev/userfaultfd exists */
	unsigned dev_mode; /* its permission bits */
	uid_t dev_uid;
	gid_t dev_gid;
	bool dev_rw;	/* we may open it read-write */
	int cap_ptrace; /* CAP_SYS_PTRACE in CapEff: 1, 0, -1 unknown */
};

static void read_perms(struct perms *p)
{
	struct stat st;
	FILE *f;
	char line[256];

	p->euid = geteuid();
	p->unpriv = -1;
	f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "re");
	if (f) {
		if (fscanf(f, "%d", &p->unpriv) != 1)
			p->unpriv = -1;
		fclose(f);
	}
	if (stat("/dev/userfaultfd", &st) == 0) {
		p->dev = true;
		p->dev_mode = st.st_mode & 07777;
		p->dev_uid = st.st_uid;
		p->dev_gid = st.st_gid;
		p->dev_rw = access("/dev/userfaultfd", R_OK | W_OK) == 0;
	}
	p->cap_ptrace = -1;
	f = fopen("/proc/self/status", "re");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			unsigned long long eff;
			if (sscanf(line, "CapEff: %llx", &eff) == 1) {
				p->cap_ptrace = (eff >> CAP_SYS_PTRACE_BIT) & 1;
				break;
			}
		}
		fclose(f);
	}
}

/* First captured line that mentions `key`, or NULL. */
static const char *reason(const struct logbuf *l, const char *key)
{
	for (unsigned k = 0; k < l->n; k++)
		if (strstr(l->line[k], key))
			return l->line[k];
	return NULL;
}

static void fmt_limit(uint64_t v, char *buf, size_t cap)
{
	if (v == UINT64_MAX)
		snprintf(buf, cap, "unlimited");
	else
		snprintf(buf, cap, "%llu bytes", (unsigned long long)v);
}

/* What a pool with every mechanism on AUTO resolved to, and why. */
struct autopool {
	int err; /* pool creation */
	ufp_backend be;
	ufp_reclaim rc;
	ufp_fill_mode fill;
	int dirty;
	const char *be_why, *rc_why, *dt_why, *fill_why;
	struct logbuf logs;
};

/* A tiny pool with every mechanism on AUTO: what it resolved to is the
 * answer, its log lines are the reasons. */
static void auto_pool(struct autopool *a)
{
	ufp_config cfg;
	ufp_pool *pool = NULL;

	a->be = UFP_BACKEND_AUTO;
	a->rc = UFP_RECLAIM_AUTO;
	a->fill = UFP_FILL_AUTO;
	ufp_config_init(&cfg);
	cfg.slots = 1;
	cfg.max_memory_bytes = 64 << 10;
	cfg.guard_bytes = 64 << 10;
	cfg.log = capture;
	cfg.log_arg = &a->logs;
	cfg.log_level = UFP_LOG_DEBUG;
	a->err = ufp_pool_create(&cfg, &pool);
	if (!a->err)
		a->err = ufp_pool_info(pool, &a->be, &a->rc, &a->dirty);
	if (!a->err)
		a->err = ufp_pool_fill_mode(pool, &a->fill);
	if (pool)
		UFPI_IGNORE(ufp_pool_destroy(pool));
	if (a->err)
		return;
	if (a->be != UFP_BACKEND_UFFD)
		a->be_why = reason(&a->logs, "userfaultfd");
	if (a->rc != UFP_RECLAIM_URING)
		a->rc_why = reason(&a->logs, "reclaim");
	if (!a->dirty)
		a->dt_why = a->be != UFP_BACKEND_UFFD
				    ? "not applicable: it works with the UFFD "
				      "backend only"
				    : reason(&a->logs, "dirty tracking");
	if (a->be != UFP_BACKEND_UFFD)
		a->fill_why = "not applicable: it is the UFFD backend's";
	else
		a->fill_why = reason(&a->logs, "fill");
}

static void say_features(struct ufpb *b, const struct ufpi_features *f)
{
	char t1[96], t2[96];
	ufpb_say(b, "kernel features (probed once, by trying them):\n");
	if (f->uffd_err)
		ufpb_say(b, "  userfaultfd          cannot be opened: %s\n",
			 ufp_strerror(f->uffd_err));
	else
		ufpb_say(b, "  userfaultfd          ok, via %s\n",
			 f->uffd_via_dev
				 ? "/dev/userfaultfd (USERFAULTFD_IOC_NEW)"
				 : "the userfaultfd(2) syscall");
	ufpb_say(b, "  UFFDIO_API features  0x%llx",
		 (unsigned long long)f->uffd_features);
	for (unsigned k = 0; k < 64; k++)
		if (f->uffd_features >> k & 1) {
			if (k < NBITS)
				ufpb_say(b, " %s", uffd_bits[k]);
			else
				ufpb_say(b, " bit%u", k);
		}
	ufpb_say(b, "\n");
	ufpb_say(b, "  MINOR_SHMEM          %s\n",
		 f->minor_shmem ? "yes (fill mode MINOR: image pages mapped "
				  "from the page cache)"
				: "no (fill mode COPY only)");
	ufpb_say(b, "  UFFDIO_POISON        %s\n",
		 f->poison ? "yes (a touch after free gets SIGBUS)"
			   : "no (fallback: mprotect, SIGSEGV)");
	ufpb_say(b, "  WP_ASYNC             %s\n", f->wp_async ? "yes" : "no");
	ufpb_say(b, "  PAGEMAP_SCAN         %s\n",
		 f->pagemap_scan ? "yes" : "no (resident bytes via mincore)");
	ufpb_say(b, "  io_uring MADVISE     %s\n",
		 tri(f->uring_madvise, t1, sizeof(t1)));
	ufpb_say(b, "  process_madvise      %s\n",
		 tri(f->process_madvise, t2, sizeof(t2)));
}

static void say_perms(struct ufpb *b, const struct perms *pm)
{
	ufpb_say(b, "\npermissions:\n");
	ufpb_say(b, "  euid                 %u%s\n", (unsigned)pm->euid,
		 pm->euid == 0 ? " (root)" : "");
	if (pm->unpriv < 0)
		ufpb_say(b, "  vm.unprivileged_userfaultfd  unknown (no "
			    "/proc/sys/vm/unprivileged_userfaultfd)\n");
	else
		ufpb_say(b, "  vm.unprivileged_userfaultfd  %d%s\n", pm->unpriv,
			 pm->unpriv ? ""
				    : " (the syscall needs CAP_SYS_PTRACE)");
	if (pm->dev)
		ufpb_say(b,
			 "  /dev/userfaultfd     present, mode %04o, uid %u "
			 "gid %u, %s by us\n",
			 pm->dev_mode, (unsigned)pm->dev_uid,
			 (unsigned)pm->dev_gid,
			 pm->dev_rw ? "openable read-write" : "not openable");
	else
		ufpb_say(b, "  /dev/userfaultfd     absent\n");
	ufpb_say(b, "  CAP_SYS_PTRACE       %s\n",
		 pm->cap_ptrace < 0 ? "unknown"
		 : pm->cap_ptrace   ? "effective"
				    : "no");
}

struct limits {
	uint64_t maxmap, mapused, rlim;
	int maxmap_err, rlim_err;
};

static void say_limits(struct ufpb *b, const struct limits *l)
{
	char t1[96];
	ufpb_say(b, "\nlimits:\n");
	if (l->maxmap_err)
		ufpb_say(b, "  vm.max_map_count     unknown: %s\n",
			 ufp_strerror(l->maxmap_err));
	else
		ufpb_say(b,
			 "  vm.max_map_count     %llu (%llu mappings in use "
			 "now)\n",
			 (unsigned long long)l->maxmap,
			 (unsigned long long)l->mapused);
	if (l->rlim_err)
		ufpb_say(b, "  RLIMIT_AS            unknown: %s\n",
			 ufp_strerror(l->rlim_err));
	else {
		fmt_limit(l->rlim, t1, sizeof(t1));
		ufpb_say(b, "  RLIMIT_AS            %s\n", t1);
	}
}

/* One line of what AUTO chose: the choice, and the reason the library
 * logged where it is not the preferred one. */
static void say_choice(struct ufpb *b, const char *what, const char *choice,
		       int preferred, const char *why)
{
	ufpb_say(b, "  %-20s %s%s%s\n", what, choice,
		 preferred ? "" : " - fallback: ",
		 preferred ? ""
		 : why	   ? why
			   : "(no reason logged)");
}

static void say_auto(struct ufpb *b, const struct autopool *a)
{
	ufpb_say(b, "\nwhat AUTO chooses (a 1-slot, 64 KiB pool with every "
		    "mechanism on AUTO):\n");
	if (a->err) {
		ufpb_say(b, "  pool creation FAILED: %s\n",
			 ufp_strerror(a->err));
	} else {
		say_choice(b, "backend", ufpb_backend_name(a->be),
			   a->be == UFP_BACKEND_UFFD, a->be_why);
		say_choice(b, "fill mode", ufpb_fill_name(a->fill),
			   a->fill == UFP_FILL_MINOR, a->fill_why);
		say_choice(b, "reclaim engine", ufpb_reclaim_name(a->rc),
			   a->rc == UFP_RECLAIM_URING, a->rc_why);
		say_choice(b, "dirty tracking",
			   !a->dirty ? "off"
			   : a->fill == UFP_FILL_COPY
				   ? "on (WP_ASYNC + PAGEMAP_SCAN)"
				   : "on (anonymous pages, "
				     "PAGEMAP_SCAN)",
			   a->dirty, a->dt_why);
	}
	ufpb_say(b, "  library log (level debug, %u line%s)%s\n", a->logs.n,
		 a->logs.n == 1 ? "" : "s", a->logs.n ? ":" : "");
	for (unsigned k = 0; k < a->logs.n; k++)
		ufpb_say(b, "    [%s] %s\n", level_name(a->logs.level[k]),
			 a->logs.line[k]);
}

static void json_features(FILE *j, const struct ufpi_features *f)
{
	fprintf(j, "\"uffd_err\": %d, \"uffd_error\": ", f->uffd_err);
	json_str(j, f->uffd_err ? ufp_strerror(f->uffd_err) : "");
	fprintf(j,
		", \"uffd_via\": \"%s\", \"uffd_features\": "
		"\"0x%llx\", \"uffd_feature_names\": [",
		f->uffd_err	  ? "none"
		: f->uffd_via_dev ? "/dev/userfaultfd"
				  : "syscall",
		(unsigned long long)f->uffd_features);
	bool first = true;
	for (unsigned k = 0; k < 64; k++)
		if (f->uffd_features >> k & 1) {
			fprintf(j, "%s\"", first ? "" : ", ");
			if (k < NBITS)
				fprintf(j, "%s\"", uffd_bits[k]);
			else
				fprintf(j, "bit%u\"", k);
			first = false;
		}
	fprintf(j,
		"], \"minor_shmem\": %s, \"poison\": %s, \"wp_async\": %s, "
		"\"pagemap_scan\": %s, \"uring_madvise\": %d, "
		"\"process_madvise\": %d",
		f->minor_shmem ? "true" : "false", f->poison ? "true" : "false",
		f->wp_async ? "true" : "false",
		f->pagemap_scan ? "true" : "false", f->uring_madvise,
		f->process_madvise);
}

static void json_env(FILE *j, const struct perms *pm, const struct limits *l)
{
	fprintf(j,
		", \"euid\": %u, \"unprivileged_userfaultfd\": %d, "
		"\"dev_userfaultfd\": %s, \"dev_userfaultfd_mode\": \"%04o\", "
		"\"dev_userfaultfd_rw\": %s, \"cap_sys_ptrace\": %d, "
		"\"max_map_count\": %llu, \"maps_in_use\": %llu, "
		"\"rlimit_as\": ",
		(unsigned)pm->euid, pm->unpriv, pm->dev ? "true" : "false",
		pm->dev_mode, pm->dev_rw ? "true" : "false", pm->cap_ptrace,
		(unsigned long long)l->maxmap, (unsigned long long)l->mapused);
	if (l->rlim_err || l->rlim == UINT64_MAX)
		fprintf(j, "null");
	else
		fprintf(j, "%llu", (unsigned long long)l->rlim);
}

static void json_auto(FILE *j, const struct autopool *a)
{
	fprintf(j, ", \"pool_created\": %s, \"pool_error\": ",
		a->err ? "false" : "true");
	json_str(j, a->err ? ufp_strerror(a->err) : "");
	fprintf(j,
		", \"auto_backend\": \"%s\", \"auto_fill_mode\": \"%s\", "
		"\"auto_reclaim\": \"%s\", \"auto_dirty_tracking\": %s, "
		"\"backend_fallback\": ",
		a->err ? "none" : ufpb_backend_name(a->be),
		a->err ? "none" : ufpb_fill_name(a->fill),
		a->err ? "none" : ufpb_reclaim_name(a->rc),
		!a->err && a->dirty ? "true" : "false");
	json_str(j, a->be_why ? a->be_why : "");
	fprintf(j, ", \"fill_mode_fallback\": ");
	json_str(j,
		 a->fill_why && a->fill != UFP_FILL_MINOR ? a->fill_why : "");
	fprintf(j, ", \"reclaim_fallback\": ");
	json_str(j, a->rc_why ? a->rc_why : "");
	fprintf(j, ", \"dirty_tracking_fallback\": ");
	json_str(j, a->dt_why ? a->dt_why : "");
	fprintf(j, ", \"log\": [");
	for (unsigned k = 0; k < a->logs.n; k++) {
		fprintf(j, "%s{\"level\": \"%s\", \"msg\": ", k ? ", " : "",
			level_name(a->logs.level[k]));
		json_str(j, a->logs.line[k]);
		fputc('}', j);
	}
	fputc(']', j);
}

/* One JSON object with everything the tables show. */
static void emit_json(struct ufpb *b, const struct ufpi_features *f,
		      const struct perms *pm, const struct limits *l,
		      const struct autopool *a)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *j = open_memstream(&buf, &len);
	if (j) {
		json_features(j, f);
		json_env(j, pm, l);
		json_auto(j, a);
		fclose(j);
		ufpb_emit(b, "check", "%s", buf);
	}
	free(buf);
}

int ufpb_check(struct ufpb *b, int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (!ufpb_common_arg(b, argc, argv, &i)) {
			fprintf(stderr, "usage: ufp-bench [--json] check\n"
					"       ufp-bench [--json] --check\n");
			return 2;
		}
	}

	const struct ufpi_features *f = ufpi_features_probe();
	struct perms pm = {0};
	struct limits l = {0};
	struct autopool a = {0};
	l.maxmap_err = ufpi_os_max_map_count(&l.maxmap, &l.mapused);
	l.rlim_err = ufpi_os_rlimit_as(&l.rlim);
	read_perms(&pm);
	auto_pool(&a);

	ufpb_say(b, "uffdpool %s on Linux %s\n\n", ufp_version(), b->kernel);
	say_features(b, f);
	say_perms(b, &pm);
	say_limits(b, &l);
	say_auto(b, &a);
	if (b->json)
		emit_json(b, f, &pm, &l, &a);

	for (unsigned k = 0; k < a.logs.n; k++)
		free(a.logs.line[k]);
	return a.err ? 1 : 0;
}
