/* unmask eval: how good a model is. Two measures:
 *
 *  - the ELBO bound on a text's negative log-likelihood (perplexity), by the
 *    Monte Carlo estimate of LLaDA (Nie et al. 2025): mask each token with
 *    probability p, score the masked tokens, weight by 1/p;
 *  - accuracy on a JSONL task file (exact match, or GSM8K's final number),
 *    for one or more decoding settings side by side, with NFE and speed.
 *
 * --masked-batch scores one given masked batch (the training fixtures'
 * layout), so the loss code is checked against PyTorch's number directly. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/sys.h"
#include "cli.h"
#include "format/safetensors.h"
#include "text.h"
#include "train/train.h"

#define MASK_EPS 1e-3    /* p_mask = (1 - eps) t + eps, as LLaDA's forward_process */
#define MAX_SETTINGS 64
#define MAX_WORDS 128    /* flags in one --setting */

static void eval_usage(void) {
    puts("usage: unmask eval -m MODEL (--text FILE | --tasks FILE.jsonl | --masked-batch FILE) [options]\n"
         "\n"
         "Perplexity (--text): the ELBO bound on the negative log-likelihood, estimated by Monte Carlo as\n"
         "LLaDA does (Nie et al. 2025): the text is cut into rows of --seq tokens; for each row and\n"
         "sample, t ~ U(0,1), p = (1 - 1e-3) t + 1e-3, every token is masked with probability p, one forward\n"
         "pass scores the masked tokens: sum of -log p(token) / p. Samples are averaged, rows summed, and the\n"
         "sum divided by the tokens. In expectation the estimate is >= the true NLL, so perplexity = exp(it)\n"
         "is an upper bound.\n"
         "\n"
         "  -m, --model PATH         GGUF file or Hugging Face directory (with its tokenizer);\n"
         "                           default: $UNMASK_MODEL, else the shipped models/stories\n"
         "      --text FILE          text to score; documents split at --doc-sep, each followed by EOS\n"
         "      --doc-sep STR        document separator (default <|endoftext|>; '\\n\\n' splits at blank lines)\n"
         "      --seq N              tokens per row (default 256)\n"
         "      --samples K          Monte Carlo samples per row (default 8)\n"
         "      --limit-tokens N     score only the first N tokens\n"
         "  -s, --seed N             seed of the masks (default 0; the same seed gives the same result)\n"
         "\n"
         "Task accuracy (--tasks): each line is {\"prompt\": ..., \"answer\": ...} (or \"response\"), scored by\n"
         "exact match of the generated text (cut at EOS, whitespace trimmed), or GSM8K's {\"question\": ...,\n"
         "\"answer\": \"... #### 42\"}, scored by the number after #### against the last number generated\n"
         "(commas removed).\n"
         "\n"
         "      --tasks FILE         the JSONL file\n"
         "      --limit N            only the first N examples\n"
         "      --chat               wrap each prompt in the model's chat template (--system TEXT,\n"
         "                           --chat-template NAME as for unmask run)\n"
         "  -n, --gen-length N ...   generation flags as for unmask run (--steps, --block-length, --cache,\n"
         "                           --decoder, --threshold, ...): the base of every setting\n"
         "      --setting \"FLAGS\"    one row of the table: generation flags applied over the base, e.g.\n"
         "                           --setting \"--cache dual --decoder threshold --threshold 0.9\" (repeatable;\n"
         "                           without it, one row with the base flags)\n"
         "      --show N             print the first N outputs of each setting on stderr\n"
         "\n"
         "      --masked-batch FILE  the loss of one masked batch: a safetensors file with input_ids and\n"
         "                           noisy_ids (I32 [rows, seq]) and p_mask (F64 [rows, seq]); prints\n"
         "                           sum over masked positions of -log p(token) / p_mask, over rows * seq\n"
         "  -t, --threads N          worker threads (default: one per physical core)\n"
         CLI_NO_REPACK_HELP
         "      --json               print the result as one JSON object\n"
         "  -h, --help               this help");
}

/* ---- the masked-token loss ---- */

/* -log softmax(logits)[tok], in double so a 100k-wide vocabulary sums exactly enough. */
static double neg_log_prob(const float *logits, int n_vocab, int tok) {
    double mx = logits[0], sum = 0;
    for (int v = 1; v < n_vocab; v++)
        mx = logits[v] > mx ? logits[v] : mx;
    for (int v = 0; v < n_vocab; v++)
        sum += exp((double)logits[v] - mx);
    return log(sum) + mx - (double)logits[tok];
}

