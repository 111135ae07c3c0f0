/* The default generation parameters, and um_generate: a loop over one
 * session (session.c holds the generation loop). */
#include <stdlib.h>
#include <string.h>

#include "diffusion/diffusion.h"

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
    p.schedule_eps = 1e-3;
    p.loop = UM_LOOP_STEPS;
    p.maximum_unroll = 4;
    p.expected_tpf = 8;
    p.prefix_look = p.after_look = -1;
    p.cont_weight = 0.3;
    p.cont_weight_init = 0.15;
    p.cont_weight_growth = 0.02;
    p.threshold_decay = 0.02;
    p.minimal_topk = 1;
    return p;
}

um_status um_generate(um_context *ctx, const int32_t *prompt, int n_prompt, const um_generate_params *p,
                      um_generation *out, um_error *err) {
    memset(out, 0, sizeof *out);
    um_session *s;
    UM_TRY(um_session_begin(um_context_model(ctx), prompt, n_prompt, p, &s, err));
    um_status st = UM_OK;
    while (st == UM_OK && !um_session_finished(s))
        st = um_session_step(ctx, s, err);
    if (st == UM_OK)
        st = um_session_result(s, out, err);
    if (st != UM_OK)
        um_generation_free(out);
    um_session_free(s);
    return st;
}

void um_generation_free(um_generation *gen) {
    free(gen->tokens);
    memset(gen, 0, sizeof *gen);
}
