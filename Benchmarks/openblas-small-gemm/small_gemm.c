/* Heap allocations and speed of OpenBLAS sgemm on ResNet-20's convolution GEMM shapes, with A as stored
 * (no transpose) and transposed. Why: OpenBLAS 0.3.21's no-transpose small-matrix kernel allocates on every
 * call, which is why Conv2D's forward pass multiplies by transposed weights (Docs/PERFORMANCE.md).
 *
 *   gcc -O2 Benchmarks/openblas-small-gemm/small_gemm.c -o /tmp/small_gemm -lopenblas
 *   OPENBLAS_NUM_THREADS=1 /tmp/small_gemm
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <cblas.h>

static long allocations = 0;
extern void *__libc_malloc(size_t);
void *malloc(size_t n) { allocations++; return __libc_malloc(n); }  /* counts every malloc, OpenBLAS's too */

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

int main(void) {
    /* M x N x K of the forward GEMMs (per sample): stride-2 3x3 and 1x1 layers, then stride-1 layers; then
     * shapes on either side of the small-matrix bound M·N·K = 100^3. */
    int shapes[][3] = {{32, 196, 144}, {32, 196, 16}, {64, 49, 288}, {64, 49, 32}, {16, 784, 144}, {32, 196, 288}, {64, 49, 576},
                       {32, 196, 159}, {32, 196, 160}, {100, 100, 100}, {100, 100, 101}};
    float *a = malloc(4 << 20), *b = malloc(4 << 20), *c = malloc(4 << 20);
    for (int i = 0; i < 1 << 20; i++) { a[i] = rand() / (float)RAND_MAX; b[i] = rand() / (float)RAND_MAX; }
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        double mallocs[2], best[2] = {1e9, 1e9};
        for (int ta = 0; ta < 2; ta++) {
            enum CBLAS_TRANSPOSE t = ta ? CblasTrans : CblasNoTrans;
            cblas_sgemm(CblasRowMajor, t, CblasNoTrans, m, n, k, 1, a, ta ? m : k, b, n, 0, c, n);
            long before = allocations;
            for (int i = 0; i < 10; i++) cblas_sgemm(CblasRowMajor, t, CblasNoTrans, m, n, k, 1, a, ta ? m : k, b, n, 0, c, n);
            mallocs[ta] = (allocations - before) / 10.0;
        }
        for (int rep = 0; rep < 20; rep++) for (int ta = 0; ta < 2; ta++) {
            enum CBLAS_TRANSPOSE t = ta ? CblasTrans : CblasNoTrans;
            double t0 = now();
            for (int i = 0; i < 200; i++) cblas_sgemm(CblasRowMajor, t, CblasNoTrans, m, n, k, 1, a, ta ? m : k, b, n, 0, c, n);
            double dt = (now() - t0) / 200;
            if (dt < best[ta]) best[ta] = dt;
        }
        printf("%3dx%3dx%3d  no transpose: %.1f mallocs/call, %5.1f GFLOP/s   A transposed: %.1f mallocs/call, %5.1f GFLOP/s\n",
               m, n, k, mallocs[0], 2.0 * m * n * k / best[0] * 1e-9, mallocs[1], 2.0 * m * n * k / best[1] * 1e-9);
    }
    return 0;
}
