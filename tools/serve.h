/* unmask serve: an OpenAI-compatible HTTP server over the steppable sessions.
 *
 * Four parts, one file each:
 *
 *   serve_sched.c  the scheduler: ONE thread owns the context and steps every
 *                  live session in one forward pass (um_sessions_step); new
 *                  requests join between steps, finished ones leave; the rest
 *                  wait in a bounded queue. It is the only thread that touches
 *                  a session once it is submitted.
 *   serve_api.c    the endpoints: request bodies into sessions (the generation
 *                  keys of run --batch), results into OpenAI's objects.
 *   serve_stream.c a stream: the server-sent events of a job, the committed
 *                  prefix's text and each step's canvas.
 *   serve_http.c   libmicrohttpd: a thread per connection that reads the body,
 *                  checks the API key, calls the endpoint and answers; it only
 *                  enqueues and waits (or streams).
 *
 * All shared state sits behind the scheduler's one mutex. */
#ifndef UM_TOOLS_SERVE_H
#define UM_TOOLS_SERVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "text.h"

typedef struct {
    const char *host;
    int port;
    int parallel;        /* live sessions at most */
    int queue;           /* sessions waiting at most (429 past it) */
    const char *api_key; /* NULL: no authentication */
    const char *model_id;
    size_t max_body;     /* bytes */
    int max_prompt;      /* tokens */
    int ctx_size;        /* prompt + max_tokens at most (-c); <= 0: the model's max_seq_len */
    int max_tokens;      /* gen length at most */
    int max_n;           /* choices per request at most */
    double timeout;      /* seconds a request may take, queue included */
    double drain;        /* seconds SIGTERM waits for live requests before cancelling them */
    int max_connections;
    int idle_timeout;    /* seconds a connection may sit without sending (slow or half-sent requests) */
} serve_config;

/* The canvas's generated part after one step, for a stream. */
typedef struct {
    int step;
    int32_t *gen; /* gen_len ids; the mask id where still masked */
} serve_event;

struct serve_job;

/* One session of a request ("n" gives several). */
typedef struct {
    struct serve_job *job;
    int index;
    um_session *s;
    int prompt_len, gen_len;
    bool started, done;
    um_status status; /* of the finished session */
    char error[512];
    um_generation out;
    /* a stream's events: appended by the scheduler, read by the connection */
    serve_event *events;
    int n_events, cap_events;
} serve_choice;

typedef struct serve_job {
    struct serve_sched *sched;
    int n_choices;
    serve_choice *choices;
    bool stream;
    double deadline;        /* um_now() seconds */
    atomic_bool cancelled;  /* the client left, or the deadline passed */
    bool timed_out, shut_down;
    int n_done;
    int refs;               /* the connection and the scheduler */
    pthread_cond_t changed; /* an event was appended or a choice finished */
} serve_job;

/* Prometheus counters and gauges (under the scheduler's mutex). */
typedef struct {
    long requests, errors;      /* HTTP requests answered, those with status >= 400 */
    long forwards;              /* batched forward passes */
    long tokens;                /* tokens committed */
    long finished;              /* sessions finished */
    double step_seconds;        /* summed over forwards */
    double last_step_seconds;
    int last_batch;             /* sessions in the last forward */
} serve_metrics;

typedef struct serve_sched {
    pthread_mutex_t mu;
    pthread_cond_t wake; /* work arrived, or stop */
    um_context *ctx;
    int parallel, queue_cap;
    serve_choice **queue; /* FIFO ring of queue_cap */
    int q_head, q_len;
    serve_choice **live;
    int n_live;
    bool stopping;        /* SIGTERM: no new jobs, queued ones are dropped */
    double drain_until;   /* then live ones are cancelled */
    serve_metrics m;
    pthread_t thread;
    bool running;
} serve_sched;

typedef struct serve_server {
    serve_config cfg;
    um_model *model;
    um_model_info info;
    cli_text text;
    const cli_gen_flags *defaults; /* the command line's generation flags */
    serve_sched sched;
    atomic_long next_id;
    atomic_int in_flight;          /* requests begun and not yet answered in full */
    double started;                /* um_now() at start */
    long created;                  /* time(NULL) at start */
} serve_server;

