/* SPDX-License-Identifier: MIT */
/* criterion/options.h is not provided by the TSan-build Criterion shim. */
#error "criterion/options.h is not implemented by the TSan Criterion shim (tests/shim); extend the shim or avoid it"
