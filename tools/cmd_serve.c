/* unmask serve: an OpenAI-compatible HTTP server (serve.h: how it is built). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "base/sys.h"
#include "serve.h"

static void serve_usage(void) {
    puts("usage: unmask serve -m MODEL [--host 127.0.0.1] [--port 8080] [-np N] [--api-key KEY] [options]\n"
         "\n"
         "An OpenAI-compatible HTTP server: POST /v1/completions, /v1/chat/completions (the model's chat\n"
         "template), /tokenize, /detokenize; GET /v1/models, /health, /metrics (Prometheus). Every step runs\n"
         "all live requests in one forward pass; new requests join between steps. A request's output is the\n"
         "same as unmask run's with the same settings. See the README, \"unmask serve\".\n"
         "\n"
         "  -m, --model PATH         GGUF file or Hugging Face directory (default: $UNMASK_MODEL, else the\n"
         "                           shipped models/stories)\n"
         "      --alias NAME         the model's id in the API (default: the model path's last component)\n"
         "      --host HOST          address to listen on (default 127.0.0.1)\n"
         "      --port N             port (default 8080; 0: any free one, printed at start)\n"
         "  -np, --parallel N        live sessions at most, stepped together (default 8)\n"
         "      --queue N            sessions waiting for a place at most; past it 429 (default 64)\n"
         "      --api-key KEY        require Authorization: Bearer KEY on every endpoint but /health\n"
         "      --api-key-file F     ... the key read from the first line of F\n"
         "      --max-body BYTES     largest request body; past it 413 (default 1048576)\n"
         "      --max-prompt N       longest prompt in tokens (default 4096)\n"
         "  -c, --ctx-size N         longest canvas, prompt + max_tokens (default 0: the model's context)\n"
         "      --max-tokens N       largest max_tokens, the generation length (default 1024)\n"
         "      --max-n N            largest n, choices per request (default 8)\n"
         "      --timeout S          seconds a request may take, waiting included; past it 503 (default 600)\n"
         "      --drain S            on SIGTERM, seconds live requests get to finish before they are\n"
         "                           cancelled (default 10)\n"
         "      --max-connections N  open connections at most (default 1024)\n"
         "      --idle-timeout S     seconds a connection may stay silent, e.g. half-sent (default 30)\n"
         "  -t, --threads N          worker threads of the forward passes (default: one per physical core)\n"
         CLI_NO_REPACK_HELP
         "  -n, --gen-length N, --steps, --block-length, --temp, --seed, --cache, --decoder, ...: the defaults\n"
         "                           of every request, as for unmask run (a request's fields override them)\n"
         "  -h, --help               this help");
}

/* The first line of a file, for --api-key-file (malloc'd; NULL after an error). */
static char *read_key_file(const char *path) {
    char *text = cli_text_read_file("serve", path);
    if (!text)
        return NULL;
    text[strcspn(text, "\r\n")] = 0;
    if (!*text) {
        cli_error("serve", "--api-key-file %s: the first line is empty", path);
        free(text);
        return NULL;
    }
    return text;
}

