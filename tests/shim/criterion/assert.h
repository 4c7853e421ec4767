/* SPDX-License-Identifier: MIT */
/*
 * criterion/assert.h - TSan-build shim of Criterion 2.4 (see criterion.h).
 *
 * The classic assertion family. cr_assert_* ends the test on failure
 * (the test's .fini still runs), cr_expect_* records the failure and goes
 * on. Every macro takes an optional printf-style message after its operands;
 * as in Criterion the format must be a string literal (it is pasted after a
 * "x" so that an absent message is an empty one). Without a message the
 * default text names the failing expression, like Criterion's.
 *
 *   cr_assert / cr_assert_not (Cond)          cr_assert_fail ()
 *   cr_assert_eq / neq / lt / leq / gt / geq (Actual, Expected)
 *   cr_assert_null / not_null (Value)
 *   cr_assert_float_eq / float_neq (Actual, Expected, Epsilon)
 *   cr_assert_str_eq / neq / lt / leq / gt / geq (Actual, Expected)
 *   cr_assert_str_empty / str_not_empty (Value)
 *   cr_assert_wcs_* (the same, for wchar_t strings)
 *   cr_assert_arr_eq / arr_neq (Actual, Expected, SizeInBytes)   (memcmp)
 *   cr_assert_arr_{eq,neq,lt,leq,gt,geq}_cmp (Actual, Expected, Count, Cmp)
 *   cr_skip_test ()
 * and a cr_expect_* twin of each cr_assert_*.
 *
 * Assertions may be used from other threads of the test process: a failed
 * cr_expect_* is recorded; a failed cr_assert_* in a thread other than the
 * test's own ends the test process (its .fini does not run).
 */
#ifndef UFP_CRITERION_SHIM_ASSERT_H
#define UFP_CRITERION_SHIM_ASSERT_H
#pragma GCC system_header

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <wchar.h>

#include "abort.h"

/* Report a failed assertion at file:line. `dflt` is the default message,
 * `xfmt` is "x" followed by the user's format (so "x" alone = no message). */
_Noreturn void crs_fail_abort(const char *file, unsigned line, const char *dflt,
			      const char *xfmt, ...)
	__attribute__((format(printf, 4, 5)));
void crs_fail_continue(const char *file, unsigned line, const char *dflt,
		       const char *xfmt, ...)
	__attribute__((format(printf, 4, 5)));
_Noreturn void crs_skip(const char *file, unsigned line, const char *xfmt, ...)
	__attribute__((format(printf, 3, 4)));
/* printf into a per-thread buffer (default messages that quote values). */
const char *crs_msgf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
size_t crs_memdiff(const void *a, const void *b, size_t size);

#define CRS_CHECK_(Fail, Cond, Dflt, ...)                                \
	do {                                                             \
		if (!(Cond))                                             \
			Fail(__FILE__, __LINE__, Dflt, "x" __VA_ARGS__); \
	} while (0)

/* ---- base ---------------------------------------------------------------- */

