/* This machine's arithmetic limits, measured: register-only loops of FMA,
 * bf16 dot-product (vdpbf16ps) and int8 dot-product (vpdpbusd)
 * instructions on every pool thread at once, with enough independent
 * accumulators to hide the latency. No memory traffic, so these are the
 * ceilings the matmul kernels are measured against. */
#ifndef UM_KERNELS_PEAK_H
#define UM_KERNELS_PEAK_H

#include "base/pool.h"

typedef enum {
    UM_PEAK_FMA_F32, /* f32 fused multiply-add: 2 FLOP per lane */
    UM_PEAK_DOT_BF16, /* vdpbf16ps: 2 bf16 products summed into f32, 4 FLOP per lane */
    UM_PEAK_DOT_I8,   /* vpdpbusd: 4 u8 x s8 products into i32, 8 OP per lane */
    UM_PEAK_COUNT
} um_peak_kind;

/* GFLOP/s (GOP/s for int8) on all of the pool's threads, over about
 * `seconds`; 0 when the CPU lacks the instruction. Uses the widest vectors
 * of the current kernel path (kernels/cpu.h): AVX-512, else AVX2, else a
 * plain C loop. */
double um_peak_gflops(um_pool *pool, um_peak_kind kind, double seconds);
const char *um_peak_name(um_peak_kind kind);

#endif
