/* AVX2 + FMA micro-kernel and packer for the blocked matmul: the f32 path
 * for x86-64 CPUs without AVX-512 (matmul_impl.h has the layouts). 16 ymm
 * registers: a 6 x 16 tile in 12 accumulators, two panel vectors and a
 * broadcast. Reduced-precision activations have no AVX2 kernel: on this
 * path every weight type takes the f32 kernel. */
#include "kernels/matmul_impl.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <string.h>

#define TGT __attribute__((target("avx2,fma,f16c")))

#define NR 16
#define MR 6

TGT static void kernel_f32(const mm_tile *t) {
    __m256 c0[MR], c1[MR];
    const float *a[MR];
    for (int i = 0; i < MR; i++) {
        c0[i] = c1[i] = _mm256_setzero_ps();
        a[i] = (const float *)t->a + (i < t->mr ? i : 0) * t->lda; /* past the last token: reread the first */
    }
    const float *b = t->b;
    for (int k = 0; k < t->kc; k++, b += NR) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        for (int i = 0; i < MR; i++) {
            __m256 av = _mm256_broadcast_ss(&a[i][k]);
            c0[i] = _mm256_fmadd_ps(av, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(av, b1, c1[i]);
        }
    }
    for (int i = 0; i < t->mr; i++) {
        float row[NR] __attribute__((aligned(32)));
        _mm256_store_ps(row, c0[i]);
        _mm256_store_ps(row + 8, c1[i]);
        float *c = t->c + i * t->ldc;
        for (int j = 0; j < t->nr; j++)
            c[j] = t->accumulate ? c[j] + row[j] : row[j] + (t->bias ? t->bias[j] : 0.0f);
    }
}

/* Each row's segment converted to f32 (F16C for f16), then transposed. */
TGT static void pack_f32(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    float *out = dst;
    float row[256] __attribute__((aligned(32)));
    for (int c0 = 0; c0 < kc; c0 += 256) {
        int cn = kc - c0 < 256 ? kc - c0 : 256;
        for (int r = 0; r < NR; r++) {
            int64_t f = f0 + r;
            if (f >= w->rows) {
                for (int i = 0; i < cn; i++)
                    out[(c0 + i) * NR + r] = 0;
                continue;
            }
            if (w->type == UM_F16) {
                const uint16_t *src = (const uint16_t *)w->data + f * w->cols + kb + c0;
                int i = 0;
                for (; i + 8 <= cn; i += 8)
                    _mm256_store_ps(row + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
                for (; i < cn; i++)
                    row[i] = um_f16_to_f32(src[i]);
            } else {
                mm_row_segment_f32(w, f, kb + c0, cn, row);
            }
            for (int i = 0; i < cn; i++)
                out[(c0 + i) * NR + r] = row[i];
        }
    }
}

static const mm_kernels f32_kernels = {MM_F32, MR, NR, 256, 64, 0, 0, kernel_f32, pack_f32, NULL, "avx2-f32"};

const mm_kernels *mm_avx2_kernels(mm_kind kind, um_dtype t) { return kind == MM_F32 ? &f32_kernels : NULL; }

#else

const mm_kernels *mm_avx2_kernels(mm_kind kind, um_dtype t) { return NULL; }

#endif
