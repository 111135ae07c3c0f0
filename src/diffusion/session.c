/* The generation loop, one step at a time. With the default parameters it
 * is the LLaDA reference sampler (ML-GSAI/LLaDA generate.py: generate),
 * decision for decision:
 *
 *   canvas = prompt + gen_length masks, split into blocks of block_length
 *   for each block, for each of its steps:
 *     logits = model(canvas)                 (with CFG: un + (s+1)(cond - un))
 *     every masked position up to the block's end proposes a token and a
 *     confidence (kernels/pick.c); positions past the block get -inf
 *     commit the step's count of most confident proposals (schedule.c)
 *
 * The accelerations swap one part each: the cache manager (cache.c) narrows
 * what a step recomputes, and then only the masks inside the recomputed range
 * are candidates; the decoder (decoder.c) chooses how many to commit; the
 * schedule's power counts replace the uniform ones. A block ends when it has no
 * mask left (Fast-dLLM's loop), the generation after max_nfe forward passes,
 * or, with early_stop, once an EOS has no mask before it.
 *
 * The two nested loops (blocks, steps) are kept as state in um_session, so
 * a step is three phases: prepare (find the next step, or finish), the
 * forward pass with its picks, and commit. The scheduler (um_sessions_step)
 * runs the middle phase of many sessions as one batch: each session's canvas
 * rows are entries of one forward pass, and the backend's pick runs the
 * output head on the candidates only, turning each row of logits into a pick
 * (guidance, EOS masking, credit, sampling) next to where it was made. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/sys.h"
#include "diffusion/diffusion.h"
#include "model/model.h"

struct um_session {
    const um_model *m;
    um_generate_params p;
    um_canvas cv;
    um_cache cache;
    um_credit credit;
    int n_blocks, spb; /* blocks, and steps per block */
    int32_t *cand;     /* this step's candidates: masked positions it has logits for */
    int32_t *rows;     /* the positions whose outputs they read: themselves, or with a logit shift the one before */
    um_pick *picks;    /* their proposals */
    um_pick_request base; /* what every pick of this session shares (row, step, pos set per pick) */
    int32_t *chosen;   /* positions committed this step */
    int32_t *chosen_tok;
    int *counts;       /* the block's scheduled counts (with the quota schedule, its base) */
    um_draw_fn draw_fn; /* tests: replaces the picks' uniform draws (um_session_set_draws) */
    void *draw_user;
    /* where the loops stand */
    int block, step_in_block;
    bool in_block;
    int from, start, end, planned; /* the current block's range and planned steps */
    /* the step prepared */
    um_cache_plan plan;
    bool head;         /* a block's first step in Fast-dLLM's Dream block mode: commits the block's first position */
    int n_cand, count;
    int carry;         /* quota schedule: candidates the block's earlier steps deferred */
    double transfer_p; /* origin decoder: the step's commit probability */
    double eos_gamma;
    /* dInfer's loop (UM_LOOP_DINFER) */
    int first_start;   /* the first block's start */
    int unroll_left;   /* iterations left before the block's masks are counted again */
    int iter_no;       /* dInfer's iteration number: the forward passes so far */
    int require_start; /* the block start dInfer's cache manager last saw (-1: none yet) */
    /* block diffusion (UM_LOOP_BLOCKS) */
    int cached_upto;   /* the K/V of positions below it are final (their blocks finished) */
    int keep_len;      /* the prompt and gen_length: the canvas's last block may reach past it */
    bool cache_built;  /* a full pass has filled the cache */
    bool step_pending; /* the iteration's cache refresh ran; its step is next */
    bool prepared;     /* next_step chose this forward (pass) already */
    enum { PASS_FULL, PASS_REFRESH, PASS_STEP } pass;
    /* IterSmooth: the forward's outputs are the candidates, then the other masks it computes */
    int n_sel;
    float *table;      /* the embedding table, f32 [n_vocab][d_model] */
    float *embd;       /* the inputs of the next forward [len][d_model] */
    double *soft;      /* softmax(logits) @ table of this forward's outputs [n_sel][d_model] */
    int *sel_of;       /* [len]: a position's output index in this forward */
    /* totals and the outcome */
    int nfe;
    int masks0; /* masks in the canvas at the start */
    double t_start, forward_seconds, seconds;
    bool done;
    um_status status;
    um_error err;
};

/* Ends the session; what only a running session needs (its KV caches, the
 * credit memory) is released at once, not when the caller frees it. */
static void finish(um_session *s, um_status status, const um_error *err) {
    if (s->done)
        return;
    s->done = true;
    um_cache_free(&s->cache);
    um_credit_free(&s->credit);
    s->seconds = um_now() - s->t_start;
    s->status = status;
    if (err)
        s->err = *err;
}

/* ---- begin ---------------------------------------------------------------- */

/* Models whose logits are shifted by one position (Dream) run the prefix and
 * dual caches as Fast-dLLM's Dream block mode does (plan_step: the head
 * step); what has no upstream to hold it to is refused. */
