/* unmask serve: the server started on a free loopback port and driven over
 * raw sockets: every endpoint, the error objects and status codes of bad
 * input, the API key, the streams' format, clients that leave, a full queue,
 * the time limit, SIGTERM, and equality: 16 concurrent requests with
 * different settings give exactly what unmask run --json gives each alone. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define TINY "llada/tiny-llada/hf-bf16"

typedef struct {
    pid_t pid;
    int port;
    char log[64];
} server;

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts unmask serve MODEL --port 0 with extra flags (space-separated) and
 * waits for the port it prints. */
static server start_server(const char *model, const char *flags) {
    server s = {0};
    snprintf(s.log, sizeof s.log, "/tmp/unmask-serve-XXXXXX");
    int fd = mkstemp(s.log);
    assert_true(fd >= 0);
    const char *bin = getenv("UNMASK_BIN");
    char args[2048];
    snprintf(args, sizeof args, "%s serve -m %s --port 0 %s", bin && *bin ? bin : "build/unmask", model, flags);
    char *argv[64];
    int n = 0;
    for (char *w = strtok(args, " "); w && n < 63; w = strtok(NULL, " "))
        argv[n++] = w;
    argv[n] = NULL;
    s.pid = fork();
    if (s.pid == 0) {
        dup2(fd, 2);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        exec_wrapped(argv);
        _exit(127);
    }
    close(fd);
    for (int i = 0; i < 3000 && !s.port; i++) { /* up to 30 s (emulated builds start slowly) */
        size_t len;
        char *text = read_whole_file(s.log, &len);
        const char *at = text ? strstr(text, "listening on http://127.0.0.1:") : NULL;
        if (at)
            s.port = atoi(at + strlen("listening on http://127.0.0.1:"));
        free(text);
        if (!s.port)
            sleep_ms(10);
    }
    if (!s.port)
        fail_msg("unmask serve did not start (log: %s)", s.log);
    return s;
}

/* SIGTERM, then the exit status (fails past 20 s). */
static int stop_server(server *s) {
    kill(s->pid, SIGTERM);
    int status = -1;
    for (int i = 0; i < 2000; i++) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            unlink(s->log);
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        sleep_ms(10);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
    fail_msg("unmask serve did not exit within 20 s of SIGTERM");
    return -1;
}

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        fail_msg("cannot connect to port %d: %s", port, strerror(errno));
    return fd;
}

static void send_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void send_request(int fd, const char *method, const char *path, const char *headers, const char *body) {
    char head[4096];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     method, path, headers ? headers : "", body ? strlen(body) : 0);
    send_all(fd, head, (size_t)n);
    if (body)
        send_all(fd, body, strlen(body));
}

/* A header line in head, case-insensitively ("content-type: text/event-stream"). */
static bool has_header(const char *head, const char *line) {
    size_t n = strlen(line);
    for (const char *p = head; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] && tolower((unsigned char)p[i]) == tolower((unsigned char)line[i]))
            i++;
        if (i == n)
            return true;
    }
    return false;
}

typedef struct {
    int status;
    char *head, *body; /* body de-chunked */
} http_result;

/* Reads the whole response (the server closes: Connection: close). */
static http_result read_response(int fd) {
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = 0;
    close(fd);
    http_result h = {0};
    char *end = strstr(buf, "\r\n\r\n");
    if (!end || sscanf(buf, "HTTP/1.%*d %d", &h.status) != 1)
        fail_msg("not an HTTP response: '%.200s'", buf);
    *end = 0;
    h.head = buf;
    char *body = end + 4;
    if (!has_header(buf, "transfer-encoding: chunked")) {
        h.body = strdup(body);
        return h;
    }
    h.body = malloc(strlen(body) + 1);
    size_t out = 0;
    for (char *p = body;;) {
        char *after;
        long n = strtol(p, &after, 16);
        if (after == p || n <= 0)
            break;
        p = strstr(after, "\r\n") + 2;
        memcpy(h.body + out, p, (size_t)n);
        out += (size_t)n;
        p += n + 2;
    }
    h.body[out] = 0;
    return h;
}

