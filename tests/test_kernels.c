/* The matmul kernels: every instruction-set path this CPU has against the
 * portable reference of the same arithmetic, for every weight type, on
 * random shapes with awkward sizes (1, 3, 17 tokens; rows and columns that
 * are not multiples of the register tile, the panel or the k block); the
 * reduced-precision arithmetic against the f32 one within the bound that
 * the activations' rounding allows; the SIMD activation packers bit for bit
 * against the portable ones; the path choice and its override. */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pool.h"
#include "base/rng.h"
#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/matmul_impl.h"
#include "kernels/peak.h"
#include "kernels/quant.h"
#include "testutil.h"

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

static const um_dtype all_types[] = {UM_F32, UM_F16, UM_BF16, UM_Q8_0, UM_Q4_0, UM_Q4_1, UM_Q4_K, UM_Q5_K, UM_Q6_K};
#define N_TYPES (sizeof all_types / sizeof *all_types)

/* A case: weights of type t, [rows][cols], quantized from std-0.05
 * Gaussians, plus their f32 expansion; n activation rows with a few large
 * values (as real activations have) and a bias. */
typedef struct {
    um_weight w;
    float *wf; /* dequantized */
    float *x, *bias;
    int n;
} mm_case;

static mm_case make_case(um_dtype t, int64_t rows, int64_t cols, int n, bool bias, um_rng *rng) {
    mm_case c = {{t, rows, cols, NULL, false, NULL}, NULL, NULL, NULL, n};
    size_t rb = um_row_bytes(t, cols);
    uint8_t *data = xmalloc(rb * (size_t)rows + 64);
    c.wf = xmalloc((size_t)(rows * cols) * sizeof(float));
    float *row = xmalloc((size_t)cols * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < cols; i++)
            row[i] = (float)(0.05 * um_rng_normal(rng));
        um_quantize_row(t, row, data + (size_t)r * rb, cols);
        um_dequantize_row(t, data + (size_t)r * rb, c.wf + r * cols, cols);
    }
    free(row);
    c.w.data = data;
    c.x = xmalloc((size_t)n * (size_t)cols * sizeof(float));
    for (int64_t i = 0; i < (int64_t)n * cols; i++)
        c.x[i] = (float)(um_rng_normal(rng) * (um_rng_next(rng) % 64 == 0 ? 20.0 : 1.0));
    if (bias) {
        c.bias = xmalloc((size_t)rows * sizeof(float));
        for (int64_t r = 0; r < rows; r++)
            c.bias[r] = (float)um_rng_normal(rng);
    }
    return c;
}

static void free_case(mm_case *c) {
    free((void *)c->w.data);
    free(c->wf);
    free(c->x);
    free(c->bias);
}

/* sum |w||x| + |bias| for output (t, r): the scale of its rounding error. */
static double abs_scale(const mm_case *c, int t, int64_t r) {
    double s = c->bias ? fabs(c->bias[r]) : 0;
    for (int64_t i = 0; i < c->w.cols; i++)
        s += fabs((double)c->wf[r * c->w.cols + i] * c->x[(int64_t)t * c->w.cols + i]);
    return s;
}

static float *run(um_pool *pool, const mm_kernels *ks, mm_kind kind, const mm_case *c) {
    float *y = xmalloc((size_t)c->n * (size_t)c->w.rows * sizeof(float));
    float *scratch = xmalloc(um_matmul_scratch_floats(um_pool_threads(pool), c->w.cols) * sizeof(float));
    for (int64_t i = 0; i < (int64_t)c->n * c->w.rows; i++)
        y[i] = NAN; /* every output must be written */
    mm_run(pool, ks, kind, c->x, c->n, &c->w, c->bias, y, scratch);
    free(scratch);
    return y;
}

/* |got - want| <= tol * scale for every output, with a message naming it. */
static void expect_close(const char *what, const mm_case *c, const float *got, const float *want, double tol) {
    for (int t = 0; t < c->n; t++)
        for (int64_t r = 0; r < c->w.rows; r++) {
            double g = got[(int64_t)t * c->w.rows + r], e = want[(int64_t)t * c->w.rows + r];
            double bound = tol * abs_scale(c, t, r) + 1e-30;
            if (!(fabs(g - e) <= bound))
                fail_msg("%s %s [%lld x %lld], n %d: y[%d][%lld] = %.9g, reference %.9g (bound %.3g)", what,
                         um_dtype_name(c->w.type), (long long)c->w.rows, (long long)c->w.cols, c->n, t, (long long)r,
                         g, e, bound);
        }
}

/* The kernel sets this CPU can run, per kind: index 0 the AVX2 path's
 * (for I8 the VEX vnni_tile where the CPU has AVX-VNNI, else avx2-i8), 1
 * AVX-512, 2 the same vnni_tile source in the EVEX encoding (I8 only),
 * which AVX-512 VNNI CPUs run where they lack the VEX instruction; on
 * arm64 3 NEON's (F32 fmla, BF16 bfmlal, I8 sdot) and 4 its other
 * instruction (I8 smmla, BF16 bfmmla). */
#define N_SIMD 5
static const mm_kernels *simd_kernels(int which, mm_kind kind, um_dtype t) {
    const um_cpu_features *f = um_cpu_features_get();
    if (which >= 3) {
        bool other = which == 4;
        if (!f->neon || (kind == MM_BF16 && !f->neon_bf16) || (kind == MM_I8 && !(other ? f->neon_i8mm : f->neon_dot)))
            return NULL;
        if (kind == MM_BF16)
            return t == UM_BF16 || t == UM_F16 ? mm_neon_bf16_kernels(other) : NULL;
        if (kind == MM_I8)
            return mm_neon_i8_kernels(t, other);
        return other ? NULL : mm_neon_kernels(kind, t);
    }
    if (which == 0)
        return f->avx2 ? mm_avx2_kernels(kind, t) : NULL;
    if (which == 2)
        return kind == MM_I8 && f->avx512_vnni ? mm_avx2_vnni_kernels(t, true) : NULL;
    if (!f->avx512 || (kind == MM_BF16 && !f->avx512_bf16) || (kind == MM_I8 && !f->avx512_vnni))
        return NULL;
    return mm_avx512_kernels(kind, t);
}

/* Says which of simd_kernels()' sets this CPU lacks (once per test). */
static void note_missing_simd(bool i8_only) {
    const um_cpu_features *f = um_cpu_features_get();
    if (!f->avx2)
        skip_note("avx2", "the avx2 kernels");
    if (!f->avx512)
        skip_note("avx512", "the avx512 kernels");
    if (f->avx512 && !f->avx512_bf16 && !i8_only)
        skip_note("avx512_bf16", "avx512-bf16");
    if (f->avx512 && !f->avx512_vnni)
        skip_note("avx512_vnni", "avx512-i8 and avx2-vnni256-evex");
    if (!f->neon)
        skip_note(um_kernel_path_lack(UM_PATH_NEON), "the neon kernels");
    if (f->neon && !f->neon_dot)
        skip_note("asimddot", "neon-sdot-i8");
    if (f->neon && !f->neon_i8mm)
        skip_note("i8mm", "neon-smmla-i8");
    if (f->neon && !f->neon_bf16 && !i8_only)
        skip_note("bf16", "neon-bf16 and neon-bfmmla-bf16");
}

