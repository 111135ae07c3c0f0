/* A Hugging Face checkpoint: one model.safetensors, or shards listed by
 * model.safetensors.index.json. Tensors are looked up by name; the loader
 * "takes" each one it binds so unexpected leftovers can be reported. */
#ifndef UM_FORMAT_CHECKPOINT_H
#define UM_FORMAT_CHECKPOINT_H

#include "format/safetensors.h"

typedef struct {
    char *source; /* model.safetensors or the index: what a missing tensor's error names */
    um_st_file *files;
    int n_files;
    const um_st_tensor **tensors; /* every tensor of every shard */
    const char **tensor_file;     /* the shard path each came from */
    bool *taken;
    int n_tensors;
} um_checkpoint;

um_status um_checkpoint_open(const char *dir, um_checkpoint *ck, um_error *err);
void um_checkpoint_close(um_checkpoint *ck);
/* The tensor called name, marked as used; NULL if absent. */
const um_st_tensor *um_checkpoint_take(um_checkpoint *ck, const char *name, const char **file);
/* Fails naming the first tensor nobody took. */
um_status um_checkpoint_check_all_taken(const um_checkpoint *ck, um_error *err);

#endif
