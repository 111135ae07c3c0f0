/* unmask serve's endpoints: OpenAI's completions and chat completions (whole
 * or streamed), models, health, metrics, tokenize and detokenize.
 *
 * A generation request's body holds OpenAI's fields (model, prompt or
 * messages, max_tokens, temperature, seed, stop, n, stream) and, as extra
 * fields, the generation keys of run --batch (steps, block_length, cache,
 * decoder, threshold, ...: cli_generation_key), over the command line's
 * defaults. Every bad input is a 4xx with an OpenAI error object naming the
 * field. Streams are serve_stream.c's. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "base/sys.h"
#include "serve.h"


serve_reply api_error(int status, const char *type, const char *param, const char *code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    api_add_text(e, "message", msg); /* it may quote the request */
    cJSON_AddStringToObject(e, "type", type);
    if (param)
        api_add_text(e, "param", param);
    else
        cJSON_AddNullToObject(e, "param");
    if (code)
        cJSON_AddStringToObject(e, "code", code);
    else
        cJSON_AddNullToObject(e, "code");
    serve_reply r = {status, cJSON_PrintUnformatted(o), "application/json", NULL};
    cJSON_Delete(o);
    return r;
}

char *api_utf8_valid(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++)
            ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
        if (ok && len > 1) { /* no overlong forms, surrogates or code points past U+10FFFF */
            unsigned cp = c & (0xFF >> (len + 1));
            for (size_t k = 1; k < len; k++)
                cp = cp << 6 | ((unsigned char)s[i + k] & 0x3F);
            static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
            ok = cp >= min_cp[len] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
        }
        if (ok) {
            memcpy(o, s + i, len);
            o += len;
            i += len;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    *o = 0;
    return out;
}

/* cJSON_AddStringToObject with the text made valid UTF-8. */
void api_add_text(cJSON *o, const char *key, const char *text) {
    char *valid = api_utf8_valid(text);
    cJSON_AddStringToObject(o, key, valid ? valid : "");
    free(valid);
}

#define BAD_REQUEST(param, ...) api_error(400, "invalid_request_error", param, NULL, __VA_ARGS__)

static serve_reply json_reply(int status, cJSON *o) {
    serve_reply r = {status, cJSON_PrintUnformatted(o), "application/json", NULL};
    cJSON_Delete(o);
    if (!r.body)
        return api_error(500, "server_error", NULL, NULL, "out of memory");
    return r;
}

/* The client closed its end (read side at EOF): what it asked for can go. */
bool api_client_gone(int fd) {
    if (fd < 0)
        return false;
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* ---- a generation request ---- */


void gen_request_free(gen_request *g) {
    free(g->prompt);
    for (int i = 0; i < g->n_stops; i++)
        free(g->stops[i]);
}

static bool is_int(const cJSON *v, double lo, double hi) {
    return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && v->valuedouble >= lo &&
           v->valuedouble <= hi;
}

/* OpenAI fields unmask has no meaning for: accepted only at their neutral
 * value (null, false, 0, 1 or empty), else a 400 naming them. */
static bool neutral_field(const char *k, const cJSON *v, bool *known) {
    static const char *const names[] = {"logprobs", "top_logprobs", "echo", "suffix", "best_of", "logit_bias",
                                        "presence_penalty", "frequency_penalty", "tools", "tool_choice",
                                        "response_format", "functions", "function_call"};
    *known = false;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(k, names[i]) == 0)
            *known = true;
    if (!*known)
        return true;
    if (cJSON_IsNull(v) || cJSON_IsFalse(v))
        return true;
    if (cJSON_IsNumber(v))
        return v->valuedouble == 0 || (strcmp(k, "best_of") == 0 && v->valuedouble == 1);
    if (cJSON_IsObject(v) || cJSON_IsArray(v))
        return cJSON_GetArraySize(v) == 0;
    return false;
}

