/* What the loader and the forward pass rely on of validated
 * hyper-parameters, whatever their source: the config and GGUF fuzzers
 * abort when a reader lets anything else through. */
#ifndef UM_FUZZ_HPARAMS_CHECK_H
#define UM_FUZZ_HPARAMS_CHECK_H

#include <stdlib.h>

#include "model/model.h"

static inline void check_hparams(const um_hparams *hp) {
    if (hp->n_layers < 1 || hp->d_model < 1 || hp->n_heads < 1 || hp->n_kv_heads < 1 ||
        hp->n_heads % hp->n_kv_heads != 0 || hp->head_dim * hp->n_heads != hp->d_model || hp->head_dim % 2 != 0 ||
        hp->d_ff < 1 || hp->n_vocab < 1 || hp->max_seq < 1 || hp->mask_id < 0 || hp->mask_id >= hp->n_vocab ||
        hp->eos_id >= hp->n_vocab || hp->eot_id >= hp->n_vocab || !(hp->norm_eps > 0) || !(hp->rope_theta > 0))
        abort();
    if (hp->ffn == UM_FFN_MOE && (hp->n_expert < 1 || hp->n_expert_used < 1 || hp->n_expert_used > hp->n_expert ||
                                  hp->d_ff_exp < 1))
        abort();
    /* LLaDA2's: partial RoPE, dense layers, router groups, block length */
    const um_moe_router *r = &hp->route;
    if (hp->rope_dim < 2 || hp->rope_dim > hp->head_dim || hp->rope_dim % 2 != 0 || hp->n_dense_layers < 0 ||
        hp->n_dense_layers > hp->n_layers || hp->d_ff_shexp < 0 ||
        (hp->attn_mask == UM_ATTN_BLOCK_CAUSAL && (hp->diffusion_block < 1 || hp->diffusion_block > hp->max_seq)))
        abort();
    if (hp->ffn == UM_FFN_MOE && (!(r->scale > 0) || (r->n_group > 0 && (hp->n_expert % r->n_group != 0 ||
                                  r->n_group_used < 1 || r->n_group_used > r->n_group ||
                                  hp->n_expert_used > r->n_group_used * (hp->n_expert / r->n_group)))))
        abort();
}

#endif