/* ---- the scheduler (serve_sched.c) ---- */

bool sched_start(serve_sched *q, um_context *ctx, int parallel, int queue_cap, char *msg, size_t msg_size);
/* Stops taking jobs; live ones get until drain_s, then are cancelled. Joins the thread. */
void sched_stop(serve_sched *q, double drain_s);
void sched_free(serve_sched *q);

/* A new job of n choices (sessions begun by the caller go into choices[i].s). */
serve_job *job_new(int n_choices, bool stream, double timeout_s);
/* Hands the job to the scheduler: 0, 429 (queue full) or 503 (stopping).
 * On success the scheduler holds a reference until every choice is done. */
int sched_submit(serve_sched *q, serve_job *j);
/* Waits, with the mutex held, until the job changed or 200 ms passed. */
void sched_wait(serve_sched *q, serve_job *j);
/* Drops the connection's reference (the job is freed with the last). */
void job_release(serve_sched *q, serve_job *j);
/* Frees a job the scheduler never took. */
void job_free(serve_job *j);
/* The step callback the sessions of a job are begun with (user_data: the choice). */
int sched_on_step(const um_step_info *info, void *user_data);

/* ---- the endpoints (serve_api.c) ---- */

/* An answer: JSON (or text) with a status, or a stream of a job. */
typedef struct {
    int status;
    char *body; /* malloc'd */
    const char *content_type;
    struct serve_stream *stream;
} serve_reply;

/* fd: the client's socket, watched while waiting so that a client that
 * leaves frees its sessions. */
serve_reply api_handle(serve_server *srv, const char *method, const char *url, const char *body, size_t len, int fd);
/* An OpenAI error object: {"error": {"message", "type", "param", "code"}}. */
serve_reply api_error(int status, const char *type, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ---- shared by the endpoints and the streams (serve_api.c, serve_stream.c) ---- */

#define MAX_STOPS 4

/* A generation request as read from its body. */
typedef struct {
    bool chat;
    um_generate_params p;
    int32_t *prompt;
    int n_prompt;
    int n;
    bool stream, include_usage, return_tokens;
    bool no_canvas; /* "stream_canvas": false: chunks only when there is new text */
    char *stops[MAX_STOPS];
    int n_stops;
} gen_request;
void gen_request_free(gen_request *g);

/* A choice's answer: text cut at the first EOS/EOT (as unmask run) and at
 * the first stop string. */
typedef struct {
    char *text;
    int n_tokens; /* generated tokens before the first EOS/EOT */
    bool stopped; /* EOS/EOT or a stop string */
} answer;
/* gen[0, n)'s answer, cut at EOS/EOT and the first of the stops (malloc'd text). */
bool api_answer(serve_server *srv, const int32_t *gen, int n, char *const *stops, int n_stops, answer *a);
/* The error of a finished job (timeout, shutdown, failure), or status 0. */
serve_reply api_job_error(const serve_job *j);
/* The fields every response and chunk starts with: id, object, created, model. */
cJSON *api_response_head(serve_server *srv, const char *id, const char *object);
void api_make_id(serve_server *srv, bool chat, char *id, size_t size);
void api_add_usage(cJSON *o, int prompt_tokens, int completion_tokens);
/* s as valid UTF-8 for JSON: each byte that does not start a whole, valid
 * character becomes U+FFFD. malloc'd. */
char *api_utf8_valid(const char *s);
/* cJSON_AddStringToObject with text made valid UTF-8 (a model may emit any bytes). */
void api_add_text(cJSON *o, const char *key, const char *text);
/* The client closed its end: what it asked for can go. */
bool api_client_gone(int fd);

/* Answers with a stream of j (which it takes, with g's contents). */
serve_reply stream_start(serve_server *srv, gen_request *g, serve_job *j, int fd);
/* A stream's next bytes (server-sent events): blocks until there are some;
 * 0 at its end, -1 when the client left. */
long stream_read(struct serve_stream *st, char *buf, size_t max);
void stream_free(struct serve_stream *st);

/* ---- HTTP (serve_http.c) ---- */

/* Serves until SIGTERM or SIGINT (the caller blocks them first); returns the exit code. */
int serve_http_run(serve_server *srv);

#endif
