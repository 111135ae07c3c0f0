/* unmask chat: an interactive conversation. Each turn renders the whole
 * history with the model's chat template and generates the answer; like
 * LLaDA's chat.py, the answer is kept without its EOS padding. On a
 * terminal the line is read with libedit (editing, history). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

#include "cli.h"
#include "text.h"

#define MAX_LINE 65536

static void chat_usage(void) {
    puts("usage: unmask chat -m MODEL [--system TEXT] [--chat-template NAME] [generation options]\n"
         "\n"
         "Talk with a model. Type a message and press enter (on a terminal with line editing and\n"
         "history); /help lists the commands: /reset forgets the conversation, /exit (or Ctrl-D)\n"
         "leaves. Ctrl-C during an answer stops it and returns to the prompt. When the conversation\n"
         "outgrows the context (the model's, or -c), its oldest turns are dropped.\n"
         "\n"
         "  -m, --model PATH         GGUF file or Hugging Face model directory (default:\n"
         "                           $UNMASK_MODEL, else the shipped models/stories)\n"
         "      --system TEXT        a system message at the start of the conversation\n"
         "      --chat-template NAME override the chat format: " UM_CHAT_TEMPLATE_NAMES "\n"
         "  -n, --gen-length N       tokens per answer (default 128); --steps, --block-length, --temp,\n"
         "                           --cfg-scale, --seed, --cache, --decoder, ... as for unmask run\n"
         "  -t, --threads N          worker threads (default: one per physical core)\n"
         CLI_NO_REPACK_HELP
         "  -c, --ctx-size N         the context: the conversation and the answer (default 0: the model's)\n"
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

/* Takes back the last message (a user turn that got no answer). */
static void reset_last(history *h) {
    if (h->n > 0)
        free((char *)h->msgs[--h->n].content);
}

/* Keeps the system message (if any) and drops the rest. */
static void reset_history(history *h, bool keep_first) {
    int keep = keep_first && h->n > 0 ? 1 : 0;
    for (int i = keep; i < h->n; i++)
        free((char *)h->msgs[i].content);
    h->n = keep;
}

/* Drops the oldest exchange after the system message (if any). */
static void drop_oldest(history *h, int first) {
    int k = h->n - first > 2 ? 2 : 1;
    for (int i = first; i < first + k; i++)
        free((char *)h->msgs[i].content);
    memmove(h->msgs + first, h->msgs + first + k, (size_t)(h->n - first - k) * sizeof *h->msgs);
    h->n -= k;
}

/* The history rendered so that it and the answer fit the model's context,
 * dropping the oldest turns (said once); false when even the last message
 * alone does not fit. */
static bool fitting_prompt(cli_text *t, history *h, int first, int room, bool *warned, int32_t **ids, int *n) {
    for (;;) {
        if (!cli_text_prompt_chat(t, h->msgs, h->n, ids, n))
            return false;
        if (*n <= room)
            return true;
        free(*ids);
        if (h->n - first <= 1) {
            cli_error("chat", "the message (%d tokens with the template) does not fit the %d tokens the context "
                              "leaves beside the answer", *n, room);
            return false;
        }
        if (!*warned)
            fprintf(stderr, "(the conversation no longer fits the context: dropping its oldest turns)\n");
        *warned = true;
        drop_oldest(h, first);
    }
}

/* One turn: the history rendered, generated, the answer printed and kept.
 * Ctrl-C stops the answer: the message is taken back and the prompt returns. */