/* Shapes per type: columns that need 1, 2 and several k blocks, ragged
 * where the type allows; rows around the 32-feature panel and the
 * 128-feature task. */
static int shapes_for(um_dtype t, int64_t cols[4]) {
    int be = um_dtype_block_elems(t);
    if (be == 1) {
        cols[0] = 1, cols[1] = 7, cols[2] = 301, cols[3] = 1101;
        return 4;
    }
    if (be == 32) {
        cols[0] = 32, cols[1] = 96, cols[2] = 1088;
        return 3;
    }
    cols[0] = 256, cols[1] = 1280;
    return 2;
}

static void each_path_matches_reference(void **state) {
    static const int ns[] = {1, 3, 17, 40};
    static const int64_t rows[] = {1, 37, 161};
    um_pool *pool = um_pool_create(3);
    assert_non_null(pool);
    um_rng rng;
    um_rng_seed(&rng, 2024);
    int compared = 0, onednn = 0, vnni256 = 0;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        um_dtype t = all_types[ti];
        int64_t cols[4];
        int nc = shapes_for(t, cols);
        for (int ci = 0; ci < nc; ci++)
            for (size_t ri = 0; ri < sizeof rows / sizeof *rows; ri++) {
                int n = ns[(ci + ri) % 4];
                mm_case c = make_case(t, rows[ri], cols[ci], n, (ci + ri) % 2 == 0, &rng);
                for (int kind = MM_F32; kind <= MM_I8; kind++) {
                    if ((kind == MM_BF16 && t != UM_BF16 && t != UM_F16) || (kind == MM_I8 && mm_i8_bk(t) == 0))
                        continue;
                    float *ref = run(pool, NULL, (mm_kind)kind, &c);
                    for (int which = 0; which < N_SIMD; which++) {
                        const mm_kernels *ks = simd_kernels(which, (mm_kind)kind, t);
                        if (!ks)
                            continue;
                        float *y = run(pool, ks, (mm_kind)kind, &c);
                        /* same arithmetic, another summation order: f32 rounding only */
                        expect_close(ks->name, &c, y, ref, 2e-6);
                        /* the weights packed once (as at load) give the same bits */
                        assert_true(mm_pack_weight(pool, ks, &c.w, NULL));
                        float *yp = run(pool, ks, (mm_kind)kind, &c);
                        um_weight_unpack(&c.w);
                        if (memcmp(y, yp, (size_t)c.n * (size_t)c.w.rows * sizeof(float)) != 0)
                            fail_msg("%s %s [%lld x %lld], n %d: packed once, a different result", ks->name,
                                     um_dtype_name(c.w.type), (long long)c.w.rows, (long long)c.w.cols, c.n);
                        free(yp);
                        free(y);
                        compared++;
                        vnni256 += which == 2;
                    }
                    /* the oneDNN backend, where the build has it: F32, and BF16 with reduced activations */
                    bool reduced = kind == MM_BF16;
                    if (mm_onednn_handles(t, reduced) && (kind == MM_F32 || reduced)) {
                        float *y = xmalloc((size_t)c.n * (size_t)c.w.rows * sizeof(float));
                        for (int64_t i = 0; i < (int64_t)c.n * c.w.rows; i++)
                            y[i] = NAN;
                        assert_true(mm_onednn_run(pool, c.x, c.n, &c.w, c.bias, y, reduced));
                        expect_close(reduced ? "onednn-bf16" : "onednn-f32", &c, y, ref, 2e-6);
                        free(y);
                        compared++;
                        onednn++;
                    }
                    free(ref);
                }
                free_case(&c);
            }
    }
    print_message("    %d SIMD results compared with the reference (%d of them oneDNN's, %d avx2-vnni256-evex's)\n",
                  compared, onednn, vnni256);
    note_missing_simd(false);
    if (um_onednn_available() && !mm_onednn_handles(UM_BF16, true))
        skip_note("avx512", "onednn-bf16");
    assert_true(!um_onednn_available() || onednn > 0);
    assert_true(!um_cpu_features_get()->avx512_vnni || vnni256 > 0);
    um_pool_destroy(pool);
}

/* Reduced-precision activations against f32 ones, per output, within what
 * the rounding of x allows: |sum w (x - x')| <= sum |w| |x - x'|, where
 * |x - x'| <= 2^-9 |x| for bf16 and <= max|x of its activation block| / 254
 * for int8 (half a quantization step; blocks of 32 values, 256 for the
 * K-quants); plus f32 rounding. F16 weights are
 * rounded to bf16 as well: |w x - w' x'| <= |w - w'| |x'| + |w| |x - x'|
 * <= (2^-9 (1 + 2^-9) + 2^-9) |w| |x|. */
static void reduced_within_rounding_bound(void **state) {
    um_pool *pool = um_pool_create(2);
    assert_non_null(pool);
    um_rng rng;
    um_rng_seed(&rng, 77);
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        um_dtype t = all_types[ti];
        mm_kind kind = t == UM_BF16 || t == UM_F16 ? MM_BF16 : mm_i8_bk(t) ? MM_I8 : MM_F32;
        if (kind == MM_F32)
            continue;
        double bf16_rel = t == UM_F16 ? ldexp(2 + ldexp(1, -9), -9) : ldexp(1, -9);
        int64_t cols = um_dtype_block_elems(t) == 256 ? 512 : 320;
        mm_case c = make_case(t, 45, cols, 9, true, &rng);
        float *exact = run(pool, NULL, MM_F32, &c), *reduced = run(pool, NULL, kind, &c);
        double worst = 0;
        for (int i = 0; i < c.n; i++)
            for (int64_t r = 0; r < c.w.rows; r++) {
                const float *x = c.x + i * cols, *w = c.wf + r * cols;
                double bound = 0;
                int ab = kind == MM_I8 ? mm_i8_ab(t) : 32; /* the activations' block (256 for K-quants) */
                for (int64_t b = 0; b < cols; b += ab) {
                    double amax = 0;
                    for (int j = 0; j < ab; j++)
                        amax = fmax(amax, fabs(x[b + j]));
                    for (int j = 0; j < ab; j++)
                        bound += fabs(w[b + j]) * (kind == MM_BF16 ? bf16_rel * fabs(x[b + j]) : amax / 254);
                }
                bound += 1e-5 * abs_scale(&c, i, r);
                double d = fabs((double)reduced[i * c.w.rows + r] - exact[i * c.w.rows + r]);
                if (!(d <= bound))
                    fail_msg("%s reduced: y[%d][%lld] = %.9g, f32 %.9g, bound %.3g", um_dtype_name(t), i,
                             (long long)r, reduced[i * c.w.rows + r], exact[i * c.w.rows + r], bound);
                worst = fmax(worst, d / bound);
            }
        print_message("    %-5s reduced vs f32: worst error %.0f%% of the rounding bound\n", um_dtype_name(t),
                      100 * worst);
        free(exact);
        free(reduced);
        free_case(&c);
    }
    um_pool_destroy(pool);
}