static http_result http(int port, const char *method, const char *path, const char *headers, const char *body) {
    int fd = connect_to(port);
    send_request(fd, method, path, headers, body);
    return read_response(fd);
}

static void http_free(http_result *h) {
    free(h->head);
    free(h->body);
}

/* A request that must answer status: the parsed body (JSON). */
static cJSON *expect_json(int port, const char *path, const char *body, int status) {
    http_result h = http(port, body ? "POST" : "GET", path, NULL, body);
    if (h.status != status)
        fail_msg("%s %s: status %d, want %d: %s", path, body ? body : "", h.status, status, h.body);
    cJSON *o = cJSON_Parse(h.body);
    if (!o)
        fail_msg("%s: not JSON: %s", path, h.body);
    http_free(&h);
    return o;
}

/* An OpenAI error object with this status, naming param (when not NULL). */
static void expect_error(int port, const char *path, const char *body, int status, const char *param) {
    cJSON *o = expect_json(port, path, body, status);
    const cJSON *e = cJSON_GetObjectItem(o, "error");
    assert_true(cJSON_IsString(cJSON_GetObjectItem(e, "message")));
    assert_true(cJSON_IsString(cJSON_GetObjectItem(e, "type")));
    assert_non_null(cJSON_GetObjectItem(e, "code"));
    const cJSON *p = cJSON_GetObjectItem(e, "param");
    if (param && (!cJSON_IsString(p) || strcmp(p->valuestring, param) != 0))
        fail_msg("%s: the error names %s, want %s", body, cJSON_PrintUnformatted(e), param);
    cJSON_Delete(o);
}

static double metric(int port, const char *name) {
    http_result h = http(port, "GET", "/metrics", NULL, NULL);
    assert_int_equal(h.status, 200);
    char want[128];
    snprintf(want, sizeof want, "\n%s ", name);
    const char *at = strstr(h.body, want);
    if (!at)
        fail_msg("/metrics has no %s", name);
    double v = atof(at + strlen(want));
    http_free(&h);
    return v;
}

static void endpoints_answer(void **state) {
    (void)state;
    server s = start_server(fixture(TINY), "");
    cJSON *o = expect_json(s.port, "/health", NULL, 200);
    assert_string_equal(cJSON_GetObjectItem(o, "status")->valuestring, "ok");
    cJSON_Delete(o);
    o = expect_json(s.port, "/v1/models", NULL, 200);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "data"), 0), "id")->valuestring,
                        "hf-bf16");
    cJSON_Delete(o);

    o = expect_json(s.port, "/tokenize", "{\"content\": \"Hello there\"}", 200);
    char *ids = cJSON_PrintUnformatted(cJSON_GetObjectItem(o, "tokens"));
    char body[512];
    snprintf(body, sizeof body, "{\"tokens\": %s}", ids);
    cJSON *d = expect_json(s.port, "/detokenize", body, 200);
    assert_string_equal(cJSON_GetObjectItem(d, "content")->valuestring, "Hello there");
    free(ids);
    cJSON_Delete(d);
    cJSON_Delete(o);

    o = expect_json(s.port, "/v1/completions", "{\"prompt\": \"Hello\", \"max_tokens\": 16, \"n\": 2}", 200);
    assert_string_equal(cJSON_GetObjectItem(o, "object")->valuestring, "text_completion");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "choices")), 2);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 1), "text")));
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "usage"), "prompt_tokens")->valueint > 0);
    cJSON_Delete(o);
    o = expect_json(s.port, "/v1/chat/completions",
                    "{\"model\": \"hf-bf16\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], "
                    "\"max_tokens\": 16}", 200);
    const cJSON *msg = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0), "message");
    assert_string_equal(cJSON_GetObjectItem(msg, "role")->valuestring, "assistant");
    cJSON_Delete(o);

    http_result h = http(s.port, "GET", "/metrics", NULL, NULL);
    assert_int_equal(h.status, 200);
    const char *names[] = {"unmask_requests_total", "unmask_queue_length", "unmask_live_sessions",
                           "unmask_forwards_total", "unmask_tokens_per_second", "unmask_step_seconds_sum"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strstr(h.body, names[i]))
            fail_msg("/metrics lacks %s", names[i]);
    http_free(&h);
    assert_true(metric(s.port, "unmask_forwards_total") > 0);
    http_result page = http(s.port, "GET", "/", NULL, NULL);
    assert_int_equal(page.status, 200);
    assert_non_null(strstr(page.body, "/v1/chat/completions")); /* the whole page, served as built in */
    assert_non_null(strstr(page.body, "</html>"));
    http_free(&page);
    expect_error(s.port, "/nowhere", NULL, 404, NULL);
    expect_error(s.port, "/v1/models", "{}", 405, NULL);
    assert_int_equal(stop_server(&s), 0);
}

