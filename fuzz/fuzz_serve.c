/* libFuzzer target for unmask serve's request bodies, end to end below HTTP:
 * the first byte picks the endpoint (completions, chat completions, tokenize,
 * detokenize), the rest is the body. A generation really runs: the scheduler
 * thread steps it on the tiny LLaDA fixture (max_tokens at most 16), and a
 * stream is read to its end. Every answer must be a JSON object (an OpenAI
 * error object for a 4xx) or a stream of JSON events ending in [DONE], never
 * a 500, a crash or a leak.
 *
 * Built and run by `make fuzz` (from the repository root; the fixture from
 * $UNMASK_FIXTURES, else ../shared/fixtures). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The page is no part of this: the binary's comes from the Makefile. */
const char serve_page_html[] = "";

static serve_server srv;
static um_generate_params defaults_params;
static cli_gen_flags defaults;
static um_context *ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *root = getenv("UNMASK_FIXTURES");
    char path[4096];
    snprintf(path, sizeof path, "%s/llada/tiny-llada/hf-bf16", root && *root ? root : "../shared/fixtures");
    srv.cfg = (serve_config){.host = "127.0.0.1", .parallel = 4, .queue = 64, .model_id = "tiny", .max_body = 1 << 20,
                             .max_prompt = 128, .max_tokens = 16, .max_n = 4, .timeout = 5, .drain = 0};
    srv.model = cli_open_model("fuzz", path, 1, true);
    ctx = srv.model ? cli_open_context("fuzz", srv.model) : NULL;
    if (!ctx || !cli_text_open(&srv.text, "fuzz", path, NULL))
        abort();
    srv.text.chat_warning_pending = false;
    um_model_get_info(srv.model, &srv.info);
    defaults_params = cli_generate_defaults();
    defaults = (cli_gen_flags){.p = &defaults_params, .gen_length = 8, .steps = -1, .block = -1};
    srv.defaults = &defaults;
    atomic_init(&srv.next_id, 1);
    atomic_init(&srv.in_flight, 0);
    char msg[256];
    if (!sched_start(&srv.sched, ctx, srv.cfg.parallel, srv.cfg.queue, msg, sizeof msg))
        abort();
    return 0;
}

/* Every event of a stream is JSON or [DONE], the last [DONE]. */
static void check_stream(struct serve_stream *st) {
    size_t len = 0, cap = 4096;
    char *all = malloc(cap), buf[2048];
    long n;
    while ((n = stream_read(st, buf, sizeof buf)) > 0) {
        if (len + (size_t)n + 1 > cap)
            all = realloc(all, cap = 2 * (len + (size_t)n + 1));
        memcpy(all + len, buf, (size_t)n);
        len += (size_t)n;
    }
    stream_free(st);
    if (n < 0)
        abort();
    all[len] = 0;
    char *last = NULL;
    for (char *p = all; *p;) {
        char *end = strstr(p, "\n\n");
        if (strncmp(p, "data: ", 6) != 0 || !end)
            abort();
        *end = 0;
        last = p + 6;
        cJSON *o = strcmp(last, "[DONE]") == 0 ? NULL : cJSON_Parse(last);
        if (strcmp(last, "[DONE]") != 0 && !cJSON_IsObject(o))
            abort();
        cJSON_Delete(o);
        p = end + 2;
    }
    if (!last || strcmp(last, "[DONE]") != 0)
        abort();
    free(all);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const urls[] = {"/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize"};
    if (size < 1)
        return 0;
    serve_reply r = api_handle(&srv, "POST", urls[data[0] % 4], (const char *)data + 1, size - 1, -1);
    if (r.stream) {
        check_stream(r.stream);
        return 0;
    }
    cJSON *o = cJSON_Parse(r.body ? r.body : "");
    bool ok = cJSON_IsObject(o) && (r.status == 200 || cJSON_GetObjectItem(o, "error")) && r.status != 500;
    cJSON_Delete(o);
    free(r.body);
    if (!ok)
        abort();
    return 0;
}
