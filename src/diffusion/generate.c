/* The generation loop. With the default parameters it is the LLaDA reference
 * sampler (ML-GSAI/LLaDA generate.py: generate), decision for decision:
 *
 *   canvas = prompt + gen_length masks, split into blocks of block_length
 *   for each block, for each of its steps:
 *     logits = model(canvas)                 (with CFG: un + (s+1)(cond - un))
 *     every masked position up to the block's end proposes a token and a
 *     confidence (sampler.c); positions past the block get -inf
 *     commit the step's count of most confident proposals (schedule.c)
 *
 * The accelerations swap one part each: the cache manager (cache.c) narrows
 * what a step recomputes, and then only the masks inside the recomputed range
 * are candidates; the decoder (decoder.c) chooses how many to commit; the
 * schedule's power counts replace the uniform ones. A block ends when it has no
 * mask left (Fast-dLLM's loop), the generation after max_nfe forward passes,
 * or, with early_stop, once an EOS has no mask before it. The output head runs
 * only on the candidates. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/sys.h"
#include "diffusion/diffusion.h"
#include "model/model.h"

um_generate_params um_generate_default_params(void) {
    um_generate_params p;
    memset(&p, 0, sizeof p);
    p.gen_length = 128;
    p.steps = 128;
    p.block_length = 32;
    p.remasking = UM_REMASK_LOW_CONFIDENCE;
    p.cache = UM_CACHE_NONE;
    p.cache_window = 16;
    p.cache_refresh = 0;
    p.decoder = UM_DECODER_TOPK;
    p.threshold = 0.9;
    p.low_threshold = 0.4;
    p.factor = 1.0;
    p.entropy_bound = 0.3;
    p.credit_alpha = 0.7;
    p.credit_gamma = 0.2;
    p.credit_decay = 0.8;
    p.schedule = UM_SCHEDULE_UNIFORM;
    p.eos_gamma = 0.4;
    return p;
}

typedef struct {
    um_model *m;
    const um_generate_params *p;
    um_sampler sampler;
    bool stats;        /* the decoder reads p1, p2 and the entropy */
    um_canvas cv;
    um_cache cache;
    um_credit credit;
    int n_vocab;
    int32_t *cand;     /* this step's candidates: masked positions it has logits for */
    um_pick *picks;    /* their proposals */
    int32_t *chosen;   /* positions committed this step */
    int32_t *chosen_tok;
    float *logits;     /* [n_rows][n_cand][n_vocab] */
    int *counts;       /* the block's scheduled counts */
    int nfe;
    double forward_seconds;
    bool done;
} gen_state;

static void free_state(gen_state *g) {
    um_canvas_free(&g->cv);
    um_cache_free(&g->cache);
    um_credit_free(&g->credit);
    free(g->cand);
    free(g->picks);
    free(g->chosen);
    free(g->chosen_tok);
    free(g->logits);
    free(g->counts);
}

static um_status init_state(gen_state *g, um_model *m, const int32_t *prompt, int n_prompt,
                            const um_generate_params *p, um_error *err) {
    const um_hparams *hp = &m->hp;
    memset(g, 0, sizeof *g);
    g->m = m;
    g->p = p;
    g->n_vocab = hp->n_vocab;
    g->sampler.temperature = p->temperature;
    g->sampler.remasking = p->remasking;
    g->sampler.eot_inf_id = p->confidence_eos_eot_inf ? hp->eot_id : -1;
    g->sampler.seed = p->seed;
    g->stats = p->decoder == UM_DECODER_MARGIN || p->decoder == UM_DECODER_ENTROPY || p->decoder == UM_DECODER_MED;
    int n_rows = p->cfg_scale > 0 ? 2 : 1;
    UM_TRY(um_canvas_init(&g->cv, prompt, n_prompt, p->gen_length, n_rows, hp->mask_id, err));

    int prompt_masks = um_canvas_count_masks(&g->cv, 0, n_prompt);
    int spb = p->steps / um_schedule_n_blocks(p);
    size_t max_cand = (size_t)prompt_masks + (size_t)p->block_length, n_logits;
    g->cand = malloc(max_cand * sizeof *g->cand);
    g->picks = malloc(max_cand * sizeof *g->picks);
    g->chosen = malloc(max_cand * sizeof *g->chosen);
    g->chosen_tok = malloc(max_cand * sizeof *g->chosen_tok);
    g->counts = malloc((size_t)(spb > 64 ? spb : 64) * sizeof *g->counts);
    um_status s = UM_OK;
    if (!um_mul_size(max_cand * (size_t)n_rows, (size_t)g->n_vocab, &n_logits) ||
        !(g->logits = malloc(n_logits * sizeof(float))) || !g->cand || !g->picks || !g->chosen || !g->chosen_tok ||
        !g->counts)
        s = um_fail(err, UM_ERR_NOMEM, "out of memory for a canvas of %d tokens", g->cv.len);
    if (s == UM_OK)
        s = um_cache_init(&g->cache, m, p, n_rows, g->cv.len, err);
    if (s != UM_OK)
        free_state(g);
    return s;
}

