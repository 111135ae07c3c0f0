#include "dtype.h"

#include <stdbool.h>

/* Block sizes and byte counts of the quantized types follow ggml's block
 * structs (ggml-common.h): e.g. Q8_0 is an f16 scale and 32 int8 values. */
static const struct {
    const char *name;
    int block_elems;
    size_t block_bytes;
} dtype_table[UM_DTYPE_COUNT] = {
    [UM_F32] = {"F32", 1, 4},         [UM_F16] = {"F16", 1, 2},         [UM_BF16] = {"BF16", 1, 2},
    [UM_F64] = {"F64", 1, 8},         [UM_I64] = {"I64", 1, 8},         [UM_I32] = {"I32", 1, 4},
    [UM_I16] = {"I16", 1, 2},         [UM_I8] = {"I8", 1, 1},           [UM_U8] = {"U8", 1, 1},
    [UM_U16] = {"U16", 1, 2},         [UM_U32] = {"U32", 1, 4},         [UM_U64] = {"U64", 1, 8},
    [UM_BOOL] = {"BOOL", 1, 1},       [UM_F8_E4M3] = {"F8_E4M3", 1, 1}, [UM_F8_E5M2] = {"F8_E5M2", 1, 1},
    [UM_Q8_0] = {"Q8_0", 32, 34},     [UM_Q4_0] = {"Q4_0", 32, 18},     [UM_Q4_1] = {"Q4_1", 32, 20},
    [UM_Q5_K] = {"Q5_K", 256, 176},   [UM_Q4_K] = {"Q4_K", 256, 144},   [UM_Q6_K] = {"Q6_K", 256, 210},
};

static bool valid(um_dtype t) { return (unsigned)t < UM_DTYPE_COUNT; }

size_t um_dtype_size(um_dtype t) {
    return valid(t) && dtype_table[t].block_elems == 1 ? dtype_table[t].block_bytes : 0;
}

int um_dtype_block_elems(um_dtype t) { return valid(t) ? dtype_table[t].block_elems : 0; }

size_t um_dtype_block_bytes(um_dtype t) { return valid(t) ? dtype_table[t].block_bytes : 0; }

const char *um_dtype_name(um_dtype t) { return valid(t) ? dtype_table[t].name : "?"; }

int um_dtype_from_name(const char *name) {
    for (int i = 0; i < UM_DTYPE_COUNT; i++)
        if (dtype_table[i].block_elems == 1 && strcmp(name, dtype_table[i].name) == 0)
            return i;
    return -1;
}

float um_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (mant << 13); /* inf / nan */
    } else if (exp != 0) {
        u = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        u = sign;
    } else { /* subnormal: normalise */
        int e = -1;
        do {
            e++;
            mant <<= 1;
        } while (!(mant & 0x400u));
        u = sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even, with overflow to inf and gradual underflow. */
uint16_t um_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return sign | 0x7e00u;
    if (a >= 0x477ff000u) /* 65520 and up round to inf */
        return sign | 0x7c00u;
    if (a < 0x38800000u) { /* below 2^-14, the smallest normal half */
        if (a < 0x33000000u) /* below 2^-25: rounds to zero */
            return sign;
        uint32_t mant = (a & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(a >> 23); /* 14 .. 24 */
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return sign | (uint16_t)half;
    }
    uint32_t r = a - (112u << 23);
    r += 0xfffu + ((r >> 13) & 1u);
    return sign | (uint16_t)(r >> 13);
}
