/* llama.cpp's quantized weight formats (GGUF tensor types Q8_0, Q4_0, Q4_1,
 * Q4_K, Q5_K, Q6_K), bit-exact.
 *
 * The block layouts are ggml's (ggml-common.h): a row of n values is stored
 * as n / block_elems blocks back to back, with no padding and in
 * little-endian byte order. Scales are IEEE half floats kept as raw bits.
 *
 * Quantizing follows llama.cpp's reference quantizers (quantize_row_*_ref in
 * ggml-quants.c), the ones llama-quantize uses when it has no importance
 * matrix, operation for operation, so the bytes match llama.cpp's. The
 * dequantizers match ggml's dequantize_row_* value for value.
 *
 * Blocks are read and written through memcpy, so row data need not be
 * aligned. The host must be little-endian (as ggml also assumes). */
#ifndef UM_KERNELS_QUANT_H
#define UM_KERNELS_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"

#define UM_QK 32          /* values per block of Q8_0, Q4_0, Q4_1 */
#define UM_QK_K 256       /* values per super-block of the K formats */
#define UM_K_SCALE_SIZE 12 /* packed 6-bit sub-block scales and mins of Q4_K/Q5_K */

/* 8-bit: value = d * qs[i]. */
typedef struct {
    uint16_t d; /* f16 */
    int8_t qs[UM_QK];
} um_block_q8_0;

/* 4-bit symmetric: value = d * ((nibble) - 8). Byte j holds value j in its
 * low nibble and value j + 16 in its high nibble. */
typedef struct {
    uint16_t d; /* f16 */
    uint8_t qs[UM_QK / 2];
} um_block_q4_0;

/* 4-bit with offset: value = d * nibble + m; nibbles as in Q4_0. */
typedef struct {
    uint16_t d; /* f16 */
    uint16_t m; /* f16 */
    uint8_t qs[UM_QK / 2];
} um_block_q4_1;

/* 256 values in 8 sub-blocks of 32; sub-block j has a 6-bit scale sc_j and a
 * 6-bit min m_j packed into scales[12]: value = d*sc_j * q - dmin*m_j.
 * Each 32 bytes of qs hold two sub-blocks (low nibbles, then high nibbles). */
typedef struct {
    uint16_t d;    /* f16, super-block scale of the sub-block scales */
    uint16_t dmin; /* f16, super-block scale of the sub-block mins */
    uint8_t scales[UM_K_SCALE_SIZE];
    uint8_t qs[UM_QK_K / 2];
} um_block_q4_K;

/* Q4_K plus a fifth bit per value in qh: bit 2k (2k+1) of qh[l] is the high
 * bit of value l of sub-block 2k (2k+1). */
typedef struct {
    uint16_t d;    /* f16 */
    uint16_t dmin; /* f16 */
    uint8_t scales[UM_K_SCALE_SIZE];
    uint8_t qh[UM_QK_K / 8];
    uint8_t qs[UM_QK_K / 2];
} um_block_q5_K;

/* 256 values in 16 sub-blocks of 16 with signed 8-bit scales:
 * value = d * scales[s] * (q - 32), q 6 bits split into 4 low bits (ql) and
 * 2 high bits (qh). */
typedef struct {
    uint8_t ql[UM_QK_K / 2];
    uint8_t qh[UM_QK_K / 4];
    int8_t scales[UM_QK_K / 16];
    uint16_t d; /* f16 */
} um_block_q6_K;

_Static_assert(sizeof(um_block_q8_0) == 34, "block_q8_0 is 34 bytes in ggml");
_Static_assert(sizeof(um_block_q4_0) == 18, "block_q4_0 is 18 bytes in ggml");
_Static_assert(sizeof(um_block_q4_1) == 20, "block_q4_1 is 20 bytes in ggml");
_Static_assert(sizeof(um_block_q4_K) == 144, "block_q4_K is 144 bytes in ggml");
_Static_assert(sizeof(um_block_q5_K) == 176, "block_q5_K is 176 bytes in ggml");
_Static_assert(sizeof(um_block_q6_K) == 210, "block_q6_K is 210 bytes in ggml");

/* Bytes of a row of n values of type t; 0 when n is negative or not a
 * multiple of t's block size, or t is unknown. */
size_t um_row_bytes(um_dtype t, int64_t n);

/* Quantizes n floats into a row of type t (UM_F32, UM_F16, UM_BF16 or one of
 * the quantized types above; f16 and bf16 round to nearest even). n must be a
 * multiple of the block size (see um_row_bytes); otherwise, or for any other
 * type, nothing is written. */
void um_quantize_row(um_dtype t, const float *x, void *y, int64_t n);

/* Expands a row of n values of type t to floats (same types and rule on n;
 * for other types y is left untouched). */
void um_dequantize_row(um_dtype t, const void *x, float *y, int64_t n);

#endif