/* Sum over the masked positions of one row (noisy == mask_id) of
 * -log p(x0) / p_mask: the numerator of LLaDA's pre-training loss. logits is
 * scratch space for seq * n_vocab floats; *forwards counts the passes run. */
static um_status row_masked_nll(um_context *ctx, const int32_t *x0, const int32_t *noisy, const double *p_mask, int seq,
                                float *logits, double *sum, int *forwards, um_error *err) {
    um_model_info info;
    um_model_get_info(um_context_model(ctx), &info);
    *sum = 0;
    int any = 0;
    for (int i = 0; i < seq; i++)
        any |= noisy[i] == info.mask_id;
    if (!any) /* nothing to score: spare the forward pass */
        return UM_OK;
    um_status s = um_forward(ctx, noisy, 1, seq, logits, err);
    if (s != UM_OK)
        return s;
    (*forwards)++;
    for (int i = 0; i < seq; i++) {
        /* a shifted model (Dream) predicts position i in row i - 1; row 0 keeps its own */
        size_t row = (size_t)(i > 0 ? i - info.logit_shift : i);
        if (noisy[i] == info.mask_id)
            *sum += neg_log_prob(logits + row * info.n_vocab, info.n_vocab, x0[i]) / p_mask[i];
    }
    return UM_OK;
}

/* The masked-token loss of a batch of n_rows rows, divided by n_rows * seq
 * (LLaDA's pre-training loss). Exposed through --masked-batch for the check
 * against the reference loss. */
static um_status masked_batch_loss(um_context *ctx, const int32_t *x0, const int32_t *noisy, const double *p_mask,
                                   int n_rows, int seq, double *loss, um_error *err) {
    um_model_info info;
    um_model_get_info(um_context_model(ctx), &info);
    float *logits = malloc((size_t)seq * info.n_vocab * sizeof *logits);
    if (!logits)
        return um_fail(err, UM_ERR_NOMEM, "out of memory for %d x %d logits", seq, info.n_vocab);
    double total = 0;
    um_status s = UM_OK;
    int forwards = 0;
    for (int r = 0; r < n_rows && s == UM_OK; r++) {
        double row;
        size_t off = (size_t)r * seq;
        s = row_masked_nll(ctx, x0 + off, noisy + off, p_mask + off, seq, logits, &row, &forwards, err);
        total += row;
    }
    free(logits);
    *loss = total / ((double)n_rows * seq);
    return s;
}

/* ---- --masked-batch ---- */

/* A [rows, seq] tensor of the given type, as a malloc'd copy (the map may be unaligned). */
static void *batch_tensor(const um_st_file *f, const char *name, um_dtype dt, int *rows, int *seq) {
    const um_st_tensor *t = um_st_find(f, name);
    if (!t || t->dtype != dt || t->n_dims != 2 || t->shape[0] < 1 || t->shape[1] < 1 ||
        (*rows && (t->shape[0] != *rows || t->shape[1] != *seq))) {
        cli_error("eval", "%s: needs a tensor %s of type %s and shape [rows, seq] (the same for all)", f->path,
                  name, um_dtype_name(dt));
        return NULL;
    }
    *rows = (int)t->shape[0];
    *seq = (int)t->shape[1];
    void *copy = malloc(t->nbytes);
    if (copy)
        memcpy(copy, t->data, t->nbytes);
    return copy;
}

static int eval_masked_batch(um_context *ctx, const char *path, bool json) {
    um_st_file f;
    um_error err;
    if (um_st_open(path, &f, &err) != UM_OK) {
        cli_error("eval", "%s", err.msg);
        return 1;
    }
    int rows = 0, seq = 0, rc;
    int32_t *x0 = batch_tensor(&f, "input_ids", UM_I32, &rows, &seq);
    int32_t *noisy = x0 ? batch_tensor(&f, "noisy_ids", UM_I32, &rows, &seq) : NULL;
    double *p_mask = noisy ? batch_tensor(&f, "p_mask", UM_F64, &rows, &seq) : NULL;
    double loss = 0;
    um_status s = p_mask ? masked_batch_loss(ctx, x0, noisy, p_mask, rows, seq, &loss, &err) : UM_ERR_FORMAT;
    if (p_mask && s != UM_OK)
        cli_error("eval", "%s: %s", path, err.msg);
    if (s == UM_OK && json)
        printf("{\"loss\":%.17g,\"rows\":%d,\"seq\":%d}\n", loss, rows, seq);
    else if (s == UM_OK)
        printf("masked-batch loss: %.10f nats/token (%d rows of %d)\n", loss, rows, seq);
    rc = s == UM_OK ? 0 : 1;
    free(x0);
    free(noisy);
    free(p_mask);
    um_st_close(&f);
    return rc;
}