/* Activation j of row i of the extreme cases: all +1, all -1, alternating,
 * random signs; each quantizes to +-127 (its block's max |x|). */
static float extreme_activation(int i, int64_t j, um_rng *rng) {
    switch (i % 4) {
    case 0:
        return 1.0f;
    case 1:
        return -1.0f;
    case 2:
        return j % 2 ? 1.0f : -1.0f;
    default:
        return um_rng_next(rng) % 2 ? 1.0f : -1.0f;
    }
}

/* A weight of type t whose integer levels sit at their extremes: rows of
 * all-highest levels (every quantized byte 0xff, Q8_0's 0x7f = +127), of
 * all-lowest (0x00, Q8_0's 0x80 = -128), and rows mixing the two at
 * random; every f16 scale field (d, and m / dmin) 2^-6. */
static mm_case extreme_case(um_dtype t, int64_t rows, int64_t cols, int n, um_rng *rng) {
    mm_case c = {{t, rows, cols, NULL, false, NULL}, NULL, NULL, NULL, n};
    size_t rb = um_row_bytes(t, cols), bb = um_dtype_block_bytes(t);
    uint8_t *data = xmalloc(rb * (size_t)rows);
    uint8_t hi = t == UM_Q8_0 ? 0x7f : 0xff, lo = t == UM_Q8_0 ? 0x80 : 0x00;
    for (int64_t r = 0; r < rows; r++)
        for (size_t i = 0; i < rb; i++)
            data[(size_t)r * rb + i] = r % 3 == 0 ? hi : r % 3 == 1 ? lo : um_rng_next(rng) % 2 ? hi : lo;
    const uint16_t scale = 0x2400; /* f16 2^-6 */
    size_t d_at = t == UM_Q6_K ? offsetof(um_block_q6_K, d) : 0;
    bool second = t == UM_Q4_1 || t == UM_Q4_K || t == UM_Q5_K; /* m or dmin after d */
    for (size_t b = 0; b < rb * (size_t)rows / bb; b++) {
        memcpy(data + b * bb + d_at, &scale, 2);
        if (second)
            memcpy(data + b * bb + 2, &scale, 2);
    }
    c.w.data = data;
    c.wf = xmalloc((size_t)(rows * cols) * sizeof(float));
    for (int64_t r = 0; r < rows; r++)
        um_dequantize_row(t, data + (size_t)r * rb, c.wf + r * cols, cols);
    c.x = xmalloc((size_t)n * (size_t)cols * sizeof(float));
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < cols; j++)
            c.x[(int64_t)i * cols + j] = extreme_activation(i, j, rng);
    return c;
}

/* The I8 kernels' integer sums are exact at the extremes of both operands.
 * vpmaddubsw adds pairs of u8 x s8 products into int16 with saturation:
 * Q8_0's stored level 255 (q = +127) against activations of +127 makes a
 * pair of 64770, which a plain vpmaddubsw on the stored levels would clip
 * to 32767; 4-bit levels of 15 summed over a whole sub-block in int16 reach
 * 30480, 5-bit ones 31496 over 4 groups, 6-bit ones 32004 over 2 (the AVX2
 * kernel's bounds, matmul_avx2.c). The vpdpbusd kernels (AVX-512 and the
 * 256-bit VNNI ones) sum in int32 without saturation and must be exact too. */
static void i8_extremes_exact(void **state) {
    um_pool *pool = um_pool_create(2);
    assert_non_null(pool);
    um_rng rng;
    um_rng_seed(&rng, 31);
    int compared = 0, vnni256 = 0;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        um_dtype t = all_types[ti];
        if (mm_i8_bk(t) == 0 || t == UM_F16) /* F16 levels come from quantizing: never past +-127 */
            continue;
        mm_case c = extreme_case(t, 37, 512, 7, &rng);
        float *ref = run(pool, NULL, MM_I8, &c);
        for (int which = 0; which < N_SIMD; which++) {
            const mm_kernels *ks = simd_kernels(which, MM_I8, t);
            if (!ks)
                continue;
            float *y = run(pool, ks, MM_I8, &c);
            expect_close(ks->name, &c, y, ref, 2e-6);
            free(y);
            compared++;
            vnni256 += which == 2;
        }
        free(ref);
        free_case(&c);
    }
    print_message("    %d SIMD I8 results at the extremes compared with the reference (%d avx2-vnni256-evex's)\n",
                  compared, vnni256);
    note_missing_simd(true);
    assert_true(!um_cpu_features_get()->avx2 || compared > 0);
    assert_true(!um_cpu_features_get()->neon_dot || compared > 0);
    assert_true(!um_cpu_features_get()->avx512_vnni || vnni256 > 0);
    um_pool_destroy(pool);
}

/* F16 weights on the int8 path (um_weight.q8_0_when_reduced) compute
 * exactly what the Q8_0 weights llama.cpp's quantizer makes of them compute
 * (um_quantize_row: quantize_row_q8_0_ref), with rows and activations
 * zero-padded to whole blocks where the columns are ragged; um_matmul takes
 * that path only for F16 weights that carry the flag. */
