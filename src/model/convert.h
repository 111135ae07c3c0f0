/* Writing GGUF: Hugging Face LLaDA checkpoints to llama.cpp's `llada` GGUF
 * (`unmask convert`), and GGUF re-quantization (`unmask quantize`). */
#ifndef UM_MODEL_CONVERT_H
#define UM_MODEL_CONVERT_H

#include "base/error.h"
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
um_status um_quantize_gguf(const char *in_path, const char *out_path, const um_convert_params *p, um_error *err);

#endif