static void bad_input_gets_4xx(void **state) {
    (void)state;
    server s = start_server(fixture(TINY), "--max-body 4096 --max-prompt 64 --max-tokens 128 --max-n 4 -c 112");
    const char *c = "/v1/completions";
    expect_error(s.port, c, "{\"prompt\": \"x\",", 400, NULL);      /* malformed JSON */
    expect_error(s.port, c, "[1, 2]", 400, NULL);                   /* not an object */
    expect_error(s.port, c, "{\"max_tokens\": 8}", 400, "prompt");  /* no prompt */
    expect_error(s.port, c, "{\"prompt\": 7}", 400, "prompt");      /* wrong type */
    expect_error(s.port, c, "{\"prompt\": \"x\", \"max_tokens\": \"8\"}", 400, "max_tokens");
    expect_error(s.port, c, "{\"prompt\": \"x\", \"max_tokens\": 129}", 400, "max_tokens");
    expect_error(s.port, c, "{\"prompt\": \"x\", \"temperature\": \"hot\"}", 400, "temperature");
    expect_error(s.port, c, "{\"prompt\": \"x\", \"temperature\": -1}", 400, "temperature");
    expect_error(s.port, c, "{\"prompt\": \"x\", \"n\": 5}", 400, "n");
    expect_error(s.port, c, "{\"prompt\": \"x\", \"stop\": 3}", 400, "stop");
    cJSON_Delete(expect_json(s.port, c, /* a key twice: the last holds */
                             "{\"prompt\": \"x\", \"max_tokens\": 8, \"stop\": [\"a\", \"b\", \"c\", \"d\"], "
                             "\"stop\": [\"e\", \"f\", \"g\", \"h\"]}", 200));
    expect_error(s.port, c, "{\"prompt\": \"x\", \"model\": \"gpt-4\"}", 404, "model");
    expect_error(s.port, c, "{\"prompt\": [1, 2, 512]}", 400, "prompt");   /* id out of range */
    expect_error(s.port, c, "{\"prompt\": [1, 2.5]}", 400, "prompt");
    expect_error(s.port, c, "{\"prompt\": \"x\", \"logprobs\": 1}", 400, "logprobs");
    expect_error(s.port, c, "{\"prompt\": \"x\", \"echo\": true}", 400, "echo");
    expect_error(s.port, c, "{\"prompt\": \"x\", \"frobnicate\": 1}", 400, "frobnicate");
    expect_error(s.port, c, "{\"prompt\": \"x\", \"cache\": \"sometimes\"}", 400, "cache");
    expect_error(s.port, c, "{\"prompt\": \"x\", \"max_tokens\": 16, \"block_length\": 7}", 400, NULL);
    expect_error(s.port, c, "{\"prompt\": \"x\", \"steps\": 100000}", 400, "steps");
    expect_error(s.port, "/v1/chat/completions", "{\"messages\": []}", 400, "messages");
    expect_error(s.port, "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", 400,
                 "messages");
    expect_error(s.port, "/detokenize", "{\"tokens\": [1, -1]}", 400, "tokens");
    expect_error(s.port, "/tokenize", "{\"content\": 1}", 400, "content");
    char *big = malloc(8192);
    memset(big, ' ', 8191);
    big[8191] = 0;
    memcpy(big, "{\"prompt\": \"", 12);
    expect_error(s.port, c, big, 413, NULL); /* body over --max-body */
    char *words = calloc(1, 3000);
    strcpy(words, "{\"prompt\": \"");
    for (int i = 0; i < 200; i++)
        strcat(words, "hello ");
    strcat(words, "\"}");
    expect_error(s.port, c, words, 400, "prompt"); /* over --max-prompt */
    expect_error(s.port, c, "{\"prompt\": [1, 2, 3], \"max_tokens\": 112}", 400, "max_tokens"); /* over -c */
    free(words);
    free(big);
    cJSON *o = expect_json(s.port, "/health", NULL, 200); /* still standing */
    cJSON_Delete(o);
    assert_int_equal(stop_server(&s), 0);
}

