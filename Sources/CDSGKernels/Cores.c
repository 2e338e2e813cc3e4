// The one file here that needs the C library: sched_getaffinity is a GNU extension of Linux's.
#ifdef __linux__
#define _GNU_SOURCE
#include <sched.h>
#endif
#include "CDSGKernels.h"

int dsg_available_cores(void) {
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
#endif
    return 0;
}
