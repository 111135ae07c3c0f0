/* The LLaDA architecture's GGUF vocabulary, shared by the loader and convert. */
#ifndef UM_MODEL_LLADA_GGUF_H
#define UM_MODEL_LLADA_GGUF_H

#include <stdbool.h>
#include <stddef.h>

#include "format/gguf.h"
#include "model/model.h"

/* model.transformer.blocks.3.q_proj.weight -> blk.3.attn_q.weight, etc.
 * False for names outside the architecture. */
bool um_llada_gguf_name(const char *hf_name, char *out, size_t n);

/* Row r of a permuted GGUF attn_q/attn_k tensor holds this checkpoint row. */
int64_t um_llada_gguf_qk_source_row(int64_t r, int head_dim);

/* Hyper-parameters from llada.* and tokenizer.ggml.* metadata. */
um_status um_llada_hparams_from_gguf(const um_gguf_file *f, um_hparams *hp, um_error *err);

#endif
