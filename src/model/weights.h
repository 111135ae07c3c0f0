/* Where a model's tensors come from: a Hugging Face checkpoint (safetensors,
 * single or sharded) or a GGUF file. Loaders ask for tensors by their Hugging
 * Face names and get PyTorch shape order (outermost first); GGUF's names and
 * reversed dimensions are mapped here, through the architecture's name table. */
#ifndef UM_MODEL_WEIGHTS_H
#define UM_MODEL_WEIGHTS_H

#include <stdbool.h>

#include "format/checkpoint.h"
#include "format/gguf.h"

typedef struct {
    const char *name; /* as stored in the file */
    const char *file;
    um_dtype type;
    int n_dims;
    int64_t shape[8]; /* PyTorch order */
    const uint8_t *data;
    size_t nbytes;
} um_tensor_ref;

struct um_arch; /* model/arch.h */

typedef struct {
    bool is_gguf;
    um_checkpoint ck;
    um_gguf_file gguf;
    bool *gguf_taken;
    const struct um_arch *arch; /* GGUF: maps Hugging Face names to the file's */
} um_weights;

um_status um_weights_open_hf(um_weights *w, const char *dir, um_error *err);
um_status um_weights_open_gguf(um_weights *w, const char *path, const struct um_arch *arch, um_error *err);
void um_weights_close(um_weights *w);
/* The file the error for a missing tensor names. */
const char *um_weights_source(const um_weights *w);
/* Finds a tensor by Hugging Face name and marks it used; false when absent. */
bool um_weights_take(um_weights *w, const char *hf_name, um_tensor_ref *out);
/* Finds a tensor by the name the file itself gives it (GGUF: llama.cpp's
 * name; a tensor with no Hugging Face counterpart, such as a stack of
 * experts) and marks it used. */
bool um_weights_take_stored(um_weights *w, const char *name, um_tensor_ref *out);
/* Lets the file pages of [p, p + n) leave memory where they are mapped from
 * one of the files (um_mapped_file_release); else nothing. */
void um_weights_release(const um_weights *w, const void *p, size_t n);
/* Fails naming the first tensor of the file that no loader took. */
um_status um_weights_check_all_taken(const um_weights *w, um_error *err);

#endif
