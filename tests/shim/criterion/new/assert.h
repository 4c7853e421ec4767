/* SPDX-License-Identifier: MIT */
/*
 * criterion/new/assert.h - TSan-build shim of Criterion 2.4's "new"
 * assertions (see ../criterion.h). Covered: cr_assert / cr_expect with a
 * criterion, cr_fail (non-fatal) and cr_fatal (fatal) with a message, and
 * the criteria eq ne lt le gt ge (Tag, A, B), zero (Tag, X), not (X),
 * epsilon_eq / epsilon_ne (Tag, A, B, Eps) for the tags i8 i16 i32 i64 u8
 * u16 u32 u64 iptr uptr int uint long ulong llong ullong sz ptr chr flt dbl
 * ldbl str. Not covered (a compile error): all/any/none, mem, type(T),
 * ieee_ulp_*. Failure messages show the criterion's text, not the values.
 */
#ifndef UFP_CRITERION_SHIM_NEW_ASSERT_H
#define UFP_CRITERION_SHIM_NEW_ASSERT_H
#pragma GCC system_header

#include <stdint.h>
#include <string.h>

#include "../criterion.h"

#define cr_fail(...)                                              \
	crs_fail_continue(__FILE__, __LINE__, "The test failed.", \
			  "x" __VA_ARGS__)
#define cr_fatal(...) \
	crs_fail_abort(__FILE__, __LINE__, "The test failed.", "x" __VA_ARGS__)

#define CRS_NUM_(T, A, Op, B) ((T)(A)Op(T)(B))
#define CRS_NT_i8(A, Op, B) CRS_NUM_(int8_t, A, Op, B)
#define CRS_NT_i16(A, Op, B) CRS_NUM_(int16_t, A, Op, B)
#define CRS_NT_i32(A, Op, B) CRS_NUM_(int32_t, A, Op, B)
#define CRS_NT_i64(A, Op, B) CRS_NUM_(int64_t, A, Op, B)
#define CRS_NT_u8(A, Op, B) CRS_NUM_(uint8_t, A, Op, B)
#define CRS_NT_u16(A, Op, B) CRS_NUM_(uint16_t, A, Op, B)
#define CRS_NT_u32(A, Op, B) CRS_NUM_(uint32_t, A, Op, B)
#define CRS_NT_u64(A, Op, B) CRS_NUM_(uint64_t, A, Op, B)
#define CRS_NT_iptr(A, Op, B) CRS_NUM_(intptr_t, A, Op, B)
#define CRS_NT_uptr(A, Op, B) CRS_NUM_(uintptr_t, A, Op, B)
#define CRS_NT_int(A, Op, B) CRS_NUM_(int, A, Op, B)
#define CRS_NT_uint(A, Op, B) CRS_NUM_(unsigned int, A, Op, B)
#define CRS_NT_long(A, Op, B) CRS_NUM_(long, A, Op, B)
#define CRS_NT_ulong(A, Op, B) CRS_NUM_(unsigned long, A, Op, B)
#define CRS_NT_llong(A, Op, B) CRS_NUM_(long long, A, Op, B)
#define CRS_NT_ullong(A, Op, B) CRS_NUM_(unsigned long long, A, Op, B)
#define CRS_NT_sz(A, Op, B) CRS_NUM_(size_t, A, Op, B)
#define CRS_NT_ptr(A, Op, B) CRS_NUM_(const void *, A, Op, B)
#define CRS_NT_chr(A, Op, B) CRS_NUM_(char, A, Op, B)
#define CRS_NT_flt(A, Op, B) CRS_NUM_(float, A, Op, B)
#define CRS_NT_dbl(A, Op, B) CRS_NUM_(double, A, Op, B)
#define CRS_NT_ldbl(A, Op, B) CRS_NUM_(long double, A, Op, B)
#define CRS_NT_str(A, Op, B) (strcmp((A), (B)) Op 0)

#define eq(Tag, A, B) CRS_NT_##Tag(A, ==, B)
#define ne(Tag, A, B) CRS_NT_##Tag(A, !=, B)
#define lt(Tag, A, B) CRS_NT_##Tag(A, <, B)
#define le(Tag, A, B) CRS_NT_##Tag(A, <=, B)
#define gt(Tag, A, B) CRS_NT_##Tag(A, >, B)
#define ge(Tag, A, B) CRS_NT_##Tag(A, >=, B)
#define CRS_ZERO_str(X) ((X)[0] == '\0')
#define CRS_ZERO_(Tag, X) CRS_NT_##Tag(X, ==, 0)
#define zero(Tag, X) CRS_ZERO_##Tag(X)
/* every tag but str compares with 0 */
#define CRS_ZERO_i8(X) CRS_ZERO_(i8, X)
#define CRS_ZERO_i16(X) CRS_ZERO_(i16, X)
#define CRS_ZERO_i32(X) CRS_ZERO_(i32, X)
#define CRS_ZERO_i64(X) CRS_ZERO_(i64, X)
#define CRS_ZERO_u8(X) CRS_ZERO_(u8, X)
#define CRS_ZERO_u16(X) CRS_ZERO_(u16, X)
#define CRS_ZERO_u32(X) CRS_ZERO_(u32, X)
#define CRS_ZERO_u64(X) CRS_ZERO_(u64, X)
#define CRS_ZERO_iptr(X) CRS_ZERO_(iptr, X)
#define CRS_ZERO_uptr(X) CRS_ZERO_(uptr, X)
#define CRS_ZERO_int(X) CRS_ZERO_(int, X)
#define CRS_ZERO_uint(X) CRS_ZERO_(uint, X)
#define CRS_ZERO_long(X) CRS_ZERO_(long, X)
#define CRS_ZERO_ulong(X) CRS_ZERO_(ulong, X)
#define CRS_ZERO_llong(X) CRS_ZERO_(llong, X)
#define CRS_ZERO_ullong(X) CRS_ZERO_(ullong, X)
#define CRS_ZERO_sz(X) CRS_ZERO_(sz, X)
#define CRS_ZERO_ptr(X) ((const void *)(X) == NULL)
#define CRS_ZERO_chr(X) CRS_ZERO_(chr, X)
#define CRS_ZERO_flt(X) CRS_ZERO_(flt, X)
#define CRS_ZERO_dbl(X) CRS_ZERO_(dbl, X)
#define CRS_ZERO_ldbl(X) CRS_ZERO_(ldbl, X)
#define not(X) (!(X))
#define epsilon_eq(Tag, A, B, Eps) \
	(CRS_NT_##Tag(A, -, B) <= (Eps) && CRS_NT_##Tag(B, -, A) <= (Eps))
#define epsilon_ne(Tag, A, B, Eps) (!epsilon_eq(Tag, A, B, Eps))

#endif
