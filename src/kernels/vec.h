/* GCC/clang vector types and the target attributes of the instruction-set
 * paths, for the small kernels written once and compiled once per path
 * (gemm_acc.c, exp_row.c, exp_f64.c); the path in use (kernels/cpu.h) picks the copy. */
#ifndef UM_KERNELS_VEC_H
#define UM_KERNELS_VEC_H

#include <stdint.h>

typedef float vec4 __attribute__((vector_size(16)));
typedef int32_t ivec4 __attribute__((vector_size(16)));
typedef float vec8 __attribute__((vector_size(32)));
typedef int32_t ivec8 __attribute__((vector_size(32)));
typedef float vec16 __attribute__((vector_size(64)));
typedef int32_t ivec16 __attribute__((vector_size(64)));
typedef float vec2f __attribute__((vector_size(8)));
typedef double vec2d __attribute__((vector_size(16)));
typedef int64_t ivec2d __attribute__((vector_size(16)));
typedef uint64_t uvec2d __attribute__((vector_size(16)));
typedef double vec4d __attribute__((vector_size(32)));
typedef int64_t ivec4d __attribute__((vector_size(32)));
typedef uint64_t uvec4d __attribute__((vector_size(32)));

#define TGT_PORTABLE
#if defined(__x86_64__)
#define TGT_AVX2 __attribute__((target("avx2,fma")))
#define TGT_AVX512 __attribute__((target("avx512f,fma")))
#endif
#if defined(__aarch64__)
#define TGT_NEON /* Advanced SIMD is part of the arm64 baseline */
#endif

#endif