static bool answer_turn(um_context *ctx, cli_text *t, history *h, int first, int room, bool *warned,
                        um_generate_params *p) {
    int32_t *prompt;
    int n_prompt;
    if (!fitting_prompt(t, h, first, room, warned, &prompt, &n_prompt)) {
        reset_last(h);
        return true; /* the conversation goes on */
    }
    um_generation g;
    um_error err;
    bool interrupted;
    um_status s = cli_generate(ctx, prompt, n_prompt, p, &g, &interrupted, &err);
    free(prompt);
    if (s != UM_OK) {
        cli_error("chat", "%s", err.msg);
        return false;
    }
    if (interrupted) {
        fprintf(stderr, "\n(answer stopped)\n");
        reset_last(h);
        um_generation_free(&g);
        return true;
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

/* The next line of input, malloc'd: with libedit's editing on a terminal,
 * else as it comes (a pipe, a file). NULL at the end of input. */
static char *read_line(bool tty) {
    if (tty)
        return readline("> ");
    printf("> ");
    fflush(stdout);
    char *line = malloc(MAX_LINE);
    if (line && fgets(line, MAX_LINE, stdin))
        return line;
    free(line);
    return NULL;
}

/* A /command; false when it ends the conversation. */
static bool command(const char *line, history *h, bool keep_system) {
    if (strcmp(line, "/exit") == 0 || strcmp(line, "/quit") == 0)
        return false;
    if (strcmp(line, "/reset") == 0) {
        reset_history(h, keep_system);
        printf("(conversation reset)\n");
    } else if (strcmp(line, "/help") == 0) {
        printf("/reset  forget the conversation (the --system message stays)\n"
               "/exit   leave (also Ctrl-D)\n"
               "/help   this list\n"
               "Ctrl-C during an answer stops it.\n");
    } else {
        printf("unknown command '%s' (/help lists them; a message cannot start with '/')\n", line);
    }
    return true;
}

int cmd_chat(int argc, char **argv) {
    cli_args a;
    um_generate_params p = cli_generate_defaults();
    cli_gen_flags gf = {.p = &p, .gen_length = -1, .steps = -1, .block = -1};
    const char *model = NULL, *system = NULL, *template_name = NULL;
    int threads = 0, ctx_size = 0;
    bool no_repack = false;
    cli_init(&a, "chat", argc, argv);
    while (cli_next(&a)) {
        if (cli_is(&a, "-h", "--help")) {
            chat_usage();
            return 0;
        } else if (cli_is(&a, "-m", "--model")) model = cli_value(&a);
        else if (cli_is(&a, NULL, "--system")) system = cli_value(&a);
        else if (cli_is(&a, NULL, "--chat-template")) template_name = cli_value(&a);
        else if (cli_is(&a, "-t", "--threads")) threads = cli_int(&a, 1, 1024);
        else if (cli_is(&a, NULL, "--no-repack")) no_repack = true;
        else if (cli_is(&a, "-c", "--ctx-size")) ctx_size = cli_int(&a, 0, 1 << 24);
        else if (!cli_generation_flag(&a, &gf)) cli_unknown(&a);
    }
    if (!a.ok)
        return 2;
    cli_generation_finish(&gf, 128);
    char default_path[4096];
    model = cli_model_path(model, default_path, sizeof default_path);
    um_model *m = cli_open_model("chat", model, threads, no_repack ? CLI_MODEL_NO_REPACK : 0);
    um_context *ctx = m ? cli_open_context("chat", m) : NULL;
    if (m)
        cli_generation_for_model(&gf, m);
    cli_text t;
    if (!ctx || !cli_text_open(&t, "chat", model, template_name)) {
        um_context_free(ctx);
        um_model_close(m);
        return 1;
    }
    um_model_info info;
    um_model_get_info(m, &info);
    int context = ctx_size > 0 && ctx_size < info.max_seq_len ? ctx_size : info.max_seq_len;
    int room = context - p.gen_length; /* what the history may take beside the answer */
    if (room < 1) {
        cli_error("chat", "-n %d leaves no room for the conversation in the %d-token context%s", p.gen_length, context,
                  context == ctx_size ? " (-c)" : " of the model");
        cli_text_close(&t);
        um_context_free(ctx);
        um_model_close(m);
        return 2;
    }
    history h = {0};
    if (system)
        add_message(&h, "system", system);
    int first = system ? 1 : 0, rc = 0;
    bool warned = false, tty = isatty(STDIN_FILENO);
    char *line;
    while ((line = read_line(tty)) != NULL) {
        trim_newline(line);
        if (line[0] == '/') {
            bool go_on = command(line, &h, system != NULL);
            free(line);
            if (go_on)
                continue;
            break;
        }
        if (tty && line[0])
            add_history(line);
        bool ok = !line[0] || (add_message(&h, "user", line) && answer_turn(ctx, &t, &h, first, room, &warned, &p));
        free(line);
        if (!ok) {
            rc = 1;
            break;
        }
    }
    if (!line && tty)
        putchar('\n'); /* Ctrl-D: leave the terminal on a fresh line */
    reset_history(&h, false);
    free(h.msgs);
    cli_text_close(&t);
    um_context_free(ctx);
    um_model_close(m);
    return rc;
}
