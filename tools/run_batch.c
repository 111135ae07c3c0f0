/* unmask run --batch FILE.jsonl: many requests, stepped together.
 *
 * Each line is one request: a JSON object whose keys are run's long flag
 * names with dashes written as underscores ("gen_length", "temp", ...), plus
 * "prompt" (text), "prompt_tokens" (an array of ids), "chat" and "system".
 * The command line's flags are every request's defaults. All lines are read
 * and checked before anything runs, so a bad line costs no generation.
 * --parallel N sessions are live at once; every step runs all of them in
 * one forward pass (um_sessions_step), a finished one leaves and the next
 * request joins. Results are printed in input order, one JSON line each with
 * run --json's fields. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sys.h"
#include "run_batch.h"

#define MAX_LINE_BYTES (1u << 20)

typedef struct {
    um_generate_params p;
    int32_t *prompt;
    int n_prompt;
    bool text; /* a text prompt: the output gets the answer as text */
    um_session *s;
    um_generation out;
    bool done, printed;
} request;

typedef struct {
    const char *path;
    int line;
    char where[300]; /* "run: FILE:LINE", the prefix of this line's messages */
} line_ctx;

static bool line_error(const line_ctx *lc, const char *msg, const char *key) {
    cli_error(lc->where, "%s%s%s", key ? key : "", key ? ": " : "", msg);
    return false;
}

/* A generation key as the flag run takes (cli_generation_key), its error
 * named by line and key. */
static bool apply_flag(const line_ctx *lc, const cJSON *v, cli_gen_flags *gf) {
    char msg[300];
    if (cli_generation_key(v, gf, msg, sizeof msg))
        return true;
    if (strcmp(msg, "not a request key") == 0)
        snprintf(msg, sizeof msg, "not a request key (prompt, prompt_tokens, chat, system, or a generation flag of "
                                  "run with '_' for '-')");
    return line_error(lc, msg, v->string);
}

/* The prompt keys: prompt (text, with chat and system), prompt_tokens. */
static bool read_prompt(const line_ctx *lc, const cJSON *o, cli_text *t, bool *text_open, const char *model_path,
                        request *r) {
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "prompt");
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(o, "prompt_tokens");
    const cJSON *chat = cJSON_GetObjectItemCaseSensitive(o, "chat");
    const cJSON *system = cJSON_GetObjectItemCaseSensitive(o, "system");
    if (!text == !ids)
        return line_error(lc, "give one of \"prompt\" (text) or \"prompt_tokens\" (ids)", NULL);
    if ((chat && !cJSON_IsBool(chat)) || (system && !cJSON_IsString(system)))
        return line_error(lc, "\"chat\" is true or false, \"system\" a string", NULL);
    if (ids) {
        int n = cJSON_GetArraySize(ids);
        if (!cJSON_IsArray(ids) || (chat && cJSON_IsTrue(chat)))
            return line_error(lc, "an array of token ids (and no chat)", "prompt_tokens");
        r->prompt = malloc((size_t)(n > 0 ? n : 1) * sizeof *r->prompt);
        const cJSON *e;
        cJSON_ArrayForEach(e, ids) {
            if (!cJSON_IsNumber(e) || e->valuedouble != (double)(int32_t)e->valuedouble)
                return line_error(lc, "expected integer token ids", "prompt_tokens");
            r->prompt[r->n_prompt++] = (int32_t)e->valuedouble;
        }
        return true;
    }
    if (!cJSON_IsString(text))
        return line_error(lc, "expected a string", "prompt");
    if (!*text_open && !(*text_open = cli_text_open(t, "run", model_path, NULL)))
        return false;
    r->text = true;
    if (!cJSON_IsTrue(chat))
        return cli_text_prompt_raw(t, text->valuestring, &r->prompt, &r->n_prompt);
    um_chat_message msgs[2];
    int n = 0;
    if (system)
        msgs[n++] = (um_chat_message){"system", system->valuestring};
    msgs[n++] = (um_chat_message){"user", text->valuestring};
    return cli_text_prompt_chat(t, msgs, n, &r->prompt, &r->n_prompt);
}

static bool is_prompt_key(const char *k) {
    return strcmp(k, "prompt") == 0 || strcmp(k, "prompt_tokens") == 0 || strcmp(k, "chat") == 0 ||
           strcmp(k, "system") == 0;
}

/* One line into a request: the command line's flags, then the line's. */
static bool read_request(const line_ctx *lc, const char *json, const um_model *m, const cli_gen_flags *defaults,
                         cli_text *t, bool *text_open, const char *model_path, request *r) {
    cJSON *o = cJSON_Parse(json);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return line_error(lc, "not a JSON object", NULL);
    }
    r->p = *defaults->p;
    cli_gen_flags gf = *defaults;
    gf.p = &r->p;
    bool ok = true;
    const cJSON *v;
    cJSON_ArrayForEach(v, o) {
        if (ok && !is_prompt_key(v->string))
            ok = apply_flag(lc, v, &gf);
    }
    ok = ok && read_prompt(lc, o, t, text_open, model_path, r);
    cJSON_Delete(o);
    if (!ok)
        return false;
    cli_generation_finish(&gf, 128);
    cli_generation_for_model(&gf, m);
    um_error err;
    um_session *s; /* checks the request now (lengths, ids, settings), so errors name the line */
    if (um_session_begin(m, r->prompt, r->n_prompt, &r->p, &s, &err) != UM_OK)
        return line_error(lc, err.msg, NULL);
    um_session_free(s);
    return true;
}

