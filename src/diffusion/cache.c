/* The KV cache manager: which positions a step recomputes.
 *
 *   none      every step runs the whole canvas (the reference sampler)
 *   prefix    Fast-dLLM generate_with_prefix_cache: a block's first step is a
 *             full pass, which also fills the cache; later steps run
 *             [block start, end of canvas) against the cached K/V of the
 *             positions before the block
 *   dual      Fast-dLLM generate_with_dual_cache: later steps run only the
 *             block, against the cached K/V of the prefix and the suffix; the
 *             block's own slots are rewritten each step
 *   vicinity  dInfer's vicinity refresh: later steps run the block plus
 *             `before` positions before it and `after` after it; a full pass
 *             at the block's first step and every `refresh` steps of the
 *             block (dInfer's loop, session.c, decides its own full passes)
 *
 * Each canvas row (the canvas, and CFG's unconditional copy) owns a cache
 * holding K/V for every position (model.h's um_kv_cache), so each mode is
 * only a choice of range: a pass over [q0, q1) rewrites those slots and reads
 * the rest as the last pass that covered them left them — for prefix and
 * dual, the block's first (full) pass, as Fast-dLLM does. Block diffusion
 * (LLaDA2: block-causal attention) is one more range: the positions whose
 * K/V are not final yet, up to the current block's end, against keys up to
 * that end (um_batch_entry's n_kv and block); the session chooses it. */
#include <string.h>

#include "diffusion/diffusion.h"

void um_cache_init(um_cache *c, const um_generate_params *p) {
    memset(c, 0, sizeof *c);
    c->mode = p->cache;
    c->before = p->prefix_look >= 0 ? p->prefix_look : p->cache_window;
    c->after = p->after_look >= 0 ? p->after_look : p->cache_window;
    c->refresh = p->cache_refresh;
    c->block = p->loop == UM_LOOP_BLOCKS ? p->block_length : 0;
}

um_status um_cache_ready(um_cache *c, um_backend *be, const um_model *m, int n_rows, int len, um_error *err) {
    for (int r = 0; (c->mode != UM_CACHE_NONE || c->block > 0) && r < n_rows; r++) {
        if (c->kv[r].ops == be->ops)
            continue;
        if (c->kv[r].ops)
            return um_fail(err, UM_ERR_ARG, "a session's KV cache lives on the kind of backend that first stepped it");
        UM_TRY(um_kv_cache_init(&c->kv[r], be, m, len, err));
    }
    return UM_OK;
}

void um_cache_free(um_cache *c) {
    for (int r = 0; r < UM_CANVAS_MAX_ROWS; r++)
        um_kv_cache_free(&c->kv[r]);
}

um_cache_plan um_cache_plan_range(const um_cache *c, int len, int block_start, int block_end) {
    switch (c->mode) {
    case UM_CACHE_PREFIX:
        return (um_cache_plan){block_start, len, false};
    case UM_CACHE_DUAL:
        return (um_cache_plan){block_start, block_end, false};
    case UM_CACHE_VICINITY: {
        int q0 = block_start - c->before, q1 = block_end + c->after;
        return (um_cache_plan){q0 < 0 ? 0 : q0, q1 > len ? len : q1, false};
    }
    case UM_CACHE_NONE:
    default:
        return (um_cache_plan){0, len, true};
    }
}

um_cache_plan um_cache_plan_step(const um_cache *c, int len, int block_start, int block_end, int step_in_block) {
    bool refresh = step_in_block == 0 || (c->mode == UM_CACHE_VICINITY && c->refresh > 0 &&
                                          step_in_block % c->refresh == 0);
    return refresh ? (um_cache_plan){0, len, true} : um_cache_plan_range(c, len, block_start, block_end);
}

void um_cache_entries(um_cache *c, const int32_t *rows, int n_rows, int len, um_cache_plan plan, const int32_t *sel,
                      int n_sel, um_batch_entry *out) {
    for (int r = 0; r < n_rows; r++) {
        const int32_t *row = rows + (size_t)r * len;
        if (c->block > 0) /* block-causal: keys up to the range's end, which is its block's */
            out[r] = (um_batch_entry){row, len, plan.q0, plan.q1, plan.q1, &c->kv[r], sel, n_sel, NULL, c->block};
        else if (c->mode == UM_CACHE_NONE)
            out[r] = (um_batch_entry){row, len, 0, len, len, NULL, sel, n_sel, NULL, 0};
        else
            out[r] = (um_batch_entry){row, len, plan.q0, plan.q1, len, &c->kv[r], sel, n_sel, NULL, 0};
    }
}
