#include "kernels/peak.h"

#include <stdatomic.h>
#include <stdint.h>

#include "base/sys.h"
#include "kernels/cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Independent accumulator chains per loop: more than latency x issue width
 * of any current x86 core (e.g. 4-cycle FMA on two ports needs 8). */
#define CHAINS 12
/* Instructions per chain between looks at the clock. */
#define BATCH 4096

typedef struct {
    um_peak_kind kind;
    um_kernel_path path;
    double seconds;
    int n_threads;
    atomic_int started;
    _Atomic double ops; /* summed rates, ops per second */
} peak_job;

static volatile float sink_f;
static volatile int sink_i;

/* Each loop runs `batches` x BATCH instructions per chain and returns the
 * operations done (lanes x operations per lane x instructions). */

static double loop_scalar(long batches) {
    float a[CHAINS];
    for (int i = 0; i < CHAINS; i++)
        a[i] = (float)i;
    for (long b = 0; b < batches; b++)
        for (int it = 0; it < BATCH; it++)
            for (int i = 0; i < CHAINS; i++)
                a[i] = a[i] * 0.999f + 0.001f; /* converges to 1: no overflow, no denormals */
    float s = 0;
    for (int i = 0; i < CHAINS; i++)
        s += a[i];
    sink_f = s;
    return 2.0 * CHAINS * BATCH * (double)batches;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static double loop_fma_avx2(long batches) {
    __m256 a[CHAINS], x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(0.001f);
    for (int i = 0; i < CHAINS; i++)
        a[i] = _mm256_set1_ps((float)i);
    for (long b = 0; b < batches; b++)
        for (int it = 0; it < BATCH; it++)
            for (int i = 0; i < CHAINS; i++)
                a[i] = _mm256_fmadd_ps(a[i], x, y);
    __m256 s = a[0];
    for (int i = 1; i < CHAINS; i++)
        s = _mm256_add_ps(s, a[i]);
    sink_f = _mm256_cvtss_f32(s);
    return 2.0 * 8 * CHAINS * BATCH * (double)batches;
}

__attribute__((target("avx512f"))) static double loop_fma_avx512(long batches) {
    __m512 a[CHAINS], x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(0.001f);
    for (int i = 0; i < CHAINS; i++)
        a[i] = _mm512_set1_ps((float)i);
    for (long b = 0; b < batches; b++)
        for (int it = 0; it < BATCH; it++)
            for (int i = 0; i < CHAINS; i++)
                a[i] = _mm512_fmadd_ps(a[i], x, y);
    __m512 s = a[0];
    for (int i = 1; i < CHAINS; i++)
        s = _mm512_add_ps(s, a[i]);
    sink_f = _mm512_reduce_add_ps(s);
    return 2.0 * 16 * CHAINS * BATCH * (double)batches;
}

__attribute__((target("avx512f,avx512bf16"))) static double loop_bf16_avx512(long batches) {
    __m512 a[CHAINS];
    /* 1.0 and 2^-20 in bf16: the sums grow slowly and stay normal */
    __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3580);
    for (int i = 0; i < CHAINS; i++)
        a[i] = _mm512_set1_ps((float)i);
    for (long b = 0; b < batches; b++)
        for (int it = 0; it < BATCH; it++)
            for (int i = 0; i < CHAINS; i++)
                a[i] = _mm512_dpbf16_ps(a[i], x, y);
    __m512 s = a[0];
    for (int i = 1; i < CHAINS; i++)
        s = _mm512_add_ps(s, a[i]);
    sink_f = _mm512_reduce_add_ps(s);
    return 4.0 * 16 * CHAINS * BATCH * (double)batches;
}