static serve_reply read_stop(gen_request *g, const cJSON *v) {
    for (int i = 0; i < g->n_stops; i++) /* a key given twice: the last one holds */
        free(g->stops[i]);
    g->n_stops = 0;
    if (cJSON_IsNull(v))
        return (serve_reply){0};
    if (cJSON_IsString(v)) {
        if (*v->valuestring)
            g->stops[g->n_stops++] = strdup(v->valuestring);
        return (serve_reply){0};
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > MAX_STOPS)
        return BAD_REQUEST("stop", "stop: expected a string or an array of at most %d strings", MAX_STOPS);
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsString(e))
            return BAD_REQUEST("stop", "stop: expected strings");
        if (*e->valuestring)
            g->stops[g->n_stops++] = strdup(e->valuestring);
    }
    return (serve_reply){0};
}

/* One OpenAI field into the request (or the flags); status 0 when fine. */
static serve_reply read_openai_field(serve_server *srv, gen_request *g, cli_gen_flags *gf, const cJSON *v,
                                     bool *handled) {
    const char *k = v->string;
    *handled = true;
    if (strcmp(k, "model") == 0) {
        if (!cJSON_IsString(v))
            return BAD_REQUEST("model", "model: expected a string");
        if (strcmp(v->valuestring, srv->cfg.model_id) != 0)
            return api_error(404, "invalid_request_error", "model", "model_not_found",
                             "the model '%s' does not exist; this server serves '%s'", v->valuestring,
                             srv->cfg.model_id);
    } else if (strcmp(k, "max_tokens") == 0 || strcmp(k, "max_completion_tokens") == 0) {
        if (cJSON_IsNull(v))
            return (serve_reply){0};
        if (!is_int(v, 1, srv->cfg.max_tokens))
            return BAD_REQUEST(k, "%s: expected an integer in [1, %d] (the generation length; --max-tokens)", k,
                               srv->cfg.max_tokens);
        gf->gen_length = (int)v->valuedouble;
    } else if (strcmp(k, "temperature") == 0 || strcmp(k, "seed") == 0 || strcmp(k, "top_p") == 0) {
        if (cJSON_IsNull(v))
            return (serve_reply){0};
        if (!cJSON_IsNumber(v))
            return BAD_REQUEST(k, "%s: expected a number", k);
        cJSON named = *v;
        named.string = strcmp(k, "temperature") == 0 ? "temp" : (char *)k;
        char msg[300];
        if (!cli_generation_key(&named, gf, msg, sizeof msg))
            return BAD_REQUEST(k, "%s: %s", k, msg);
    } else if (strcmp(k, "n") == 0) {
        if (!is_int(v, 1, srv->cfg.max_n))
            return BAD_REQUEST("n", "n: expected an integer in [1, %d]", srv->cfg.max_n);
        g->n = (int)v->valuedouble;
    } else if (strcmp(k, "stream") == 0 || strcmp(k, "return_tokens") == 0 || strcmp(k, "stream_canvas") == 0) {
        if (!cJSON_IsBool(v) && !cJSON_IsNull(v))
            return BAD_REQUEST(k, "%s: expected true or false", k);
        bool *flag = strcmp(k, "stream") == 0 ? &g->stream : strcmp(k, "return_tokens") == 0 ? &g->return_tokens
                                                                                           : &g->no_canvas;
        *flag = flag == &g->no_canvas ? cJSON_IsFalse(v) : cJSON_IsTrue(v);
    } else if (strcmp(k, "stream_options") == 0) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(v, "include_usage");
        if (!cJSON_IsNull(v) && (!cJSON_IsObject(v) || (u && !cJSON_IsBool(u))))
            return BAD_REQUEST(k, "stream_options: expected {\"include_usage\": true or false}");
        g->include_usage = cJSON_IsTrue(u);
    } else if (strcmp(k, "stop") == 0) {
        return read_stop(g, v);
    } else if (strcmp(k, "user") == 0) {
        /* OpenAI's end-user id: nothing to do with it */
    } else {
        bool known;
        if (!neutral_field(k, v, &known))
            return BAD_REQUEST(k, "%s: not supported by unmask serve (a diffusion model's tokens are committed out of "
                                  "order; see the README); leave it out or at its neutral value", k);
        *handled = known;
    }
    return (serve_reply){0};
}

