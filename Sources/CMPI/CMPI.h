// Open MPI's C API (pkg-config ompi-c). Its predefined handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are
// macros over the addresses of library globals, which Swift cannot import; these inline functions return them.
#include <mpi.h>

static inline MPI_Comm dsg_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype dsg_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype dsg_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype dsg_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype dsg_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Op dsg_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op dsg_mpi_max(void) { return MPI_MAX; }
static inline void *dsg_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Errhandler dsg_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Info dsg_mpi_info_null(void) { return MPI_INFO_NULL; }
static inline int dsg_mpi_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
static inline int dsg_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
