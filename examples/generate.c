/* A minimal program on the public API: load a model, make a context, run a
 * generation step by step as a session, print ids.
 *
 *   example-generate MODEL_DIR [TOKEN_ID ...]
 */
#include <stdio.h>
#include <stdlib.h>

#include "unmask.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR [TOKEN_ID ...]\n", argv[0]);
        return 2;
    }
    int n_prompt = argc - 2;
    int32_t *prompt = malloc((size_t)(n_prompt > 0 ? n_prompt : 1) * sizeof *prompt);
    if (!prompt)
        return 1;
    for (int i = 0; i < n_prompt; i++)
        prompt[i] = (int32_t)atoi(argv[i + 2]);

    um_error err;
    um_model *model;
    um_context *ctx = NULL;
    if (um_model_open(argv[1], NULL, &model, &err) != UM_OK || um_context_create(model, NULL, &ctx, &err) != UM_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        free(prompt);
        return 1;
    }
    um_generate_params params = um_generate_default_params();
    params.gen_length = 32;
    params.steps = 32;
    params.block_length = 8;
    um_session *s;
    um_generation out = {0};
    int rc = 0;
    um_status st = um_session_begin(model, prompt, n_prompt, &params, &s, &err);
    while (st == UM_OK && !um_session_finished(s))
        st = um_session_step(ctx, s, &err); /* one forward pass each */
    if (st == UM_OK)
        st = um_session_result(s, &out, &err);
    if (st != UM_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        rc = 1;
    } else {
        for (int i = out.prompt_len; i < out.n_tokens; i++)
            printf("%d%c", out.tokens[i], i + 1 < out.n_tokens ? ' ' : '\n');
        fprintf(stderr, "nfe %d in %.3f s\n", out.nfe, out.seconds);
    }
    um_generation_free(&out);
    um_session_free(s);
    um_context_free(ctx);
    um_model_close(model);
    free(prompt);
    return rc;
}