static bool read_requests(const char *path, const um_model *m, const cli_gen_flags *defaults, cli_text *t,
                          bool *text_open, const char *model_path, request **out, int *n_out) {
    FILE *f = fopen(path, "r");
    if (!f) {
        cli_error("run", "%s: cannot open the batch file", path);
        return false;
    }
    char *buf = malloc(MAX_LINE_BYTES);
    request *rs = NULL;
    int n = 0, cap = 0;
    bool ok = buf != NULL;
    line_ctx lc = {path, 0, ""};
    while (ok && fgets(buf, MAX_LINE_BYTES, f)) {
        lc.line++;
        snprintf(lc.where, sizeof lc.where, "run: %s:%d", path, lc.line);
        size_t len = strlen(buf);
        if (len == MAX_LINE_BYTES - 1 && buf[len - 1] != '\n') {
            ok = line_error(&lc, "line longer than 1 MiB", NULL);
            break;
        }
        if (strspn(buf, " \t\r\n") == len) /* blank lines are allowed */
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            request *grown = realloc(rs, (size_t)cap * sizeof *rs);
            if (!grown) {
                ok = false;
                break;
            }
            rs = grown;
        }
        memset(&rs[n], 0, sizeof rs[n]);
        ok = read_request(&lc, buf, m, defaults, t, text_open, model_path, &rs[n]);
        n++;
    }
    fclose(f);
    free(buf);
    if (ok && n == 0)
        ok = line_error(&lc, "no requests", NULL);
    *out = rs;
    *n_out = n;
    return ok;
}

/* Prints, in input order, every finished request no unfinished one precedes. */
static bool print_ready(request *rs, int n, cli_text *t) {
    for (int i = 0; i < n && rs[i].done; i++) {
        if (rs[i].printed)
            continue;
        const um_generation *g = &rs[i].out;
        char *text = rs[i].text ? cli_text_answer(t, g->tokens + g->prompt_len, g->n_tokens - g->prompt_len) : NULL;
        if (rs[i].text && !text)
            return false;
        cli_print_json(cli_generation_json(g, text));
        fflush(stdout);
        free(text);
        rs[i].printed = true;
    }
    return true;
}

/* Generated positions that hold a token, not a mask (max_nfe can leave some). */
static int committed(const um_generation *g, const um_model *m) {
    um_model_info info;
    um_model_get_info(m, &info);
    int n = 0;
    for (int i = g->prompt_len; i < g->n_tokens; i++)
        n += g->tokens[i] != info.mask_id;
    return n;
}

/* Steps up to `parallel` sessions at a time until every request is done. */
static bool run_requests(um_context *ctx, request *rs, int n, int parallel, cli_text *t) {
    um_session **live = malloc((size_t)n * sizeof *live);
    int next = 0, n_live = 0, done = 0, forwards = 0, tokens = 0;
    double t0 = um_now();
    bool ok = live != NULL;
    um_error err;
    while (ok && done < n) {
        while (n_live < parallel && next < n) { /* new requests join between steps */
            ok = um_session_begin(um_context_model(ctx), rs[next].prompt, rs[next].n_prompt, &rs[next].p,
                                  &rs[next].s, &err) == UM_OK;
            if (!ok)
                break;
            live[n_live++] = rs[next++].s;
        }
        if (ok && (ok = um_sessions_step(ctx, live, n_live, &err) == UM_OK))
            forwards++;
        for (int i = 0; ok && i < next; i++) {
            if (rs[i].done || !um_session_finished(rs[i].s))
                continue;
            ok = um_session_result(rs[i].s, &rs[i].out, &err) == UM_OK;
            rs[i].done = true;
            done++;
            tokens += committed(&rs[i].out, um_context_model(ctx));
            for (int k = 0; k < n_live; k++) /* it leaves the batch */
                if (live[k] == rs[i].s)
                    live[k] = live[--n_live];
        }
        ok = ok && print_ready(rs, n, t);
    }
    if (!ok && err.msg[0])
        cli_error("run", "%s", err.msg);
    double dt = um_now() - t0;
    size_t peak;
    um_memory_usage(NULL, &peak);
    fprintf(stderr,
            "batch: %d requests, up to %d at once: %d tokens committed in %.3f s (%.1f tokens/s), %d batched forwards; "
            "peak RSS %.1f MiB\n",
            n, parallel, tokens, dt, dt > 0 ? tokens / dt : 0.0, forwards, (double)peak / 1048576.0);
    free(live);
    return ok;
}

int run_batch(um_context *ctx, const char *path, const cli_gen_flags *defaults, int parallel, const char *model_path) {
    cli_text t;
    bool text_open = false;
    request *rs = NULL;
    int n = 0;
    bool ok = read_requests(path, um_context_model(ctx), defaults, &t, &text_open, model_path, &rs, &n);
    ok = ok && run_requests(ctx, rs, n, parallel > 0 && parallel < n ? parallel : n, &t);
    for (int i = 0; i < n; i++) {
        free(rs[i].prompt);
        um_session_free(rs[i].s);
        um_generation_free(&rs[i].out);
    }
    free(rs);
    if (text_open)
        cli_text_close(&t);
    return ok ? 0 : 1;
}
