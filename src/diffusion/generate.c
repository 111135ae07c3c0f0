/* The LLaDA reference sampler (ML-GSAI/LLaDA generate.py: generate), decision
 * for decision:
 *
 *   canvas = prompt + gen_length masks, split into blocks of block_length
 *   for each block, for each of its steps:
 *     logits = model(canvas)                 (with CFG: un + (s+1)(cond - un))
 *     every masked position up to the block's end proposes a token and a
 *     confidence (sampler.c); positions past the block get -inf
 *     commit the step's count of most confident proposals (schedule.c)
 *
 * The output head runs only on the positions that can be committed. */
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
    return p;
}

typedef struct {
    um_model *m;
    const um_generate_params *p;
    um_sampler sampler;
    int n_prompt, len, n_rows, n_vocab;
    int32_t *rows;     /* [n_rows][len]: the canvas, then (CFG) the unconditional copy */
    bool *is_prompt;   /* prompt_index: positions that were not masks at the start */
    int32_t *cand;     /* masked positions before the block's end */
    double *conf;      /* their confidences */
    int32_t *tok;      /* their proposed tokens */
    int32_t *chosen;   /* positions committed this step */
    int32_t *chosen_tok;
    float *logits;     /* [n_rows][n_cand][n_vocab] */
    int nfe;
    double forward_seconds;
} gen_state;

static void free_state(gen_state *g) {
    free(g->rows);
    free(g->is_prompt);
    free(g->cand);
    free(g->conf);
    free(g->tok);
    free(g->chosen);
    free(g->chosen_tok);
    free(g->logits);
}

static um_status init_state(gen_state *g, um_model *m, const int32_t *prompt, int n_prompt,
                            const um_generate_params *p, um_error *err) {
    const um_hparams *hp = &m->hp;
    memset(g, 0, sizeof *g);
    g->m = m;
    g->p = p;
    g->n_prompt = n_prompt;
    g->len = n_prompt + p->gen_length;
    g->n_rows = p->cfg_scale > 0 ? 2 : 1;
    g->n_vocab = hp->n_vocab;
    g->sampler.temperature = p->temperature;
    g->sampler.remasking = p->remasking;
    g->sampler.eot_inf_id = p->confidence_eos_eot_inf ? hp->eot_id : -1;
    g->sampler.seed = p->seed;

    int prompt_masks = 0;
    for (int i = 0; i < n_prompt; i++)
        prompt_masks += prompt[i] == hp->mask_id;
    size_t max_cand = (size_t)prompt_masks + (size_t)p->block_length, len = (size_t)g->len;
    g->rows = malloc((size_t)g->n_rows * len * sizeof *g->rows);
    g->is_prompt = calloc(len, sizeof *g->is_prompt);
    g->cand = malloc(max_cand * sizeof *g->cand);
    g->conf = malloc(max_cand * sizeof *g->conf);
    g->tok = malloc(max_cand * sizeof *g->tok);
    g->chosen = malloc(max_cand * sizeof *g->chosen);
    g->chosen_tok = malloc(max_cand * sizeof *g->chosen_tok);
    size_t n_logits;
    if (!um_mul_size(max_cand * (size_t)g->n_rows, (size_t)g->n_vocab, &n_logits) ||
        !(g->logits = malloc(n_logits * sizeof(float))) || !g->rows || !g->is_prompt || !g->cand || !g->conf ||
        !g->tok || !g->chosen || !g->chosen_tok) {
        free_state(g);
        return um_fail(err, UM_ERR_NOMEM, "out of memory for a canvas of %d tokens", g->len);
    }
    for (int i = 0; i < g->len; i++) {
        g->rows[i] = i < n_prompt ? prompt[i] : hp->mask_id;
        g->is_prompt[i] = g->rows[i] != hp->mask_id;
    }
    return UM_OK;
}

/* Masked positions in [0, end): the only ones whose confidence is finite. */
static int collect_candidates(gen_state *g, int end) {
    int n = 0;
    for (int i = 0; i < end; i++)
        if (g->rows[i] == g->m->hp.mask_id)
            g->cand[n++] = i;
    return n;
}

