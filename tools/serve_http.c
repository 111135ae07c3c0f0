/* unmask serve's HTTP side, on libmicrohttpd: a thread per connection reads
 * the request, checks the API key, bounds the body, calls the endpoint
 * (serve_api.c) and sends its answer, or its stream as server-sent events.
 * Slow or half-sent requests are timed out by the library (--idle-timeout),
 * and the number of connections is capped (--max-connections). */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "base/sys.h"
#include "serve.h"

/* What one request has sent so far. */
typedef struct {
    char *body;
    size_t len, cap;
    bool refused; /* answered before its body was read (auth, declared size) */
    bool too_big; /* a body without a declared size went over the limit */
    size_t dropped;
} upload;

/* Compares the whole of both strings whatever they hold, so that the time
 * taken says nothing about how much of a guessed key was right. */
static bool same_secret(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned diff = (unsigned)(la != lb);
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)a[i] ^ (unsigned char)b[lb ? i % lb : 0];
    return diff == 0;
}

static bool authorized(const serve_server *srv, struct MHD_Connection *c) {
    if (!srv->cfg.api_key)
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncmp(h, "Bearer ", 7) != 0)
        return false;
    return same_secret(h + 7, srv->cfg.api_key);
}

static void count_request(serve_server *srv, int status) {
    pthread_mutex_lock(&srv->sched.mu);
    srv->sched.m.requests++;
    srv->sched.m.errors += status >= 400;
    pthread_mutex_unlock(&srv->sched.mu);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    long n = stream_read(cls, buf, max);
    return n > 0 ? (ssize_t)n : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_done(void *cls) { stream_free(cls); }

static enum MHD_Result send_reply(serve_server *srv, struct MHD_Connection *c, serve_reply r) {
    count_request(srv, r.status);
    if (r.status == 499) { /* the client left: nobody to answer */
        free(r.body);
        return MHD_NO;
    }
    struct MHD_Response *resp;
    if (r.stream) {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, r.stream, stream_done);
        if (resp)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        else
            stream_free(r.stream);
    } else {
        const char *body = r.body ? r.body : "";
        resp = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
        free(r.body);
    }
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type ? r.content_type : "application/json");
    if (r.status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)r.status, resp);
    MHD_destroy_response(resp);
    return ok;
}

/* The declared body size is over the limit: answer before reading it. */
static bool declared_too_big(const serve_server *srv, struct MHD_Connection *c) {
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl)
        return false;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    return errno || *end || n > srv->cfg.max_body;
}

static serve_reply too_big(const serve_server *srv) {
    return api_error(413, "invalid_request_error", NULL, "body_too_large",
                     "the request body is larger than %zu bytes (--max-body)", srv->cfg.max_body);
}

/* The first call of a request: refuse it now when its key is wrong or its
 * declared body too big, else start collecting the body. */
static enum MHD_Result first_call(serve_server *srv, struct MHD_Connection *c, const char *url, const char *method,
                                  void **con_cls) {
    upload *u = calloc(1, sizeof *u);
    if (!u)
        return MHD_NO;
    *con_cls = u;
    atomic_fetch_add(&srv->in_flight, 1); /* until on_completed */
    /* the health check and the page (which asks for the key) are open */
    bool open = strcmp(url, "/health") == 0 || (strcmp(url, "/") == 0 && strcmp(method, "GET") == 0);
    if (!open && !authorized(srv, c)) {
        u->refused = true;
        return send_reply(srv, c, api_error(401, "invalid_request_error", NULL, "invalid_api_key",
                                            "a valid API key is required: Authorization: Bearer KEY"));
    }
    if (declared_too_big(srv, c)) {
        u->refused = true;
        return send_reply(srv, c, too_big(srv));
    }
    return MHD_YES;
}