/* One forward pass as the cache plans it; leaves the (guided) logits of the
 * n_cand candidates in row 0. */
static um_status predict(gen_state *g, um_cache_plan plan, int n_cand, um_error *err) {
    um_canvas_sync_uncond(&g->cv);
    double t0 = um_now();
    UM_TRY(um_cache_forward(&g->cache, g->m, g->cv.rows, g->cv.n_rows, g->cv.len, plan, g->cand, n_cand, g->logits,
                            err));
    g->forward_seconds += um_now() - t0;
    g->nfe++;
    size_t n = (size_t)n_cand * (size_t)g->n_vocab;
    if (g->cv.n_rows == 2) {
        float s = (float)(g->p->cfg_scale + 1.0);
        const float *un = g->logits + n;
        for (size_t i = 0; i < n; i++)
            g->logits[i] = un[i] + s * (g->logits[i] - un[i]);
    }
    if (g->p->logits_eos_inf)
        for (int c = 0; c < n_cand; c++)
            g->logits[(size_t)c * g->n_vocab + g->m->hp.eos_id] = -INFINITY;
    return UM_OK;
}

/* One step of the block [start, end) whose masks count from `from`. */
static um_status run_step(gen_state *g, int block, int from, int start, int end, int step_in_block, int count,
                          double eos_gamma, um_error *err) {
    const um_generate_params *p = g->p;
    um_cache_plan plan = um_cache_plan_step(&g->cache, g->cv.len, start, end, step_in_block);
    /* a cached step recomputes the block's own masks in the prompt too (infilling) */
    for (int i = from; i < plan.q0; i++)
        if (g->cv.rows[i] == g->cv.mask_id) {
            plan.q0 = i;
            break;
        }
    if (plan.q1 <= plan.q0) /* an empty block (gen_length 0) with nothing left to recompute */
        plan = (um_cache_plan){0, g->cv.len, true};
    int n_cand = um_canvas_masked(&g->cv, plan.q0, plan.q1 < end ? plan.q1 : end, g->cand);
    UM_TRY(predict(g, plan, n_cand, err));
    int step = g->nfe - 1;
    if (p->decoder == UM_DECODER_CREDIT) {
        um_credit_step(&g->credit, p->credit_decay);
        for (int c = 0; c < n_cand; c++)
            UM_TRY(um_credit_apply(&g->credit, g->cand[c], g->logits + (size_t)c * g->n_vocab, g->n_vocab,
                                   p->credit_alpha, p->credit_gamma, err));
    }
    for (int c = 0; c < n_cand; c++)
        um_sample_pick(&g->sampler, g->stats, g->logits + (size_t)c * g->n_vocab, g->n_vocab, step, g->cand[c],
                       &g->picks[c]);
    int n = um_decode_select(p, g->cand, g->picks, n_cand, count, g->m->hp.eos_id, eos_gamma, g->chosen);
    if (n < 0)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        int c = 0;
        while (g->cand[c] != g->chosen[i])
            c++;
        g->cv.rows[g->chosen[i]] = g->picks[c].token;
        g->chosen_tok[i] = g->picks[c].token;
    }
    if (p->early_stop && um_canvas_eos_done(&g->cv, g->m->hp.eos_id))
        g->done = true;
    if (p->on_step) {
        um_step_info info = {step, block, g->cv.rows, g->cv.len, g->cv.n_prompt, g->chosen, g->chosen_tok, n};
        if (p->on_step(&info, p->user_data) != 0)
            return um_fail(err, UM_ERR_ABORTED, "generation stopped by the step callback");
    }
    return UM_OK;
}

