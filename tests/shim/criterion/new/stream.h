/* SPDX-License-Identifier: MIT */
/* criterion/new/stream.h is not provided by the TSan-build Criterion shim. */
#error "criterion/new/stream.h is not implemented by the TSan Criterion shim (tests/shim); extend the shim or avoid it"
