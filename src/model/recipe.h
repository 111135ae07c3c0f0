/* Quantization recipes: which type each tensor of a GGUF file gets, with
 * llama.cpp's names and rules (llama-quant.cpp's llama_tensor_get_type for
 * the llama-style tensors LLaDA has), so `unmask convert --type q4_k_m`
 * writes what `llama-quantize ... Q4_K_M` would. */
#ifndef UM_MODEL_RECIPE_H
#define UM_MODEL_RECIPE_H

#include <stdint.h>

#include "base/dtype.h"

typedef struct {
    const char *name;   /* "q4_k_m" */
    uint32_t file_type; /* llama_ftype, written as general.file_type */
    um_dtype base;      /* the type of most matrices */
    const char *about;
} um_recipe;

/* NULL when unknown; names are case-insensitive. */
const um_recipe *um_recipe_find(const char *name);
/* All recipes, for --help: NULL-terminated array. */
const um_recipe *const *um_recipe_all(void);

/* The type of one tensor: gguf_name as in the file ("blk.3.ffn_down.weight"),
 * n_dims and ne0 (the row length) from its shape, n_layers the block count.
 * Vectors stay F32; rows that do not split into the chosen type's blocks fall
 * back to Q8_0, then F16. */
um_dtype um_recipe_tensor_type(const um_recipe *r, const char *gguf_name, int n_dims, int64_t ne0, int n_layers);

#endif
