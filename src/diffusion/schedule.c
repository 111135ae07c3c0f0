/* The reference sampler's step schedule (ML-GSAI/LLaDA generate.py): the
 * generated region splits into gen_length / block_length blocks, steps split
 * evenly over them, and within a block each step commits a precomputed count
 * of the block's masks. */
#include "diffusion/diffusion.h"

#include <math.h>

#include "base/error.h"

void um_schedule_transfer_counts(int n_masked, int steps, int *counts) {
    int base = n_masked / steps, rem = n_masked % steps;
    for (int i = 0; i < steps; i++)
        counts[i] = base + (i < rem ? 1 : 0);
}

um_status um_schedule_check(const um_generate_params *p, int n_prompt, int max_seq, um_error *err) {
    if (p->gen_length < 1)
        return um_fail(err, UM_ERR_ARG, "gen_length must be at least 1 (got %d)", p->gen_length);
    if (p->block_length < 1)
        return um_fail(err, UM_ERR_ARG, "block_length must be at least 1 (got %d)", p->block_length);
    if (p->gen_length % p->block_length != 0)
        return um_fail(err, UM_ERR_ARG, "gen_length %d is not a multiple of block_length %d", p->gen_length,
                       p->block_length);
    int n_blocks = p->gen_length / p->block_length;
    if (p->steps < 1 || p->steps % n_blocks != 0)
        return um_fail(err, UM_ERR_ARG, "steps %d must be a positive multiple of the block count %d (gen_length %d / "
                       "block_length %d)", p->steps, n_blocks, p->gen_length, p->block_length);
    if (n_prompt < 0 || (int64_t)n_prompt + p->gen_length > max_seq)
        return um_fail(err, UM_ERR_ARG, "prompt (%d) + gen_length (%d) exceeds the model's max_sequence_length %d",
                       n_prompt, p->gen_length, max_seq);
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return um_fail(err, UM_ERR_ARG, "temperature must be a finite number >= 0");
    if (!(p->cfg_scale >= 0) || !isfinite(p->cfg_scale))
        return um_fail(err, UM_ERR_ARG, "cfg_scale must be a finite number >= 0");
    if (p->remasking != UM_REMASK_LOW_CONFIDENCE && p->remasking != UM_REMASK_RANDOM)
        return um_fail(err, UM_ERR_ARG, "unknown remasking strategy %d", (int)p->remasking);
    return UM_OK;
}
