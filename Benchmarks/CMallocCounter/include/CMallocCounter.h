#ifndef CMALLOCCOUNTER_H
#define CMALLOCCOUNTER_H

/// The number of heap allocations (malloc, calloc, realloc, posix_memalign, aligned_alloc) made by any thread
/// of this process since it started. Used by dsg-bench to check that a training step allocates nothing.
long dsg_allocation_count(void);

#endif