__attribute__((target("avx512f,avx512vnni"))) static double loop_i8_avx512(long batches) {
    __m512i a[CHAINS], x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(-2);
    for (int i = 0; i < CHAINS; i++)
        a[i] = _mm512_set1_epi32(i);
    for (long b = 0; b < batches; b++)
        for (int it = 0; it < BATCH; it++)
            for (int i = 0; i < CHAINS; i++)
                a[i] = _mm512_dpbusd_epi32(a[i], x, y);
    __m512i s = a[0];
    for (int i = 1; i < CHAINS; i++)
        s = _mm512_add_epi32(s, a[i]);
    sink_i = _mm512_reduce_add_epi32(s);
    return 8.0 * 16 * CHAINS * BATCH * (double)batches;
}
/* The AVX2 int8 limit. Without a dot-product instruction the avx2-i8
 * kernels build one from vpmaddubsw (u8 x s8, adjacent pairs summed into
 * int16) and vpmaddwd against ones (int16 pairs into int32); with the add
 * into the accumulator this chain does what one vpdpbusd does, 4 products
 * and 4 sums per int32 lane, and is counted alike (8 OP per lane). Only the
 * add waits on the accumulator, so 8 of them suffice (and leave registers
 * for the products). The empty asm makes x a new value for every chain, so
 * that the compiler cannot compute the loop-invariant products once; it
 * emits nothing. */
#define I8_CHAINS 8
__attribute__((target("avx2"))) static double loop_i8_avx2(long batches) {
    __m256i a[I8_CHAINS], x = _mm256_set1_epi8(3), y = _mm256_set1_epi8(-2), ones = _mm256_set1_epi16(1);
    _Pragma("GCC unroll 8") for (int i = 0; i < I8_CHAINS; i++)
        a[i] = _mm256_set1_epi32(i);
    for (long b = 0; b < batches; b++)
        for (int it = 0; it < BATCH; it++)
            _Pragma("GCC unroll 8") for (int i = 0; i < I8_CHAINS; i++) {
                __asm__("" : "+x"(x));
                a[i] = _mm256_add_epi32(a[i], _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), ones));
            }
    __m256i s = a[0];
    _Pragma("GCC unroll 8") for (int i = 1; i < I8_CHAINS; i++)
        s = _mm256_add_epi32(s, a[i]);
    sink_i = _mm256_extract_epi32(s, 0);
    return 8.0 * 8 * I8_CHAINS * BATCH * (double)batches;
}

/* vpdpbusd on ymm in the VEX encoding (AVX-VNNI): the AVX2 path's int8
 * instruction where the CPU has it (the "avxvnni-i8" kernels); 8 chains as
 * above, which covers its latency of 5 at 1 per cycle (GCC kept 12 chains
 * of ymm accumulators partly in memory). */
__attribute__((target("avx2,avxvnni"))) static double loop_i8_avxvnni(long batches) {
    __m256i a[I8_CHAINS], x = _mm256_set1_epi8(3), y = _mm256_set1_epi8(-2);
    _Pragma("GCC unroll 8") for (int i = 0; i < I8_CHAINS; i++)
        a[i] = _mm256_set1_epi32(i);
    for (long b = 0; b < batches; b++)
        for (int it = 0; it < BATCH; it++)
            _Pragma("GCC unroll 8") for (int i = 0; i < I8_CHAINS; i++)
                a[i] = _mm256_dpbusd_avx_epi32(a[i], x, y);
    __m256i s = a[0];
    _Pragma("GCC unroll 8") for (int i = 1; i < I8_CHAINS; i++)
        s = _mm256_add_epi32(s, a[i]);
    sink_i = _mm256_extract_epi32(s, 0);
    return 8.0 * 8 * I8_CHAINS * BATCH * (double)batches;
}
#endif

#if defined(__aarch64__)
#include <arm_neon.h>

