// Umbrella header for the system BLAS (OpenBLAS) and LAPACKE.
// Only DSGKernels imports this module; nothing above it sees a C type.
#include <cblas.h>
#include <lapacke.h>