static void f16_int8_is_q8_0(void **state) {
    um_pool *pool = um_pool_create(2);
    assert_non_null(pool);
    um_rng rng;
    um_rng_seed(&rng, 16);
    static const int64_t cols[] = {64, 7, 301, 1101};
    for (size_t ci = 0; ci < sizeof cols / sizeof *cols; ci++) {
        mm_case c = make_case(UM_F16, 37, cols[ci], 5, true, &rng);
        int64_t k = c.w.cols, kq = (k + 31) / 32 * 32;
        size_t rb = um_row_bytes(UM_Q8_0, kq);
        uint8_t *q8 = xmalloc(rb * (size_t)c.w.rows);
        float *row = xmalloc((size_t)kq * sizeof(float)), *xp = xmalloc((size_t)c.n * (size_t)kq * sizeof(float));
        for (int64_t r = 0; r < c.w.rows; r++) {
            for (int64_t i = 0; i < kq; i++)
                row[i] = i < k ? c.wf[r * k + i] : 0.0f;
            um_quantize_row(UM_Q8_0, row, q8 + (size_t)r * rb, kq);
        }
        for (int t = 0; t < c.n; t++)
            for (int64_t i = 0; i < kq; i++)
                xp[t * kq + i] = i < k ? c.x[t * k + i] : 0.0f;
        um_weight wq = {UM_Q8_0, c.w.rows, kq, q8, false, NULL};
        float *want = xmalloc((size_t)c.n * (size_t)c.w.rows * sizeof(float));
        float *scratch = xmalloc(um_matmul_scratch_floats(2, kq) * sizeof(float));
        mm_run(pool, NULL, MM_I8, xp, c.n, &wq, c.bias, want, scratch);
        float *got = run(pool, NULL, MM_I8, &c);
        assert_memory_equal(got, want, (size_t)c.n * (size_t)c.w.rows * sizeof(float));
        /* the public entry point: with the flag, the int8 path where Q8_0 has
         * one; without, F16's own (bf16, or f32 where the path lacks bf16) */
        bool reduced = um_matmul_reduced();
        um_matmul_set_reduced(true);
        const char *q8_kernel = um_matmul_kernel_name(exec_now(NULL), UM_Q8_0), *f16_kernel = um_matmul_kernel_name(exec_now(NULL), UM_F16);
        bool i8 = strstr(q8_kernel, "i8") || strstr(q8_kernel, "vnni");
        float *plain = run(pool, NULL, strstr(f16_kernel, "bf16") ? MM_BF16 : MM_F32, &c);
        float *flagged = i8 ? want : run(pool, NULL, MM_F32, &c);
        for (int flag = 0; flag < 2; flag++) {
            c.w.q8_0_when_reduced = flag;
            um_matmul(exec_now(pool), c.x, c.n, &c.w, c.bias, got, scratch);
            expect_close(flag ? "um_matmul (F16 as Q8_0)" : "um_matmul (F16)", &c, got, flag ? flagged : plain, 2e-6);
        }
        um_matmul_set_reduced(reduced);
        if (flagged != want)
            free(flagged);
        free(plain);
        free(got);
        free(want);
        free(scratch);
        free(q8);
        free(row);
        free(xp);
        free_case(&c);
    }
    um_pool_destroy(pool);
}

/* um_matmul_many gives each product what um_matmul gives it, to the bit:
 * the shared activations are packed as each call would pack them, and each
 * output element is one task's. Three weights of one type (rows around the
 * task size), then of mixed types (one um_matmul each). */
static void matmul_many_is_each(void **state) {
    um_pool *pool = um_pool_create(2);
    um_rng rng;
    um_rng_seed(&rng, 21);
    const um_dtype types[][3] = {{UM_Q8_0, UM_Q8_0, UM_Q8_0}, {UM_Q4_K, UM_Q4_K, UM_Q4_K}, {UM_BF16, UM_BF16, UM_BF16},
                                 {UM_F16, UM_F16, UM_F16},    {UM_Q4_K, UM_Q6_K, UM_Q8_0}};
    const int64_t rows[] = {130, 7, 256};
    bool reduced = um_matmul_reduced();
    for (int red = 0; red < 2; red++) {
        um_matmul_set_reduced(red);
        for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
            mm_case c[3];
            const um_weight *w[3];
            const float *bias[3];
            float *y[3], *each[3];
            for (int i = 0; i < 3; i++) {
                c[i] = make_case(types[ti][i], rows[i], 512, 19, i != 1, &rng);
                c[i].w.q8_0_when_reduced = types[ti][i] == UM_F16;
                if (i > 0)
                    memcpy(c[i].x, c[0].x, (size_t)c[0].n * 512 * sizeof(float));
                w[i] = &c[i].w;
                bias[i] = c[i].bias;
                y[i] = xmalloc((size_t)c[i].n * (size_t)rows[i] * sizeof(float));
                each[i] = xmalloc((size_t)c[i].n * (size_t)rows[i] * sizeof(float));
            }
            float *scratch = xmalloc(um_matmul_scratch_floats(2, 512) * sizeof(float));
            um_matmul_many(exec_now(pool), c[0].x, c[0].n, 3, w, bias, y, scratch);
            for (int i = 0; i < 3; i++) {
                um_matmul(exec_now(pool), c[0].x, c[0].n, w[i], bias[i], each[i], scratch);
                assert_memory_equal(y[i], each[i], (size_t)c[i].n * (size_t)rows[i] * sizeof(float));
            }
            for (int i = 0; i < 3; i++) {
                free(y[i]);
                free(each[i]);
                free_case(&c[i]);
            }
            free(scratch);
        }
    }
    um_matmul_set_reduced(reduced);
    um_pool_destroy(pool);
}

/* The SIMD activation packers (of every set this CPU has) give the
 * portable ones' bits (so every path sees the same rounded activations),
 * including NaN, infinities, zeros and rows past n, for activation blocks
 * of 32 (Q8_0) and 256 (the K-quants). */
static void activation_packing_bit_exact(void **state) {
    um_rng rng;
    um_rng_seed(&rng, 5);
    enum { N = 7, K = 512 };
    float x[N * K];
    for (int i = 0; i < N * K; i++)
        x[i] = (float)(um_rng_normal(&rng) * pow(10.0, (double)(um_rng_next(&rng) % 9) - 4));
    x[3] = NAN;
    x[40] = INFINITY;
    x[77] = -0.0f;
    for (int i = 96; i < 128; i++)
        x[K + i] = 0; /* an all-zero block */
    x[2 * K + 5] = 1e-40f; /* subnormal */
    /* F16 on the int8 path (as Q8_0) with rows of 301: a ragged last block, zero-padded */
    const um_dtype types[] = {UM_BF16, UM_Q8_0, UM_Q4_K, UM_Q6_K, UM_F16};
    for (int which = 0; which < N_SIMD; which++) {
        for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
            mm_kind kind = types[ti] == UM_BF16 ? MM_BF16 : MM_I8;
            const mm_kernels *ks = simd_kernels(which, kind, types[ti]);
            if (!ks || !ks->pack_act)
                continue;
            int k = types[ti] == UM_F16 ? 301 : K, kq = (k + 31) / 32 * 32;
            int mr = ks->mr, bk = ks->bk, ab = kind == MM_I8 ? mm_i8_ab(types[ti]) : 0;
            size_t na = (size_t)(kind == MM_I8 ? kq / (ks->act_i16 ? 2 : 4) : k / 2) * mr;
            size_t ns = (size_t)(kq / (bk ? bk : 32)) * MM_SC_ROWS * mr;
            for (int t0 = 0; t0 < N; t0 += mr) {
                uint32_t a0[K * 16], a1[K * 16];
                float s0[K * MM_SC_ROWS], s1[K * MM_SC_ROWS];
                memset(a0, 0x55, sizeof a0);
                memset(a1, 0x55, sizeof a1);
                memset(s0, 0x55, sizeof s0);
                memset(s1, 0x55, sizeof s1);
                (kind == MM_BF16 ? mm_pack_act_bf16 : mm_pack_act_i8)(x, N, k, t0, mr, bk, ab, ks->zp, a0, s0);
                if (ks->act_i16) /* the same values as int16 pairs: [kq/2][mr] */
                    for (int i = kq / 2 * mr - 1; i >= 0; i--) {
                        int p = i / mr, t = i % mr;
                        int8_t q[4];
                        memcpy(q, &a0[(p / 2) * mr + t], 4);
                        a0[i] = (uint16_t)(int16_t)q[2 * (p % 2)] | (uint32_t)(uint16_t)(int16_t)q[2 * (p % 2) + 1] << 16;
                    }
                ks->pack_act(x, N, k, t0, mr, bk, ab, ks->zp, a1, s1);
                assert_memory_equal(a0, a1, na * sizeof *a0);
                if (kind == MM_I8)
                    assert_memory_equal(s0, s1, ns * sizeof *s0);
            }
        }
    }
}