static void api_key_is_required(void **state) {
    (void)state;
    server s = start_server(fixture(TINY), "--api-key s3cret");
    http_result h = http(s.port, "GET", "/health", NULL, NULL);
    assert_int_equal(h.status, 200);
    http_free(&h);
    const char *wrong[] = {NULL, "Authorization: Bearer s3cre\r\n", "Authorization: Bearer s3cret2\r\n",
                           "Authorization: s3cret\r\n"};
    for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++) {
        h = http(s.port, "GET", "/v1/models", wrong[i], NULL);
        assert_int_equal(h.status, 401);
        assert_non_null(strstr(h.body, "invalid_api_key"));
        http_free(&h);
    }
    h = http(s.port, "POST", "/v1/completions", NULL, "{\"prompt\": \"x\"}");
    assert_int_equal(h.status, 401);
    http_free(&h);
    h = http(s.port, "GET", "/", NULL, NULL); /* the page is open: it asks for the key */
    assert_int_equal(h.status, 200);
    assert_true(has_header(h.head, "content-type: text/html"));
    assert_non_null(strstr(h.body, "id=\"key\""));
    http_free(&h);
    h = http(s.port, "GET", "/v1/models", "Authorization: Bearer s3cret\r\n", NULL);
    assert_int_equal(h.status, 200);
    http_free(&h);
    h = http(s.port, "POST", "/v1/completions", "Authorization: Bearer s3cret\r\n",
             "{\"prompt\": \"x\", \"max_tokens\": 8}");
    assert_int_equal(h.status, 200);
    http_free(&h);
    assert_int_equal(stop_server(&s), 0);
}

/* Splits an SSE body into its data payloads; checks the framing. */
static int sse_events(char *body, char **events, int max) {
    int n = 0;
    for (char *p = body; *p && n < max;) {
        if (strncmp(p, "data: ", 6) != 0)
            fail_msg("an event does not start with 'data: ': '%.60s'", p);
        char *end = strstr(p, "\n\n");
        assert_non_null(end);
        *end = 0;
        events[n++] = p + 6;
        p = end + 2;
    }
    return n;
}

