/* The one model loader: whatever the architecture and the format, the
 * hyper-parameters come from the row's parser (config.json) or the shared
 * GGUF key list, pass the one validator, and every tensor is bound by the
 * row's name templates; nothing else may be in the file. */
#ifndef UM_MODEL_LOADER_H
#define UM_MODEL_LOADER_H

#include <stdbool.h>

#include "model/arch.h"
#include "model/model.h"

/* Loads path (a Hugging Face directory, or a GGUF file when is_gguf) as
 * architecture a into m, a zeroed model. On failure m holds what was bound
 * so far, for um_model_close. */
um_status um_model_load(um_model *m, const um_arch *a, const char *path, bool is_gguf, um_error *err);

/* Packs every matrix the forward multiplies by (and the output head) into
 * the panels of the kernels ex chooses (um_weight_pack), and lets the
 * mapped file's pages of those matrices go. */
um_status um_model_repack(um_model *m, const um_exec *ex, um_error *err);
/* The bytes um_model_repack would take (SIZE_MAX when out of memory). */
size_t um_model_packed_size(um_model *m, const um_exec *ex);
/* Frees what um_model_repack packed. */
void um_model_unpack(um_model *m);

#endif