/* A message's content: a string, or OpenAI's array of {"type": "text", "text"} parts. */
static char *message_text(const cJSON *content) {
    if (cJSON_IsString(content))
        return strdup(content->valuestring);
    if (cJSON_IsNull(content))
        return strdup("");
    if (!cJSON_IsArray(content))
        return NULL;
    size_t len = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, content) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 || !cJSON_IsString(text))
            return NULL;
        len += strlen(text->valuestring);
    }
    char *out = malloc(len + 1), *p = out;
    if (!out)
        return NULL;
    cJSON_ArrayForEach(part, content) {
        const char *text = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
        memcpy(p, text, strlen(text));
        p += strlen(text);
    }
    *p = 0;
    return out;
}

static serve_reply read_messages(serve_server *srv, gen_request *g, const cJSON *msgs) {
    int n = cJSON_GetArraySize(msgs);
    if (!cJSON_IsArray(msgs) || n == 0)
        return BAD_REQUEST("messages", "messages: expected a non-empty array of {\"role\", \"content\"}");
    um_chat_message *m = calloc((size_t)n, sizeof *m);
    serve_reply r = {0};
    int k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(e, "role");
        char *content = m ? message_text(cJSON_GetObjectItemCaseSensitive(e, "content")) : NULL;
        if (!cJSON_IsString(role) || !content) {
            free(content);
            r = BAD_REQUEST("messages", "messages[%d]: expected {\"role\": string, \"content\": string or text parts}",
                            k);
            break;
        }
        m[k++] = (um_chat_message){role->valuestring, content};
    }
    if (r.status == 0 && !cli_text_prompt_chat(&srv->text, m, k, &g->prompt, &g->n_prompt))
        r = api_error(500, "server_error", NULL, NULL, "the chat template could not be rendered");
    for (int i = 0; i < k; i++)
        free((char *)m[i].content);
    free(m);
    return r;
}

/* prompt: a string, an array of token ids, or an array of one of either. */
static serve_reply read_prompt(serve_server *srv, gen_request *g, const cJSON *v) {
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 1 && !cJSON_IsNumber(cJSON_GetArrayItem(v, 0)))
        v = cJSON_GetArrayItem(v, 0);
    if (cJSON_IsString(v)) {
        if (!cli_text_prompt_raw(&srv->text, v->valuestring, &g->prompt, &g->n_prompt))
            return api_error(500, "server_error", NULL, NULL, "the prompt could not be tokenized");
        return (serve_reply){0};
    }
    int n = cJSON_GetArraySize(v);
    if (!cJSON_IsArray(v) || n == 0)
        return BAD_REQUEST("prompt", "prompt: expected a string or a non-empty array of token ids (one prompt)");
    g->prompt = malloc((size_t)n * sizeof *g->prompt);
    if (!g->prompt)
        return api_error(500, "server_error", NULL, NULL, "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!is_int(e, 0, srv->info.n_vocab - 1))
            return BAD_REQUEST("prompt", "prompt: token ids are integers in [0, %d)", srv->info.n_vocab);
        g->prompt[g->n_prompt++] = (int32_t)e->valuedouble;
    }
    return (serve_reply){0};
}

