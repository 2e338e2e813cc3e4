// The kernel types that DSGCore's public API takes or throws, re-exported so that a user of `import DSG` can
// name them (`ActivationOp(.relu)`, `Conv2dOp(geometry:)`, `ConvGeometry`'s errors, LAPACK failures). The
// kernels themselves (GEMM, im2col, BatchNorm loops, the eigensolver) stay behind the operators: they work on
// raw buffers and are no part of the user-facing API.
@_exported import enum DSGKernels.Activation
@_exported import struct DSGKernels.ConvGeometry
@_exported import enum DSGKernels.ConvGeometryError
@_exported import enum DSGKernels.LAPACKError