#define cr_assert(Cond, ...)               \
	CRS_CHECK_(crs_fail_abort, (Cond), \
		   "The expression " #Cond " is false.", __VA_ARGS__)
#define cr_expect(Cond, ...)                  \
	CRS_CHECK_(crs_fail_continue, (Cond), \
		   "The expression " #Cond " is false.", __VA_ARGS__)
#define cr_assert_not(Cond, ...)            \
	CRS_CHECK_(crs_fail_abort, !(Cond), \
		   "The expression " #Cond " is true.", __VA_ARGS__)
#define cr_expect_not(Cond, ...)               \
	CRS_CHECK_(crs_fail_continue, !(Cond), \
		   "The expression " #Cond " is true.", __VA_ARGS__)

#define cr_assert_fail(...)                                               \
	crs_fail_abort(__FILE__, __LINE__,                                \
		       "The conditions for this assertion were not met.", \
		       "x" __VA_ARGS__)
#define cr_expect_fail(...)                                                  \
	crs_fail_continue(__FILE__, __LINE__,                                \
			  "The conditions for this assertion were not met.", \
			  "x" __VA_ARGS__)

#define cr_skip_test(...) crs_skip(__FILE__, __LINE__, "x" __VA_ARGS__)

/* ---- comparisons ---------------------------------------------------------- */

#define CRS_OP_(Fail, Op, A, B, ...)                                     \
	CRS_CHECK_(Fail, (A)Op(B),                                       \
		   "The expression (" #A ") " #Op " (" #B ") is false.", \
		   __VA_ARGS__)

#define cr_assert_eq(A, B, ...) CRS_OP_(crs_fail_abort, ==, A, B, __VA_ARGS__)
#define cr_assert_neq(A, B, ...) CRS_OP_(crs_fail_abort, !=, A, B, __VA_ARGS__)
#define cr_assert_lt(A, B, ...) CRS_OP_(crs_fail_abort, <, A, B, __VA_ARGS__)
#define cr_assert_leq(A, B, ...) CRS_OP_(crs_fail_abort, <=, A, B, __VA_ARGS__)
#define cr_assert_gt(A, B, ...) CRS_OP_(crs_fail_abort, >, A, B, __VA_ARGS__)
#define cr_assert_geq(A, B, ...) CRS_OP_(crs_fail_abort, >=, A, B, __VA_ARGS__)
#define cr_expect_eq(A, B, ...) \
	CRS_OP_(crs_fail_continue, ==, A, B, __VA_ARGS__)
#define cr_expect_neq(A, B, ...) \
	CRS_OP_(crs_fail_continue, !=, A, B, __VA_ARGS__)
#define cr_expect_lt(A, B, ...) CRS_OP_(crs_fail_continue, <, A, B, __VA_ARGS__)
#define cr_expect_leq(A, B, ...) \
	CRS_OP_(crs_fail_continue, <=, A, B, __VA_ARGS__)
#define cr_expect_gt(A, B, ...) CRS_OP_(crs_fail_continue, >, A, B, __VA_ARGS__)
#define cr_expect_geq(A, B, ...) \
	CRS_OP_(crs_fail_continue, >=, A, B, __VA_ARGS__)

/* ---- null ----------------------------------------------------------------- */

#define cr_assert_null(V, ...) \
	CRS_CHECK_(crs_fail_abort, (V) == NULL, #V " is not null.", __VA_ARGS__)
#define cr_expect_null(V, ...)                                         \
	CRS_CHECK_(crs_fail_continue, (V) == NULL, #V " is not null.", \
		   __VA_ARGS__)
#define cr_assert_not_null(V, ...) \
	CRS_CHECK_(crs_fail_abort, (V) != NULL, #V " is null.", __VA_ARGS__)
#define cr_expect_not_null(V, ...) \
	CRS_CHECK_(crs_fail_continue, (V) != NULL, #V " is null.", __VA_ARGS__)

/* ---- floating point: |Actual - Expected| <= Epsilon ------------------------ */

#define CRS_FLOAT_(Fail, Want, A, B, Eps, ...)                                 \
	do {                                                                   \
		long double crs_fa__ = (A), crs_fb__ = (B), crs_fe__ = (Eps);  \
		bool crs_near__ = crs_fb__ - crs_fa__ <= crs_fe__ &&           \
				  crs_fa__ - crs_fb__ <= crs_fe__;             \
		CRS_CHECK_(Fail, crs_near__ == (Want),                         \
			   crs_msgf("The expression " #A " %s " #B             \
				    " (within " #Eps ") is false: actual=%Lg " \
				    "expected=%Lg epsilon=%Lg.",               \
				    (Want) ? "==" : "!=", crs_fa__, crs_fb__,  \
				    crs_fe__),                                 \
			   __VA_ARGS__);                                       \
	} while (0)

#define cr_assert_float_eq(A, B, Eps, ...) \
	CRS_FLOAT_(crs_fail_abort, true, A, B, Eps, __VA_ARGS__)
#define cr_expect_float_eq(A, B, Eps, ...) \
	CRS_FLOAT_(crs_fail_continue, true, A, B, Eps, __VA_ARGS__)
#define cr_assert_float_neq(A, B, Eps, ...) \
	CRS_FLOAT_(crs_fail_abort, false, A, B, Eps, __VA_ARGS__)
#define cr_expect_float_neq(A, B, Eps, ...) \
	CRS_FLOAT_(crs_fail_continue, false, A, B, Eps, __VA_ARGS__)

/* ---- C strings (a NULL operand always fails) ------------------------------ */

#define CRS_STR_(Fail, Op, A, B, ...)                                          \
	do {                                                                   \
		const char *crs_sa__ = (A), *crs_sb__ = (B);                   \
		CRS_CHECK_(                                                    \
			Fail,                                                  \
			crs_sa__ &&crs_sb__ &&strcmp(crs_sa__, crs_sb__) Op 0, \
			crs_msgf("The expression (as strings) (" #A ") " #Op   \
				 " (" #B ") is false: actual=`%s` "            \
				 "expected=`%s`.",                             \
				 crs_sa__ ? crs_sa__ : "(null)",               \
				 crs_sb__ ? crs_sb__ : "(null)"),              \
			__VA_ARGS__);                                          \
	} while (0)

#define cr_assert_str_eq(A, B, ...) \
	CRS_STR_(crs_fail_abort, ==, A, B, __VA_ARGS__)
#define cr_assert_str_neq(A, B, ...) \
	CRS_STR_(crs_fail_abort, !=, A, B, __VA_ARGS__)
#define cr_assert_str_lt(A, B, ...) \
	CRS_STR_(crs_fail_abort, <, A, B, __VA_ARGS__)
#define cr_assert_str_leq(A, B, ...) \
	CRS_STR_(crs_fail_abort, <=, A, B, __VA_ARGS__)
#define cr_assert_str_gt(A, B, ...) \
	CRS_STR_(crs_fail_abort, >, A, B, __VA_ARGS__)
#define cr_assert_str_geq(A, B, ...) \
	CRS_STR_(crs_fail_abort, >=, A, B, __VA_ARGS__)
#define cr_expect_str_eq(A, B, ...) \
	CRS_STR_(crs_fail_continue, ==, A, B, __VA_ARGS__)
#define cr_expect_str_neq(A, B, ...) \
	CRS_STR_(crs_fail_continue, !=, A, B, __VA_ARGS__)
#define cr_expect_str_lt(A, B, ...) \
	CRS_STR_(crs_fail_continue, <, A, B, __VA_ARGS__)
#define cr_expect_str_leq(A, B, ...) \
	CRS_STR_(crs_fail_continue, <=, A, B, __VA_ARGS__)
#define cr_expect_str_gt(A, B, ...) \
	CRS_STR_(crs_fail_continue, >, A, B, __VA_ARGS__)
#define cr_expect_str_geq(A, B, ...) \
	CRS_STR_(crs_fail_continue, >=, A, B, __VA_ARGS__)

#define CRS_STR_EMPTY_(Fail, Empty, V, ...)                                    \
	do {                                                                   \
		const char *crs_sv__ = (V);                                    \
		CRS_CHECK_(Fail, crs_sv__ && (crs_sv__[0] == '\0') == (Empty), \
			   crs_msgf("%s: `%s`.",                               \
				    !crs_sv__ ? #V " is null"                  \
				    : (Empty) ? #V " is not empty"             \
					      : #V " is empty",                \
				    crs_sv__ ? crs_sv__ : "(null)"),           \
			   __VA_ARGS__);                                       \
	} while (0)

#define cr_assert_str_empty(V, ...) \
	CRS_STR_EMPTY_(crs_fail_abort, true, V, __VA_ARGS__)
#define cr_expect_str_empty(V, ...) \
	CRS_STR_EMPTY_(crs_fail_continue, true, V, __VA_ARGS__)
#define cr_assert_str_not_empty(V, ...) \
	CRS_STR_EMPTY_(crs_fail_abort, false, V, __VA_ARGS__)
#define cr_expect_str_not_empty(V, ...) \
	CRS_STR_EMPTY_(crs_fail_continue, false, V, __VA_ARGS__)

/* ---- wide strings --------------------------------------------------------- */

#define CRS_WCS_(Fail, Op, A, B, ...)                                          \
	do {                                                                   \
		const wchar_t *crs_wa__ = (A), *crs_wb__ = (B);                \
		CRS_CHECK_(                                                    \
			Fail,                                                  \
			crs_wa__ &&crs_wb__ &&wcscmp(crs_wa__, crs_wb__) Op 0, \
			crs_msgf("The expression (as wide strings) (" #A       \
				 ") " #Op " (" #B ") is false: actual=`%ls` "  \
				 "expected=`%ls`.",                            \
				 crs_wa__ ? crs_wa__ : L"(null)",              \
				 crs_wb__ ? crs_wb__ : L"(null)"),             \
			__VA_ARGS__);                                          \
	} while (0)

#define cr_assert_wcs_eq(A, B, ...) \
	CRS_WCS_(crs_fail_abort, ==, A, B, __VA_ARGS__)
#define cr_assert_wcs_neq(A, B, ...) \
	CRS_WCS_(crs_fail_abort, !=, A, B, __VA_ARGS__)
#define cr_assert_wcs_lt(A, B, ...) \
	CRS_WCS_(crs_fail_abort, <, A, B, __VA_ARGS__)
#define cr_assert_wcs_leq(A, B, ...) \
	CRS_WCS_(crs_fail_abort, <=, A, B, __VA_ARGS__)
#define cr_assert_wcs_gt(A, B, ...) \
	CRS_WCS_(crs_fail_abort, >, A, B, __VA_ARGS__)
#define cr_assert_wcs_geq(A, B, ...) \
	CRS_WCS_(crs_fail_abort, >=, A, B, __VA_ARGS__)
#define cr_expect_wcs_eq(A, B, ...) \
	CRS_WCS_(crs_fail_continue, ==, A, B, __VA_ARGS__)
#define cr_expect_wcs_neq(A, B, ...) \
	CRS_WCS_(crs_fail_continue, !=, A, B, __VA_ARGS__)
#define cr_expect_wcs_lt(A, B, ...) \
	CRS_WCS_(crs_fail_continue, <, A, B, __VA_ARGS__)
#define cr_expect_wcs_leq(A, B, ...) \
	CRS_WCS_(crs_fail_continue, <=, A, B, __VA_ARGS__)
#define cr_expect_wcs_gt(A, B, ...) \
	CRS_WCS_(crs_fail_continue, >, A, B, __VA_ARGS__)
#define cr_expect_wcs_geq(A, B, ...) \
	CRS_WCS_(crs_fail_continue, >=, A, B, __VA_ARGS__)

#define CRS_WCS_EMPTY_(Fail, Empty, V, ...)                               \
	do {                                                              \
		const wchar_t *crs_wv__ = (V);                            \
		CRS_CHECK_(Fail,                                          \
			   crs_wv__ && (crs_wv__[0] == L'\0') == (Empty), \
			   !crs_wv__ ? #V " is null."                     \
			   : (Empty) ? #V " is not empty."                \
				     : #V " is empty.",                   \
			   __VA_ARGS__);                                  \
	} while (0)

#define cr_assert_wcs_empty(V, ...) \
	CRS_WCS_EMPTY_(crs_fail_abort, true, V, __VA_ARGS__)
#define cr_expect_wcs_empty(V, ...) \
	CRS_WCS_EMPTY_(crs_fail_continue, true, V, __VA_ARGS__)
#define cr_assert_wcs_not_empty(V, ...) \
	CRS_WCS_EMPTY_(crs_fail_abort, false, V, __VA_ARGS__)
#define cr_expect_wcs_not_empty(V, ...) \
	CRS_WCS_EMPTY_(crs_fail_continue, false, V, __VA_ARGS__)

/* ---- arrays: byte-wise (Size in bytes, memcmp, as Criterion 2.4) ---------- */

#define CRS_ARR_(Fail, Op, A, B, Size, ...)                                    \
	do {                                                                   \
		const void *crs_pa__ = (A), *crs_pb__ = (B);                   \
		size_t crs_n__ = (Size);                                       \
		CRS_CHECK_(Fail, memcmp(crs_pa__, crs_pb__, crs_n__) Op 0,     \
			   crs_msgf("The expression (" #A ")[0.." #Size        \
				    "] " #Op " (" #B ")[0.." #Size             \
				    "] is false (%zu "                         \
				    "bytes, the first %zu equal).",            \
				    crs_n__,                                   \
				    crs_memdiff(crs_pa__, crs_pb__, crs_n__)), \
			   __VA_ARGS__);                                       \
	} while (0)

#define cr_assert_arr_eq(A, B, Size, ...) \
	CRS_ARR_(crs_fail_abort, ==, A, B, Size, __VA_ARGS__)
#define cr_assert_arr_neq(A, B, Size, ...) \
	CRS_ARR_(crs_fail_abort, !=, A, B, Size, __VA_ARGS__)
#define cr_expect_arr_eq(A, B, Size, ...) \
	CRS_ARR_(crs_fail_continue, ==, A, B, Size, __VA_ARGS__)
#define cr_expect_arr_neq(A, B, Size, ...) \
	CRS_ARR_(crs_fail_continue, !=, A, B, Size, __VA_ARGS__)

/* ---- arrays: element-wise with Cmp(&a[i], &b[i]) -> <0/0/>0 (lexicographic) */

#define CRS_ARR_CMP_(Fail, Op, A, B, Count, Cmp, ...)                        \
	do {                                                                 \
		int crs_ord__ = 0;                                           \
		for (size_t crs_i__ = 0;                                     \
		     crs_ord__ == 0 && crs_i__ < (size_t)(Count); crs_i__++) \
			crs_ord__ = Cmp(&(A)[crs_i__], &(B)[crs_i__]);       \
		CRS_CHECK_(Fail, crs_ord__ Op 0,                             \
			   "The expression (" #A ")[0.." #Count "] " #Op     \
			   " (" #B ")[0.." #Count "] is false.",             \
			   __VA_ARGS__);                                     \
	} while (0)

#define cr_assert_arr_eq_cmp(A, B, N, Cmp, ...) \
	CRS_ARR_CMP_(crs_fail_abort, ==, A, B, N, Cmp, __VA_ARGS__)
#define cr_assert_arr_neq_cmp(A, B, N, Cmp, ...) \
	CRS_ARR_CMP_(crs_fail_abort, !=, A, B, N, Cmp, __VA_ARGS__)
#define cr_assert_arr_lt_cmp(A, B, N, Cmp, ...) \
	CRS_ARR_CMP_(crs_fail_abort, <, A, B, N, Cmp, __VA_ARGS__)
#define cr_assert_arr_leq_cmp(A, B, N, Cmp, ...) \
	CRS_ARR_CMP_(crs_fail_abort, <=, A, B, N, Cmp, __VA_ARGS__)
#define cr_assert_arr_gt_cmp(A, B, N, Cmp, ...) \
	CRS_ARR_CMP_(crs_fail_abort, >, A, B, N, Cmp, __VA_ARGS__)
#define cr_assert_arr_geq_cmp(A, B, N, Cmp, ...) \
	CRS_ARR_CMP_(crs_fail_abort, >=, A, B, N, Cmp, __VA_ARGS__)
#define cr_expect_arr_eq_cmp(A, B, N, Cmp, ...) \
	CRS_ARR_CMP_(crs_fail_continue, ==, A, B, N, Cmp, __VA_ARGS__)
#define cr_expect_arr_neq_cmp(A, B, N, Cmp, ...) \
	CRS_ARR_CMP_(crs_fail_continue, !=, A, B, N, Cmp, __VA_ARGS__)
#define cr_expect_arr_lt_cmp(A, B, N, Cmp, ...) \
	CRS_ARR_CMP_(crs_fail_continue, <, A, B, N, Cmp, __VA_ARGS__)
#define cr_expect_arr_leq_cmp(A, B, N, Cmp, ...) \
	CRS_ARR_CMP_(crs_fail_continue, <=, A, B, N, Cmp, __VA_ARGS__)
#define cr_expect_arr_gt_cmp(A, B, N, Cmp, ...) \
	CRS_ARR_CMP_(crs_fail_continue, >, A, B, N, Cmp, __VA_ARGS__)
#define cr_expect_arr_geq_cmp(A, B, N, Cmp, ...) \
	CRS_ARR_CMP_(crs_fail_continue, >=, A, B, N, Cmp, __VA_ARGS__)

#endif