static um_status check_shifted(const um_model *m, const um_generate_params *p, um_error *err) {
    if (p->loop == UM_LOOP_DINFER)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s models (logits shifted by one position) do not run dInfer's loop",
                       m->arch);
    if (p->cache == UM_CACHE_VICINITY)
        return um_fail(err, UM_ERR_UNSUPPORTED,
                       "%s models (logits shifted by one position) run with cache none, prefix or dual, not vicinity",
                       m->arch);
    if (p->cache == UM_CACHE_NONE || !um_schedule_plans_steps(p))
        return UM_OK;
    /* the head step commits one position where the schedule planned its count: only the timesteps
       schedule, whose last step takes what is left, still fills the block */
    if (p->schedule != UM_SCHEDULE_TIMESTEPS)
        return um_fail(err, UM_ERR_ARG, "%s models with a KV cache count with the timesteps schedule "
                       "(Fast-dLLM's Dream block mode)", m->arch);
    if (p->steps / um_schedule_n_blocks(p) < 2)
        return um_fail(err, UM_ERR_ARG, "%s models with a KV cache and a count-based decoder need at least 2 steps "
                       "per block (the first only commits the block's first position), got %d", m->arch,
                       p->steps / um_schedule_n_blocks(p));
    return UM_OK;
}

static um_status check_request(const um_model *m, const int32_t *prompt, int n_prompt, const um_generate_params *p,
                               um_error *err) {
    const um_hparams *hp = &m->hp;
    bool block_causal = hp->attn_mask == UM_ATTN_BLOCK_CAUSAL;
    if (block_causal && p->loop != UM_LOOP_BLOCKS)
        return um_fail(err, UM_ERR_ARG, "%s models (block-causal attention) run block diffusion only, not dInfer's "
                       "loop", m->arch);
    if (!block_causal && p->loop == UM_LOOP_BLOCKS)
        return um_fail(err, UM_ERR_ARG, "block diffusion needs a block-causal model (LLaDA2), not %s", m->arch);
    if (n_prompt < 0 || (n_prompt > 0 && !prompt))
        return um_fail(err, UM_ERR_ARG, "invalid prompt");
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= hp->n_vocab)
            return um_fail(err, UM_ERR_ARG, "prompt token %d (at index %d) is outside the vocabulary [0, %d)",
                           prompt[i], i, hp->n_vocab);
    int prompt_masks = 0;
    for (int i = 0; i < n_prompt; i++)
        prompt_masks += prompt[i] == hp->mask_id;
    UM_TRY(um_schedule_check(p, n_prompt, prompt_masks, hp->max_seq, err));
    if (hp->logit_shift)
        UM_TRY(check_shifted(m, p, err));
    if (p->logits_eos_inf && hp->eos_id < 0)
        return um_fail(err, UM_ERR_ARG, "logits_eos_inf needs an EOS id, and the model has none");
    if (p->confidence_eos_eot_inf && hp->eot_id < 0)
        return um_fail(err, UM_ERR_ARG, "confidence_eos_eot_inf needs an EOT id, and the model has none");
    if (p->early_stop && hp->eos_id < 0)
        return um_fail(err, UM_ERR_ARG, "early_stop needs an EOS id, and the model has none");
    return UM_OK;
}