/* The body into a request: OpenAI's fields, then the generation keys. */
static serve_reply read_request(serve_server *srv, const cJSON *o, bool chat, gen_request *g) {
    cli_gen_flags gf = *srv->defaults;
    g->p = *srv->defaults->p;
    gf.p = &g->p;
    g->chat = chat;
    g->n = 1;
    const char *prompt_key = chat ? "messages" : "prompt";
    const cJSON *v, *prompt = NULL;
    cJSON_ArrayForEach(v, o) {
        bool handled;
        if (strcmp(v->string, prompt_key) == 0) {
            prompt = v;
            continue;
        }
        serve_reply r = read_openai_field(srv, g, &gf, v, &handled);
        if (r.status)
            return r;
        char msg[300];
        if (!handled && !cli_generation_key(v, &gf, msg, sizeof msg)) {
            if (strcmp(msg, "not a request key") == 0)
                return BAD_REQUEST(v->string, "%s: unknown field (OpenAI's, or a generation flag of unmask run with "
                                              "'_' for '-')", v->string);
            return BAD_REQUEST(v->string, "%s: %s", v->string, msg);
        }
    }
    if (!prompt)
        return BAD_REQUEST(prompt_key, "%s is required", prompt_key);
    serve_reply r = chat ? read_messages(srv, g, prompt) : read_prompt(srv, g, prompt);
    if (r.status)
        return r;
    if (g->n_prompt > srv->cfg.max_prompt)
        return api_error(400, "invalid_request_error", prompt_key, "context_length_exceeded",
                         "the prompt is %d tokens, more than this server takes (%d; --max-prompt)", g->n_prompt,
                         srv->cfg.max_prompt);
    cli_generation_finish(&gf, 128);
    cli_generation_for_model(&gf, srv->model);
    if (g->p.gen_length < 1 || g->p.gen_length > srv->cfg.max_tokens)
        return BAD_REQUEST("max_tokens", "max_tokens: the generation length must be in [1, %d] (--max-tokens)",
                           srv->cfg.max_tokens);
    if (g->p.steps > 8 * srv->cfg.max_tokens)
        return BAD_REQUEST("steps", "steps: at most %d (8 times --max-tokens)", 8 * srv->cfg.max_tokens);
    int ctx = srv->cfg.ctx_size > 0 ? srv->cfg.ctx_size : srv->info.max_seq_len;
    if (g->n_prompt + g->p.gen_length > ctx)
        return api_error(400, "invalid_request_error", "max_tokens", "context_length_exceeded",
                         "the prompt (%d tokens) and max_tokens (%d) make a canvas longer than %d tokens (%s)",
                         g->n_prompt, g->p.gen_length, ctx, srv->cfg.ctx_size > 0 ? "-c" : "the model's context");
    return (serve_reply){0};
}

/* The job's sessions: choice i has seed + i. Checked here (lengths, ids,
 * settings) so that a bad request is a 400 before it waits in the queue. */
static serve_reply begin_job(serve_server *srv, const gen_request *g, serve_job **out) {
    serve_job *j = job_new(g->n, g->stream, srv->cfg.timeout);
    if (!j)
        return api_error(500, "server_error", NULL, NULL, "out of memory");
    for (int i = 0; i < g->n; i++) {
        um_generate_params p = g->p;
        p.seed += (uint64_t)i;
        p.on_step = sched_on_step;
        p.user_data = &j->choices[i];
        um_error err;
        um_status st = um_session_begin(srv->model, g->prompt, g->n_prompt, &p, &j->choices[i].s, &err);
        if (st != UM_OK) {
            job_free(j);
            if (st == UM_ERR_NOMEM)
                return api_error(503, "server_error", NULL, "out_of_memory", "%s", err.msg);
            return BAD_REQUEST(NULL, "%s", err.msg);
        }
        j->choices[i].prompt_len = g->n_prompt;
        j->choices[i].gen_len = g->p.gen_length;
    }
    int status = sched_submit(&srv->sched, j);
    if (status) {
        job_free(j);
        if (status == 429)
            return api_error(429, "server_busy", NULL, "queue_full",
                             "the queue is full (%d sessions waiting at most; --queue): try again later",
                             srv->cfg.queue);
        return api_error(503, "server_error", NULL, "shutting_down", "the server is shutting down");
    }
    *out = j;
    return (serve_reply){0};
}

/* ---- results ---- */


static void cut_at_stops(answer *a, char *const *stops, int n_stops) {
    char *cut = NULL;
    for (int i = 0; i < n_stops; i++) {
        char *at = stops[i] ? strstr(a->text, stops[i]) : NULL; /* NULL: a copy that ran out of memory */
        if (at && (!cut || at < cut))
            cut = at;
    }
    if (cut) {
        *cut = 0;
        a->stopped = true;
    }
}

