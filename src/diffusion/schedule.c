/* The iteration schedule. The generated region splits into gen_length /
 * block_length blocks, decoded one after the other; a block ends when it has
 * no mask left. Count-based decoders commit a precomputed count per step:
 * the reference sampler's (ML-GSAI/LLaDA generate.py) steps / n_blocks steps
 * sharing the block's masks evenly, or the power-increasing schedule's 1, 2,
 * 4, ... tokens. The other decoders decide their own counts. */
#include "diffusion/diffusion.h"

#include <math.h>

#include "base/error.h"

void um_schedule_transfer_counts(int n_masked, int steps, int *counts) {
    int base = n_masked / steps, rem = n_masked % steps;
    for (int i = 0; i < steps; i++)
        counts[i] = base + (i < rem ? 1 : 0);
}

int um_schedule_power_counts(int n_masked, int *counts, int cap) {
    int n = 0;
    for (int64_t want = 1; n_masked > 0 && n < cap; want *= 2) {
        int c = want < n_masked ? (int)want : n_masked;
        counts[n++] = c;
        n_masked -= c;
    }
    return n;
}

/* torch.linspace(start, end, n)[i] in float32, as its CPU kernel computes
 * it: from the start for the first half, from the end for the second. */
static float linspace_f32(float start, float end, int n, int i) {
    float step = (end - start) / (float)(n - 1);
    return i < n / 2 ? start + step * (float)i : end - step * (float)(n - 1 - i);
}

float um_schedule_timestep_fraction(int step, int steps, double eps) {
    if (step >= steps - 1)
        return 1.0f;
    float t = linspace_f32(1.0f, (float)eps, steps + 1, step), s = linspace_f32(1.0f, (float)eps, steps + 1, step + 1);
    return 1.0f - s / t;
}

int um_schedule_timestep_count(int n_masked, int step, int steps, double eps) {
    if (step >= steps - 1)
        return n_masked;
    return (int)((float)n_masked * um_schedule_timestep_fraction(step, steps, eps));
}

int um_schedule_block_counts(const um_generate_params *p, int n_masked, int steps_per_block, int *counts) {
    if (p->schedule == UM_SCHEDULE_TIMESTEPS)
        return steps_per_block; /* counted step by step from the masks left (um_schedule_timestep_count) */
    if (p->schedule == UM_SCHEDULE_POWER)
        return um_schedule_power_counts(n_masked, counts, 64);
    /* uniform, and the quota's base: the uniform counts */
    um_schedule_transfer_counts(n_masked, steps_per_block, counts);
    return steps_per_block;
}

double um_schedule_eos_gamma(double gamma0, int step, int n_steps) {
    if (n_steps <= 1 || step >= n_steps - 1)
        return 1.0;
    return gamma0 + (1.0 - gamma0) * (double)step / (double)(n_steps - 1);
}

bool um_decoder_counts(um_decoder d) {
    return d == UM_DECODER_TOPK || d == UM_DECODER_MARGIN || d == UM_DECODER_ENTROPY;
}

bool um_schedule_plans_steps(const um_generate_params *p) {
    return um_decoder_counts(p->decoder) || p->decoder == UM_DECODER_ORIGIN;
}

static bool in_range(double v, double lo, double hi) { return v >= lo && v <= hi; }

/* Which schedules go with which decoders. */
static um_status check_schedule(const um_generate_params *p, um_error *err) {
    um_decoder d = p->decoder;
    bool counting = um_decoder_counts(d);
    if (p->schedule == UM_SCHEDULE_POWER && !counting)
        return um_fail(err, UM_ERR_ARG,
                       "the power schedule sets counts for the topk, margin and entropy decoders only");
    if (p->schedule == UM_SCHEDULE_TIMESTEPS && !counting && d != UM_DECODER_ORIGIN)
        return um_fail(err, UM_ERR_ARG,
                       "the timesteps schedule sets counts for the topk, margin, entropy and origin decoders only");
    if (d == UM_DECODER_ORIGIN && p->schedule != UM_SCHEDULE_TIMESTEPS)
        return um_fail(err, UM_ERR_ARG, "the origin decoder takes its probabilities from the timesteps schedule");
    if (p->schedule == UM_SCHEDULE_QUOTA && d != UM_DECODER_THRESHOLD)
        return um_fail(err, UM_ERR_ARG, "the quota schedule caps the threshold decoder only");
    if (p->schedule == UM_SCHEDULE_QUOTA && p->cache != UM_CACHE_NONE)
        return um_fail(err, UM_ERR_ARG, "the quota schedule runs without a KV cache (Fast-dLLM's cached Dream "
                       "decoding has no quota): use cache none or the uniform schedule");
    if (p->alg_temp > 0 && !counting)
        return um_fail(err, UM_ERR_ARG, "alg_temp samples the positions of the topk, margin and entropy decoders only");
    return UM_OK;
}

