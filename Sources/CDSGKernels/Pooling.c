#include "CDSGKernels.h"
#include "Vectors.h"

// The first index at or after `start` (stepping by `dilation`) that is not negative.
static inline long first_inside(long start, long dilation) {
    return start >= 0 ? start : start + ((-start + dilation - 1) / dilation) * dilation;
}

VARIANTS
void dsg_max_pool_plane(
    const float *input, long inputH, long inputW, float *output, int *argmax, long outputH, long outputW,
    long kernelH, long kernelW, long strideH, long strideW, long padH, long padW, long dilationH, long dilationW) {
    // Output columns whose windows lie wholly inside the row: ox * strideW - padW >= 0 and
    // ox * strideW - padW + (kernelW - 1) * dilationW < inputW. Eight at a time there, in vectors.
    long span = (kernelW - 1) * dilationW;
    long firstInterior = (padW + strideW - 1) / strideW;
    long lastInterior = inputW - 1 - span + padW >= 0 ? (inputW - 1 - span + padW) / strideW : -1;
    if (lastInterior >= outputW) lastInterior = outputW - 1;
    for (long oy = 0; oy < outputH; oy++) {
        long y0 = first_inside(oy * strideH - padH, dilationH);
        long y1 = oy * strideH - padH + kernelH * dilationH;
        if (y1 > inputH) y1 = inputH;
        float *out = output + oy * outputW;
        int *arg = argmax + oy * outputW;
        long ox = 0;
        while (ox < outputW) {
            if (y0 < y1 && ox >= firstInterior && ox + 7 <= lastInterior) {
                long x0 = ox * strideW - padW;
                v8 best;
                i8 index;
                for (int l = 0; l < 8; l++) {
                    index[l] = (int)(y0 * inputW + x0 + l * strideW);
                    best[l] = input[index[l]];
                }
                for (long y = y0; y < y1; y += dilationH) {
                    for (long k = 0; k < kernelW; k++) {
                        long x = x0 + k * dilationW;
                        v8 v;
                        i8 at;
                        for (int l = 0; l < 8; l++) {
                            at[l] = (int)(y * inputW + x + l * strideW);
                            v[l] = input[at[l]];
                        }
                        i8 take = (v > best) | (v != v);
                        best = (v8)((take & (i8)v) | (~take & (i8)best));
                        index = (take & at) | (~take & index);
                    }
                }
                for (int l = 0; l < 8; l++) {
                    out[ox + l] = best[l];
                    arg[ox + l] = index[l];
                }
                ox += 8;
                continue;
            }
            long x0 = first_inside(ox * strideW - padW, dilationW);
            long x1 = ox * strideW - padW + kernelW * dilationW;
            if (x1 > inputW) x1 = inputW;
            if (y0 >= y1 || x0 >= x1) {  // a window wholly in the padding
                out[ox] = -__builtin_inff();
                arg[ox] = -1;
                ox += 1;
                continue;
            }
            float best = input[y0 * inputW + x0];
            int index = (int)(y0 * inputW + x0);
            for (long y = y0; y < y1; y += dilationH) {
                for (long x = x0; x < x1; x += dilationW) {
                    float v = input[y * inputW + x];
                    if (v > best || v != v) {
                        best = v;
                        index = (int)(y * inputW + x);
                    }
                }
            }
            out[ox] = best;
            arg[ox] = index;
            ox += 1;
        }
    }
}
