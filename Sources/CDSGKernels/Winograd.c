#include "CDSGKernels.h"
#include "Vectors.h"

// Row i of (Bᵀ d) for eight tiles is (EVEN(a), ODD(a), EVEN(b), ODD(b)), a and b being the row read from
// columns 2t and 2t + 2; times B, it gives elements 4i ..< 4i + 4.
#define INPUT_STORE(i, a, b, out, xiStride) \
    do { \
        v16 a_ = (a), b_ = (b); \
        v8 e0 = EVEN(a_), e1 = ODD(a_), e2 = EVEN(b_), e3 = ODD(b_); \
        STORE(e0 - e2, (out) + (4 * (i)) * (xiStride)); \
        STORE(e1 + e2, (out) + (4 * (i) + 1) * (xiStride)); \
        STORE(e2 - e1, (out) + (4 * (i) + 2) * (xiStride)); \
        STORE(e1 - e3, (out) + (4 * (i) + 3) * (xiStride)); \
    } while (0)

VARIANTS
void dsg_winograd_input_row(const float *rows, long width, long tiles, float *out, long xiStride) {
    for (long t = 0; t < tiles; t += 8) {
        const float *r = rows + 2 * t;
        v16 a0 = LOAD(v16, r), a1 = LOAD(v16, r + width), a2 = LOAD(v16, r + 2 * width);
        v16 a3 = LOAD(v16, r + 3 * width);
        v16 b0 = LOAD(v16, r + 2), b1 = LOAD(v16, r + width + 2), b2 = LOAD(v16, r + 2 * width + 2);
        v16 b3 = LOAD(v16, r + 3 * width + 2);
        // Bᵀ d by rows.
        INPUT_STORE(0, a0 - a2, b0 - b2, out + t, xiStride);
        INPUT_STORE(1, a1 + a2, b1 + b2, out + t, xiStride);
        INPUT_STORE(2, a2 - a1, b2 - b1, out + t, xiStride);
        INPUT_STORE(3, a1 - a3, b1 - b3, out + t, xiStride);
    }
}

// Writes (or adds) 16 outputs plus the bias to row[0 ..< min(16, count)].
#define OUTPUT_STORE(y, row, count, bias, accumulate) \
    do { \
        v16 y_ = (y); \
        if ((count) >= 16) { \
            v16 r_ = (accumulate) ? LOAD(v16, row) + y_ : y_; \
            STORE(r_ + (bias), row); \
        } else { \
            float o_[16]; \
            STORE(y_, o_); \
            for (long c_ = 0; c_ < (count); c_++) (row)[c_] = ((accumulate) ? (row)[c_] + o_[c_] : o_[c_]) + (bias); \
        } \
    } while (0)

VARIANTS
void dsg_winograd_output_row(
    const float *m, long xiStride, long tiles, float bias, int accumulate, float *top, float *bottom, long width) {
    for (long t = 0; t < tiles; t += 8) {
        v8 x[16];
        for (int k = 0; k < 16; k++) x[k] = LOAD(v8, m + k * xiStride + t);
        // Aᵀ M: two rows of four (element (i, j) is x[4i + j]).
        v8 r00 = x[0] + x[4] + x[8], r01 = x[1] + x[5] + x[9], r02 = x[2] + x[6] + x[10], r03 = x[3] + x[7] + x[11];
        v8 r10 = x[4] - x[8] - x[12], r11 = x[5] - x[9] - x[13], r12 = x[6] - x[10] - x[14];
        v8 r13 = x[7] - x[11] - x[15];
        // (Aᵀ M) A; tile t's outputs go to columns 2t and 2t + 1.
        v8 y00 = r00 + r01 + r02, y01 = r01 - r02 - r03, y10 = r10 + r11 + r12, y11 = r11 - r12 - r13;
        long count = width - 2 * t;
        OUTPUT_STORE(INTERLEAVE(y00, y01), top + 2 * t, count, bias, accumulate);
        if (bottom) OUTPUT_STORE(INTERLEAVE(y10, y11), bottom + 2 * t, count, bias, accumulate);
    }
}