/* arm64: the instructions the NEON kernels run (matmul_neon.c). */
static double loop_fma_neon(long batches) {
    float32x4_t a[CHAINS], x = vdupq_n_f32(0.999f), y = vdupq_n_f32(0.001f);
    for (int i = 0; i < CHAINS; i++)
        a[i] = vdupq_n_f32((float)i);
    for (long b = 0; b < batches; b++)
        for (int it = 0; it < BATCH; it++)
            for (int i = 0; i < CHAINS; i++)
                a[i] = vfmaq_f32(y, a[i], x);
    float32x4_t s = a[0];
    for (int i = 1; i < CHAINS; i++)
        s = vaddq_f32(s, a[i]);
    sink_f = vaddvq_f32(s);
    return 2.0 * 4 * CHAINS * BATCH * (double)batches;
}

/* sdot: 4 lanes of 4 s8 x s8 products into i32, 8 OP per lane */
__attribute__((target("arch=armv8.2-a+dotprod"))) static double loop_i8_sdot(long batches) {
    int32x4_t a[CHAINS];
    int8x16_t x = vdupq_n_s8(3), y = vdupq_n_s8(-2);
    for (int i = 0; i < CHAINS; i++)
        a[i] = vdupq_n_s32(i);
    for (long b = 0; b < batches; b++)
        for (int it = 0; it < BATCH; it++)
            for (int i = 0; i < CHAINS; i++)
                a[i] = vdotq_s32(a[i], x, y);
    int32x4_t s = a[0];
    for (int i = 1; i < CHAINS; i++)
        s = vaddq_s32(s, a[i]);
    sink_i = vaddvq_s32(s);
    return 8.0 * 4 * CHAINS * BATCH * (double)batches;
}

/* smmla: a 2 x 8 by 8 x 2 product, 32 multiply-adds, 64 OP per instruction */
__attribute__((target("arch=armv8.2-a+i8mm"))) static double loop_i8_smmla(long batches) {
    int32x4_t a[CHAINS];
    int8x16_t x = vdupq_n_s8(3), y = vdupq_n_s8(-2);
    for (int i = 0; i < CHAINS; i++)
        a[i] = vdupq_n_s32(i);
    for (long b = 0; b < batches; b++)
        for (int it = 0; it < BATCH; it++)
            for (int i = 0; i < CHAINS; i++)
                a[i] = vmmlaq_s32(a[i], x, y);
    int32x4_t s = a[0];
    for (int i = 1; i < CHAINS; i++)
        s = vaddq_s32(s, a[i]);
    sink_i = vaddvq_s32(s);
    return 64.0 * CHAINS * BATCH * (double)batches;
}

/* bfmlalt and bfmlalb, which the BF16 kernel runs (matmul_neon.c says why
 * not bfmmla): 4 lanes of one bf16 multiply-add, 8 FLOP per instruction */
__attribute__((target("arch=armv8.2-a+bf16"))) static double loop_bf16_bfmlal(long batches) {
    float32x4_t a[CHAINS];
    /* 1.0 and 2^-20 in bf16: the sums grow slowly and stay normal. Hidden
     * from the compiler, which would otherwise build 1.0 with an f16 fmov
     * (FEAT_FP16, which a bf16 CPU need not have). */
    uint32x4_t xu = vdupq_n_u32(0x3f803f80), yu = vdupq_n_u32(0x35803580);
    __asm__("" : "+w"(xu), "+w"(yu));
    bfloat16x8_t x = vreinterpretq_bf16_u32(xu), y = vreinterpretq_bf16_u32(yu);
    for (int i = 0; i < CHAINS; i++)
        a[i] = vdupq_n_f32((float)i);
    for (long b = 0; b < batches; b++)
        for (int it = 0; it < BATCH; it++)
            for (int i = 0; i < CHAINS; i++)
                a[i] = i % 2 ? vbfmlaltq_f32(a[i], x, y) : vbfmlalbq_f32(a[i], x, y);
    float32x4_t s = a[0];
    for (int i = 1; i < CHAINS; i++)
        s = vaddq_f32(s, a[i]);
    sink_f = vaddvq_f32(s);
    return 8.0 * CHAINS * BATCH * (double)batches;
}
#endif