static bool add_body(serve_server *srv, upload *u, const char *data, size_t n) {
    if (u->len + n > srv->cfg.max_body)
        return false;
    if (u->len + n + 1 > u->cap) {
        size_t cap = 2 * (u->len + n + 1);
        cap = cap > srv->cfg.max_body + 1 ? srv->cfg.max_body + 1 : cap;
        char *grown = realloc(u->body, cap);
        if (!grown)
            return false;
        u->body = grown;
        u->cap = cap;
    }
    memcpy(u->body + u->len, data, n);
    u->len += n;
    u->body[u->len] = 0;
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    serve_server *srv = cls;
    (void)version;
    if (!*con_cls)
        return first_call(srv, c, url, method, con_cls);
    upload *u = *con_cls;
    if (u->refused) { /* the answer is queued; the rest of the body is dropped */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        /* libmicrohttpd answers only once the body is read: the rest of one
           that is too big is read and dropped, up to a bound past which the
           connection is closed without an answer */
        u->dropped += u->too_big ? *upload_data_size : 0;
        if (!u->too_big && !add_body(srv, u, upload_data, *upload_data_size))
            u->too_big = true;
        *upload_data_size = 0;
        return u->dropped > 16 * srv->cfg.max_body + (16u << 20) ? MHD_NO : MHD_YES;
    }
    if (u->too_big)
        return send_reply(srv, c, too_big(srv));
    /* a generation may take up to --timeout (and a stream be silent while it
       waits in the queue): the idle timeout waits that long for its answer */
    if (strcmp(method, "POST") == 0 && strncmp(url, "/v1/", 4) == 0)
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT,
                                  (unsigned)(srv->cfg.timeout + srv->cfg.drain + 30));
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return send_reply(srv, c, api_handle(srv, method, url, u->body, u->len, ci ? ci->connect_fd : -1));
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    serve_server *srv = cls;
    (void)toe;
    /* a kept-alive connection is idle again: back to the short timeout */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)srv->cfg.idle_timeout);
    upload *u = *con_cls;
    if (u) {
        free(u->body);
        free(u);
        atomic_fetch_sub(&srv->in_flight, 1);
    }
    *con_cls = NULL;
}

static void on_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    fputs("unmask serve: http: ", stderr);
    vfprintf(stderr, fmt, ap);
}

/* host:port as a socket address (a name, an IPv4 or an IPv6 address). */
static struct addrinfo *resolve(const serve_config *cfg) {
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    int rc = getaddrinfo(cfg->host, port, &hints, &ai);
    if (rc != 0) {
        cli_error("serve", "--host %s: %s", cfg->host, gai_strerror(rc));
        return NULL;
    }
    return ai;
}

static struct MHD_Daemon *start_daemon(serve_server *srv) {
    struct addrinfo *ai = resolve(&srv->cfg);
    if (!ai)
        return NULL;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)srv->cfg.port, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, on_log, srv,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)srv->cfg.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)srv->cfg.idle_timeout, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)(256 * 1024), MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d)
        cli_error("serve", "cannot listen on %s:%d (%s)", srv->cfg.host, srv->cfg.port,
                  errno ? strerror(errno) : "libmicrohttpd refused to start");
    return d;
}

int serve_http_run(serve_server *srv) {
    struct MHD_Daemon *d = start_daemon(srv);
    if (!d)
        return 1;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    fprintf(stderr, "unmask serve: listening on http://%s:%u (model '%s', %d parallel, queue %d)\n", srv->cfg.host,
            di ? di->port : (unsigned)srv->cfg.port, srv->cfg.model_id, srv->cfg.parallel, srv->cfg.queue);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "unmask serve: %s: no new connections; finishing live requests (up to %g s)\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", srv->cfg.drain);
    MHD_socket listen_fd = MHD_quiesce_daemon(d);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
    sched_stop(&srv->sched, srv->cfg.drain); /* every job is finished or cancelled when it returns */
    /* their answers are being written: let them go out (a few seconds at most)
       before the connections are closed */
    for (int i = 0; i < 500 && atomic_load(&srv->in_flight) > 0; i++)
        usleep(10000);
    MHD_stop_daemon(d); /* closes the connections, waits for their threads */
    fprintf(stderr, "unmask serve: stopped\n");
    return 0;
}