um_status um_session_begin(const um_model *m, const int32_t *prompt, int n_prompt, const um_generate_params *params,
                           um_session **out, um_error *err) {
    *out = NULL;
    um_generate_params block_params = *params, *p = &block_params;
    if (m->hp.attn_mask == UM_ATTN_BLOCK_CAUSAL && p->loop == UM_LOOP_STEPS)
        p->loop = UM_LOOP_BLOCKS; /* the model's own generation: its steps loop */
    UM_TRY(check_request(m, prompt, n_prompt, p, err));
    const um_hparams *hp = &m->hp;
    um_session *s = calloc(1, sizeof *s);
    if (!s)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    s->t_start = um_now();
    s->m = m;
    s->p = *p;
    s->base = (um_pick_request){
        .guidance = (float)(p->cfg_scale + 1.0),
        .eos_inf = p->logits_eos_inf ? hp->eos_id : -1,
        .eot_inf = p->confidence_eos_eot_inf ? hp->eot_id : -1,
        .temperature = p->temperature,
        .seed = p->seed,
        .random_remasking = p->remasking == UM_REMASK_RANDOM,
        .stats = p->decoder == UM_DECODER_MARGIN || p->decoder == UM_DECODER_ENTROPY || p->decoder == UM_DECODER_MED,
        .top_k = p->top_k,
        .top_p = p->top_p,
        .min_p = p->min_p,
        .draw = p->decoder == UM_DECODER_ORIGIN || p->alg_temp > 0,
        .credit_alpha = p->credit_alpha,
        .credit_gamma = p->credit_gamma,
    };
    bool dinfer = p->loop == UM_LOOP_DINFER, blocks = p->loop == UM_LOOP_BLOCKS;
    s->n_blocks = dinfer || blocks ? 0 : um_schedule_n_blocks(p);
    s->spb = dinfer || blocks ? 0 : p->steps / s->n_blocks;
    s->require_start = -1;
    s->keep_len = n_prompt + p->gen_length;
    int canvas_gen = p->gen_length;
    if (blocks) { /* whole blocks from position 0; the first to run holds the prompt's tail */
        s->n_blocks = (s->keep_len + p->block_length - 1) / p->block_length;
        s->block = n_prompt / p->block_length;
        s->spb = p->steps < p->gen_length / p->minimal_topk ? p->steps : p->gen_length / p->minimal_topk;
        canvas_gen = s->n_blocks * p->block_length - n_prompt;
    }
    int n_rows = p->cfg_scale > 0 ? 2 : 1;
    um_status st = um_canvas_init(&s->cv, prompt, n_prompt, canvas_gen, n_rows, hp->mask_id, err);
    if (st == UM_OK) {
        s->masks0 = um_canvas_count_masks(&s->cv, 0, s->keep_len);
        size_t max_cand = (size_t)um_canvas_count_masks(&s->cv, 0, n_prompt) + (size_t)p->block_length;
        s->cand = malloc(max_cand * sizeof *s->cand);
        if (p->iter_smooth && max_cand < (size_t)s->cv.len)
            max_cand = (size_t)s->cv.len; /* every mask of the range is an output */
        s->rows = malloc(max_cand * sizeof *s->rows);
        s->picks = malloc(max_cand * sizeof *s->picks);
        s->chosen = malloc(max_cand * sizeof *s->chosen);
        s->chosen_tok = malloc(max_cand * sizeof *s->chosen_tok);
        s->counts = malloc((size_t)(s->spb > 64 ? s->spb : 64) * sizeof *s->counts);
        if (!s->cand || !s->rows || !s->picks || !s->chosen || !s->chosen_tok || !s->counts)
            st = um_fail(err, UM_ERR_NOMEM, "out of memory for a canvas of %d tokens", s->cv.len);
        else if (blocks) /* one schedule for every block: of the block's length, whatever it holds */
            um_schedule_transfer_counts(p->block_length, s->spb, s->counts);
        /* dInfer's BlockIterator: from the prompt's end, or aligned down from its count of non-mask tokens */
        int kept = 0;
        for (int i = 0; i < n_prompt; i++)
            kept += s->cv.is_prompt[i];
        s->first_start = p->start_block_align ? kept / p->block_length * p->block_length : n_prompt;
    }
    um_cache_init(&s->cache, p);
    if (st != UM_OK) {
        um_session_free(s);
        return st;
    }
    *out = s;
    return UM_OK;
}

void um_session_free(um_session *s) {
    if (!s)
        return;
    um_canvas_free(&s->cv);
    um_cache_free(&s->cache);
    um_credit_free(&s->credit);
    free(s->cand);
    free(s->rows);
    free(s->picks);
    free(s->chosen);
    free(s->chosen_tok);
    free(s->counts);
    free(s->table);
    free(s->embd);
    free(s->soft);
    free(s->sel_of);
    free(s);
}

bool um_session_finished(const um_session *s) { return s->done; }

void um_session_set_draws(um_session *s, um_draw_fn fn, void *user) {
    s->draw_fn = fn;
    s->draw_user = user;
}

void um_session_cancel(um_session *s) {
    um_error e;
    um_fail(&e, UM_ERR_ABORTED, "generation cancelled");
    finish(s, UM_ERR_ABORTED, &e);
}

um_status um_session_result(um_session *s, um_generation *out, um_error *err) {
    memset(out, 0, sizeof *out);
    if (!s->done)
        return um_fail(err, UM_ERR_ARG, "the session has not finished");
    out->n_committed = s->masks0 - um_canvas_count_masks(&s->cv, 0, s->keep_len);
    out->tokens = s->cv.rows; /* row 0 is the canvas; the rest is unused space */
    s->cv.rows = NULL;
    out->n_tokens = s->keep_len;
    /* block diffusion: what lies past gen_length was denoised with its block and goes; so does all after EOS */
    for (int i = s->cv.n_prompt; s->p.loop == UM_LOOP_BLOCKS && i < s->keep_len; i++)
        if (out->tokens[i] == s->m->hp.eos_id) {
            out->n_tokens = i + 1;
            out->n_committed = 0;
            for (int j = s->cv.n_prompt; j < out->n_tokens; j++)
                out->n_committed += out->tokens[j] != s->cv.mask_id;
            break;
        }
    out->prompt_len = s->cv.n_prompt;
    out->nfe = s->nfe;
    out->forward_seconds = s->forward_seconds;
    out->seconds = s->seconds;
    if (s->status != UM_OK && err)
        *err = s->err;
    return s->status;
}

/* ---- prepare: the next step, or the end ------------------------------------- */

/* The count of the block's step i: the schedule's (count-based decoders), or
 * the quota with what earlier steps deferred (none planned after the last
 * planned step: only the deferred, i.e. every mask left). */