/* The fast-decoding parameters: names as the CLI spells them. */
static um_status check_decoding(const um_generate_params *p, um_error *err) {
    if ((unsigned)p->cache > UM_CACHE_VICINITY)
        return um_fail(err, UM_ERR_ARG, "unknown cache mode %d", (int)p->cache);
    if ((unsigned)p->decoder > UM_DECODER_ORIGIN)
        return um_fail(err, UM_ERR_ARG, "unknown decoder %d", (int)p->decoder);
    if ((unsigned)p->schedule > UM_SCHEDULE_QUOTA)
        return um_fail(err, UM_ERR_ARG, "unknown schedule %d", (int)p->schedule);
    if (p->top_k < 0 || p->top_k > UM_PICK_MAX_TOP_K)
        return um_fail(err, UM_ERR_ARG, "top_k must be in [0, %d] (0: off), got %d", UM_PICK_MAX_TOP_K, p->top_k);
    if (!in_range(p->top_p, 0, 1))
        return um_fail(err, UM_ERR_ARG, "top_p must be in [0, 1] (0 or 1: off), got %g", p->top_p);
    if (!(p->alg_temp >= 0) || !isfinite(p->alg_temp))
        return um_fail(err, UM_ERR_ARG, "alg_temp must be a finite number >= 0");
    if (p->schedule == UM_SCHEDULE_TIMESTEPS && !(p->schedule_eps > 0 && p->schedule_eps < 1))
        return um_fail(err, UM_ERR_ARG, "the timesteps schedule's eps must be in (0, 1), got %g", p->schedule_eps);
    um_decoder d = p->decoder;
    if (p->cache == UM_CACHE_VICINITY && (p->cache_window < 0 || p->cache_refresh < 0))
        return um_fail(err, UM_ERR_ARG, "vicinity cache: window and refresh interval must be >= 0");
    if (p->prefix_look < -1 || p->after_look < -1)
        return um_fail(err, UM_ERR_ARG, "vicinity cache: prefix_look and after_look must be >= 0 (-1: the window)");
    if ((d == UM_DECODER_THRESHOLD || d == UM_DECODER_HIERARCHICAL || d == UM_DECODER_CREDIT) &&
        !in_range(p->threshold, 0, 1))
        return um_fail(err, UM_ERR_ARG, "threshold must be in [0, 1] (got %g)", p->threshold);
    if (d == UM_DECODER_HIERARCHICAL && !in_range(p->low_threshold, 0, 1))
        return um_fail(err, UM_ERR_ARG, "low threshold must be in [0, 1] (got %g)", p->low_threshold);
    if (d == UM_DECODER_FACTOR && (!(p->factor > 0) || !isfinite(p->factor)))
        return um_fail(err, UM_ERR_ARG, "factor must be a finite number > 0");
    if (d == UM_DECODER_MED && (!(p->entropy_bound > 0) || !isfinite(p->entropy_bound)))
        return um_fail(err, UM_ERR_ARG, "entropy bound must be a finite number > 0");
    if (d == UM_DECODER_CREDIT &&
        (!in_range(p->credit_alpha, 0, 1e6) || !in_range(p->credit_gamma, 0, 1e6) || !in_range(p->credit_decay, 0, 1)))
        return um_fail(err, UM_ERR_ARG, "credit decoder: alpha and gamma must be >= 0, decay in [0, 1]");
    if (p->eos_rejection && !(p->eos_gamma > 0 && p->eos_gamma <= 1))
        return um_fail(err, UM_ERR_ARG, "EOS rejection's gamma must be in (0, 1]");
    if (p->max_nfe < 0)
        return um_fail(err, UM_ERR_ARG, "max_nfe must be >= 0");
    if (p->remasking == UM_REMASK_RANDOM && d != UM_DECODER_TOPK && d != UM_DECODER_THRESHOLD &&
        d != UM_DECODER_FACTOR)
        return um_fail(err, UM_ERR_ARG, "random remasking works with the topk, threshold and factor decoders only");
    return check_schedule(p, err);
}