bool api_answer(serve_server *srv, const int32_t *gen, int n, char *const *stops, int n_stops, answer *a) {
    int end = 0;
    while (end < n && gen[end] != srv->text.sp.eos && gen[end] != srv->text.sp.eot)
        end++;
    a->n_tokens = end;
    a->stopped = end < n;
    a->text = cli_text_answer(&srv->text, gen, end);
    if (!a->text)
        return false;
    cut_at_stops(a, stops, n_stops);
    return true;
}

/* The error of a finished job, or status 0. */
serve_reply api_job_error(const serve_job *j) {
    for (int i = 0; i < j->n_choices; i++) {
        const serve_choice *c = &j->choices[i];
        if (c->status == UM_OK)
            continue;
        if (j->timed_out)
            return api_error(503, "server_error", NULL, "timeout", "the request ran out of time (--timeout)");
        if (j->shut_down)
            return api_error(503, "server_error", NULL, "shutting_down", "the server is shutting down");
        return api_error(500, "server_error", NULL, NULL, "%s", c->error);
    }
    return (serve_reply){0};
}

void api_add_usage(cJSON *o, int prompt_tokens, int completion_tokens) {
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", prompt_tokens + completion_tokens);
}

cJSON *api_response_head(serve_server *srv, const char *id, const char *object) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)time(NULL));
    cJSON_AddStringToObject(o, "model", srv->cfg.model_id);
    return o;
}

void api_make_id(serve_server *srv, bool chat, char *id, size_t size) {
    snprintf(id, size, "%s-%ld", chat ? "chatcmpl" : "cmpl", atomic_fetch_add(&srv->next_id, 1));
}

/* The whole response of a finished job. */
static serve_reply job_response(serve_server *srv, const gen_request *g, const serve_job *j) {
    serve_reply r = api_job_error(j);
    if (r.status)
        return r;
    char id[64];
    api_make_id(srv, g->chat, id, sizeof id);
    cJSON *o = api_response_head(srv, id, g->chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    int completion_tokens = 0;
    for (int i = 0; i < j->n_choices; i++) {
        const um_generation *out = &j->choices[i].out;
        const int32_t *gen = out->tokens + out->prompt_len;
        int n = out->n_tokens - out->prompt_len;
        answer a;
        if (!api_answer(srv, gen, n, g->stops, g->n_stops, &a)) {
            cJSON_Delete(o);
            return api_error(500, "server_error", NULL, NULL, "the answer could not be decoded");
        }
        completion_tokens += a.n_tokens;
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "index", i);
        if (g->chat) {
            cJSON *m = cJSON_AddObjectToObject(c, "message");
            cJSON_AddStringToObject(m, "role", "assistant");
            api_add_text(m, "content", a.text);
        } else {
            api_add_text(c, "text", a.text);
        }
        cJSON_AddNullToObject(c, "logprobs");
        cJSON_AddStringToObject(c, "finish_reason", a.stopped ? "stop" : "length");
        cJSON_AddNumberToObject(c, "nfe", out->nfe);
        if (g->return_tokens) {
            cJSON *t = cJSON_AddArrayToObject(c, "tokens");
            for (int k = 0; k < n; k++)
                cJSON_AddItemToArray(t, cJSON_CreateNumber(gen[k]));
        }
        cJSON_AddItemToArray(choices, c);
        free(a.text);
    }
    api_add_usage(o, g->n_prompt, completion_tokens);
    return json_reply(200, o);
}

/* Waits for every choice (the client may leave: its sessions then stop at
 * the next step) and answers. */
static serve_reply wait_and_answer(serve_server *srv, const gen_request *g, serve_job *j, int fd) {
    serve_sched *q = &srv->sched;
    bool gone = false;
    pthread_mutex_lock(&q->mu);
    while (j->n_done < j->n_choices && !gone) {
        sched_wait(q, j);
        if (api_client_gone(fd)) {
            atomic_store(&j->cancelled, true);
            gone = true;
        }
    }
    pthread_mutex_unlock(&q->mu);
    serve_reply r = gone ? api_error(499, "client_closed", NULL, NULL, "the client left") : job_response(srv, g, j);
    job_release(q, j);
    return r;
}

