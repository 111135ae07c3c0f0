/* exp over a row of floats, vectorized: the softmax of inference attention
 * and SwiGLU's sigmoid. glibc's expf is one call per element, and at canvas
 * 1024 it took as long as attention's two matrix products together.
 *
 * exp_poly is Cephes' expf (S. Moshier): x = n ln 2 + r with |r| <= ln 2 / 2,
 * exp(r) by a degree-7 polynomial, 2^n put into the exponent bits; within
 * 2 ulp of expf over its range. Each instruction-set path has its copy, on
 * vectors of its width. */
#include <stdint.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/vec.h"

/* The loops are written on GCC/clang vectors: GCC does not if-convert the
 * range clamp of a scalar version (a float comparison may trap), so it
 * would not vectorize it. */
#define EXP_ROW(SUFFIX, TGT, V, VI)                                                                            \
    /* lanes of m from a, the others from b */                                                                 \
    TGT static inline V select_##SUFFIX(VI m, V a, V b) { return (V)((m & (VI)a) | (~m & (VI)b)); }            \
                                                                                                               \
    /* x clamped so that 2^n stays a normal float: exp(-87.3) ~ 1.2e-38 stands for every smaller result (0 in  \
       expf), exp(88.3) ~ 2.1e38 for larger ones (inf); NaN stays NaN (through the polynomial). */             \
    TGT static inline V exp_##SUFFIX(V x) {                                                                    \
        V zero = {0};                                                                                          \
        x = select_##SUFFIX(x < -87.3f, zero - 87.3f, x);                                                      \
        x = select_##SUFFIX(x > 88.3f, zero + 88.3f, x);                                                       \
        V t = x * 1.44269504088896341f;                                                                        \
        V half = (V)(((VI)t & (int32_t)0x80000000) | (VI)(zero + 0.5f)); /* 0.5 with t's sign */             \
        VI n = __builtin_convertvector(t + half, VI);                    /* t rounded to nearest */            \
        V fn = __builtin_convertvector(n, V);                                                                  \
        V r = x - fn * 0.693359375f - fn * -2.12194440e-4f; /* ln 2 in two parts: fn * C1 is exact */          \
        V p = zero + 1.9875691500e-4f;                                                                         \
        p = p * r + 1.3981999507e-3f;                                                                          \
        p = p * r + 8.3334519073e-3f;                                                                          \
        p = p * r + 4.1665795894e-2f;                                                                          \
        p = p * r + 1.6666665459e-1f;                                                                          \
        p = p * r + 5.0000001201e-1f;                                                                          \
        p = p * r * r + r + 1.0f;                                                                              \
        return p * (V)((n + 127) << 23);                                                                       \
    }                                                                                                          \
                                                                                                               \
    /* s[x] = exp(s[x] - shift), and their sums per lane (the tail's in lane 0) */                              \
    TGT static V exp_lanes_##SUFFIX(float *s, int n, float shift) {                                            \
        V acc = {0}, v;                                                                                        \
        int x = 0, w = (int)(sizeof(V) / sizeof(float));                                                       \
        for (; x + w <= n; x += w) {                                                                           \
            memcpy(&v, s + x, sizeof v);                                                                       \
            v = exp_##SUFFIX(v - shift);                                                                       \
            memcpy(s + x, &v, sizeof v);                                                                       \
            acc += v;                                                                                          \
        }                                                                                                      \
        for (; x < n; x++) {                                                                                   \
            v = exp_##SUFFIX((V){0} + (s[x] - shift));                                                         \
            s[x] = v[0];                                                                                       \
            acc[0] += v[0];                                                                                    \
        }                                                                                                      \
        return acc;                                                                                            \
    }                                                                                                          \
                                                                                                               \
    TGT static float exp_row_##SUFFIX(float *s, int n, float shift) {                                          \
        V acc = exp_lanes_##SUFFIX(s, n, shift);                                                               \
        float sum = 0;                                                                                         \
        for (int i = 0; i < (int)(sizeof(V) / sizeof(float)); i++)                                             \
            sum += acc[i];                                                                                     \
        return sum;                                                                                            \
    }                                                                                                          \
                                                                                                               \
    /* the largest of init and s[0..n), NaN skipped (as the scalar s[x] > m ? s[x] : m) */                     \
    TGT static float max_row_##SUFFIX(const float *s, int n, float init) {                                    \
        V m = (V){0} + init, v;                                                                                \
        int x = 0, w = (int)(sizeof(V) / sizeof(float));                                                       \
        for (; x + w <= n; x += w) {                                                                           \
            memcpy(&v, s + x, sizeof v);                                                                       \
            m = select_##SUFFIX(v > m, v, m);                                                                  \
        }                                                                                                      \
        float mx = init;                                                                                       \
        for (int i = 0; i < w; i++)                                                                            \
            mx = m[i] > mx ? m[i] : mx;                                                                        \
        for (; x < n; x++)                                                                                     \
            mx = s[x] > mx ? s[x] : mx;                                                                        \
        return mx;                                                                                             \
    }                                                                                                          \
                                                                                                               \
    /* One key tile of attention's online softmax (um_softmax_step). */                                      \
    TGT static void softmax_step_##SUFFIX(float *S, int lds, int nq, int nk, float *m, float *l, float *O,       \
                                          int hd) {                                                            \
        for (int i = 0; i < nq; i++) {                                                                         \
            float *s = S + (size_t)i * lds, *o = O + (size_t)i * hd;                                           \
            float mx = max_row_##SUFFIX(s, nk, m[i]);                                                          \
            V corr = exp_##SUFFIX((V){0} + (m[i] - mx)), v; /* exp(-inf): ~1e-38 times l, O = 0 */          \
            memcpy(&v, l + (size_t)i * UM_SOFTMAX_LANES, sizeof v);                                            \
            v = v * corr + exp_lanes_##SUFFIX(s, nk, mx);                                                      \
            memcpy(l + (size_t)i * UM_SOFTMAX_LANES, &v, sizeof v);                                            \
            m[i] = mx;                                                                                         \
            if (corr[0] != 1.0f)                                                                               \
                for (int c = 0; c < hd; c++)                                                                   \
                    o[c] *= corr[0];                                                                           \
        }                                                                                                      \
    }                                                                                                          \
                                                                                                               \
    /* gate[i] = gate[i] / (1 + exp(-gate[i])) * up[i] */                                                      \
    TGT static void swiglu_##SUFFIX(float *gate, const float *up, int64_t n) {                                 \
        V g, u, one = {0};                                                                                     \
        one += 1.0f;                                                                                           \
        int64_t i = 0, w = (int64_t)(sizeof(V) / sizeof(float));                                               \
        for (; i + w <= n; i += w) {                                                                           \
            memcpy(&g, gate + i, sizeof g);                                                                    \
            memcpy(&u, up + i, sizeof u);                                                                      \
            g = g / (one + exp_##SUFFIX(-g)) * u;                                                              \
            memcpy(gate + i, &g, sizeof g);                                                                    \
        }                                                                                                      \
        for (; i < n; i++) {                                                                                   \
            g = (V){0} + gate[i];                                                                              \
            gate[i] = (g / (one + exp_##SUFFIX(-g)))[0] * up[i];                                               \
        }                                                                                                      \
    }

EXP_ROW(portable, TGT_PORTABLE, vec4, ivec4) /* SSE2 or NEON width */
#if defined(__x86_64__)
EXP_ROW(avx2, TGT_AVX2, vec8, ivec8)
EXP_ROW(avx512, TGT_AVX512, vec16, ivec16)
#endif
#if defined(__aarch64__)
EXP_ROW(neon, TGT_NEON, vec8, ivec8) /* two q registers per operation: twice the independent work of vec4 */
#endif

float um_exp_row(um_kernel_path path, float *s, int n, float shift) {
    switch (path) {
#if defined(__x86_64__)
    case UM_PATH_AVX512: return exp_row_avx512(s, n, shift);
    case UM_PATH_AVX2: return exp_row_avx2(s, n, shift);
#endif
#if defined(__aarch64__)
    case UM_PATH_NEON: return exp_row_neon(s, n, shift);
#endif
    default: return exp_row_portable(s, n, shift);
    }
}

void um_softmax_step(um_kernel_path path, float *S, int lds, int nq, int nk, float *m, float *l, float *O, int hd) {
    switch (path) {
#if defined(__x86_64__)
    case UM_PATH_AVX512: softmax_step_avx512(S, lds, nq, nk, m, l, O, hd); break;
    case UM_PATH_AVX2: softmax_step_avx2(S, lds, nq, nk, m, l, O, hd); break;
#endif
#if defined(__aarch64__)
    case UM_PATH_NEON: softmax_step_neon(S, lds, nq, nk, m, l, O, hd); break;
#endif
    default: softmax_step_portable(S, lds, nq, nk, m, l, O, hd);
    }
}

void um_swiglu(um_kernel_path path, float *gate, const float *up, int64_t n) {
    switch (path) {
#if defined(__x86_64__)
    case UM_PATH_AVX512: swiglu_avx512(gate, up, n); break;
    case UM_PATH_AVX2: swiglu_avx2(gate, up, n); break;
#endif
#if defined(__aarch64__)
    case UM_PATH_NEON: swiglu_neon(gate, up, n); break;
#endif
    default: swiglu_portable(gate, up, n);
    }
}