/* The loop for kind on path, or NULL when the CPU or path lacks it. */
static double (*peak_loop(um_peak_kind kind, um_kernel_path path))(long) {
#if defined(__x86_64__)
    const um_cpu_features *f = um_cpu_features_get();
    if (kind == UM_PEAK_FMA_F32)
        return path == UM_PATH_AVX512 ? loop_fma_avx512 : path == UM_PATH_AVX2 ? loop_fma_avx2 : loop_scalar;
    if (path == UM_PATH_AVX2 && kind == UM_PEAK_DOT_I8)
        return f->avx_vnni ? loop_i8_avxvnni : loop_i8_avx2;
    if (path != UM_PATH_AVX512)
        return NULL;
    if (kind == UM_PEAK_DOT_BF16)
        return f->avx512_bf16 ? loop_bf16_avx512 : NULL;
    if (kind == UM_PEAK_DOT_I8)
        return f->avx512_vnni ? loop_i8_avx512 : NULL;
    return NULL;
#elif defined(__aarch64__)
    const um_cpu_features *f = um_cpu_features_get();
    bool neon = path == UM_PATH_NEON;
    if (kind == UM_PEAK_FMA_F32)
        return neon ? loop_fma_neon : loop_scalar;
    if (neon && kind == UM_PEAK_DOT_I8) /* what the I8 kernels run: smmla where there is i8mm */
        return f->neon_i8mm ? loop_i8_smmla : f->neon_dot ? loop_i8_sdot : NULL;
    if (neon && kind == UM_PEAK_DOT_BF16)
        return f->neon_bf16 ? loop_bf16_bfmlal : NULL;
    return NULL;
#else
    (void)path;
    return kind == UM_PEAK_FMA_F32 ? loop_scalar : NULL;
#endif
}

static void peak_task(void *ctx, int task, int thread) {
    peak_job *j = ctx;
    double (*loop)(long) = peak_loop(j->kind, j->path);
    /* start together: a task waits until every thread holds one */
    atomic_fetch_add(&j->started, 1);
    while (atomic_load(&j->started) < j->n_threads)
        ;
    loop(1); /* warm up (clocks, the upper halves of the vector units) */
    double ops = 0, t0 = um_now(), dt;
    do {
        ops += loop(4);
        dt = um_now() - t0;
    } while (dt < j->seconds);
    double rate = ops / dt, cur = atomic_load(&j->ops);
    while (!atomic_compare_exchange_weak(&j->ops, &cur, cur + rate))
        ;
}

double um_peak_gflops(um_pool *pool, um_peak_kind kind, double seconds) {
    um_kernel_path path = um_kernel_path_get();
    if (!peak_loop(kind, path))
        return 0;
    peak_job job = {kind, path, seconds, um_pool_threads(pool), 0, 0};
    um_pool_run(pool, job.n_threads, peak_task, &job);
    return atomic_load(&job.ops) / 1e9;
}

const char *um_peak_name(um_peak_kind kind) {
    switch (kind) {
    case UM_PEAK_FMA_F32:
        return "f32 FMA";
    case UM_PEAK_DOT_BF16:
#if defined(__aarch64__)
        return "bf16 mlal (bfmlalb/t)";
#endif
        return "bf16 dot (vdpbf16ps)";
    case UM_PEAK_DOT_I8:
#if defined(__aarch64__)
        return um_cpu_features_get()->neon_i8mm ? "int8 mmla (smmla)" : "int8 dot (sdot)";
#endif
#if defined(__x86_64__)
        if (um_kernel_path_get() == UM_PATH_AVX2 && !um_cpu_features_get()->avx_vnni)
            return "int8 dot (vpmaddubsw+vpmaddwd)";
#endif
        return "int8 dot (vpdpbusd)";
    default:
        return "?";
    }
}