/* The model path's last component: "models/stories/" -> "stories". */
static void model_id_of(const char *path, char *buf, size_t size) {
    snprintf(buf, size, "%s", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = 0;
    const char *slash = strrchr(buf, '/');
    if (slash)
        memmove(buf, slash + 1, strlen(slash + 1) + 1);
}

typedef struct {
    serve_config cfg;
    const char *model, *key_file;
    int threads;
    bool no_repack;
} serve_args;

static bool parse_args(int argc, char **argv, serve_args *sa, cli_gen_flags *gf) {
    serve_config *c = &sa->cfg;
    *c = (serve_config){.host = "127.0.0.1", .port = 8080, .parallel = 8, .queue = 64, .max_body = 1 << 20,
                        .max_prompt = 4096, .max_tokens = 1024, .max_n = 8, .timeout = 600, .drain = 10,
                        .max_connections = 1024, .idle_timeout = 30};
    cli_args a;
    cli_init(&a, "serve", argc, argv);
    while (cli_next(&a)) {
        if (cli_is(&a, "-h", "--help")) {
            serve_usage();
            exit(0);
        } else if (cli_is(&a, "-m", "--model")) sa->model = cli_value(&a);
        else if (cli_is(&a, NULL, "--alias")) c->model_id = cli_value(&a);
        else if (cli_is(&a, NULL, "--host")) c->host = cli_value(&a);
        else if (cli_is(&a, NULL, "--port")) c->port = cli_int(&a, 0, 65535);
        else if (cli_is(&a, "-np", "--parallel")) c->parallel = cli_int(&a, 1, 4096);
        else if (cli_is(&a, NULL, "--queue")) c->queue = cli_int(&a, 1, 1 << 20);
        else if (cli_is(&a, NULL, "--api-key")) c->api_key = cli_value(&a);
        else if (cli_is(&a, NULL, "--api-key-file")) sa->key_file = cli_value(&a);
        else if (cli_is(&a, NULL, "--max-body")) c->max_body = (size_t)cli_int(&a, 64, 1 << 30);
        else if (cli_is(&a, NULL, "--max-prompt")) c->max_prompt = cli_int(&a, 1, 1 << 24);
        else if (cli_is(&a, "-c", "--ctx-size")) c->ctx_size = cli_int(&a, 0, 1 << 24);
        else if (cli_is(&a, NULL, "--max-tokens")) c->max_tokens = cli_int(&a, 1, 1 << 20);
        else if (cli_is(&a, NULL, "--max-n")) c->max_n = cli_int(&a, 1, 1024);
        else if (cli_is(&a, NULL, "--timeout")) c->timeout = cli_double(&a, 0.001, 1e7);
        else if (cli_is(&a, NULL, "--drain")) c->drain = cli_double(&a, 0, 1e6);
        else if (cli_is(&a, NULL, "--max-connections")) c->max_connections = cli_int(&a, 1, 1 << 20);
        else if (cli_is(&a, NULL, "--idle-timeout")) c->idle_timeout = cli_int(&a, 1, 1 << 20);
        else if (cli_is(&a, "-t", "--threads")) sa->threads = cli_int(&a, 1, 1024);
        else if (cli_is(&a, NULL, "--no-repack")) sa->no_repack = true;
        else if (!cli_generation_flag(&a, gf)) cli_unknown(&a);
    }
    if (a.ok && c->api_key && sa->key_file) {
        cli_error("serve", "give --api-key or --api-key-file, not both");
        return false;
    }
    if (a.ok && c->api_key && !*c->api_key) {
        cli_error("serve", "--api-key: the key is empty");
        return false;
    }
    return a.ok;
}

/* The model, its tokenizer and the scheduler; false after a message. */
static bool open_server(serve_server *srv, const serve_args *sa, const cli_gen_flags *gf, um_context **ctx,
                        char *id_buf, size_t id_size) {
    char default_path[4096];
    const char *model = cli_model_path(sa->model, default_path, sizeof default_path);
    srv->model = cli_open_model("serve", model, sa->threads, sa->no_repack ? CLI_MODEL_NO_REPACK : 0);
    *ctx = srv->model ? cli_open_context("serve", srv->model) : NULL;
    if (!*ctx || !cli_text_open(&srv->text, "serve", model, NULL))
        return false;
    um_model_get_info(srv->model, &srv->info);
    if (srv->text.chat_warning_pending) { /* said now: connections then only read the tokenizer */
        fprintf(stderr, "unmask serve: warning: %s\n", srv->text.chat_warning);
        srv->text.chat_warning_pending = false;
    }
    if (!srv->cfg.model_id) {
        model_id_of(model, id_buf, id_size);
        srv->cfg.model_id = id_buf;
    }
    srv->defaults = gf;
    char msg[256];
    if (!sched_start(&srv->sched, *ctx, srv->cfg.parallel, srv->cfg.queue, msg, sizeof msg)) {
        cli_error("serve", "%s", msg);
        return false;
    }
    return true;
}

int cmd_serve(int argc, char **argv) {
    um_generate_params p = cli_generate_defaults();
    cli_gen_flags gf = {.p = &p, .gen_length = -1, .steps = -1, .block = -1};
    serve_args sa = {0};
    if (!parse_args(argc, argv, &sa, &gf))
        return 2;
    char *key = sa.key_file ? read_key_file(sa.key_file) : NULL;
    if (sa.key_file && !key)
        return 2;
    if (key)
        sa.cfg.api_key = key;
    /* SIGTERM and SIGINT go to the main thread's sigwait, not to whichever
     * thread they hit: blocked here, before any thread starts */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client that left is a failed write, not the end of the server */
    /* a socket per connection: allow as many open files as the system lets us */
    struct rlimit files;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
    }

    serve_server srv = {.cfg = sa.cfg, .started = um_now(), .created = (long)time(NULL)};
    atomic_init(&srv.next_id, 1);
    atomic_init(&srv.in_flight, 0);
    um_context *ctx = NULL;
    char id[256];
    int rc = open_server(&srv, &sa, &gf, &ctx, id, sizeof id) ? serve_http_run(&srv) : 1;
    sched_stop(&srv.sched, 0);
    sched_free(&srv.sched);
    if (srv.text.tok)
        cli_text_close(&srv.text);
    um_context_free(ctx);
    um_model_close(srv.model);
    free(key);
    return rc;
}