static int step_count(const um_session *s, int i) {
    const um_generate_params *p = &s->p;
    if (p->schedule == UM_SCHEDULE_QUOTA)
        return (i < s->planned ? s->counts[i] : 0) + s->carry;
    if (!um_decoder_counts(p->decoder))
        return 0;
    if (p->schedule == UM_SCHEDULE_TIMESTEPS)
        return um_schedule_timestep_count(um_canvas_count_masks(&s->cv, s->from, s->end), i, s->planned,
                                          p->schedule_eps);
    return s->counts[i];
}

/* The kind of forward pass dInfer's iteration runs next: its step after a
 * refresh; a full pass without a cache or during the vicinity's warmup; a
 * refresh when its cache manager asks for one (require_update: the block
 * changed; the vicinity cache also when it was never filled, and not again
 * in the first block); else the cached step. */
static int dinfer_pass(um_session *s) {
    const um_generate_params *p = &s->p;
    if (s->step_pending)
        return PASS_STEP;
    if (p->cache == UM_CACHE_NONE || (p->cache == UM_CACHE_VICINITY && s->iter_no < p->warmup_steps))
        return PASS_FULL;
    bool refresh;
    if (p->cache == UM_CACHE_VICINITY && !s->cache_built) {
        refresh = true; /* dInfer tests past_key_values is None first: require_update is not called */
    } else {
        refresh = s->require_start != s->start;
        s->require_start = s->start;
        if (p->cache == UM_CACHE_VICINITY)
            refresh = refresh && s->block > 0;
    }
    return refresh ? PASS_REFRESH : PASS_STEP;
}

/* The credit decoder's memory starts afresh with each block; false (the
 * session finished with the error) when it cannot be had. */
static bool begin_credit(um_session *s) {
    if (s->p.decoder != UM_DECODER_CREDIT)
        return true;
    um_error e;
    if (um_credit_begin_block(&s->credit, s->start, s->end - s->start, &e) == UM_OK)
        return true;
    finish(s, e.code, &e);
    return false;
}

/* dInfer's BlockRunner.decode as a sequence of forward passes: false when the
 * session has nothing left to run (it is then finished). */
static bool next_step_dinfer(um_session *s) {
    const um_generate_params *p = &s->p;
    if (s->prepared)
        return !s->done;
    while (!s->done) {
        if (!s->in_block) {
            s->start = s->first_start + s->block * p->block_length;
            if (s->start >= s->cv.len) {
                finish(s, UM_OK, NULL);
                break;
            }
            s->end = s->start + p->block_length < s->cv.len ? s->start + p->block_length : s->cv.len;
            s->from = s->start;
            if (!begin_credit(s))
                break;
            s->in_block = true;
            s->step_in_block = s->unroll_left = 0;
            s->step_pending = false;
        }
        if (!s->step_pending && s->unroll_left == 0) {
            int masked = um_canvas_count_masks(&s->cv, s->start, s->end);
            if (masked == 0) { /* the block is done: one holding EOS ends the generation */
                bool eos = false;
                int eos_id = s->m->hp.eos_id;
                for (int i = s->start; i < s->end && eos_id >= 0; i++)
                    eos = eos || s->cv.rows[i] == eos_id;
                s->in_block = false;
                s->block++;
                if (eos) {
                    for (int i = s->end; p->early_stop && i < s->cv.len; i++)
                        s->cv.rows[i] = eos_id;
                    finish(s, UM_OK, NULL);
                    break;
                }
                continue;
            }
            int k = masked / p->expected_tpf;
            s->unroll_left = k > p->maximum_unroll ? p->maximum_unroll : k < 1 ? 1 : k;
        }
        if (p->max_nfe > 0 && s->nfe >= p->max_nfe) {
            finish(s, UM_OK, NULL);
            break;
        }
        s->pass = dinfer_pass(s);
        s->prepared = true;
        return true;
    }
    return false;
}

/* Does [from, to) of the canvas hold the model's EOS? */
static bool holds_eos(const um_session *s, int from, int to) {
    for (int i = from; s->m->hp.eos_id >= 0 && i < to; i++)
        if (s->cv.rows[i] == s->m->hp.eos_id)
            return true;
    return false;
}

/* LLaDA2's generate as a sequence of steps: each block in turn, its steps
 * until it has no mask or the steps run out; after a block, EOS anywhere in
 * the generation so far ends it. */
static bool next_step_blocks(um_session *s) {
    const um_generate_params *p = &s->p;
    while (!s->done) {
        if (!s->in_block) {
            if (s->block >= s->n_blocks) {
                finish(s, UM_OK, NULL);
                break;
            }
            s->from = s->start = s->block * p->block_length;
            s->end = s->start + p->block_length;
            if (!begin_credit(s))
                break;
            s->in_block = true;
            s->step_in_block = 0;
        }
        if (s->step_in_block >= s->spb || um_canvas_count_masks(&s->cv, s->start, s->end) == 0) {
            s->in_block = false;
            s->block++;
            if (holds_eos(s, s->cv.n_prompt, s->end))
                finish(s, UM_OK, NULL);
            continue;
        }
        if (p->max_nfe > 0 && s->nfe >= p->max_nfe) {
            finish(s, UM_OK, NULL);
            break;
        }
        s->count = s->counts[s->step_in_block];
        s->eos_gamma = s->transfer_p = 1.0;
        return true;
    }
    return false;
}