/* The f32 panels of quantized weights hold the reference dequantizer's
 * values to the bit (the f32 path is the reference-exact one); 16-bit
 * panels of BF16 and F16 weights (f32_bytes 2) the weights' own bits, at
 * the slots matmul_impl.h gives. */
static void f32_panels_are_the_expansion(void **state) {
    um_rng rng;
    um_rng_seed(&rng, 12);
    const um_dtype types[] = {UM_F32, UM_F16, UM_BF16, UM_Q8_0, UM_Q4_0, UM_Q4_1, UM_Q4_K, UM_Q5_K, UM_Q6_K};
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++)
        for (int which = 0; which < N_SIMD; which++) {
            const mm_kernels *ks = simd_kernels(which, MM_F32, types[ti]);
            if (!ks)
                continue;
            mm_case c = make_case(types[ti], 40, 512, 1, false, &rng);
            float *panel = aligned_alloc(64, (size_t)ks->kc * ks->nr * sizeof(float));
            assert_non_null(panel);
            for (int64_t f0 = 0; f0 < c.w.rows; f0 += ks->nr)
                for (int64_t kb = 0; kb < c.w.cols; kb += ks->kc) {
                    int kc = (int)(c.w.cols - kb < ks->kc ? c.w.cols - kb : ks->kc);
                    ks->pack(&c.w, f0, kb, kc, panel);
                    for (int k = 0; k < kc; k++)
                        for (int f = 0; f < ks->nr; f++) {
                            float want = f0 + f < c.w.rows ? c.wf[(f0 + f) * c.w.cols + kb + k] : 0.0f;
                            const uint16_t *p16 = (const uint16_t *)panel + k * ks->nr;
                            float got = ks->f32_bytes == 4         ? panel[k * ks->nr + f]
                                        : types[ti] == UM_BF16 ? um_bf16_to_f32(p16[mm_bf16_panel_slot(f, ks->nr)])
                                                               : um_f16_to_f32(p16[f]);
                            if (memcmp(&got, &want, sizeof got) != 0 && !(got == 0 && want == 0))
                                fail_msg("%s %s panel: w[%lld][%lld] = %.9g, dequantized %.9g", ks->name,
                                         um_dtype_name(types[ti]), (long long)(f0 + f), (long long)(kb + k), got, want);
                        }
                }
            free(panel);
            free_case(&c);
        }
}

/* um_matmul follows the chosen path; a path the CPU lacks is clamped; the
 * reduced switch picks the kernels. */
static void path_choice_and_override(void **state) {
    um_kernel_path saved = um_kernel_path_get();
    um_kernel_lib saved_lib = um_kernel_lib_get();
    bool reduced = um_matmul_reduced();
    /* the library backend: F32, and BF16 with reduced activations; the rest ours */
    if (um_kernel_lib_set(UM_LIB_ONEDNN) == UM_LIB_ONEDNN) {
        um_matmul_set_reduced(false);
        assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_F32), "onednn-f32");
        assert_string_not_equal(um_matmul_kernel_name(exec_now(NULL), UM_BF16), "onednn-bf16");
        um_matmul_set_reduced(true);
        assert_string_not_equal(um_matmul_kernel_name(exec_now(NULL), UM_Q8_0), "onednn-bf16");
        if (!um_cpu_features_get()->avx512) { /* oneDNN's bf16 on AVX2 is not our arithmetic: ours run */
            skip_note("avx512", "onednn-bf16");
            assert_string_not_equal(um_matmul_kernel_name(exec_now(NULL), UM_BF16), "onednn-bf16");
        }
    }
    if (um_kernel_lib_get() == UM_LIB_ONEDNN && um_cpu_features_get()->avx512) {
        um_matmul_set_reduced(true);
        assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_BF16), "onednn-bf16");
        /* through the public entry point: the reduced bf16 arithmetic of the reference */
        um_pool *p2 = um_pool_create(2);
        um_rng r2;
        um_rng_seed(&r2, 9);
        mm_case b = make_case(UM_BF16, 1100, 300, 19, true, &r2);
        float *want = run(p2, NULL, MM_BF16, &b), *got = xmalloc((size_t)b.n * (size_t)b.w.rows * sizeof(float));
        float *s2 = xmalloc(um_matmul_scratch_floats(2, b.w.cols) * sizeof(float));
        um_matmul(exec_now(p2), b.x, b.n, &b.w, b.bias, got, s2);
        expect_close("onednn-bf16 (um_matmul)", &b, got, want, 2e-6);
        free(want);
        free(got);
        free(s2);
        free_case(&b);
        um_pool_destroy(p2);
    }
    if (um_kernel_lib_get() != UM_LIB_ONEDNN)
        assert_false(um_onednn_available());
    um_kernel_lib_set(UM_LIB_NONE);
    um_matmul_set_reduced(false);
    um_kernel_path best = um_kernel_path_best();
    assert_int_equal(um_kernel_path_set(UM_PATH_SCALAR), UM_PATH_SCALAR);
    assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_BF16), "scalar-f32");
    um_matmul_set_reduced(true);
    assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_BF16), "scalar-bf16");
    assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_Q4_K), "scalar-i8");
    assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_F16), "scalar-bf16");
    assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_F32), "scalar-f32");
    um_matmul_set_reduced(false);
    /* a path the CPU lacks falls back: AVX-512 to AVX2, else to the best */
    assert_int_equal(um_kernel_path_set(UM_PATH_AVX512), um_kernel_path_supported(UM_PATH_AVX512) ? UM_PATH_AVX512
                                                         : um_kernel_path_supported(UM_PATH_AVX2) ? UM_PATH_AVX2
                                                                                                 : best);
    if (!um_kernel_path_supported(UM_PATH_AVX512))
        skip_note(um_kernel_path_lack(UM_PATH_AVX512), "avx512 kernel names");
    if (best == UM_PATH_AVX512) {
        assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_F32), "avx512-f32");
        um_matmul_set_reduced(true);
        bool bf16 = um_cpu_features_get()->avx512_bf16;
        assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_F16), bf16 ? "avx512-bf16" : "avx512-f32");
        assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_F32), "avx512-f32");
        um_matmul_set_reduced(false);
    }
    if (!um_kernel_path_supported(UM_PATH_AVX2))
        skip_note(um_kernel_path_lack(UM_PATH_AVX2), "avx2 kernel names");
    else {
        assert_int_equal(um_kernel_path_set(UM_PATH_AVX2), UM_PATH_AVX2);
        assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_Q8_0), "avx2-f32");
        um_matmul_set_reduced(true); /* integer levels take an i8 kernel (vpdpbusd with AVX-VNNI); the rest f32 */
        bool vnni = um_cpu_features_get()->avx_vnni;
        const char *i8 = vnni ? "avxvnni-i8" : "avx2-i8";
        assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_Q8_0), vnni ? i8 : "avx2-i8-maddwd");
        assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_Q4_K), i8);
        assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_Q6_K), i8);
        assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_BF16), "avx2-f32");
        assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_F16), "avx2-f32");
        um_matmul_set_reduced(false);
    }
    if (!um_kernel_path_supported(UM_PATH_NEON))
        skip_note(um_kernel_path_lack(UM_PATH_NEON), "neon kernel names");
    else {
        const um_cpu_features *f = um_cpu_features_get();
        assert_int_equal(um_kernel_path_set(UM_PATH_NEON), UM_PATH_NEON);
        assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_Q8_0), "neon-f32");
        um_matmul_set_reduced(true); /* int8 on smmla with i8mm, else sdot; bf16 on bfmlal; else f32 */
        const char *i8 = f->neon_i8mm ? "neon-smmla-i8" : f->neon_dot ? "neon-sdot-i8" : "neon-f32";
        assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_Q8_0), i8);
        assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_Q6_K), i8);
        assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_BF16), f->neon_bf16 ? "neon-bf16" : "neon-f32");
        assert_string_equal(um_matmul_kernel_name(exec_now(NULL), UM_F32), "neon-f32");
        um_matmul_set_reduced(false);
    }
    /* the same product on every path through the public entry point: f32
     * activations, then int8 ones on the paths that have an i8 kernel */
    um_pool *pool = um_pool_create(2);
    um_rng rng;
    um_rng_seed(&rng, 8);
    mm_case c = make_case(UM_Q4_K, 70, 512, 5, true, &rng);
    float *scratch = xmalloc(um_matmul_scratch_floats(2, c.w.cols) * sizeof(float));
    for (int red = 0; red < 2; red++) {
        um_matmul_set_reduced(red);
        float *y[UM_PATH_COUNT] = {NULL};
        for (int p = UM_PATH_SCALAR; p < UM_PATH_COUNT; p++) {
            if (!um_kernel_path_supported((um_kernel_path)p)) {
                skip_note(um_kernel_path_lack((um_kernel_path)p), um_kernel_path_name((um_kernel_path)p));
                continue;
            }
            um_kernel_path_set((um_kernel_path)p);
            if (red && !strstr(um_matmul_kernel_name(exec_now(NULL), c.w.type), "i8") &&
                !strstr(um_matmul_kernel_name(exec_now(NULL), c.w.type), "vnni"))
                continue;
            y[p] = xmalloc((size_t)c.n * (size_t)c.w.rows * sizeof(float));
            um_matmul(exec_now(pool), c.x, c.n, &c.w, c.bias, y[p], scratch);
            if (p > 0)
                expect_close(um_matmul_kernel_name(exec_now(NULL), c.w.type), &c, y[p], y[0], 2e-6);
        }
        for (int p = 0; p < UM_PATH_COUNT; p++)
            free(y[p]);
    }
    free(scratch);
    free_case(&c);
    um_pool_destroy(pool);
    um_kernel_path_set(saved);
    um_kernel_lib_set(saved_lib);
    um_matmul_set_reduced(reduced);
}

