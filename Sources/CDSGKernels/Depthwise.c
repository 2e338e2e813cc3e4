#include "CDSGKernels.h"
#include "Vectors.h"

// Products and sums stay separate operations in every variant (an FMA would round once where the baseline
// rounds twice), so all variants give the same result.
#pragma clang fp contract(off)

VARIANTS
void dsg_depthwise_plane(
    const float *input, long inputH, long inputW, const float *kernel, long kernelH, long kernelW, int flipped,
    long strideH, long strideW, long padH, long padW, long dilationH, long dilationW, float bias, int accumulate,
    float *output, long outputH, long outputW, float *scratch) {
    // The kernel's input rows under one output row, zero-padded: padded column x + padW holds input column x,
    // and output ox's tap j reads padded column ox * strideW + j * dilationW. Columns are computed eight at a
    // time, the last group too, so rows run on past the output's reach (zeros).
    long groups = (outputW + 7) / 8;
    long width = dsg_depthwise_row_width(outputW, kernelW, strideW, dilationW);
    long copied = inputW < width - padW ? inputW : width - padW;
    __builtin_memset(scratch, 0, (unsigned long)(kernelH * width) * sizeof(float));
    const float *rows[kernelH];
    float weights[kernelH * kernelW];
    for (long i = 0; i < kernelH; i++)
        for (long j = 0; j < kernelW; j++)
            weights[i * kernelW + j] =
                flipped ? kernel[(kernelH - 1 - i) * kernelW + kernelW - 1 - j] : kernel[i * kernelW + j];
    for (long oy = 0; oy < outputH; oy++) {
        // Only rows inside the input take part; each keeps its tap index i.
        long taken = 0;
        long taps[kernelH];
        for (long i = 0; i < kernelH; i++) {
            long y = oy * strideH - padH + i * dilationH;
            if (y < 0 || y >= inputH) continue;
            float *row = scratch + taken * width;
            if (copied > 0) __builtin_memcpy(row + padW, input + y * inputW, (unsigned long)copied * sizeof(float));
            rows[taken] = row;
            taps[taken] = i;
            taken++;
        }
        float *out = output + oy * outputW;
        for (long group = 0; group < groups; group++) {
            long ox = group * 8;
            v8 sum = 0;
            for (long r = 0; r < taken; r++) {
                const float *w = weights + taps[r] * kernelW;
                const float *row = rows[r] + ox * strideW;
                for (long j = 0; j < kernelW; j++) {
                    const float *at = row + j * dilationW;
                    v8 x;
                    if (strideW == 1) {
                        x = LOAD(v8, at);
                    } else if (strideW == 2) {
                        x = EVEN(LOAD(v16, at));
                    } else {
                        for (int l = 0; l < 8; l++) x[l] = at[l * strideW];
                    }
                    sum = sum + w[j] * x;
                }
            }
            if (ox + 8 <= outputW) {
                v8 result = (accumulate ? LOAD(v8, out + ox) + sum : sum) + bias;
                STORE(result, out + ox);
            } else {
                for (long l = 0; ox + l < outputW; l++) out[ox + l] = (accumulate ? out[ox + l] + sum[l] : sum[l]) + bias;
            }
        }
    }
}
