#ifndef CDSGKERNELS_H
#define CDSGKERNELS_H

// Loops that gain from vector registers wider than baseline x86-64's. Swift code in this package is compiled
// for baseline x86-64 (a package cannot pass -march), so these few are C, compiled once per instruction set
// (AVX-512, AVX2, baseline) and picked at load time for the CPU at hand. Every variant runs the same
// operations in the same order (no fused multiply-add: the transforms only add, subtract and halve, and the
// depthwise sums turn contraction off), so results are bit-identical whichever runs. Callers are in
// DSGKernels (Winograd.swift documents the transforms; Depthwise.swift, Pooling.swift).

/// The Winograd F(2x2, 3x3) input transform of one row of `tiles` tiles (rounded up to a multiple of 8, all
/// of which are written): `rows` holds the four zero-padded input rows under the tile row, `width` floats apart
/// (tile t reads columns 2t ..< 2t + 4; at least 2 * roundup8(tiles) + 16 floats each). Element xi of tile t's
/// transformed 4x4 block goes to `out[xi * xiStride + t]`.
void dsg_winograd_input_row(const float *rows, long width, long tiles, float *out, long xiStride);

/// The Winograd F(2x2, 3x3) output transform of one row of `tiles` tiles (rounded up to a multiple of 8):
/// element xi of tile t's 4x4 GEMM result is `m[xi * xiStride + t]`. Its 2x2 outputs plus `bias` are written
/// to columns 2t and 2t + 1 of the output rows `top` and, unless it is NULL, `bottom`, each `width` floats
/// long; with `accumulate` they are added (as `(row + y) + bias`) instead.
void dsg_winograd_output_row(
    const float *m, long xiStride, long tiles, float bias, int accumulate, float *top, float *bottom, long width);

/// Max pooling of one `inputH x inputW` plane into `outputH x outputW`, with the index (into the plane) of each
/// window's maximum in `argmax`. Padding never wins; NaN does (the first NaN, then any later one), as in the
/// scalar definition: take `v` when `v > best` or `v` is NaN, starting from the window's first element.
void dsg_max_pool_plane(
    const float *input, long inputH, long inputW, float *output, int *argmax, long outputH, long outputW,
    long kernelH, long kernelW, long strideH, long strideW, long padH, long padW, long dilationH, long dilationW);

/// Depthwise convolution of one plane: `output[oy][ox] = (accumulate ? output[oy][ox] : 0) + (Σ kernel[i][j] *
/// input[oy * strideH - padH + i * dilationH][ox * strideW - padW + j * dilationW]) + bias`, the taps summed row by
/// row in order and positions outside the input left out; with `flipped` the kernel is rotated by 180°
/// (kernel[KH - 1 - i][KW - 1 - j]), which with `accumulate` makes this the backward-data pass of a stride-1
/// layer. `scratch` holds `kernelH * dsg_depthwise_row_width(...)` floats.
void dsg_depthwise_plane(
    const float *input, long inputH, long inputW, const float *kernel, long kernelH, long kernelW, int flipped,
    long strideH, long strideW, long padH, long padW, long dilationH, long dilationW, float bias, int accumulate,
    float *output, long outputH, long outputW, float *scratch);

/// Floats of one padded input row of `dsg_depthwise_plane`: the reach of whole groups of eight output columns,
/// and room for a 16-float load at the last one.
static inline long dsg_depthwise_row_width(long outputW, long kernelW, long strideW, long dilationW) {
    return ((outputW + 7) / 8 * 8 - 1) * strideW + (kernelW - 1) * dilationW + 1 + 16;
}

/// The cores this process may run on (its affinity mask on Linux: `taskset`, or `mpirun` binding a rank to a
/// core, leaves fewer than the machine has); 0 where that is not known.
int dsg_available_cores(void);

#endif