/* ---- ELBO perplexity of a text ---- */

typedef struct {
    int seq, samples;
    long limit_tokens; /* 0: all */
    uint64_t seed;
    const char *sep;   /* document separator, NULL: <|endoftext|> */
} elbo_opts;

typedef struct {
    double nll;        /* the bound, nats per token */
    long tokens;       /* tokens scored */
    int rows, forwards;
    double seconds;
} elbo_result;

/* The tokens of the text that are not the last row's padding: every document
 * ends in EOS and the text's own bytes never encode to EOS (special tokens are
 * not parsed), so the real tokens end at the first EOS of the trailing run. */
static long real_tokens(const um_train_data *d, int eos) {
    long n = (long)d->n_rows * d->seq;
    while (n > 1 && d->tokens[n - 1] == eos && d->tokens[n - 2] == eos)
        n--;
    return n;
}

/* One row's estimate: the mean over samples of its masked-token NLL. Masks
 * come from the stream (seed, sample << 32 | row), so each row and sample has
 * its own and a result depends only on the seed. Positions at or past
 * n_score are context, never masked. */
static um_status elbo_row(um_context *ctx, const elbo_opts *o, const int32_t *x0, int row, int n_score, int32_t *noisy,
                          double *p_mask, float *logits, double *mean, int *forwards, um_error *err) {
    um_model_info info;
    um_model_get_info(um_context_model(ctx), &info);
    double sum = 0;
    for (int k = 0; k < o->samples; k++) {
        um_mdm_mask(o->seed, (uint64_t)k << 32 | (uint64_t)row, 1, o->seq, x0, NULL, info.mask_id, MASK_EPS, noisy,
                    p_mask);
        for (int i = n_score; i < o->seq; i++)
            noisy[i] = x0[i];
        double nll;
        um_status s = row_masked_nll(ctx, x0, noisy, p_mask, o->seq, logits, &nll, forwards, err);
        if (s != UM_OK)
            return s;
        sum += nll;
    }
    *mean = sum / o->samples;
    return UM_OK;
}

static um_status elbo(um_context *ctx, const um_train_data *d, long n_real, const elbo_opts *o, elbo_result *r,
                      um_error *err) {
    um_model_info info;
    um_model_get_info(um_context_model(ctx), &info);
    int32_t *noisy = malloc((size_t)o->seq * sizeof *noisy);
    double *p_mask = malloc((size_t)o->seq * sizeof *p_mask);
    float *logits = malloc((size_t)o->seq * info.n_vocab * sizeof *logits);
    um_status s = noisy && p_mask && logits ? UM_OK : um_fail(err, UM_ERR_NOMEM, "out of memory");
    memset(r, 0, sizeof *r);
    r->tokens = n_real;
    r->rows = (int)((n_real + o->seq - 1) / o->seq);
    double t0 = um_now(), total = 0;
    for (int row = 0; row < r->rows && s == UM_OK; row++) {
        long start = (long)row * o->seq;
        int n_score = n_real - start < o->seq ? (int)(n_real - start) : o->seq;
        double mean = 0;
        s = elbo_row(ctx, o, d->tokens + start, row, n_score, noisy, p_mask, logits, &mean, &r->forwards, err);
        total += mean;
        cli_progress(row + 1, r->rows, "eval: row %d/%d", row + 1, r->rows);
    }
    r->seconds = um_now() - t0;
    r->nll = total / (double)n_real;
    free(noisy);
    free(p_mask);
    free(logits);
    return s;
}