/* The loop heads of the reference's two loops: false when the session has
 * nothing left to run (it is then finished). */
static bool next_step(um_session *s) {
    const um_generate_params *p = &s->p;
    if (p->loop == UM_LOOP_DINFER)
        return next_step_dinfer(s);
    if (p->loop == UM_LOOP_BLOCKS)
        return next_step_blocks(s);
    bool planning = um_schedule_plans_steps(p), counted = planning || p->schedule == UM_SCHEDULE_QUOTA;
    while (!s->done) {
        if (!s->in_block) {
            if (s->block >= s->n_blocks) {
                finish(s, UM_OK, NULL);
                break;
            }
            um_schedule_block_range(p, s->cv.n_prompt, s->block, &s->from, &s->start, &s->end);
            int masked = um_canvas_count_masks(&s->cv, s->from, s->end);
            s->planned = counted ? um_schedule_block_counts(p, masked, s->spb, s->counts) : s->spb;
            s->carry = 0;
            if (!begin_credit(s))
                break;
            s->in_block = true;
            s->step_in_block = 0;
        }
        int i = s->step_in_block;
        /* Fast-dLLM's cached loops test for masks after their step: a block's
         * full pass is always followed by one cached step, even when it left
         * no mask (the reference counts that forward in its NFE). */
        bool forced = i == 1 && (p->cache == UM_CACHE_PREFIX || p->cache == UM_CACHE_DUAL);
        if ((planning && i >= s->planned) || (!forced && um_canvas_count_masks(&s->cv, s->from, s->end) == 0)) {
            s->in_block = false;
            s->block++;
            continue;
        }
        if (p->max_nfe > 0 && s->nfe >= p->max_nfe) {
            finish(s, UM_OK, NULL);
            break;
        }
        s->eos_gamma = p->eos_rejection ? um_schedule_eos_gamma(p->eos_gamma, i, s->planned) : 1.0;
        s->count = step_count(s, i);
        s->transfer_p = p->decoder == UM_DECODER_ORIGIN ? um_schedule_timestep_fraction(i, s->planned, p->schedule_eps)
                                                        : 1.0;
        return true;
    }
    return false;
}

/* The plan and candidates of the step next_step found.
 *
 * A model with shifted logits (Dream: position i is predicted by row i - 1)
 * runs the prefix and dual caches as Fast-dLLM's Dream block mode does. A
 * cached step's first row is the block's first position, whose prediction
 * lies before the range; so each block's full pass (the head step) commits
 * that position alone, unconditionally, and the cached steps after it read
 * every other block position's row inside the range. */
static void plan_step(um_session *s) {
    if (s->p.loop == UM_LOOP_BLOCKS) { /* what is not final yet, up to the block's end: the block's masks */
        s->plan = (um_cache_plan){s->cached_upto, s->end, false};
        s->head = false;
        s->n_cand = s->n_sel = um_canvas_masked(&s->cv, s->start, s->end, s->cand);
        memcpy(s->rows, s->cand, (size_t)s->n_cand * sizeof *s->cand);
        return;
    }
    if (s->p.loop == UM_LOOP_DINFER) { /* the block's masks, from a full pass or the cache's range */
        s->plan = s->pass == PASS_STEP ? um_cache_plan_range(&s->cache, s->cv.len, s->start, s->end)
                                       : (um_cache_plan){0, s->cv.len, true};
        s->head = false;
        s->n_cand = um_canvas_masked(&s->cv, s->start, s->end, s->cand);
        memcpy(s->rows, s->cand, (size_t)s->n_cand * sizeof *s->cand);
        s->n_sel = s->n_cand;
        for (int i = s->plan.q0; s->p.iter_smooth && i < s->plan.q1; i++) /* IterSmooth smooths all the masks */
            if ((i < s->start || i >= s->end) && s->cv.rows[i] == s->cv.mask_id)
                s->rows[s->n_sel++] = i;
        return;
    }
    um_cache_plan plan = um_cache_plan_step(&s->cache, s->cv.len, s->start, s->end, s->step_in_block);
    /* a cached step recomputes the block's own masks in the prompt too (infilling) */
    for (int i = s->from; i < plan.q0; i++)
        if (s->cv.rows[i] == s->cv.mask_id) {
            plan.q0 = i;
            break;
        }
    if (plan.q1 <= plan.q0) /* an empty block (gen_length 0) with nothing left to recompute */
        plan = (um_cache_plan){0, s->cv.len, true};
    bool shift = s->m->hp.logit_shift;
    s->head = shift && s->step_in_block == 0 && (s->p.cache == UM_CACHE_PREFIX || s->p.cache == UM_CACHE_DUAL);
    if (s->head)
        s->n_cand = um_canvas_masked(&s->cv, s->start, s->start < s->end ? s->start + 1 : s->start, s->cand);
    else
        s->n_cand = um_canvas_masked(&s->cv, plan.q0, plan.q1 < s->end ? plan.q1 : s->end, s->cand);
    /* Dream predicts position i from the model's row i - 1 (row 0 keeps its own) */
    for (int c = 0; c < s->n_cand; c++)
        s->rows[c] = s->cand[c] - (shift && s->cand[c] > 0 ? 1 : 0);
    if (s->n_cand > 0 && s->rows[0] < plan.q0) /* a prompt mask at the range's start reads the row before it */
        plan.q0 = s->rows[0];
    s->plan = plan;
    s->n_sel = s->n_cand;
    um_canvas_sync_uncond(&s->cv);
}