static void stream_format(void **state) {
    (void)state;
    server s = start_server("models/stories", "");
    const char *req = "{\"prompt\": \"Once upon a time\", \"max_tokens\": 32, \"seed\": 3, \"temperature\": 0.7%s}";
    char body[512];
    snprintf(body, sizeof body, req, "");
    cJSON *whole = expect_json(s.port, "/v1/completions", body, 200);
    const char *want = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(whole, "choices"), 0), "text")
                           ->valuestring;
    snprintf(body, sizeof body, req, ", \"stream\": true, \"stream_options\": {\"include_usage\": true}");
    http_result h = http(s.port, "POST", "/v1/completions", NULL, body);
    assert_int_equal(h.status, 200);
    assert_true(has_header(h.head, "content-type: text/event-stream"));
    char *events[512];
    int n = sse_events(h.body, events, 512);
    assert_true(n >= 4);
    assert_string_equal(events[n - 1], "[DONE]");
    char text[4096] = "";
    int canvases = 0, last_step = -1;
    for (int i = 0; i < n - 1; i++) {
        cJSON *o = cJSON_Parse(events[i]);
        assert_non_null(o);
        const cJSON *choices = cJSON_GetObjectItem(o, "choices");
        if (cJSON_GetArraySize(choices) == 0) { /* the usage chunk, last */
            assert_int_equal(i, n - 2);
            assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "usage"), "completion_tokens")->valueint > 0);
            cJSON_Delete(o);
            continue;
        }
        strcat(text, cJSON_GetObjectItem(cJSON_GetArrayItem(choices, 0), "text")->valuestring);
        const cJSON *canvas = cJSON_GetObjectItem(o, "canvas");
        if (canvas) { /* once per step, the whole canvas, masks as null and U+2591 */
            int step = cJSON_GetObjectItem(canvas, "step")->valueint;
            assert_int_equal(step, last_step + 1);
            last_step = step;
            assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(canvas, "tokens")), 32);
            assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(canvas, "pieces")), 32);
            if (canvases == 0)
                assert_non_null(strstr(cJSON_GetObjectItem(canvas, "text")->valuestring, "\xe2\x96\x91"));
            canvases++;
        }
        cJSON_Delete(o);
    }
    assert_int_equal(canvases,
                     cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(whole, "choices"), 0), "nfe")->valueint);
    assert_string_equal(text, want); /* the committed prefixes add up to the answer */
    http_free(&h);
    cJSON_Delete(whole);

    h = http(s.port, "POST", "/v1/chat/completions", NULL,
             "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 16, \"stream\": true}");
    n = sse_events(h.body, events, 512);
    assert_string_equal(events[n - 1], "[DONE]");
    cJSON *first = cJSON_Parse(events[0]), *last = cJSON_Parse(events[n - 2]);
    assert_string_equal(cJSON_GetObjectItem(first, "object")->valuestring, "chat.completion.chunk");
    const cJSON *delta = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(first, "choices"), 0), "delta");
    assert_string_equal(cJSON_GetObjectItem(delta, "role")->valuestring, "assistant");
    assert_true(cJSON_IsString(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(last, "choices"), 0), "finish_reason")));
    cJSON_Delete(first);
    cJSON_Delete(last);
    http_free(&h);

    /* a stop string cuts the answer, streamed or not, the same way */
    snprintf(body, sizeof body, req, ", \"stop\": [\".\", \"zzz\"], \"max_tokens\": 64");
    whole = expect_json(s.port, "/v1/completions", body, 200);
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItem(whole, "choices"), 0);
    want = cJSON_GetObjectItem(choice, "text")->valuestring;
    assert_null(strchr(want, '.'));
    snprintf(body, sizeof body, req, ", \"stop\": [\".\", \"zzz\"], \"max_tokens\": 64, \"stream\": true");
    h = http(s.port, "POST", "/v1/completions", NULL, body);
    n = sse_events(h.body, events, 512);
    text[0] = 0;
    for (int i = 0; i < n - 1; i++) {
        cJSON *o = cJSON_Parse(events[i]);
        strcat(text, cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0), "text")->valuestring);
        cJSON_Delete(o);
    }
    assert_string_equal(text, want);
    http_free(&h);
    cJSON_Delete(whole);
    assert_int_equal(stop_server(&s), 0);
}

/* ---- equality with unmask run ---- */

#define N_EQUAL 16

static const char *const equal_prompts[] = {"Once upon a time", "The little dog", "Lily and Tom went to the park",
                                            "One day"};