static void print_elbo(const elbo_result *r, const elbo_opts *o, bool json) {
    if (json) { /* through cJSON: an infinite perplexity prints as null, not as invalid JSON */
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "nll_bound", r->nll);
        cJSON_AddNumberToObject(j, "perplexity", exp(r->nll));
        cJSON_AddNumberToObject(j, "samples", o->samples);
        cJSON_AddNumberToObject(j, "seq", o->seq);
        cJSON_AddNumberToObject(j, "rows", r->rows);
        cJSON_AddNumberToObject(j, "tokens", (double)r->tokens);
        cJSON_AddNumberToObject(j, "forwards", r->forwards);
        cJSON_AddNumberToObject(j, "seed", (double)o->seed);
        cJSON_AddNumberToObject(j, "seconds", r->seconds);
        cli_print_json(j);
        return;
    }
    printf("ELBO bound on NLL: %.6f nats/token (Monte Carlo, LLaDA's estimate)\n", r->nll);
    printf("perplexity:        <= %.4f\n", exp(r->nll));
    printf("samples:           %d per row, %d rows of %d tokens, seed %llu\n", o->samples, r->rows, o->seq,
           (unsigned long long)o->seed);
    printf("tokens:            %ld\n", r->tokens);
    printf("time:              %.2f s, %d forward passes\n", r->seconds, r->forwards);
}

/* Tokenizes the text file into rows and prints the bound. */
static int eval_text(um_context *ctx, const char *model_path, const char *path, const elbo_opts *o, bool json) {
    um_model_info info;
    um_model_get_info(um_context_model(ctx), &info);
    if (o->seq > info.max_seq_len) {
        cli_error("eval", "--seq %d: the model's context is %d tokens", o->seq, info.max_seq_len);
        return 2;
    }
    if (info.eos_id < 0 || info.mask_id < 0) { /* documents end in EOS; the estimate needs masks */
        cli_error("eval", "%s: the model has no %s id", model_path, info.eos_id < 0 ? "EOS" : "mask");
        return 1;
    }
    cli_text t;
    if (!cli_text_open(&t, "eval", model_path, NULL))
        return 1;
    char *text = cli_text_read_file("eval", path), *sep = o->sep ? cli_unescape(o->sep) : NULL;
    um_train_data d = {0};
    um_error err;
    int rc = 1;
    if (text && um_train_data_text(t.tok, text, strlen(text), sep, info.eos_id, o->seq, &d, &err) != UM_OK) {
        cli_error("eval", "%s: %s", path, err.msg);
    } else if (text) {
        long n_real = real_tokens(&d, info.eos_id);
        if (o->limit_tokens > 0 && o->limit_tokens < n_real)
            n_real = o->limit_tokens;
        elbo_result r;
        if (elbo(ctx, &d, n_real, o, &r, &err) != UM_OK)
            cli_error("eval", "%s", err.msg);
        else {
            print_elbo(&r, o, json);
            rc = 0;
        }
    }
    um_train_data_free(&d);
    free(text);
    free(sep);
    cli_text_close(&t);
    return rc;
}

/* ---- task files ---- */

typedef enum { TASK_EXACT, TASK_NUMBER } task_kind;

typedef struct {
    task_kind kind;
    char *prompt;
    char *answer;  /* TASK_EXACT: the text to match; TASK_NUMBER: the text after "####" */
    int32_t *ids;  /* the prompt tokenized */
    int n_ids;
} task;

typedef struct {
    task *v;
    int n, cap;
} task_list;