/* ---- commit ------------------------------------------------------------------ */

/* The positions the step commits, into s->chosen; -1 when out of memory. */
static int select_commits(um_session *s) {
    const um_generate_params *p = &s->p;
    if (s->head) {
        memcpy(s->chosen, s->cand, (size_t)s->n_cand * sizeof *s->cand);
        return s->n_cand;
    }
    if (s->draw_fn)
        for (int c = 0; c < s->n_cand; c++)
            s->picks[c].draw = s->draw_fn(s->nfe - 1, s->cand[c], s->draw_user);
    if (p->loop == UM_LOOP_DINFER) {
        double threshold = p->iter_smooth ? fmax(1.0 - s->iter_no * p->threshold_decay, p->threshold) : p->threshold;
        return um_decode_dinfer(p, s->cand, s->picks, s->n_cand, threshold, s->cv.mask_id, s->chosen);
    }
    if (p->decoder == UM_DECODER_ORIGIN)
        return um_decode_origin(s->cand, s->picks, s->n_cand, s->transfer_p, s->chosen);
    int n = um_decode_select(p, s->cand, s->picks, s->n_cand, s->count, s->m->hp.eos_id, s->eos_gamma, s->chosen);
    if (n >= 0 && p->schedule == UM_SCHEDULE_QUOTA)
        s->carry = s->count - n; /* the quota's deferred candidates */
    return n;
}

/* IterSmooth's inputs after a forward over [q0, q1): each position's token
 * embedding, plus w * softmax(logits) @ table where it is still masked. */
static void smooth_inputs(um_session *s) {
    const um_generate_params *p = &s->p;
    int d = s->m->hp.d_model;
    double w = fmin(p->cont_weight_init + p->cont_weight_growth * s->iter_no, p->cont_weight);
    for (int k = 0; k < s->n_sel; k++)
        s->sel_of[s->rows[k]] = k;
    for (int i = s->plan.q0; i < s->plan.q1; i++) {
        int32_t tok = s->cv.rows[i];
        float *x = s->embd + (size_t)i * d;
        memcpy(x, s->table + (size_t)tok * d, (size_t)d * sizeof *x);
        if (tok == s->cv.mask_id)
            for (int j = 0; j < d; j++)
                x[j] = (float)(w * s->soft[(size_t)s->sel_of[i] * d + j] + x[j]);
    }
}

/* LLaDA2's eos_early_stop, checked after a step that committed EOS: the
 * first EOS of the canvas (from position 0) with no mask between the
 * prompt's end and it ends the generation. */
static bool block_eos_done(const um_session *s, int n_chosen) {
    int eos = s->m->hp.eos_id, first = -1;
    bool committed = false;
    for (int i = 0; i < n_chosen; i++)
        committed = committed || s->chosen_tok[i] == eos;
    for (int i = 0; committed && i < s->cv.len && first < 0; i++)
        first = s->cv.rows[i] == eos ? i : -1;
    int n_prompt = s->cv.n_prompt;
    return first >= 0 && um_canvas_count_masks(&s->cv, n_prompt, first > n_prompt ? first : n_prompt) == 0;
}

static void commit_step(um_session *s) {
    const um_generate_params *p = &s->p;
    int step = s->nfe - 1;
    int n = select_commits(s);
    if (n < 0) {
        um_error e;
        um_fail(&e, UM_ERR_NOMEM, "out of memory");
        finish(s, UM_ERR_NOMEM, &e);
        return;
    }
    for (int i = 0; i < n; i++) {
        int c = 0;
        while (s->cand[c] != s->chosen[i])
            c++;
        s->cv.rows[s->chosen[i]] = s->picks[c].token;
        s->chosen_tok[i] = s->picks[c].token;
    }
    s->step_in_block++;
    if (p->iter_smooth)
        smooth_inputs(s);
    if (p->loop == UM_LOOP_DINFER) { /* a refresh is half an iteration: its step follows */
        s->prepared = false;
        s->iter_no++;
        s->cache_built = s->cache_built || s->pass == PASS_REFRESH;
        s->step_pending = s->pass == PASS_REFRESH;
        s->unroll_left -= s->pass != PASS_REFRESH;
    }
    bool eos_done = p->loop == UM_LOOP_STEPS && p->early_stop && um_canvas_eos_done(&s->cv, s->m->hp.eos_id);
    if (p->loop == UM_LOOP_BLOCKS) {
        s->cached_upto = s->start; /* the blocks before this one are final, and so is what the pass wrote of them */
        eos_done = p->early_stop && block_eos_done(s, n);
    }
    if (p->on_step) {
        um_step_info info = {step, s->block, s->cv.rows, s->cv.len, s->cv.n_prompt, s->chosen, s->chosen_tok, n,
                             s->plan.q0, s->plan.q1};
        if (p->on_step(&info, p->user_data) != 0) {
            um_error e;
            um_fail(&e, UM_ERR_ABORTED, "generation stopped by the step callback");
            finish(s, UM_ERR_ABORTED, &e);
        }
    }
    if (eos_done)
        finish(s, UM_OK, NULL);
}

