/* unmask serve's streams: a job's progress as server-sent events (OpenAI's
 * chunks with the committed prefix's text, and each step's canvas). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

#define MASK_MARK "\xe2\x96\x91" /* U+2591, a mask in a canvas's text */

typedef struct {
    int read;     /* events consumed */
    size_t sent;  /* bytes of answer text sent */
    bool final_sent, role_sent, stop_hit;
    int completion_tokens;
} stream_choice;

typedef struct serve_stream {
    serve_server *srv;
    serve_job *job;
    gen_request g;
    int fd;
    char id[64];
    stream_choice *ch;
    char *buf; /* formatted events not yet sent */
    size_t len, off;
    bool ended;
} serve_stream;

static size_t max_stop_len(const gen_request *g) {
    size_t m = 0;
    for (int i = 0; i < g->n_stops; i++)
        m = g->stops[i] && strlen(g->stops[i]) > m ? strlen(g->stops[i]) : m;
    return m;
}

/* Bytes of s[0, n) that end on a whole UTF-8 character. */
static size_t utf8_whole(const char *s, size_t n) {
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0)
        return n;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return back + 1 >= need ? n : i - 1;
}

static bool append_event(serve_stream *st, const char *data) {
    size_t n = strlen(data) + 8;
    char *grown = realloc(st->buf, st->len + n + 1);
    if (!grown)
        return false;
    st->buf = grown;
    st->len += (size_t)sprintf(st->buf + st->len, "data: %s\n\n", data);
    return true;
}

static bool append_json_event(serve_stream *st, cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    bool ok = s && append_event(st, s);
    free(s);
    return ok;
}

/* A growing string; on failure it stays NULL. */
typedef struct {
    char *s;
    size_t len, cap;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n) {
    if (b->cap && !b->s)
        return; /* an earlier failure */
    if (b->len + n + 1 > b->cap) {
        size_t cap = 2 * (b->len + n + 1) + 64;
        char *grown = realloc(b->s, cap);
        if (!grown) {
            free(b->s);
            b->s = NULL;
            return;
        }
        b->s = grown;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

/* One token's own text, for drawing it in its cell (a piece of a
 * character shows as U+FFFD). */
static cJSON *piece_json(const um_tokenizer *tok, int32_t id) {
    size_t len = 0;
    const char *bytes = um_tokenizer_token_bytes(tok, id, &len);
    char *piece = bytes ? strndup(bytes, len) : NULL;
    char *valid = piece ? api_utf8_valid(piece) : NULL;
    cJSON *item = cJSON_CreateString(valid ? valid : "");
    free(piece);
    free(valid);
    return item;
}

/* The canvas with masks marked: ids (null for a mask), each token's own
 * text (null for a mask), and the text (each mask as U+2591). */
static cJSON *canvas_json(serve_server *srv, int index, int step, const int32_t *gen, int n) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", index);
    cJSON_AddNumberToObject(c, "step", step);
    cJSON *ids = cJSON_AddArrayToObject(c, "tokens"), *pieces = cJSON_AddArrayToObject(c, "pieces");
    strbuf text = {0};
    sb_add(&text, "", 0);
    for (int i = 0; i < n;) {
        if (gen[i] == srv->info.mask_id) {
            cJSON_AddItemToArray(ids, cJSON_CreateNull());
            cJSON_AddItemToArray(pieces, cJSON_CreateNull());
            sb_add(&text, MASK_MARK, strlen(MASK_MARK));
            i++;
            continue;
        }
        int k = i; /* a run of tokens decodes as one piece (a character may span tokens) */
        for (; k < n && gen[k] != srv->info.mask_id; k++) {
            cJSON_AddItemToArray(ids, cJSON_CreateNumber(gen[k]));
            cJSON_AddItemToArray(pieces, piece_json(srv->text.tok, gen[k]));
        }
        char *run = cli_text_answer_all(&srv->text, gen + i, k - i);
        if (run)
            sb_add(&text, run, strlen(run));
        free(run);
        i = k;
    }
    if (text.s)
        api_add_text(c, "text", text.s);
    free(text.s);
    return c;
}

/* A chunk of choice i: the text delta (and the finish reason at the end). */
static cJSON *chunk(serve_stream *st, int i, const char *delta, const char *finish) {
    const gen_request *g = &st->g;
    cJSON *o = api_response_head(st->srv, st->id, g->chat ? "chat.completion.chunk" : "text_completion");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", i);
    if (g->chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (!st->ch[i].role_sent)
            cJSON_AddStringToObject(d, "role", "assistant");
        st->ch[i].role_sent = true;
        if (delta)
            api_add_text(d, "content", delta);
    } else {
        api_add_text(c, "text", delta ? delta : "");
    }
    cJSON_AddNullToObject(c, "logprobs");
    if (finish)
        cJSON_AddStringToObject(c, "finish_reason", finish);
    else
        cJSON_AddNullToObject(c, "finish_reason");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), c);
    return o;
}

/* The new text of choice i's answer so far (a): what is final and was not
 * sent, keeping back what a stop string might still claim. */
static char *take_delta(serve_stream *st, int i, const answer *a, bool final) {
    stream_choice *sc = &st->ch[i];
    size_t len = strlen(a->text);
    if (!final && !a->stopped) {
        size_t hold = max_stop_len(&st->g);
        len = len >= hold ? len - (hold ? hold - 1 : 0) : 0;
        len = utf8_whole(a->text, len);
    }
    if (len <= sc->sent)
        return strdup("");
    char *d = strndup(a->text + sc->sent, len - sc->sent);
    sc->sent = len;
    return d;
}