int um_schedule_n_blocks(const um_generate_params *p) {
    return p->gen_length > 0 ? p->gen_length / p->block_length : 1;
}

void um_schedule_block_range(const um_generate_params *p, int n_prompt, int b, int *count_from, int *start,
                             int *end) {
    int len = p->gen_length > 0 ? p->block_length : 0;
    *start = n_prompt + b * len;
    *end = *start + len;
    /* Masks written into the prompt (infilling) are decoded with the first
     * block: the reference sampler only schedules the block's own masks, which
     * would leave them competing for its slots and possibly never filled. */
    *count_from = b == 0 ? 0 : *start;
}

/* The sampling settings, whatever the shape of the canvas. */
static um_status check_sampling(const um_generate_params *p, um_error *err) {
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return um_fail(err, UM_ERR_ARG, "temperature must be a finite number >= 0");
    if (!(p->cfg_scale >= 0) || !isfinite(p->cfg_scale))
        return um_fail(err, UM_ERR_ARG, "cfg_scale must be a finite number >= 0");
    if (p->remasking != UM_REMASK_LOW_CONFIDENCE && p->remasking != UM_REMASK_RANDOM)
        return um_fail(err, UM_ERR_ARG, "unknown remasking strategy %d", (int)p->remasking);
    return check_decoding(p, err);
}

/* dInfer's loop: its decoders, and none of the options its BlockRunner does not have. */
static um_status check_dinfer(const um_generate_params *p, int n_prompt, int max_seq, um_error *err) {
    if (p->gen_length < 1)
        return um_fail(err, UM_ERR_ARG, "gen_length must be at least 1 (got %d)", p->gen_length);
    if (p->block_length < 1)
        return um_fail(err, UM_ERR_ARG, "block_length must be at least 1 (got %d)", p->block_length);
    if (n_prompt < 0 || (int64_t)n_prompt + p->gen_length > max_seq)
        return um_fail(err, UM_ERR_ARG, "prompt (%d) + gen_length (%d) exceeds the model's max_sequence_length %d",
                       n_prompt, p->gen_length, max_seq);
    if (p->maximum_unroll < 1 || p->expected_tpf < 1)
        return um_fail(err, UM_ERR_ARG, "dInfer's loop: maximum_unroll and expected_tpf must be at least 1 (got %d, "
                       "%d)", p->maximum_unroll, p->expected_tpf);
    if (p->warmup_steps < 0)
        return um_fail(err, UM_ERR_ARG, "dInfer's loop: warmup_steps must be >= 0 (got %d)", p->warmup_steps);
    if (p->warmup_steps > 0 && p->cache != UM_CACHE_VICINITY)
        return um_fail(err, UM_ERR_ARG, "dInfer's loop: warmup_steps belongs to the vicinity cache");
    if (p->decoder != UM_DECODER_THRESHOLD && p->decoder != UM_DECODER_CREDIT && p->decoder != UM_DECODER_HIERARCHICAL)
        return um_fail(err, UM_ERR_ARG, "dInfer's loop decodes with the threshold, credit or hierarchical decoder");
    if (p->schedule != UM_SCHEDULE_UNIFORM || p->eos_rejection || p->alg_temp > 0 || p->cfg_scale > 0 ||
        p->remasking != UM_REMASK_LOW_CONFIDENCE || p->cache_refresh > 0)
        return um_fail(err, UM_ERR_ARG, "dInfer's loop has no schedule, EOS rejection, alg_temp, classifier-free "
                       "guidance, random remasking or cache refresh interval");
    if (p->iter_smooth && (!in_range(p->cont_weight, 0, 1e6) || !in_range(p->cont_weight_init, 0, 1e6) ||
                           !in_range(p->cont_weight_growth, 0, 1e6) || !in_range(p->threshold_decay, 0, 1)))
        return um_fail(err, UM_ERR_ARG, "IterSmooth: cont_weight, cont_weight_init and cont_weight_growth must be "
                       ">= 0, threshold_decay in [0, 1]");
    return check_sampling(p, err);
}