/* ---- the scheduler: one forward pass for many sessions ------------------------ */

typedef struct {
    um_session *s;
    int out0; /* its first output row: candidates, then (CFG) their unconditional rows */
} live_session;

/* The pick requests of one session's candidates (its step already counted). */
static um_status pick_requests(um_session *s, int out0, um_pick_request *r, um_error *err) {
    bool credit = s->p.decoder == UM_DECODER_CREDIT;
    if (credit)
        UM_TRY(um_credit_reserve(&s->credit, err));
    for (int c = 0; c < s->n_cand; c++) {
        r[c] = s->base;
        r[c].row = out0 + c;
        r[c].uncond_row = s->cv.n_rows == 2 ? out0 + s->n_sel + c : -1;
        r[c].step = s->nfe - 1;
        r[c].pos = s->cand[c];
        if (credit)
            um_credit_point(&s->credit, s->cand[c], &r[c]);
    }
    return UM_OK;
}

/* Every live session's picks, from the outputs of the forward pass. */
static um_status pick_all(um_context *ctx, const live_session *live, int n_live, um_error *err) {
    int n = 0;
    for (int k = 0; k < n_live; k++)
        n += live[k].s->n_cand;
    um_pick_request *req = malloc((size_t)(n > 0 ? n : 1) * sizeof *req);
    um_pick *out = malloc((size_t)(n > 0 ? n : 1) * sizeof *out);
    um_status st = req && out ? UM_OK : um_fail(err, UM_ERR_NOMEM, "out of memory");
    for (int k = 0, at = 0; st == UM_OK && k < n_live; at += live[k].s->n_cand, k++)
        st = pick_requests(live[k].s, live[k].out0, req + at, err);
    if (st == UM_OK && n > 0)
        st = um_context_pick(ctx, req, n, out, err);
    for (int k = 0, at = 0; st == UM_OK && k < n_live; at += live[k].s->n_cand, k++)
        memcpy(live[k].s->picks, out + at, (size_t)live[k].s->n_cand * sizeof *out);
    free(req);
    free(out);
    return st;
}

/* IterSmooth's softmax(logits) @ table of every output of its sessions
 * (n_out outputs in the pass), in double precision. */
static um_status soft_outputs(um_context *ctx, const live_session *live, int n_live, int n_out, um_error *err) {
    bool any = false;
    for (int k = 0; k < n_live; k++)
        any = any || live[k].s->p.iter_smooth;
    if (!any || n_out == 0)
        return UM_OK;
    int V = ctx->m->hp.n_vocab, d = ctx->m->hp.d_model;
    float *logits = malloc((size_t)n_out * V * sizeof *logits);
    double *prob = malloc((size_t)V * sizeof *prob);
    if (!logits || !prob) {
        free(logits);
        free(prob);
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    }
    um_status st = um_context_logits(ctx, logits, err);
    for (int k = 0; st == UM_OK && k < n_live; k++) {
        um_session *s = live[k].s;
        if (!s->p.iter_smooth)
            continue;
        for (int r = 0; r < s->n_sel; r++) {
            const float *l = logits + (size_t)(live[k].out0 + r) * V;
            float mx = l[0];
            for (int v = 1; v < V; v++)
                mx = l[v] > mx ? l[v] : mx;
            double sum = 0;
            for (int v = 0; v < V; v++)
                sum += prob[v] = exp((double)l[v] - mx);
            double *o = s->soft + (size_t)r * d;
            memset(o, 0, (size_t)d * sizeof *o);
            for (int v = 0; v < V; v++) {
                const float *e = s->table + (size_t)v * d;
                double pv = prob[v] / sum;
                for (int j = 0; j < d; j++)
                    o[j] += pv * e[j];
            }
        }
    }
    free(logits);
    free(prob);
    return st;
}

/* IterSmooth's state at a session's first step: the embedding table in f32
 * on the host (the backend's lookup of every token), and the first inputs,
 * the canvas's embeddings. */