static void tasks_free(task_list *l) {
    for (int i = 0; i < l->n; i++) {
        free(l->v[i].prompt);
        free(l->v[i].answer);
        free(l->v[i].ids);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* The last number in s: digits with an optional sign and decimal point, commas
 * between digits dropped ("1,234.5" is 1234.5). False when there is none. */
static bool last_number(const char *s, double *x) {
    bool found = false;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            continue;
        char buf[64];
        size_t n = 0;
        if (p > s && p[-1] == '-')
            buf[n++] = '-';
        for (; *p && n < sizeof buf - 1; p++) {
            bool inner = (*p == ',' || *p == '.') && isdigit((unsigned char)p[1]);
            if (isdigit((unsigned char)*p) || (inner && *p == '.'))
                buf[n++] = *p;
            else if (!inner)
                break;
        }
        buf[n] = 0;
        *x = strtod(buf, NULL);
        found = true;
        if (!*p)
            break;
    }
    return found;
}

/* One JSONL line as a task; false after an error naming path and line. */
static bool parse_task(const char *path, int line, const char *s, size_t len, task *t) {
    memset(t, 0, sizeof *t);
    cJSON *j = cJSON_ParseWithLength(s, len);
    if (!cJSON_IsObject(j)) {
        cli_error("eval", "%s:%d: not a JSON object", path, line);
        cJSON_Delete(j);
        return false;
    }
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(j, "prompt");
    const cJSON *question = cJSON_GetObjectItemCaseSensitive(j, "question");
    const cJSON *answer = cJSON_GetObjectItemCaseSensitive(j, "answer");
    if (!answer)
        answer = cJSON_GetObjectItemCaseSensitive(j, "response");
    bool ok = cJSON_IsString(answer) && (cJSON_IsString(prompt) || cJSON_IsString(question));
    if (!ok) {
        cli_error("eval", "%s:%d: expected {\"prompt\": text, \"answer\" or \"response\": text} or GSM8K's "
                          "{\"question\": text, \"answer\": \"... #### NUMBER\"}", path, line);
    } else if (cJSON_IsString(prompt)) {
        t->kind = TASK_EXACT;
        t->prompt = strdup(prompt->valuestring);
        t->answer = strdup(answer->valuestring);
    } else {
        const char *hash = strstr(answer->valuestring, "####"), *num = hash ? hash + 4 : answer->valuestring;
        double x;
        t->kind = TASK_NUMBER;
        t->prompt = strdup(question->valuestring);
        t->answer = strdup(num);
        if (!last_number(num, &x)) {
            cli_error("eval", "%s:%d: the answer has no number (GSM8K writes it after ####)", path, line);
            ok = false;
        }
    }
    cJSON_Delete(j);
    if (ok && (!t->prompt || !t->answer)) {
        cli_error("eval", "out of memory");
        ok = false;
    }
    return ok;
}

static bool tasks_push(task_list *l, const task *t) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        task *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v)
            return false;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *t;
    return true;
}

/* Reads up to limit (0: all) tasks; blank lines are skipped. */
static bool load_tasks(const char *path, int limit, task_list *l) {
    memset(l, 0, sizeof *l);
    char *text = cli_text_read_file("eval", path);
    if (!text)
        return false;
    bool ok = true;
    int line = 0;
    for (const char *p = text; ok && *p && (limit == 0 || l->n < limit);) {
        const char *nl = strchr(p, '\n'), *end = nl ? nl : p + strlen(p), *q = p;
        line++;
        while (q < end && isspace((unsigned char)*q))
            q++;
        if (q < end) {
            task t = {0};
            ok = parse_task(path, line, p, (size_t)(end - p), &t);
            if (ok && !tasks_push(l, &t)) {
                cli_error("eval", "out of memory");
                ok = false;
            }
            if (!ok) {
                free(t.prompt);
                free(t.answer);
            }
        }
        p = nl ? nl + 1 : end;
    }
    free(text);
    if (ok && l->n == 0) {
        cli_error("eval", "%s: no examples", path);
        ok = false;
    }
    if (!ok)
        tasks_free(l);
    return ok;
}

/* Tokenizes every prompt, raw or as a chat user turn. */
static bool tokenize_tasks(cli_text *t, task_list *l, bool chat, const char *system) {
    for (int i = 0; i < l->n; i++) {
        task *k = &l->v[i];
        um_chat_message msgs[2];
        int n = 0;
        if (system)
            msgs[n++] = (um_chat_message){"system", system};
        msgs[n++] = (um_chat_message){"user", k->prompt};
        bool ok = chat ? cli_text_prompt_chat(t, msgs, n, &k->ids, &k->n_ids)
                       : cli_text_prompt_raw(t, k->prompt, &k->ids, &k->n_ids);
        if (!ok)
            return false;
    }
    return true;
}

/* The span of s without surrounding whitespace. */
static void trimmed(const char *s, const char **b, size_t *n) {
    const char *e = s + strlen(s);
    while (*s && isspace((unsigned char)*s))
        s++;
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    *b = s;
    *n = (size_t)(e - s);
}