/* The same settings as body fields and as run's flags. */
static const char *const equal_settings[][2] = {
    {"\"max_tokens\": 32", "-n 32"},
    {"\"max_tokens\": 64, \"temperature\": 0.8, \"seed\": 7", "-n 64 --temp 0.8 --seed 7"},
    {"\"max_tokens\": 32, \"cache\": \"none\", \"decoder\": \"topk\", \"steps\": 16",
     "-n 32 --cache none --decoder topk --steps 16"},
    {"\"max_tokens\": 64, \"cache\": \"prefix\", \"threshold\": 0.7", "-n 64 --cache prefix --threshold 0.7"},
    {"\"max_tokens\": 48, \"block_length\": 16, \"temperature\": 1.0, \"seed\": 3",
     "-n 48 --block-length 16 --temp 1 --seed 3"},
    {"\"max_tokens\": 32, \"cache\": \"none\", \"decoder\": \"entropy\", \"steps\": 32",
     "-n 32 --cache none --decoder entropy --steps 32"},
    {"\"max_tokens\": 64, \"remasking\": \"random\", \"decoder\": \"topk\", \"seed\": 11",
     "-n 64 --remasking random --decoder topk --seed 11"},
    {"\"max_tokens\": 32, \"top_k\": 5, \"temperature\": 0.5, \"seed\": 2", "-n 32 --top-k 5 --temp 0.5 --seed 2"},
};

typedef struct {
    int port, k;
    http_result h;
} equal_call;

static bool equal_is_chat(int k) { return k % 2 == 1; }

static void equal_body(int k, char *buf, size_t n) {
    const char *p = equal_prompts[k % 4], *set = equal_settings[k % 8][0];
    if (equal_is_chat(k))
        snprintf(buf, n, "{\"messages\": [{\"role\": \"user\", \"content\": \"%s\"}], %s, \"return_tokens\": true}", p,
                 set);
    else
        snprintf(buf, n, "{\"prompt\": \"%s\", %s, \"return_tokens\": true}", p, set);
}

static void *equal_thread(void *arg) {
    equal_call *c = arg;
    char body[1024];
    equal_body(c->k, body, sizeof body);
    c->h = http(c->port, "POST", equal_is_chat(c->k) ? "/v1/chat/completions" : "/v1/completions", NULL, body);
    return NULL;
}

static void concurrent_requests_equal_run(void **state) {
    (void)state;
    server s = start_server("models/stories", "-np 6");
    equal_call calls[N_EQUAL];
    pthread_t th[N_EQUAL];
    for (int k = 0; k < N_EQUAL; k++) {
        calls[k] = (equal_call){s.port, k, {0}};
        pthread_create(&th[k], NULL, equal_thread, &calls[k]);
    }
    for (int k = 0; k < N_EQUAL; k++)
        pthread_join(th[k], NULL);
    assert_true(metric(s.port, "unmask_sessions_finished_total") == N_EQUAL);
    assert_int_equal(stop_server(&s), 0);
    for (int k = 0; k < N_EQUAL; k++) {
        if (calls[k].h.status != 200)
            fail_msg("request %d: status %d: %s", k, calls[k].h.status, calls[k].h.body);
        cJSON *got = cJSON_Parse(calls[k].h.body);
        const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItem(got, "choices"), 0);
        cJSON *want = run_unmask_json("run -m models/stories -p '%s' %s %s --json", equal_prompts[k % 4],
                                      equal_is_chat(k) ? "--chat" : "", equal_settings[k % 8][1]);
        const cJSON *wt = cJSON_GetObjectItem(want, "generated"), *gt = cJSON_GetObjectItem(choice, "tokens");
        assert_int_equal(cJSON_GetArraySize(gt), cJSON_GetArraySize(wt));
        for (int i = 0; i < cJSON_GetArraySize(wt); i++)
            if (cJSON_GetArrayItem(gt, i)->valueint != cJSON_GetArrayItem(wt, i)->valueint)
                fail_msg("request %d (%s): token %d differs from unmask run's", k, equal_settings[k % 8][1], i);
        const cJSON *text = equal_is_chat(k) ? cJSON_GetObjectItem(cJSON_GetObjectItem(choice, "message"), "content")
                                             : cJSON_GetObjectItem(choice, "text");
        assert_string_equal(text->valuestring, cJSON_GetObjectItem(want, "text")->valuestring);
        assert_int_equal(cJSON_GetObjectItem(choice, "nfe")->valueint, cJSON_GetObjectItem(want, "nfe")->valueint);
        cJSON_Delete(want);
        cJSON_Delete(got);
        http_free(&calls[k].h);
    }
}

