#ifndef CDSGKERNELS_VECTORS_H
#define CDSGKERNELS_VECTORS_H

// The vector types and helpers of this target's kernels (private to the target).


// One variant per x86-64 instruction set, picked by the loader (an ELF ifunc). Elsewhere (ARM, or Mach-O,
// which has no ifunc) one variant for the target's own vectors.
#if defined(__x86_64__) && defined(__ELF__)
#define VARIANTS __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VARIANTS
#endif

typedef float v8 __attribute__((ext_vector_type(8)));
typedef float v16 __attribute__((ext_vector_type(16)));
typedef int i8 __attribute__((ext_vector_type(8)));

// Macros rather than functions: a function taking or returning a 16-float vector has a different calling
// convention in each target_clones variant, which the compiler refuses.
#define LOAD(type, p) \
    ({ \
        type v_; \
        __builtin_memcpy(&v_, (p), sizeof v_); \
        v_; \
    })
#define STORE(v, p) \
    do { \
        __typeof__(v) s_ = (v); \
        __builtin_memcpy((p), &s_, sizeof s_); \
    } while (0)
#define EVEN(v) __builtin_shufflevector(v, v, 0, 2, 4, 6, 8, 10, 12, 14)
#define ODD(v) __builtin_shufflevector(v, v, 1, 3, 5, 7, 9, 11, 13, 15)
#define INTERLEAVE(a, b) __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15)

#endif