static bool task_correct(const task *t, const char *output) {
    if (t->kind == TASK_NUMBER) {
        double want, got;
        return last_number(t->answer, &want) && last_number(output, &got) &&
               fabs(got - want) <= 1e-9 * (fabs(want) > 1 ? fabs(want) : 1);
    }
    const char *a, *b;
    size_t na, nb;
    trimmed(t->answer, &a, &na);
    trimmed(output, &b, &nb);
    return na == nb && memcmp(a, b, na) == 0;
}

/* ---- decoding settings ---- */

typedef struct {
    char label[512];
    um_generate_params p;
    cli_gen_flags f; /* the flags that made p (f.p is &p): the model's own defaults fill what they leave */
} setting;

/* Applies one --setting string over the base flags: its words are parsed as
 * `unmask run` parses its generation flags. Messages name the setting. */
static bool parse_setting(const char *text, const um_generate_params *base_p, const cli_gen_flags *base_f,
                          setting *st) {
    char *copy = strdup(text), *words[MAX_WORDS + 1] = {"--setting"};
    int n = 1;
    for (char *w = copy ? strtok(copy, " \t\n") : NULL; w && n <= MAX_WORDS; w = strtok(NULL, " \t\n"))
        words[n++] = w;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "eval --setting '%s'", text);
    st->p = *base_p;
    cli_gen_flags f = *base_f;
    f.p = &st->p;
    cli_args a;
    cli_init(&a, cmd, n, words);
    a.ok = copy != NULL && n <= MAX_WORDS;
    while (cli_next(&a))
        if (!cli_generation_flag(&a, &f)) {
            cli_error("eval", "--setting '%s': '%s' is not a generation flag", text, a.argv[a.i]);
            a.ok = false;
        }
    if (!copy || n > MAX_WORDS)
        cli_error("eval", "--setting '%s': %s", text, copy ? "too many words" : "out of memory");
    cli_generation_finish(&f, 128);
    st->f = f;
    snprintf(st->label, sizeof st->label, "%s", text);
    free(copy);
    return a.ok;
}

/* ---- task accuracy ---- */

typedef struct {
    int correct, total;
    long nfe, generated;
    double gen_seconds, wall;
} task_score;

/* Generates every task's answer with one setting and scores it. */
static bool run_setting(um_context *ctx, cli_text *t, const task_list *l, const setting *st, int show, task_score *sc) {
    memset(sc, 0, sizeof *sc);
    double t0 = um_now();
    char what[600];
    snprintf(what, sizeof what, "eval: [%s] example", st->label);
    for (int i = 0; i < l->n; i++) {
        const task *k = &l->v[i];
        um_generation g;
        um_error err;
        if (um_generate(ctx, k->ids, k->n_ids, &st->p, &g, &err) != UM_OK) {
            cli_error("eval", "setting '%s', example %d: %s", st->label, i + 1, err.msg);
            return false;
        }
        char *out = cli_text_answer(t, g.tokens + g.prompt_len, g.n_tokens - g.prompt_len);
        bool ok = out && task_correct(k, out);
        if (out && i < show)
            fprintf(stderr, "[%s] example %d: %s\n  output:   %s\n  expected: %s\n", st->label, i + 1,
                    ok ? "correct" : "wrong", out, k->answer);
        sc->correct += ok;
        sc->total++;
        sc->nfe += g.nfe;
        sc->generated += g.n_tokens - g.prompt_len;
        sc->gen_seconds += g.seconds;
        um_generation_free(&g);
        free(out);
        if (!out)
            return false;
        cli_progress(i + 1, l->n, "%s %d/%d", what, i + 1, l->n);
    }
    sc->wall = um_now() - t0;
    return true;
}