/* The limits loops run on every thread and report plausible numbers. */
static void peak_loops_run(void **state) {
    um_pool *pool = um_pool_create(2);
    double fma = um_peak_gflops(pool, UM_PEAK_FMA_F32, 0.02);
    assert_true(fma > 0.1);
    const um_cpu_features *f = um_cpu_features_get();
    um_kernel_path path = um_kernel_path_get();
    if ((path == UM_PATH_AVX512 && f->avx512_bf16) || (path == UM_PATH_NEON && f->neon_bf16))
        assert_true(um_peak_gflops(pool, UM_PEAK_DOT_BF16, 0.02) > 0.1);
    else
        assert_true(um_peak_gflops(pool, UM_PEAK_DOT_BF16, 0.02) == 0);
    um_pool_destroy(pool);
}

/* The pool's scratch grows, keeps 64-byte alignment and is reused. */
static void pool_scratch(void **state) {
    um_pool *pool = um_pool_create(2);
    void *a = um_pool_scratch(pool, 0, 100);
    assert_non_null(a);
    assert_true(((uintptr_t)a & 63) == 0);
    assert_ptr_equal(um_pool_scratch(pool, 0, 50), a);
    void *b = um_pool_scratch(pool, 0, 1 << 20);
    assert_non_null(b);
    assert_true(((uintptr_t)b & 63) == 0);
    assert_null(um_pool_scratch(pool, UM_POOL_SCRATCH_SLOTS, 8));
    um_pool_destroy(pool);
    int cores = um_physical_core_count();
    assert_true(cores >= 1 && cores <= um_cpu_count());
}

/* um_attention against the definition in double: softmax(q k^T / sqrt(hd)) v
 * per head, grouped kv heads, on shapes around the query and key tiles and a
 * head_dim of 160 (more than one chunk of the bf16 key and value copies).
 * f32 (reduced off, or a path without bf16 dot products): within 1e-5.
 * Reduced with bf16 operands (the scalar path and AVX-512 BF16): against the
 * definition on the same rounded operands (queries scaled in f32, then
 * rounded; keys and values rounded); the probabilities are rounded too
 * (2^-9 of each) and their normalizer summed before rounding, so each output
 * is within 2 * 2^-9 * max|v| plus f32 sums, while a misplaced pair or tile
 * is off by the size of v. On AVX-512 BF16 CPUs vdpbf16ps is also held to
 * the scalar path's emulation, which adds the same exact products in the
 * same order. */
/* Whether the CPU has path p; if not, says so (skip_note). */
static bool path_available(um_kernel_path p) {
    if (um_kernel_path_supported(p))
        return true;
    skip_note(um_kernel_path_lack(p), um_kernel_path_name(p));
    return false;
}

