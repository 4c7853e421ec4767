/* SPDX-License-Identifier: MIT */
/* version.c - the version of the library actually linked. */
#include "uffdpool.h"

UFP_API const char *ufp_version(void)
{
	return UFP_VERSION_STRING;
}
