/* unmask forward: one forward pass, logits written as safetensors. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "format/safetensors.h"

static void forward_usage(void) {
    puts("usage: unmask forward -m MODEL --prompt-tokens IDS -o LOGITS.safetensors [-t N]\n"
         "\n"
         "Run one forward pass over the given tokens and write the logits as a safetensors\n"
         "file holding one F32 tensor 'logits' of shape [tokens, vocab].\n"
         "\n"
         "  -m, --model PATH         GGUF file or Hugging Face model directory\n"
         "      --prompt-tokens IDS  comma-separated token ids (mask ids allowed)\n"
         "  -o, --output FILE        where to write the logits\n"
         "  -t, --threads N          worker threads (default: one per physical core)\n"
         "  -h, --help               this help");
}

int cmd_forward(int argc, char **argv) {
    cli_args a;
    const char *model = NULL, *prompt_text = NULL, *out_path = NULL;
    int threads = 0;
    cli_init(&a, "forward", argc, argv);
    while (cli_next(&a)) {
        if (cli_is(&a, "-h", "--help")) {
            forward_usage();
            return 0;
        } else if (cli_is(&a, "-m", "--model")) model = cli_value(&a);
        else if (cli_is(&a, NULL, "--prompt-tokens")) prompt_text = cli_value(&a);
        else if (cli_is(&a, "-o", "--output")) out_path = cli_value(&a);
        else if (cli_is(&a, "-t", "--threads")) threads = cli_int(&a, 1, 1024);
        else cli_unknown(&a);
    }
    if (!a.ok)
        return 2;
    if (!prompt_text || !out_path) {
        cli_error("forward", "need --prompt-tokens and -o (see unmask forward --help)");
        return 2;
    }
    int32_t *tokens;
    int n;
    if (!cli_parse_tokens("forward", prompt_text, &tokens, &n))
        return 2;
    um_model *m = cli_open_model("forward", model, threads, CLI_MODEL_NO_REPACK);
    um_context *ctx = m ? cli_open_context("forward", m) : NULL;
    if (!ctx) {
        um_model_close(m);
        free(tokens);
        return 1;
    }
    um_model_info info;
    um_model_get_info(m, &info);
    float *logits = malloc((size_t)n * (size_t)info.n_vocab * sizeof *logits);
    um_error err;
    int rc = 0;
    if (!logits) {
        cli_error("forward", "out of memory for %d x %d logits", n, info.n_vocab);
        rc = 1;
    } else if (um_forward(ctx, tokens, 1, n, logits, &err) != UM_OK) {
        cli_error("forward", "%s", err.msg);
        rc = 1;
    } else {
        um_st_desc d = {"logits", UM_F32, 2, {n, info.n_vocab}, logits};
        if (um_st_write(out_path, &d, 1, &err) != UM_OK) {
            cli_error("forward", "%s", err.msg);
            rc = 1;
        } else {
            fprintf(stderr, "wrote logits [%d, %d] to %s\n", n, info.n_vocab, out_path);
        }
    }
    free(logits);
    free(tokens);
    um_context_free(ctx);
    um_model_close(m);
    return rc;
}