static um_status smooth_ready(um_session *s, um_context *ctx, um_error *err) {
    if (!s->p.iter_smooth || s->table)
        return UM_OK;
    const um_hparams *hp = &s->m->hp;
    int V = hp->n_vocab, d = hp->d_model, len = s->cv.len, chunk = V < 4096 ? V : 4096;
    s->table = malloc((size_t)V * d * sizeof *s->table);
    s->embd = malloc((size_t)len * d * sizeof *s->embd);
    s->soft = malloc((size_t)len * d * sizeof *s->soft);
    s->sel_of = malloc((size_t)len * sizeof *s->sel_of);
    int32_t *ids = malloc((size_t)chunk * sizeof *ids);
    um_backend *be = ctx->be;
    um_buffer ib = {0}, ob = {0};
    um_status st = s->table && s->embd && s->soft && s->sel_of && ids ? UM_OK : um_fail(err, UM_ERR_NOMEM, "out of memory");
    if (st == UM_OK)
        st = be->ops->alloc(be, &ib, (size_t)chunk * sizeof *ids, err);
    if (st == UM_OK)
        st = be->ops->alloc(be, &ob, (size_t)chunk * d * sizeof(float), err);
    for (int v0 = 0; st == UM_OK && v0 < V; v0 += chunk) {
        int n = V - v0 < chunk ? V - v0 : chunk;
        for (int i = 0; i < n; i++)
            ids[i] = v0 + i;
        um_tensor it = {&ib, 0, UM_I32, n, 1}, ot = {&ob, 0, UM_F32, n, d};
        st = be->ops->upload(be, &it, ids, err);
        if (st == UM_OK)
            st = be->ops->get_rows(be, &s->m->tok_embd, &it, &ot, err);
        if (st == UM_OK)
            st = be->ops->download(be, s->table + (size_t)v0 * d, &ot, err);
    }
    if (ib.data)
        be->ops->release(be, &ib);
    if (ob.data)
        be->ops->release(be, &ob);
    free(ids);
    for (int i = 0; st == UM_OK && i < len; i++)
        memcpy(s->embd + (size_t)i * d, s->table + (size_t)s->cv.rows[i] * d, (size_t)d * sizeof *s->embd);
    if (st != UM_OK) {
        free(s->table);
        s->table = NULL;
    }
    return st;
}

/* The forward pass of the live sessions' planned steps, and their picks. */
static um_status forward_and_pick(um_context *ctx, live_session *live, int n_live, um_error *err) {
    um_batch_entry *e = malloc((size_t)n_live * UM_CANVAS_MAX_ROWS * sizeof *e);
    if (!e)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    int n_e = 0, out = 0;
    for (int k = 0; k < n_live; k++) {
        um_session *s = live[k].s;
        um_cache_entries(&s->cache, s->cv.rows, s->cv.n_rows, s->cv.len, s->plan, s->rows, s->n_sel, e + n_e);
        if (s->p.iter_smooth)
            e[n_e].embd = s->embd;
        n_e += s->cv.n_rows;
        live[k].out0 = out;
        out += s->cv.n_rows * s->n_sel;
    }
    double t0 = um_now();
    um_status st = um_forward_batch(ctx, e, n_e, err);
    free(e);
    for (int k = 0; st == UM_OK && k < n_live; k++) {
        um_session *s = live[k].s;
        s->nfe++;
        if (s->p.decoder == UM_DECODER_CREDIT)
            um_credit_step(&s->credit, s->p.credit_decay);
    }
    if (st == UM_OK)
        st = pick_all(ctx, live, n_live, err);
    if (st == UM_OK)
        st = soft_outputs(ctx, live, n_live, out, err);
    double dt = um_now() - t0;
    for (int k = 0; k < n_live; k++)
        live[k].s->forward_seconds += dt;
    return st;
}

um_status um_sessions_step(um_context *ctx, um_session *const *s, int n, um_error *err) {
    live_session *live = malloc((size_t)(n > 0 ? n : 1) * sizeof *live);
    if (!live)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    int n_live = 0;
    for (int k = 0; k < n; k++)
        if (s[k]->m != ctx->m) {
            free(live);
            return um_fail(err, UM_ERR_ARG, "session %d belongs to another model than the context's", k);
        }
    for (int k = 0; k < n; k++) {
        if (!next_step(s[k]))
            continue;
        um_error e; /* a session that cannot have its caches ends alone; the others go on */
        if (um_cache_ready(&s[k]->cache, ctx->be, s[k]->m, s[k]->cv.n_rows, s[k]->cv.len, &e) != UM_OK ||
            smooth_ready(s[k], ctx, &e) != UM_OK) {
            finish(s[k], e.code, &e);
            continue;
        }
        plan_step(s[k]);
        live[n_live++] = (live_session){s[k], 0};
    }
    um_status st = n_live > 0 ? forward_and_pick(ctx, live, n_live, err) : UM_OK;
    for (int k = 0; k < n_live; k++) {
        if (st == UM_OK)
            commit_step(live[k].s);
        else
            finish(live[k].s, st, err);
    }
    /* a session whose last step emptied its canvas finishes now, not at the next call */
    for (int k = 0; st == UM_OK && k < n_live; k++)
        next_step(live[k].s);
    free(live);
    return st;
}

um_status um_session_step(um_context *ctx, um_session *s, um_error *err) { return um_sessions_step(ctx, &s, 1, err); }
