/* Writing GGUF: Hugging Face checkpoints of every family in the architecture
 * table to llama.cpp's GGUF layout (`unmask convert`), and GGUF
 * re-quantization (`unmask quantize`). */
#ifndef UM_MODEL_CONVERT_H
#define UM_MODEL_CONVERT_H

#include <cjson/cJSON.h>

#include "base/error.h"
#include "format/safetensors.h"
#include "model/recipe.h"

/* Called before each tensor is converted. */
typedef void (*um_convert_progress)(void *user, int index, int count, const char *name, um_dtype type);

typedef struct {
    const um_recipe *recipe;
    const char *name; /* general.name; NULL: from the directory's name */
    int n_threads;    /* <= 0: all cores */
    um_convert_progress progress;
    void *progress_user;
} um_convert_params;

um_status um_convert_hf_to_gguf(const char *dir, const char *out_path, const um_convert_params *p, um_error *err);
/* The same from tensors in memory described by a parsed config.json (no
 * tokenizer): what init-random writes straight to GGUF when the checkpoint
 * would not fit on disk. */
um_status um_convert_tensors_to_gguf(const cJSON *cfg, const um_st_tensor *tensors, int n, const char *out_path,
                                     const um_convert_params *cp, um_error *err);
um_status um_quantize_gguf(const char *in_path, const char *out_path, const um_convert_params *p, um_error *err);

#endif