static void attention_matches_definition(void **state) {
    const int shapes[][3] = {{1, 1, 32}, {1, 130, 32}, {3, 129, 32}, {17, 65, 160}, {40, 200, 32}, {16, 64, 32}};
    const int H = 4, KVH = 2;
    um_pool *pool = um_pool_create(2);
    um_rng rng;
    um_rng_seed(&rng, 11);
    um_kernel_path path = um_kernel_path_get();
    const um_cpu_features *f = um_cpu_features_get();
    bool has_bf16 = path == UM_PATH_SCALAR || (path == UM_PATH_AVX512 && f->avx512_bf16) ||
                    (path == UM_PATH_NEON && f->neon_bf16);
    if (path != UM_PATH_SCALAR && !has_bf16)
        skip_note(path == UM_PATH_AVX512 ? "avx512_bf16"
                  : path == UM_PATH_NEON ? "bf16"
                                         : "a bf16 dot product on this path",
                  "bf16 attention on SIMD: f32 attention tested instead");
    for (int reduced = 0; reduced < 2; reduced++)
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            int nq = shapes[si][0], nkv = shapes[si][1], HD = shapes[si][2];
            bool bf16 = reduced && has_bf16;
            size_t nqe = (size_t)nq * H * HD, nke = (size_t)nkv * KVH * HD;
            float *q = xmalloc(nqe * sizeof *q), *k = xmalloc(nke * sizeof *k), *v = xmalloc(nke * sizeof *v);
            float *out = xmalloc(nqe * sizeof *out), *ref_out = xmalloc(nqe * sizeof *out);
            float *scratch = xmalloc(um_attention_scratch_floats(2, nkv, KVH, HD) * sizeof *scratch);
            for (size_t i = 0; i < nqe; i++)
                q[i] = (float)(4 * (um_rng_uniform(&rng) - 0.5));
            for (size_t i = 0; i < nke; i++) {
                k[i] = (float)(4 * (um_rng_uniform(&rng) - 0.5));
                v[i] = (float)(um_rng_uniform(&rng) - 0.5);
            }
            um_attention(exec_now(pool), q, nq, k, v, nkv, out, H, KVH, HD, reduced, scratch);
            float scale = 1.0f / sqrtf((float)HD);
            double worst = 0, *p = xmalloc((size_t)nkv * sizeof *p);
            for (int h = 0; h < H; h++)
                for (int i = 0; i < nq; i++) {
                    int g = h / (H / KVH);
                    double mx = -INFINITY, sum = 0;
                    for (int t = 0; t < nkv; t++) {
                        double dot = 0;
                        for (int c = 0; c < HD; c++) {
                            float qc = q[(i * H + h) * HD + c], kc = k[(t * KVH + g) * HD + c];
                            dot += bf16 ? (double)um_bf16_to_f32(um_f32_to_bf16(qc * scale)) *
                                              um_bf16_to_f32(um_f32_to_bf16(kc))
                                        : (double)qc * kc / sqrt((double)HD);
                        }
                        p[t] = dot;
                        mx = fmax(mx, p[t]);
                    }
                    for (int t = 0; t < nkv; t++)
                        sum += p[t] = exp(p[t] - mx);
                    for (int c = 0; c < HD; c++) {
                        double o = 0;
                        for (int t = 0; t < nkv; t++) {
                            float vc = v[(t * KVH + g) * HD + c];
                            o += p[t] / sum * (bf16 ? um_bf16_to_f32(um_f32_to_bf16(vc)) : vc);
                        }
                        worst = fmax(worst, fabs(o - out[(i * H + h) * HD + c]));
                    }
                }
            double bound = bf16 ? 2 * ldexp(0.5, -9) + 1e-5 : 1e-5; /* max|v| = 0.5 */
            print_message("    %s attention %d queries x %d keys, head_dim %d: max |error| %.1e (bound %.1e)\n",
                          bf16 ? "bf16" : "f32", nq, nkv, HD, worst, bound);
            assert_true(worst <= bound);
            if (path != UM_PATH_SCALAR && bf16) {
                um_kernel_path_set(UM_PATH_SCALAR);
                um_attention(exec_now(pool), q, nq, k, v, nkv, ref_out, H, KVH, HD, true, scratch);
                um_kernel_path_set(path);
                for (size_t i = 0; i < nqe; i++)
                    if (!(fabs(out[i] - ref_out[i]) <= 1e-6))
                        fail_msg("bf16 attention output %zu: %s %.9g, scalar %.9g", i, um_kernel_path_name(path),
                                 out[i], ref_out[i]);
            }
            free(p);
            free(q);
            free(k);
            free(v);
            free(out);
            free(ref_out);
            free(scratch);
        }
    um_pool_destroy(pool);
}

/* um_gemm_acc on every path this CPU has against its definition in double:
 * C += A B with A read row-major and transposed (strides either way), sizes
 * that leave partial register tiles in both directions, and C starting
 * non-zero (the product adds into it). */
static void gemm_acc_matches_definition(void **state) {
    const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {24, 48, 64}, {65, 33, 17}, {6, 16, 256}};
    um_kernel_path saved = um_kernel_path_get();
    um_rng rng;
    um_rng_seed(&rng, 5);
    for (int path = UM_PATH_SCALAR; path < UM_PATH_COUNT; path++) {
        if (!path_available((um_kernel_path)path))
            continue;
        um_kernel_path_set((um_kernel_path)path);
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
            for (int transposed = 0; transposed < 2; transposed++) {
                int m = shapes[si][0], n = shapes[si][1], kk = shapes[si][2], ldc = n + 3, ldb = n + 1;
                /* A(i, k) at i * a_i + k * a_k inside a buffer with spare columns */
                int a_i = transposed ? 1 : kk + 2, a_k = transposed ? m + 2 : 1;
                size_t a_len = transposed ? (size_t)kk * (m + 2) : (size_t)m * (kk + 2);
                float *A = xmalloc(a_len * sizeof *A), *B = xmalloc((size_t)kk * ldb * sizeof *B);
                float *C = xmalloc((size_t)m * ldc * sizeof *C), *C0 = xmalloc((size_t)m * ldc * sizeof *C0);
                for (size_t i = 0; i < a_len; i++)
                    A[i] = (float)(um_rng_uniform(&rng) - 0.5);
                for (int i = 0; i < kk * ldb; i++)
                    B[i] = (float)(um_rng_uniform(&rng) - 0.5);
                for (int i = 0; i < m * ldc; i++)
                    C0[i] = C[i] = (float)(um_rng_uniform(&rng) - 0.5);
                um_gemm_acc(um_kernel_path_get(), C, ldc, A, a_i, a_k, B, ldb, m, n, kk);
                double worst = 0;
                for (int i = 0; i < m; i++)
                    for (int x = 0; x < ldc; x++) {
                        if (x >= n) { /* padding columns untouched */
                            assert_true(C[i * ldc + x] == C0[i * ldc + x]);
                            continue;
                        }
                        double want = C0[i * ldc + x], mag = fabs(want);
                        for (int k = 0; k < kk; k++) {
                            double t = (double)A[(size_t)i * a_i + (size_t)k * a_k] * B[k * ldb + x];
                            want += t;
                            mag += fabs(t);
                        }
                        worst = fmax(worst, fabs(C[i * ldc + x] - want) / mag);
                    }
                if (worst > 1e-6)
                    fail_msg("%s gemm_acc %dx%dx%d%s: relative error %.2g", um_kernel_path_name((um_kernel_path)path),
                             m, n, kk, transposed ? " (A transposed)" : "", worst);
                free(A);
                free(B);
                free(C);
                free(C0);
            }
    }
    um_kernel_path_set(saved);
}