/* ---- limits and faults ---- */

/* A long request: the story model, 256 tokens, one per step. */
#define LONG_REQUEST "{\"prompt\": \"Once\", \"max_tokens\": 256, \"steps\": 256, \"cache\": \"none\", " \
                     "\"decoder\": \"topk\"%s}"

static void wait_metric(int port, const char *name, double want) {
    for (int i = 0; i < 1000; i++) {
        if (metric(port, name) == want)
            return;
        sleep_ms(10);
    }
    fail_msg("%s did not reach %g in 10 s", name, want);
}

static void client_that_leaves_frees_its_session(void **state) {
    (void)state;
    server s = start_server("models/stories", "");
    char body[512];
    for (int stream = 0; stream < 2; stream++) {
        snprintf(body, sizeof body, LONG_REQUEST, stream ? ", \"stream\": true" : "");
        int fd = connect_to(s.port);
        send_request(fd, "POST", "/v1/completions", NULL, body);
        wait_metric(s.port, "unmask_live_sessions", 1);
        close(fd);
        wait_metric(s.port, "unmask_live_sessions", 0);
    }
    assert_true(metric(s.port, "unmask_tokens_committed_total") < 2 * 256);
    assert_int_equal(stop_server(&s), 0);
}

static void full_queue_is_429_and_time_limit_503(void **state) {
    (void)state;
    server s = start_server("models/stories", "-np 1 --queue 1 --timeout 1");
    char body[512];
    snprintf(body, sizeof body, LONG_REQUEST, ", \"stream\": true");
    int live = connect_to(s.port), queued = connect_to(s.port);
    send_request(live, "POST", "/v1/completions", NULL, body);
    wait_metric(s.port, "unmask_live_sessions", 1);
    char whole[512];
    snprintf(whole, sizeof whole, LONG_REQUEST, "");
    send_request(queued, "POST", "/v1/completions", NULL, whole);
    wait_metric(s.port, "unmask_queue_length", 1);
    expect_error(s.port, "/v1/completions", "{\"prompt\": \"x\"}", 429, NULL);
    /* the queued one runs out of time behind the live one: 503 */
    http_result q = read_response(queued);
    assert_int_equal(q.status, 503);
    assert_non_null(strstr(q.body, "\"code\":\"timeout\""));
    http_free(&q);
    /* the live one runs out of time: its stream ends with an error event */
    http_result h = read_response(live);
    assert_int_equal(h.status, 200);
    assert_non_null(strstr(h.body, "\"code\":\"timeout\""));
    assert_non_null(strstr(h.body, "data: [DONE]"));
    http_free(&h);
    snprintf(body, sizeof body, LONG_REQUEST, "");
    expect_error(s.port, "/v1/completions", body, 503, NULL);
    assert_int_equal(stop_server(&s), 0);
}

static void sigterm_finishes_live_requests(void **state) {
    (void)state;
    server s = start_server("models/stories", "--drain 0.2");
    char body[512];
    snprintf(body, sizeof body, LONG_REQUEST, "");
    int fd = connect_to(s.port);
    send_request(fd, "POST", "/v1/completions", NULL, body);
    wait_metric(s.port, "unmask_live_sessions", 1);
    kill(s.pid, SIGTERM);
    http_result h = read_response(fd); /* cancelled after the drain time: 503, or done: 200 */
    assert_true(h.status == 503 || h.status == 200);
    http_free(&h);
    assert_int_equal(stop_server(&s), 0);
}

