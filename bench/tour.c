/* SPDX-License-Identifier: MIT */
/*
 * tour.c - `ufp-bench` with no arguments: a short tour for a newcomer.
 * Runs the quick form of each scenario in turn, each preceded by a line
 * saying what it shows; every figure is a ratio against a baseline
 * measured in the same run. About 30-70 seconds on a 2-core machine.
 */
#include "bench.h"

typedef int (*ufpb_scenario)(struct ufpb *b, int argc, char **argv);

/* The tour's stops, in order; a scenario not linked (weak) is left out. */
static const struct stop {
	ufpb_scenario run;
	const char *title;
	const char *why;
} stops[] = {
	{ufpb_check, "what this machine offers",
	 "Kernel features probed at run time and what AUTO picks."},
	{ufpb_index, "slot index allocator",
	 "Bookkeeping only: one alloc+free pair per strategy. "
	 "Target <= 100 ns."},
	{ufpb_fault, "cold first touch",
	 "A never-touched memory faulted in through the handler, per page, "
	 "against one bulk UFFDIO_COPY (the floor)."},
	{ufpb_cycle, "instance cycles",
	 "alloc -> touch -> free of 1 MiB and 16 MiB images with 5% of "
	 "pages written: warm (affine slot) and cold, uffdpool's fill modes "
	 "against copy-on-write (Wasmtime's technique), with the private "
	 "bytes each keeps."},
	{ufpb_prefetch, "working-set prefetch",
	 "Cold starts of a 16 MiB image touching a random 30% of its pages: "
	 "the handler maps the working set it learned at an earlier cold "
	 "start, against the same cold start without prefetch and against "
	 "copy-on-write."},
	{ufpb_density, "density",
	 "64 live memories of one 4 MiB module, 5% of pages written: what "
	 "the process holds (Pss) while they live and after they are freed, "
	 "per setting."},
	{ufpb_small, "small memories",
	 "A 128 KiB memory, one image page and one zero page written, freed: "
	 "per setting and against malloc."},
	{ufpb_wasm, "real WebAssembly modules",
	 "The same cycle with images built from the data segments of "
	 "published .wasm files."},
	{ufpb_purge, "module drop",
	 "Dropping a module purges every slot still affine to it: how long "
	 "the dropping thread is blocked and how long until the memory is "
	 "really gone, io_uring against a plain madvise loop."},
};

int ufpb_tour(struct ufpb *b, int argc, char **argv)
{
	(void)argc, (void)argv;
	b->quick = 1;
	if (b->reps > 3)
		b->reps = 3;
	ufpb_say(b,
		 "uffdpool %s benchmark tour on Linux %s (quick settings; "
		 "see docs/benchmarks.md for full runs)\n",
		 ufp_version(), b->kernel);
	for (size_t k = 0; k < sizeof(stops) / sizeof(stops[0]); k++) {
		if (!stops[k].run)
			continue;
		ufpb_say(b, "\n=== %s ===\n%s\n\n", stops[k].title,
			 stops[k].why);
		stops[k].run(b, 0, NULL);
	}
	return 0;
}
