#include "model/recipe.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* general.file_type values are llama.cpp's enum llama_ftype. */
static const um_recipe recipes[] = {
    {"f32", 0, UM_F32, "32-bit floats"},
    {"f16", 1, UM_F16, "16-bit IEEE floats"},
    {"bf16", 32, UM_BF16, "bfloat16"},
    {"q8_0", 7, UM_Q8_0, "8-bit, 8.5 bits per weight"},
    {"q4_0", 2, UM_Q4_0, "4-bit, 4.5 bits per weight"},
    {"q4_1", 3, UM_Q4_1, "4-bit with offsets, 5.0 bits per weight"},
    {"q4_k_s", 14, UM_Q4_K, "Q4_K, Q5_K for the first attn_v and ffn_down layers"},
    {"q4_k_m", 15, UM_Q4_K, "Q4_K, Q6_K for half of attn_v and ffn_down"},
    {"q5_k_s", 16, UM_Q5_K, "Q5_K throughout"},
    {"q5_k_m", 17, UM_Q5_K, "Q5_K, Q6_K for half of attn_v and ffn_down"},
    {"q6_k", 18, UM_Q6_K, "Q6_K throughout"},
};

const um_recipe *um_recipe_find(const char *name) {
    for (size_t i = 0; i < sizeof recipes / sizeof *recipes; i++)
        if (strcasecmp(name, recipes[i].name) == 0)
            return &recipes[i];
    return NULL;
}

const um_recipe *const *um_recipe_all(void) {
    static const um_recipe *all[sizeof recipes / sizeof *recipes + 1];
    for (size_t i = 0; i < sizeof recipes / sizeof *recipes; i++)
        all[i] = &recipes[i];
    return all;
}

/* llama.cpp's rule for the layers that get more bits: the first and last
 * eighth, and every third layer in between. */
static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static bool is_k_quant(um_dtype t) { return t == UM_Q4_K || t == UM_Q5_K || t == UM_Q6_K; }

/* The recipe's choice before the row-length check. */
static um_dtype choose(const um_recipe *r, const char *name, int layer, int n_layers) {
    um_dtype t = r->base;
    if (r->base == UM_F32 || r->base == UM_F16 || r->base == UM_BF16)
        return t;
    bool k = is_k_quant(r->base) || r->base == UM_Q4_0 || r->base == UM_Q4_1;
    /* the output head is the most sensitive matrix: Q6_K unless Q8_0 was asked */
    if (strcmp(name, "output.weight") == 0)
        return k ? UM_Q6_K : t;
    bool more = layer >= 0 && use_more_bits(layer, n_layers);
    if (strstr(name, "attn_v.weight")) {
        if ((r->file_type == 15 || r->file_type == 17) && more)
            return UM_Q6_K;
        if (r->file_type == 14 && layer < 4)
            return UM_Q5_K;
    } else if (strstr(name, "ffn_down")) {
        if ((r->file_type == 15 || r->file_type == 17) && more)
            return UM_Q6_K;
        if (r->file_type == 14 && layer < n_layers / 8)
            return UM_Q5_K;
    }
    return t;
}

um_dtype um_recipe_tensor_type(const um_recipe *r, const char *gguf_name, int n_dims, int64_t ne0, int n_layers) {
    /* vectors, and a mixture of experts' router: small, and llama.cpp keeps them f32 */
    if (n_dims < 2 || strstr(gguf_name, "ffn_gate_inp"))
        return UM_F32;
    int layer = -1;
    if (sscanf(gguf_name, "blk.%d.", &layer) != 1)
        layer = -1;
    um_dtype t = choose(r, gguf_name, layer, n_layers);
    /* Rows must split into whole blocks. llama.cpp falls back to Q5_0/Q5_1
     * here, types unmask does not have; Q8_0 is the nearest one it has. */
    if (ne0 % um_dtype_block_elems(t) != 0)
        t = ne0 % um_dtype_block_elems(UM_Q8_0) == 0 ? UM_Q8_0 : UM_F16;
    return t;
}
