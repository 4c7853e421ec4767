/* SPDX-License-Identifier: MIT */
/* criterion/embedded.h is not provided by the TSan-build Criterion shim. */
#error "criterion/embedded.h is not implemented by the TSan Criterion shim (tests/shim); extend the shim or avoid it"