/* One step of choice i: the committed prefix's new text and the canvas. */
static bool step_event(serve_stream *st, int i, const serve_event *ev) {
    serve_choice *c = &st->job->choices[i];
    int prefix = 0;
    while (prefix < c->gen_len && ev->gen[prefix] != st->srv->info.mask_id)
        prefix++;
    answer a = {0};
    char *delta = NULL;
    if (!st->ch[i].stop_hit && api_answer(st->srv, ev->gen, prefix, st->g.stops, st->g.n_stops, &a)) {
        st->ch[i].stop_hit = a.stopped;
        delta = take_delta(st, i, &a, false);
    }
    free(a.text);
    if (st->g.no_canvas && (!delta || !*delta)) { /* nothing to say this step */
        free(delta);
        return true;
    }
    cJSON *o = chunk(st, i, delta ? delta : "", NULL);
    free(delta);
    if (!st->g.no_canvas)
        cJSON_AddItemToObject(o, "canvas", canvas_json(st->srv, i, ev->step, ev->gen, c->gen_len));
    return append_json_event(st, o);
}

/* The end of choice i: the rest of its text and the finish reason, or the error. */
static bool final_event(serve_stream *st, int i) {
    serve_choice *c = &st->job->choices[i];
    if (c->status != UM_OK) {
        serve_reply r = api_job_error(st->job);
        bool ok = append_event(st, r.body ? r.body : "{\"error\": {\"message\": \"out of memory\"}}");
        free(r.body);
        return ok;
    }
    const um_generation *out = &c->out;
    answer a;
    if (!api_answer(st->srv, out->tokens + out->prompt_len, out->n_tokens - out->prompt_len, st->g.stops,
                     st->g.n_stops, &a))
        return false;
    st->ch[i].completion_tokens = a.n_tokens;
    char *delta = take_delta(st, i, &a, true);
    cJSON *o = chunk(st, i, delta, a.stopped ? "stop" : "length");
    free(delta);
    free(a.text);
    return append_json_event(st, o);
}

static bool done_events(serve_stream *st) {
    if (st->g.include_usage) {
        int completion = 0;
        for (int i = 0; i < st->job->n_choices; i++)
            completion += st->ch[i].completion_tokens;
        cJSON *o = api_response_head(st->srv, st->id, st->g.chat ? "chat.completion.chunk" : "text_completion");
        cJSON_AddArrayToObject(o, "choices");
        api_add_usage(o, st->g.n_prompt, completion);
        if (!append_json_event(st, o))
            return false;
    }
    return append_event(st, "[DONE]");
}

/* Formats what happened since the last call; waits for something to happen.
 * False when the client left (or memory ran out). */
static bool stream_more(serve_stream *st) {
    serve_sched *q = &st->srv->sched;
    serve_job *j = st->job;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        int step_of = -1, final_of = -1, finals = 0;
        serve_event ev = {0};
        for (int i = 0; i < j->n_choices && step_of < 0 && final_of < 0; i++) {
            serve_choice *c = &j->choices[i];
            if (st->ch[i].read < c->n_events)
                ev = c->events[st->ch[i].read++], step_of = i;
            else if (c->done && !st->ch[i].final_sent)
                final_of = i;
            finals += st->ch[i].final_sent;
        }
        if (step_of >= 0 || final_of >= 0 || finals == j->n_choices) {
            pthread_mutex_unlock(&q->mu);
            /* the events and a finished choice's result are only read from here on */
            if (step_of >= 0)
                return step_event(st, step_of, &ev);
            if (final_of >= 0) {
                st->ch[final_of].final_sent = true;
                return final_event(st, final_of);
            }
            st->ended = true;
            return done_events(st);
        }
        sched_wait(q, j);
        if (api_client_gone(st->fd)) {
            atomic_store(&j->cancelled, true);
            pthread_mutex_unlock(&q->mu);
            return false;
        }
    }
}

long stream_read(serve_stream *st, char *buf, size_t max) {
    while (st->off == st->len) {
        if (st->ended)
            return 0;
        st->off = st->len = 0;
        if (!stream_more(st))
            return -1;
    }
    size_t n = st->len - st->off < max ? st->len - st->off : max;
    memcpy(buf, st->buf + st->off, n);
    st->off += n;
    return (long)n;
}

void stream_free(serve_stream *st) {
    if (!st)
        return;
    atomic_store(&st->job->cancelled, true); /* a client that left stops its sessions at the next step */
    job_release(&st->srv->sched, st->job);
    gen_request_free(&st->g);
    free(st->ch);
    free(st->buf);
    free(st);
}

serve_reply stream_start(serve_server *srv, gen_request *g, serve_job *j, int fd) {
    serve_stream *st = calloc(1, sizeof *st);
    stream_choice *ch = calloc((size_t)j->n_choices, sizeof *ch);
    if (!st || !ch) {
        free(st);
        free(ch);
        atomic_store(&j->cancelled, true);
        job_release(&srv->sched, j);
        return api_error(500, "server_error", NULL, NULL, "out of memory");
    }
    *st = (serve_stream){.srv = srv, .job = j, .g = *g, .fd = fd, .ch = ch};
    memset(g, 0, sizeof *g); /* the stream owns the request now */
    api_make_id(srv, st->g.chat, st->id, sizeof st->id);
    return (serve_reply){200, NULL, "text/event-stream", st};
}