static serve_reply generate(serve_server *srv, const cJSON *body, bool chat, int fd) {
    gen_request g = {0};
    serve_reply r = read_request(srv, body, chat, &g);
    serve_job *j = NULL;
    if (r.status == 0)
        r = begin_job(srv, &g, &j);
    if (r.status == 0)
        r = g.stream ? stream_start(srv, &g, j, fd) : wait_and_answer(srv, &g, j, fd);
    gen_request_free(&g);
    return r;
}

/* ---- the small endpoints ---- */

static serve_reply tokenize(serve_server *srv, const cJSON *body) {
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(body, "content");
    const cJSON *special = cJSON_GetObjectItemCaseSensitive(body, "add_special");
    if (!cJSON_IsString(content))
        return BAD_REQUEST("content", "content: expected the text to tokenize");
    if (special && !cJSON_IsBool(special))
        return BAD_REQUEST("add_special", "add_special: expected true or false");
    int32_t *ids;
    int n;
    bool ok = cJSON_IsTrue(special) ? cli_text_prompt_raw(&srv->text, content->valuestring, &ids, &n) : false;
    if (!cJSON_IsTrue(special)) {
        size_t count;
        um_error err;
        const char *s = content->valuestring;
        ok = um_tokenizer_encode(srv->text.tok, s, strlen(s), true, &ids, &count, &err) == UM_OK;
        n = (int)count;
    }
    if (!ok)
        return api_error(500, "server_error", NULL, NULL, "the text could not be tokenized");
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "tokens");
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
    free(ids);
    return json_reply(200, o);
}

static serve_reply detokenize(serve_server *srv, const cJSON *body) {
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(body, "tokens");
    int n = cJSON_GetArraySize(tokens), vocab = um_tokenizer_n_vocab(srv->text.tok);
    if (!cJSON_IsArray(tokens))
        return BAD_REQUEST("tokens", "tokens: expected an array of token ids");
    int32_t *ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *ids);
    if (!ids)
        return api_error(500, "server_error", NULL, NULL, "out of memory");
    int k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, tokens) {
        if (!is_int(e, 0, vocab - 1)) {
            free(ids);
            return BAD_REQUEST("tokens", "tokens[%d]: token ids are integers in [0, %d)", k, vocab);
        }
        ids[k++] = (int32_t)e->valuedouble;
    }
    char *text;
    size_t len;
    um_error err;
    um_status st = um_tokenizer_decode(srv->text.tok, ids, (size_t)n, false, &text, &len, &err);
    free(ids);
    if (st != UM_OK)
        return BAD_REQUEST("tokens", "%s", err.msg);
    cJSON *o = cJSON_CreateObject();
    api_add_text(o, "content", text);
    free(text);
    return json_reply(200, o);
}

static serve_reply models(serve_server *srv) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", srv->cfg.model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)srv->created);
    cJSON_AddStringToObject(m, "owned_by", "unmask");
    cJSON *meta = cJSON_AddObjectToObject(m, "meta");
    cJSON_AddStringToObject(meta, "architecture", srv->info.architecture);
    cJSON_AddNumberToObject(meta, "n_params", (double)srv->info.n_params);
    cJSON_AddNumberToObject(meta, "n_vocab", srv->info.n_vocab);
    cJSON_AddNumberToObject(meta, "max_seq_len", srv->info.max_seq_len);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "data"), m);
    return json_reply(200, o);
}

static serve_reply health(serve_server *srv) {
    pthread_mutex_lock(&srv->sched.mu);
    bool stopping = srv->sched.stopping;
    pthread_mutex_unlock(&srv->sched.mu);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", stopping ? "shutting down" : "ok");
    return json_reply(stopping ? 503 : 200, o);
}

/* Appends one metric in Prometheus's text format to b (size bytes in all). */
static void metric(char *b, size_t size, const char *name, const char *type, const char *help, double value) {
    size_t len = strlen(b);
    snprintf(b + len, size - len, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, value);
}

