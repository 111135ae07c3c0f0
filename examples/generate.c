/* A minimal program on the public API: load a model, make a context, run a
 * generation step by step as a session.
 *
 *   example-generate MODEL [TOKEN_ID ...]     ids in, ids out
 *   example-generate MODEL --chat "TEXT"      text in (the model's chat template), text out
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unmask.h"

/* The prompt: ids from the command line, or a user turn through the model's
 * tokenizer and chat template. */
static int32_t *make_prompt(int argc, char **argv, um_tokenizer *tok, size_t *n, um_error *err) {
    if (tok) {
        um_chat_message turn = {"user", argv[3]};
        int32_t *ids;
        return um_chat_prompt(tok, &turn, 1, &ids, n, err) == UM_OK ? ids : NULL;
    }
    *n = (size_t)(argc - 2);
    int32_t *ids = malloc((*n > 0 ? *n : 1) * sizeof *ids);
    for (size_t i = 0; ids && i < *n; i++)
        ids[i] = (int32_t)atoi(argv[i + 2]);
    return ids;
}

/* The answer: the generated ids, or their text (special tokens left out). */
static void print_answer(const um_generation *out, um_tokenizer *tok) {
    char *text;
    size_t len;
    um_error err;
    if (tok && um_tokenizer_decode(tok, out->tokens + out->prompt_len, (size_t)(out->n_tokens - out->prompt_len),
                                   true, &text, &len, &err) == UM_OK) {
        printf("%s\n", text);
        free(text);
        return;
    }
    for (int i = out->prompt_len; i < out->n_tokens; i++)
        printf("%d%c", out->tokens[i], i + 1 < out->n_tokens ? ' ' : '\n');
}

int main(int argc, char **argv) {
    bool chat = argc == 4 && strcmp(argv[2], "--chat") == 0;
    if (argc < 2 || (argc > 2 && strcmp(argv[2], "--chat") == 0 && !chat)) {
        fprintf(stderr, "usage: %s MODEL [TOKEN_ID ...]\n       %s MODEL --chat TEXT\n", argv[0], argv[0]);
        return 2;
    }
    um_error err;
    um_model *model = NULL;
    um_context *ctx = NULL;
    um_tokenizer *tok = NULL;
    int32_t *prompt = NULL;
    size_t n_prompt = 0;
    if (um_model_open(argv[1], NULL, &model, &err) != UM_OK || um_context_create(model, NULL, &ctx, &err) != UM_OK ||
        (chat && um_tokenizer_load(argv[1], &tok, &err) != UM_OK) ||
        !(prompt = make_prompt(argc, argv, tok, &n_prompt, &err))) {
        fprintf(stderr, "error: %s\n", err.msg);
        um_tokenizer_free(tok);
        um_context_free(ctx);
        um_model_close(model);
        return 1;
    }
    um_generate_params params = um_generate_default_params();
    params.gen_length = 32;
    params.steps = 32;
    params.block_length = 8;
    um_session *s = NULL;
    um_generation out = {0};
    int rc = 0;
    um_status st = um_session_begin(model, prompt, (int)n_prompt, &params, &s, &err);
    while (st == UM_OK && !um_session_finished(s))
        st = um_session_step(ctx, s, &err); /* one forward pass each */
    if (st == UM_OK)
        st = um_session_result(s, &out, &err);
    if (st != UM_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        rc = 1;
    } else {
        print_answer(&out, tok);
        fprintf(stderr, "nfe %d in %.3f s (unmask %s)\n", out.nfe, out.seconds, um_version());
    }
    um_generation_free(&out);
    um_session_free(s);
    um_tokenizer_free(tok);
    um_context_free(ctx);
    um_model_close(model);
    free(prompt);
    return rc;
}