/* One forward pass; leaves the (guided) logits of the candidates in row 0. */
static um_status predict(gen_state *g, int n_cand, um_error *err) {
    int len = g->len;
    if (g->n_rows == 2) { /* unconditional row: the prompt masked out */
        int32_t *un = g->rows + len;
        for (int i = 0; i < len; i++)
            un[i] = g->is_prompt[i] ? g->m->hp.mask_id : g->rows[i];
    }
    double t0 = um_now();
    UM_TRY(um_model_forward(g->m, g->rows, g->n_rows, len, g->cand, n_cand, g->logits, err));
    g->forward_seconds += um_now() - t0;
    g->nfe++;
    if (g->n_rows == 2) {
        float s = (float)(g->p->cfg_scale + 1.0);
        size_t n = (size_t)n_cand * (size_t)g->n_vocab;
        const float *un = g->logits + n;
        for (size_t i = 0; i < n; i++)
            g->logits[i] = un[i] + s * (g->logits[i] - un[i]);
    }
    if (g->p->logits_eos_inf)
        for (int c = 0; c < n_cand; c++)
            g->logits[(size_t)c * g->n_vocab + g->m->hp.eos_id] = -INFINITY;
    return UM_OK;
}

static um_status run_step(gen_state *g, int step, int block, int block_end, int n_commit, um_error *err) {
    int n_cand = collect_candidates(g, block_end);
    UM_TRY(predict(g, n_cand, err));
    for (int c = 0; c < n_cand; c++)
        g->conf[c] = um_sample_position(&g->sampler, g->logits + (size_t)c * g->n_vocab, g->n_vocab, step,
                                        g->cand[c], &g->tok[c]);
    int n = um_select_topk(g->cand, g->conf, n_cand, n_commit, g->chosen);
    if (n < 0)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        int c = 0;
        while (g->cand[c] != g->chosen[i])
            c++;
        g->rows[g->chosen[i]] = g->tok[c];
        g->chosen_tok[i] = g->tok[c];
    }
    if (g->p->on_step) {
        um_step_info info = {step, block, g->rows, g->len, g->n_prompt, g->chosen, g->chosen_tok, n};
        if (g->p->on_step(&info, g->p->user_data) != 0)
            return um_fail(err, UM_ERR_ABORTED, "generation stopped by the step callback");
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
    UM_TRY(um_schedule_check(p, n_prompt, hp->max_seq, err));
    if (p->logits_eos_inf && hp->eos_id < 0)
        return um_fail(err, UM_ERR_ARG, "logits_eos_inf needs an EOS id, and the model has none");
    if (p->confidence_eos_eot_inf && hp->eot_id < 0)
        return um_fail(err, UM_ERR_ARG, "confidence_eos_eot_inf needs an EOT id, and the model has none");
    return UM_OK;
}

um_status um_generate(um_model *m, const int32_t *prompt, int n_prompt, const um_generate_params *p,
                      um_generation *out, um_error *err) {
    memset(out, 0, sizeof *out);
    UM_TRY(check_request(m, prompt, n_prompt, p, err));
    double t0 = um_now();
    gen_state g;
    UM_TRY(init_state(&g, m, prompt, n_prompt, p, err));
    int n_blocks = p->gen_length / p->block_length, steps_per_block = p->steps / n_blocks;
    int *counts = malloc((size_t)steps_per_block * sizeof *counts);
    um_status s = counts ? UM_OK : um_fail(err, UM_ERR_NOMEM, "out of memory");
    for (int b = 0; b < n_blocks && s == UM_OK; b++) {
        int start = n_prompt + b * p->block_length, end = start + p->block_length, masked = 0;
        for (int i = start; i < end; i++)
            masked += g.rows[i] == m->hp.mask_id;
        um_schedule_transfer_counts(masked, steps_per_block, counts);
        for (int i = 0; i < steps_per_block && s == UM_OK; i++)
            s = run_step(&g, b * steps_per_block + i, b, end, counts[i], err);
    }
    free(counts);
    if (s == UM_OK) {
        out->tokens = g.rows; /* row 0 is the canvas; the rest is unused space */
        g.rows = NULL;
        out->n_tokens = g.len;
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