static serve_reply metrics(serve_server *srv) {
    serve_sched *q = &srv->sched;
    pthread_mutex_lock(&q->mu);
    serve_metrics m = q->m;
    int queued = q->q_len, live = q->n_live;
    pthread_mutex_unlock(&q->mu);
    size_t size = 8192;
    char *b = calloc(1, size);
    if (!b)
        return api_error(500, "server_error", NULL, NULL, "out of memory");
    metric(b, size, "unmask_requests_total", "counter", "HTTP requests answered", (double)m.requests);
    metric(b, size, "unmask_request_errors_total", "counter", "HTTP requests answered with a status >= 400",
           (double)m.errors);
    metric(b, size, "unmask_queue_length", "gauge", "sessions waiting for a place in the batch", queued);
    metric(b, size, "unmask_live_sessions", "gauge", "sessions in the batch", live);
    metric(b, size, "unmask_sessions_finished_total", "counter", "sessions finished", (double)m.finished);
    metric(b, size, "unmask_forwards_total", "counter", "batched forward passes (steps)", (double)m.forwards);
    metric(b, size, "unmask_tokens_committed_total", "counter", "tokens committed", (double)m.tokens);
    metric(b, size, "unmask_tokens_per_second", "gauge", "tokens committed per second of stepping",
           m.step_seconds > 0 ? m.tokens / m.step_seconds : 0);
    metric(b, size, "unmask_step_seconds_sum", "counter", "seconds spent in batched steps", m.step_seconds);
    metric(b, size, "unmask_step_seconds_count", "counter", "batched steps", (double)m.forwards);
    metric(b, size, "unmask_step_seconds_last", "gauge", "latency of the last batched step",
           m.last_step_seconds);
    metric(b, size, "unmask_batch_size_last", "gauge", "sessions in the last batched step", m.last_batch);
    metric(b, size, "unmask_uptime_seconds", "gauge", "seconds since the server started",
           um_now() - srv->started);
    return (serve_reply){200, b, "text/plain; version=0.0.4", NULL};
}

/* ---- routing ---- */

static serve_reply post_json(serve_server *srv, const char *url, const char *body, size_t len, int fd) {
    cJSON *o = cJSON_ParseWithLength(body ? body : "", len);
    if (!o)
        return BAD_REQUEST(NULL, "the body is not valid JSON");
    serve_reply r;
    if (!cJSON_IsObject(o))
        r = BAD_REQUEST(NULL, "the body must be a JSON object");
    else if (strcmp(url, "/v1/completions") == 0)
        r = generate(srv, o, false, fd);
    else if (strcmp(url, "/v1/chat/completions") == 0)
        r = generate(srv, o, true, fd);
    else if (strcmp(url, "/tokenize") == 0)
        r = tokenize(srv, o);
    else
        r = detokenize(srv, o);
    cJSON_Delete(o);
    return r;
}

/* The page (tools/serve_page.html, made a C string by the Makefile). */
extern const char serve_page_html[];

static serve_reply page(void) {
    char *html = strdup(serve_page_html);
    if (!html)
        return api_error(500, "server_error", NULL, NULL, "out of memory");
    return (serve_reply){200, html, "text/html; charset=utf-8", NULL};
}

serve_reply api_handle(serve_server *srv, const char *method, const char *url, const char *body, size_t len, int fd) {
    static const char *const posts[] = {"/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize"};
    static const char *const gets[] = {"/health", "/v1/models", "/metrics", "/"};
    bool is_get = strcmp(method, "GET") == 0, is_post = strcmp(method, "POST") == 0;
    for (size_t i = 0; i < sizeof posts / sizeof *posts; i++)
        if (strcmp(url, posts[i]) == 0)
            return is_post ? post_json(srv, url, body, len, fd)
                           : api_error(405, "invalid_request_error", NULL, "method_not_allowed", "%s takes POST", url);
    for (size_t i = 0; i < sizeof gets / sizeof *gets; i++)
        if (strcmp(url, gets[i]) == 0) {
            if (!is_get)
                return api_error(405, "invalid_request_error", NULL, "method_not_allowed", "%s takes GET", url);
            return i == 0 ? health(srv) : i == 1 ? models(srv) : i == 2 ? metrics(srv) : page();
        }
    return api_error(404, "invalid_request_error", NULL, "not_found", "no endpoint %s %s", method, url);
}