/* Decodes one block until it has no mask (or its scheduled counts run out). */
static um_status run_block(gen_state *g, int b, um_error *err) {
    const um_generate_params *p = g->p;
    int from, start, end;
    um_schedule_block_range(p, g->cv.n_prompt, b, &from, &start, &end);
    int spb = p->steps / um_schedule_n_blocks(p);
    int masked = um_canvas_count_masks(&g->cv, from, end);
    bool counting = um_decoder_counts(p->decoder);
    int planned = counting ? um_schedule_block_counts(p, masked, spb, g->counts) : spb;
    if (p->decoder == UM_DECODER_CREDIT)
        UM_TRY(um_credit_begin_block(&g->credit, start, end - start, err));
    for (int i = 0; !g->done; i++) {
        /* Fast-dLLM's cached loops test for masks after their step: a block's
         * full pass is always followed by one cached step, even when it left
         * no mask (the reference counts that forward in its NFE). */
        bool forced = i == 1 && (p->cache == UM_CACHE_PREFIX || p->cache == UM_CACHE_DUAL);
        if ((counting && i >= planned) || (!forced && um_canvas_count_masks(&g->cv, from, end) == 0))
            break;
        if (p->max_nfe > 0 && g->nfe >= p->max_nfe) {
            g->done = true;
            break;
        }
        double gamma = p->eos_rejection ? um_schedule_eos_gamma(p->eos_gamma, i, planned) : 1.0;
        UM_TRY(run_step(g, b, from, start, end, i, counting ? g->counts[i] : 0, gamma, err));
    }
    return UM_OK;
}

static um_status check_request(const um_model *m, const int32_t *prompt, int n_prompt, const um_generate_params *p,
                               um_error *err) {
    const um_hparams *hp = &m->hp;
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
    if (p->logits_eos_inf && hp->eos_id < 0)
        return um_fail(err, UM_ERR_ARG, "logits_eos_inf needs an EOS id, and the model has none");
    if (p->confidence_eos_eot_inf && hp->eot_id < 0)
        return um_fail(err, UM_ERR_ARG, "confidence_eos_eot_inf needs an EOT id, and the model has none");
    if (p->early_stop && hp->eos_id < 0)
        return um_fail(err, UM_ERR_ARG, "early_stop needs an EOS id, and the model has none");
    return UM_OK;
}

um_status um_generate(um_model *m, const int32_t *prompt, int n_prompt, const um_generate_params *p,
                      um_generation *out, um_error *err) {
    memset(out, 0, sizeof *out);
    UM_TRY(check_request(m, prompt, n_prompt, p, err));
    double t0 = um_now();
    gen_state g;
    UM_TRY(init_state(&g, m, prompt, n_prompt, p, err));
    int n_blocks = um_schedule_n_blocks(p);
    um_status s = UM_OK;
    for (int b = 0; b < n_blocks && !g.done && s == UM_OK; b++)
        s = run_block(&g, b, err);
    if (s == UM_OK) {
        out->tokens = g.cv.rows; /* row 0 is the canvas; the rest is unused space */
        g.cv.rows = NULL;
        out->n_tokens = g.cv.len;
        out->prompt_len = n_prompt;
        out->nfe = g.nfe;
        out->forward_seconds = g.forward_seconds;
        out->seconds = um_now() - t0;
    }
    free_state(&g);
    return s;
}

void um_generation_free(um_generation *gen) {
    free(gen->tokens);
    memset(gen, 0, sizeof *gen);
}