static void half_sent_request_times_out(void **state) {
    (void)state;
    server s = start_server(fixture(TINY), "--idle-timeout 1");
    int fd = connect_to(s.port);
    send_all(fd, "POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"pro", 56);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char c;
    double t0 = (double)time(NULL);
    ssize_t r = recv(fd, &c, 1, 0);
    assert_true(r <= 0);                      /* closed, not answered */
    assert_true((double)time(NULL) - t0 < 5); /* by the idle timeout */
    close(fd);
    cJSON_Delete(expect_json(s.port, "/health", NULL, 200));
    assert_int_equal(stop_server(&s), 0);
}

/* Hundreds of silent connections hold no one else up; a chunked body over
 * the limit is refused while it is read. */
static void many_connections_and_chunked_bodies(void **state) {
    (void)state;
    server s = start_server(fixture(TINY), "--max-body 1024");
    enum { N = 300 };
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = connect_to(s.port);
    cJSON_Delete(expect_json(s.port, "/health", NULL, 200));
    cJSON_Delete(expect_json(s.port, "/v1/completions", "{\"prompt\": \"Hi\", \"max_tokens\": 8}", 200));
    for (int i = 0; i < N; i++)
        close(fds[i]);
    int fd = connect_to(s.port);
    const char *head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n";
    send_all(fd, head, strlen(head));
    char chunk[600];
    memset(chunk, 'a', sizeof chunk);
    for (int i = 0; i < 4; i++) {
        send_all(fd, "258\r\n", 5); /* 600 bytes */
        send_all(fd, chunk, sizeof chunk);
        send_all(fd, "\r\n", 2);
    }
    send_all(fd, "0\r\n\r\n", 5);
    http_result h = read_response(fd);
    assert_int_equal(h.status, 413);
    http_free(&h);
    cJSON_Delete(expect_json(s.port, "/health", NULL, 200));
    assert_int_equal(stop_server(&s), 0);
}

/* 1,000 requests of every kind, good and bad, whole and streamed, some
 * left halfway: the server answers all, and under the sanitizers (make
 * test-asan) exits 0, which LeakSanitizer makes non-zero on any leak. */
static void thousand_requests(void **state) {
    (void)state;
    server s = start_server(fixture(TINY), "-np 4");
    const char *bodies[] = {
        "{\"prompt\": \"Hi\", \"max_tokens\": 8}",
        "{\"prompt\": \"Hi\", \"max_tokens\": 8, \"stream\": true, \"n\": 2}",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 8, \"stream\": true}",
        "{\"prompt\": \"Hi\", \"max_tokens\": 8, \"stop\": [\"p\"], \"temperature\": 0.9}",
        "{\"prompt\": [1, 2, 3], \"max_tokens\": 1000000}",
        "{\"prompt\": \"Hi\", \"block_length\": 3}",
        "{\"prompt\": \"Hi\"",
    };
    int n_bodies = (int)(sizeof bodies / sizeof *bodies);
    for (int i = 0; i < 1000; i++) {
        const char *body = bodies[i % n_bodies];
        if (i % 50 == 49) { /* a client that leaves without reading */
            int fd = connect_to(s.port);
            send_request(fd, "POST", "/v1/completions", NULL, bodies[1]);
            close(fd);
            continue;
        }
        http_result h = http(s.port, "POST", strstr(body, "messages") ? "/v1/chat/completions" : "/v1/completions",
                             NULL, body);
        assert_int_equal(h.status, i % n_bodies < 4 ? 200 : 400);
        http_free(&h);
    }
    assert_true(metric(s.port, "unmask_requests_total") >= 980);
    assert_int_equal(stop_server(&s), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(endpoints_answer),
    cmocka_unit_test(bad_input_gets_4xx),
    cmocka_unit_test(api_key_is_required),
    cmocka_unit_test(stream_format),
    cmocka_unit_test(concurrent_requests_equal_run),
    cmocka_unit_test(client_that_leaves_frees_its_session),
    cmocka_unit_test(full_queue_is_429_and_time_limit_503),
    cmocka_unit_test(sigterm_finishes_live_requests),
    cmocka_unit_test(half_sent_request_times_out),
    cmocka_unit_test(many_connections_and_chunked_bodies),
    cmocka_unit_test(thousand_requests),
};
const test_group serve_group = {"serve", tests, sizeof tests / sizeof *tests};