/* um_exp_row and um_swiglu on every path against libm's exp in double:
 * within 3 ulp (relative 3.6e-7) wherever exp(x) is a normal float, the
 * clamps below and above it (no zeros, no infinities, as documented), NaN
 * kept; the row's sum against the sum of the exact values. */
static void exp_row_matches_libm(void **state) {
    enum { N = 1000 };
    um_kernel_path saved = um_kernel_path_get();
    for (int path = UM_PATH_SCALAR; path < UM_PATH_COUNT; path++) {
        if (!path_available((um_kernel_path)path))
            continue;
        um_kernel_path_set((um_kernel_path)path);
        const char *name = um_kernel_path_name((um_kernel_path)path);
        float s[N], g[N], up[N];
        for (int i = 0; i < N; i++) /* -95 .. 95 in uneven steps, and every residue mod 16 for the tails */
            s[i] = g[i] = -95.0f + 190.0f * (float)i / (N - 1) + 1e-3f * (float)(i % 7), up[i] = 1.0f + (float)(i % 3);
        float shift = 0.25f, in[N];
        double lo = -87.3f, hi = 88.3f; /* the clamps, as floats */
        memcpy(in, s, sizeof in);
        for (int n = 1; n <= N; n = n < 40 ? n + 1 : n * 2 + 7) {
            memcpy(s, in, sizeof s);
            double exact_sum = 0, sum = um_exp_row(um_kernel_path_get(), s, n, shift);
            for (int i = 0; i < n; i++) {
                double x = (float)(in[i] - shift), want = exp(x); /* the row subtracts in float */
                exact_sum += exp(x < lo ? lo : x > hi ? hi : x);
                if (x < lo)
                    assert_true(s[i] > 0 && s[i] < 1.3e-38f);
                else if (x > hi)
                    assert_true(s[i] > 2e38f && isfinite(s[i]));
                else if (fabs(s[i] - want) > 3.6e-7 * want)
                    fail_msg("%s exp(%.9g) = %.9g, libm %.9g", name, x, s[i], want);
            }
            if (fabs(sum - exact_sum) > 1e-6 * exact_sum)
                fail_msg("%s exp row of %d: sum %.9g, exact %.9g", name, n, sum, exact_sum);
        }
        float nan_row[3] = {0, NAN, 1};
        um_exp_row(um_kernel_path_get(), nan_row, 3, 0);
        assert_true(isnan(nan_row[1]) && nan_row[0] == 1.0f);
        um_swiglu(um_kernel_path_get(), g, up, N);
        for (int i = 0; i < N; i++) {
            double x = in[i], want = x / (1 + exp(-x)) * up[i];
            if (fabs(g[i] - want) > 6e-7 * fabs(want) + 1e-35) /* below -88.3: x up / 2.1e38 */
                fail_msg("%s swiglu(%.9g) = %.9g, libm %.9g", name, x, g[i], want);
        }
    }
    um_kernel_path_set(saved);
}

/* um_exp_sum_f64 on every path against libm's exp in double: one value at
 * a time within 2 ulp over [-708, 0], 0 below and for -inf, NaN kept; rows
 * of every length up to 2000 (every tail) against the long double sum of
 * libm's values, with the entropy's weighted sum; and the same bits on
 * every path, as documented. */
static void exp_sum_f64_matches_libm(void **state) {
    enum { N = 2000 };
    um_kernel_path saved = um_kernel_path_get();
    float row[N];
    for (int i = 0; i < N; i++) /* 0 .. -760 in uneven steps: past the cut at -708 */
        row[i] = -760.0f * (float)i / (N - 1) - 1e-3f * (float)(i % 7);
    row[5] = -INFINITY;
    double first_sum[N + 1], first_w[N + 1];
    for (int path = UM_PATH_SCALAR; path < UM_PATH_COUNT; path++) {
        if (!path_available((um_kernel_path)path))
            continue;
        const char *name = um_kernel_path_name((um_kernel_path)path);
        for (float x = -708.0f; x <= 0; x += 0.37f) {
            double got = um_exp_sum_f64((um_kernel_path)path, &x, 1, 0, NULL), want = exp((double)x);
            if (fabs(got - want) > 2 * DBL_EPSILON * want)
                fail_msg("%s exp(%.9g) = %.17g, libm %.17g", name, x, got, want);
        }
        float below[2] = {-709.0f, -INFINITY}, nan_row[3] = {0, NAN, -1};
        assert_true(um_exp_sum_f64((um_kernel_path)path, below, 2, 0, NULL) == 0);
        assert_true(isnan(um_exp_sum_f64((um_kernel_path)path, nan_row, 3, 0, NULL)));
        for (int n = 1; n <= N; n = n < 40 ? n + 1 : n * 2 + 7) {
            float shift = -0.5f; /* the row's values less shift: 0.5 .. -759.5 */
            double weighted, sum = um_exp_sum_f64((um_kernel_path)path, row, n, shift, &weighted);
            long double want = 0, want_w = 0, mag_w = 0;
            for (int i = 0; i < n; i++) {
                double x = (double)row[i] - shift, e = exp(x);
                want += e;
                if (e > 0 && x >= -708) { /* below -708 the sum takes 0 (documented) */
                    want_w += (long double)e * x;
                    mag_w += fabsl((long double)e * x);
                }
            }
            double bound = (n + 8) * DBL_EPSILON;
            if (fabsl(sum - want) > bound * want || fabsl(weighted - want_w) > bound * mag_w + 1e-300)
                fail_msg("%s row of %d: sum %.17g (long double %.17Lg), weighted %.17g (%.17Lg)", name, n, sum, want,
                         weighted, want_w);
            if (path == UM_PATH_SCALAR)
                first_sum[n] = sum, first_w[n] = weighted;
            else if (memcmp(&sum, &first_sum[n], sizeof sum) || memcmp(&weighted, &first_w[n], sizeof sum))
                fail_msg("%s row of %d: %.17g, the scalar path %.17g: not the same bits", name, n, sum, first_sum[n]);
        }
    }
    um_kernel_path_set(saved);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(each_path_matches_reference),
    cmocka_unit_test(reduced_within_rounding_bound),
    cmocka_unit_test(i8_extremes_exact),
    cmocka_unit_test(f16_int8_is_q8_0),
    cmocka_unit_test(matmul_many_is_each),
    cmocka_unit_test(activation_packing_bit_exact),
    cmocka_unit_test(f32_panels_are_the_expansion),
    cmocka_unit_test(path_choice_and_override),
    cmocka_unit_test(peak_loops_run),
    cmocka_unit_test(pool_scratch),
    cmocka_unit_test(attention_matches_definition),
    cmocka_unit_test(gemm_acc_matches_definition),
    cmocka_unit_test(exp_row_matches_libm),
    cmocka_unit_test(exp_sum_f64_matches_libm),
};

const test_group kernels_group = {"kernels", tests, sizeof tests / sizeof *tests};