static void print_table(const setting *st, const task_score *sc, int n, const char *base, bool json) {
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "base", base);
        cJSON_AddNumberToObject(o, "examples", sc[0].total);
        cJSON *rows = cJSON_AddArrayToObject(o, "settings");
        for (int i = 0; i < n; i++) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "setting", st[i].label);
            cJSON_AddNumberToObject(r, "correct", sc[i].correct);
            cJSON_AddNumberToObject(r, "total", sc[i].total);
            cJSON_AddNumberToObject(r, "accuracy", (double)sc[i].correct / sc[i].total);
            cJSON_AddNumberToObject(r, "mean_nfe", (double)sc[i].nfe / sc[i].total);
            cJSON_AddNumberToObject(r, "tokens_per_second",
                                    sc[i].gen_seconds > 0 ? sc[i].generated / sc[i].gen_seconds : 0);
            cJSON_AddNumberToObject(r, "seconds", sc[i].wall);
            cJSON_AddItemToArray(rows, r);
        }
        cli_print_json(o);
        return;
    }
    int w = 7;
    for (int i = 0; i < n; i++)
        w = (int)strlen(st[i].label) > w ? (int)strlen(st[i].label) : w;
    printf("%-*s  %-18s  %8s  %10s  %9s\n", w, "setting", "accuracy", "mean NFE", "tokens/s", "time (s)");
    for (int i = 0; i < n; i++) {
        char acc[64];
        snprintf(acc, sizeof acc, "%d/%d (%.1f%%)", sc[i].correct, sc[i].total, 100.0 * sc[i].correct / sc[i].total);
        printf("%-*s  %-18s  %8.1f  %10.1f  %9.2f\n", w, st[i].label, acc, (double)sc[i].nfe / sc[i].total,
               sc[i].gen_seconds > 0 ? sc[i].generated / sc[i].gen_seconds : 0.0, sc[i].wall);
    }
    if (*base && n > 0 && strcmp(st[0].label, base) != 0)
        printf("(every setting starts from: %s)\n", base);
}

typedef struct {
    const char *system, *template_name;
    bool chat;
    int show;
    const char *base; /* the base flags as given, for the table */
} task_opts;

static int eval_tasks(um_context *ctx, const char *model_path, task_list *l, const setting *st, int n_st,
                      const task_opts *o, bool json) {
    cli_text t;
    if (!cli_text_open(&t, "eval", model_path, o->template_name))
        return 1;
    task_score *sc = calloc((size_t)n_st, sizeof *sc);
    bool ok = sc && tokenize_tasks(&t, l, o->chat, o->system);
    for (int i = 0; ok && i < n_st; i++)
        ok = run_setting(ctx, &t, l, &st[i], o->show, &sc[i]);
    if (ok)
        print_table(st, sc, n_st, o->base, json);
    free(sc);
    cli_text_close(&t);
    return ok ? 0 : 1;
}

/* ---- the command ---- */

typedef struct {
    const char *model, *text, *tasks, *batch, *sep;
    const char *settings[MAX_SETTINGS];
    int n_settings, limit, threads;
    bool no_repack;
    bool json;
    elbo_opts elbo;
    task_opts task;
    char base[1024]; /* the generation flags given outside --setting */
} eval_args;

/* Appends the words argv[from..to] to the base flags' label. */
static void note_base_flags(eval_args *e, char **argv, int from, int to) {
    for (int i = from; i <= to; i++)
        snprintf(e->base + strlen(e->base), sizeof e->base - strlen(e->base), "%s%s", *e->base ? " " : "", argv[i]);
}

