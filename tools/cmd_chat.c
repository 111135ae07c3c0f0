/* unmask chat: an interactive conversation. Each turn renders the whole
 * history with the model's chat template and generates the answer; like
 * LLaDA's chat.py, the answer is kept without its EOS padding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "text.h"

#define MAX_LINE 65536

static void chat_usage(void) {
    puts("usage: unmask chat -m MODEL [--system TEXT] [--chat-template NAME] [generation options]\n"
         "\n"
         "Talk with a model. Type a message and press enter; /reset forgets the conversation,\n"
         "/exit (or end of input) leaves.\n"
         "\n"
         "  -m, --model PATH         GGUF file or Hugging Face model directory (default:\n"
         "                           $UNMASK_MODEL, else the shipped models/stories)\n"
         "      --system TEXT        a system message at the start of the conversation\n"
         "      --chat-template NAME override the chat format: " UM_CHAT_TEMPLATE_NAMES "\n"
         "  -n, --gen-length N       tokens per answer (default 128); --steps, --block-length, --temp,\n"
         "                           --cfg-scale, --seed, --cache, --decoder, ... as for unmask run\n"
         "  -t, --threads N          worker threads (default: one per physical core)\n"
         "  -h, --help               this help");
}

typedef struct {
    um_chat_message *msgs;
    int n, cap;
} history;

static bool add_message(history *h, const char *role, const char *content) {
    if (h->n == h->cap) {
        int cap = h->cap ? 2 * h->cap : 8;
        um_chat_message *m = realloc(h->msgs, (size_t)cap * sizeof *m);
        if (!m)
            return false;
        h->msgs = m;
        h->cap = cap;
    }
    char *copy = strdup(content);
    if (!copy)
        return false;
    h->msgs[h->n++] = (um_chat_message){role, copy};
    return true;
}

/* Keeps the system message (if any) and drops the rest. */
static void reset_history(history *h, bool keep_first) {
    int keep = keep_first && h->n > 0 ? 1 : 0;
    for (int i = keep; i < h->n; i++)
        free((char *)h->msgs[i].content);
    h->n = keep;
}

/* One turn: the history rendered, generated, the answer printed and kept. */
static bool answer_turn(um_context *ctx, cli_text *t, history *h, um_generate_params *p) {
    int32_t *prompt;
    int n_prompt;
    if (!cli_text_prompt_chat(t, h->msgs, h->n, &prompt, &n_prompt))
        return false;
    um_generation g;
    um_error err;
    um_status s = um_generate(ctx, prompt, n_prompt, p, &g, &err);
    free(prompt);
    if (s != UM_OK) {
        cli_error("chat", "%s", err.msg);
        return false;
    }
    char *answer = cli_text_answer(t, g.tokens + g.prompt_len, g.n_tokens - g.prompt_len);
    if (answer) {
        printf("%s\n", answer);
        fprintf(stderr, "[nfe %d, %.2f s]\n", g.nfe, g.seconds);
        add_message(h, "assistant", answer);
    }
    free(answer);
    um_generation_free(&g);
    return answer != NULL;
}

static void trim_newline(char *s) {
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = 0;
}

int cmd_chat(int argc, char **argv) {
    cli_args a;
    um_generate_params p = cli_generate_defaults();
    cli_gen_flags gf = {.p = &p, .gen_length = -1, .steps = -1, .block = -1};
    const char *model = NULL, *system = NULL, *template_name = NULL;
    int threads = 0;
    cli_init(&a, "chat", argc, argv);
    while (cli_next(&a)) {
        if (cli_is(&a, "-h", "--help")) {
            chat_usage();
            return 0;
        } else if (cli_is(&a, "-m", "--model")) model = cli_value(&a);
        else if (cli_is(&a, NULL, "--system")) system = cli_value(&a);
        else if (cli_is(&a, NULL, "--chat-template")) template_name = cli_value(&a);
        else if (cli_is(&a, "-t", "--threads")) threads = cli_int(&a, 1, 1024);
        else if (!cli_generation_flag(&a, &gf)) cli_unknown(&a);
    }
    if (!a.ok)
        return 2;
    cli_generation_finish(&gf, 128);
    char default_path[4096];
    model = cli_model_path(model, default_path, sizeof default_path);
    um_model *m = cli_open_model("chat", model, threads, false);
    um_context *ctx = m ? cli_open_context("chat", m) : NULL;
    if (m)
        cli_generation_for_model(&gf, m);
    cli_text t;
    if (!ctx || !cli_text_open(&t, "chat", model, template_name)) {
        um_context_free(ctx);
        um_model_close(m);
        return 1;
    }
    history h = {0};
    if (system)
        add_message(&h, "system", system);
    char *line = malloc(MAX_LINE);
    int rc = 0;
    while (line) {
        printf("> ");
        fflush(stdout);
        if (!fgets(line, MAX_LINE, stdin))
            break;
        trim_newline(line);
        if (strcmp(line, "/exit") == 0)
            break;
        if (strcmp(line, "/reset") == 0) {
            reset_history(&h, system != NULL);
            printf("(conversation reset)\n");
            continue;
        }
        if (!line[0])
            continue;
        if (!add_message(&h, "user", line) || !answer_turn(ctx, &t, &h, &p)) {
            rc = 1;
            break;
        }
    }
    reset_history(&h, false);
    free(h.msgs);
    free(line);
    cli_text_close(&t);
    um_context_free(ctx);
    um_model_close(m);
    return rc;
}