/* Block diffusion (LLaDA2's generate): whole blocks from position 0, steps per block, no other cache. */
static um_status check_blocks(const um_generate_params *p, int n_prompt, int n_prompt_masks, int max_seq,
                              um_error *err) {
    if (p->gen_length < 1 || p->block_length < 1 || p->steps < 1 || p->minimal_topk < 1)
        return um_fail(err, UM_ERR_ARG, "block diffusion: gen_length, block_length, steps and minimal_topk must be "
                       "at least 1 (got %d, %d, %d, %d)", p->gen_length, p->block_length, p->steps, p->minimal_topk);
    if (p->gen_length < p->minimal_topk)
        return um_fail(err, UM_ERR_ARG, "block diffusion: gen_length %d leaves no step at minimal_topk %d "
                       "(steps are at most gen_length / minimal_topk)", p->gen_length, p->minimal_topk);
    int64_t blocks = ((int64_t)n_prompt + p->gen_length + p->block_length - 1) / p->block_length;
    if (n_prompt < 0 || blocks * p->block_length > max_seq)
        return um_fail(err, UM_ERR_ARG, "prompt (%d) + gen_length (%d), in whole blocks of %d, exceeds the model's "
                       "max_sequence_length %d", n_prompt, p->gen_length, p->block_length, max_seq);
    if (n_prompt_masks > 0)
        return um_fail(err, UM_ERR_ARG, "block diffusion does not fill masks inside the prompt (it holds %d)",
                       n_prompt_masks);
    if (p->cache != UM_CACHE_NONE)
        return um_fail(err, UM_ERR_ARG, "block diffusion keeps the exact K/V of finished blocks itself: the %s cache "
                       "does not apply to a block-causal model", p->cache == UM_CACHE_PREFIX ? "prefix"
                       : p->cache == UM_CACHE_DUAL ? "dual" : "vicinity");
    if (p->decoder == UM_DECODER_ORIGIN || p->schedule != UM_SCHEDULE_UNIFORM || p->cfg_scale > 0 ||
        p->eos_rejection || p->alg_temp > 0)
        return um_fail(err, UM_ERR_ARG, "block diffusion has no origin decoder, schedule but the uniform one, "
                       "classifier-free guidance, EOS rejection or alg_temp");
    return check_sampling(p, err);
}

um_status um_schedule_check(const um_generate_params *p, int n_prompt, int n_prompt_masks, int max_seq,
                            um_error *err) {
    if (p->iter_smooth && p->loop != UM_LOOP_DINFER)
        return um_fail(err, UM_ERR_ARG, "IterSmooth runs in dInfer's loop");
    if (p->loop == UM_LOOP_DINFER)
        return check_dinfer(p, n_prompt, max_seq, err);
    if (p->loop == UM_LOOP_BLOCKS)
        return check_blocks(p, n_prompt, n_prompt_masks, max_seq, err);
    if (p->loop != UM_LOOP_STEPS)
        return um_fail(err, UM_ERR_ARG, "unknown loop %d", (int)p->loop);
    if (p->gen_length == 0 && n_prompt_masks > 0) { /* pure infilling: the prompt's masks are the one block */
        if (p->steps < 1)
            return um_fail(err, UM_ERR_ARG, "steps must be at least 1 (got %d)", p->steps);
        if (n_prompt > max_seq)
            return um_fail(err, UM_ERR_ARG, "prompt (%d) exceeds the model's max_sequence_length %d", n_prompt,
                           max_seq);
        return check_sampling(p, err);
    }
    if (p->gen_length < 1)
        return um_fail(err, UM_ERR_ARG, "gen_length must be at least 1 (got %d)%s", p->gen_length,
                       p->gen_length == 0 ? "; 0 works only when the prompt holds masks to fill" : "");
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
    return check_sampling(p, err);
}