/* Parses argv; returns -1 to go on, else the exit code (help, bad usage). */
static int parse_args(int argc, char **argv, eval_args *e, um_generate_params *p, cli_gen_flags *gf) {
    cli_args a;
    cli_init(&a, "eval", argc, argv);
    while (cli_next(&a)) {
        int at = a.i;
        if (cli_is(&a, "-h", "--help")) {
            eval_usage();
            return 0;
        } else if (cli_is(&a, "-m", "--model")) e->model = cli_value(&a);
        else if (cli_is(&a, NULL, "--text")) e->text = cli_value(&a);
        else if (cli_is(&a, NULL, "--doc-sep")) e->sep = cli_value(&a);
        else if (cli_is(&a, NULL, "--seq")) e->elbo.seq = cli_int(&a, 2, 1 << 20);
        else if (cli_is(&a, NULL, "--samples")) e->elbo.samples = cli_int(&a, 1, 1 << 20);
        else if (cli_is(&a, NULL, "--limit-tokens")) e->elbo.limit_tokens = cli_int(&a, 1, 1 << 30);
        else if (cli_is(&a, NULL, "--tasks")) e->tasks = cli_value(&a);
        else if (cli_is(&a, NULL, "--limit")) e->limit = cli_int(&a, 1, 1 << 30);
        else if (cli_is(&a, "-cnv", "--chat")) e->task.chat = true;
        else if (cli_is(&a, NULL, "--system")) e->task.system = cli_value(&a);
        else if (cli_is(&a, NULL, "--chat-template")) e->task.template_name = cli_value(&a);
        else if (cli_is(&a, NULL, "--show")) e->task.show = cli_int(&a, 0, 1 << 30);
        else if (cli_is(&a, NULL, "--masked-batch")) e->batch = cli_value(&a);
        else if (cli_is(&a, "-t", "--threads")) e->threads = cli_int(&a, 1, 1024);
        else if (cli_is(&a, NULL, "--no-repack")) e->no_repack = true;
        else if (cli_is(&a, NULL, "--json")) e->json = true;
        else if (cli_is(&a, NULL, "--setting")) {
            const char *s = cli_value(&a);
            if (a.ok && e->n_settings == MAX_SETTINGS) {
                cli_error("eval", "more than %d --setting flags", MAX_SETTINGS);
                a.ok = false;
            }
            if (a.ok)
                e->settings[e->n_settings++] = s;
        } else if (cli_generation_flag(&a, gf)) note_base_flags(e, argv, at, a.i);
        else cli_unknown(&a);
    }
    if (!a.ok)
        return 2;
    int modes = (e->text != NULL) + (e->tasks != NULL) + (e->batch != NULL);
    if (modes != 1) {
        cli_error("eval", "%s", modes ? "give only one of --text, --tasks and --masked-batch"
                                      : "nothing to evaluate: give --text FILE (perplexity) or --tasks FILE.jsonl "
                                        "(accuracy)");
        return 2;
    }
    if (e->n_settings && !e->tasks) {
        cli_error("eval", "--setting applies to --tasks");
        return 2;
    }
    e->elbo.seed = p->seed; /* -s seeds the masks of the ELBO estimate */
    return -1;
}

/* The table's rows: each --setting over the base, or the base alone. */
static bool build_settings(const eval_args *e, const um_generate_params *p, const cli_gen_flags *gf, setting *st,
                           int *n) {
    *n = e->n_settings ? e->n_settings : 1;
    for (int i = 0; i < e->n_settings; i++)
        if (!parse_setting(e->settings[i], p, gf, &st[i]))
            return false;
    if (e->n_settings == 0) {
        cli_gen_flags f = *gf;
        st[0].p = *p;
        f.p = &st[0].p;
        cli_generation_finish(&f, 128);
        st[0].f = f;
        snprintf(st[0].label, sizeof st[0].label, "%s", *e->base ? e->base : "(defaults)");
    }
    return true;
}

int cmd_eval(int argc, char **argv) {
    eval_args e = {.elbo = {.seq = 256, .samples = 8}};
    um_generate_params p = cli_generate_defaults();
    cli_gen_flags gf = {.p = &p, .gen_length = -1, .steps = -1, .block = -1};
    int rc = parse_args(argc, argv, &e, &p, &gf);
    if (rc >= 0)
        return rc;
    e.elbo.sep = e.sep;
    e.task.base = e.base;

    /* inputs are checked before the model loads, so mistakes fail fast */
    static setting st[MAX_SETTINGS];
    int n_st = 0;
    task_list tasks = {0};
    if (e.tasks && !build_settings(&e, &p, &gf, st, &n_st))
        return 2;
    if (e.tasks && !load_tasks(e.tasks, e.limit, &tasks))
        return 1;
    if (e.text && access(e.text, R_OK) != 0) {
        cli_error("eval", "%s: cannot read the file", e.text);
        return 1;
    }
    char default_path[4096];
    e.model = cli_model_path(e.model, default_path, sizeof default_path);
    um_model *m = cli_open_model("eval", e.model, e.threads, e.no_repack ? CLI_MODEL_NO_REPACK : 0);
    um_context *ctx = m ? cli_open_context("eval", m) : NULL;
    for (int i = 0; m && i < n_st; i++) /* Dream's and LLaDA2's generation where the settings leave it open */
        cli_generation_for_model(&st[i].f, m);
    if (!ctx) {
        rc = 1;
    } else if (e.batch) {
        rc = eval_masked_batch(ctx, e.batch, e.json);
    } else if (e.text) {
        rc = eval_text(ctx, e.model, e.text, &e.elbo, e.json);
    } else {
        rc = eval_tasks(ctx, e.model, &tasks, st, n_st, &e.task, e.json);
    }
    tasks_free(&tasks);
    um_context_free(ctx);
    um_model_close(m);
    return rc;
}
