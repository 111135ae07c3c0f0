/* Element types of tensors in model files, and conversions of the 16-bit
 * float formats to f32. */
#ifndef UM_BASE_DTYPE_H
#define UM_BASE_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum {
    UM_F32,
    UM_F16,
    UM_BF16,
    UM_F64,
    UM_I64,
    UM_I32,
    UM_I16,
    UM_I8,
    UM_U8,
    UM_U16,
    UM_U32,
    UM_U64,
    UM_BOOL,
    UM_F8_E4M3,
    UM_F8_E5M2,
    /* llama.cpp's quantized block types (GGUF only): a row is stored as
     * blocks of um_dtype_block_elems values in um_dtype_block_bytes bytes. */
    UM_Q8_0,
    UM_Q4_0,
    UM_Q4_1,
    UM_Q5_K,
    UM_Q4_K,
    UM_Q6_K,
    UM_DTYPE_COUNT
} um_dtype;

/* Bytes per element of a plain type; 0 for block-quantized types. */
size_t um_dtype_size(um_dtype t);
/* Values per block and bytes per block: 1 and um_dtype_size for plain types. */
int um_dtype_block_elems(um_dtype t);
size_t um_dtype_block_bytes(um_dtype t);
/* Name: safetensors spelling for plain types ("F32", "BF16"), llama.cpp's
 * for quantized ones ("Q8_0", "Q4_K"). */
const char *um_dtype_name(um_dtype t);
/* Parses a safetensors dtype name (plain types only); -1 when unknown. */
int um_dtype_from_name(const char *name);

static inline float um_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even, as PyTorch does; NaN stays NaN. */
static inline uint16_t um_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float um_f16_to_f32(uint16_t h);
uint16_t um_f32_to_f16(float f);

#endif
