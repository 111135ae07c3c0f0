/* unmask serve's scheduler: continuous batching of sessions.
 *
 * One thread owns the context. Each turn it admits queued choices while
 * fewer than `parallel` are live, drops those whose client left or whose
 * time is up (um_session_cancel: they finish before the next forward), runs
 * ONE forward pass over every live session (um_sessions_step) and hands the
 * finished ones back. Sessions are keyed by (seed, step, position), so what a
 * request gets does not depend on who shares its forwards. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/sys.h"
#include "serve.h"

serve_job *job_new(int n_choices, bool stream, double timeout_s) {
    serve_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->choices = calloc((size_t)n_choices, sizeof *j->choices);
    if (!j->choices) {
        free(j);
        return NULL;
    }
    j->n_choices = n_choices;
    j->stream = stream;
    j->deadline = um_now() + timeout_s;
    atomic_init(&j->cancelled, false);
    j->refs = 1;
    pthread_cond_init(&j->changed, NULL);
    for (int i = 0; i < n_choices; i++) {
        j->choices[i].job = j;
        j->choices[i].index = i;
    }
    return j;
}

void job_free(serve_job *j) {
    if (!j)
        return;
    for (int i = 0; i < j->n_choices; i++) {
        serve_choice *c = &j->choices[i];
        um_session_free(c->s);
        um_generation_free(&c->out);
        for (int e = 0; e < c->n_events; e++)
            free(c->events[e].gen);
        free(c->events);
    }
    pthread_cond_destroy(&j->changed);
    free(j->choices);
    free(j);
}

void job_release(serve_sched *q, serve_job *j) {
    pthread_mutex_lock(&q->mu);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&q->mu);
    if (last)
        job_free(j);
}

void sched_wait(serve_sched *q, serve_job *j) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 200 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&j->changed, &q->mu, &ts);
}

int sched_submit(serve_sched *q, serve_job *j) {
    pthread_mutex_lock(&q->mu);
    j->sched = q;
    int status = 0;
    if (q->stopping)
        status = 503;
    else if (q->q_len + j->n_choices > q->queue_cap)
        status = 429;
    for (int i = 0; status == 0 && i < j->n_choices; i++) {
        q->queue[(q->q_head + q->q_len) % q->queue_cap] = &j->choices[i];
        q->q_len++;
    }
    if (status == 0) {
        j->refs++;
        pthread_cond_signal(&q->wake);
    }
    pthread_mutex_unlock(&q->mu);
    return status;
}

/* Step callbacks run on the scheduler thread inside um_sessions_step (the
 * mutex is free then): they count the commits, give a stream a copy of the
 * generated part of the canvas, and stop a session whose client left. */
int sched_on_step(const um_step_info *info, void *user_data) {
    serve_choice *c = user_data;
    serve_job *j = c->job;
    serve_sched *q = j->sched;
    int stop = atomic_load(&j->cancelled) ? 1 : 0;
    pthread_mutex_lock(&q->mu);
    q->m.tokens += info->n_committed;
    if (j->stream && !stop) {
        int n = info->canvas_len - info->prompt_len;
        int32_t *gen = malloc((size_t)(n > 0 ? n : 1) * sizeof *gen);
        if (gen && c->n_events == c->cap_events) {
            int cap = c->cap_events ? 2 * c->cap_events : 16;
            serve_event *grown = realloc(c->events, (size_t)cap * sizeof *grown);
            c->events = grown ? grown : c->events;
            c->cap_events = grown ? cap : c->cap_events;
        }
        if (gen && c->n_events < c->cap_events) {
            memcpy(gen, info->canvas + info->prompt_len, (size_t)n * sizeof *gen);
            c->events[c->n_events++] = (serve_event){info->step, gen};
            pthread_cond_broadcast(&j->changed);
        } else {
            free(gen);
            stop = 1; /* out of memory: the session stops, and its result says so */
        }
    }
    pthread_mutex_unlock(&q->mu);
    return stop;
}

/* A choice is done: its result moves out of the session (why, when not
 * NULL, replaces the error message); the job's waiters wake. */
static void finish_choice(serve_sched *q, serve_choice *c, const char *why) {
    um_error err = {0};
    c->status = um_session_result(c->s, &c->out, &err);
    snprintf(c->error, sizeof c->error, "%s", why ? why : err.msg);
    um_session_free(c->s);
    c->s = NULL;
    c->done = true;
    q->m.finished++;
    serve_job *j = c->job;
    if (++j->n_done == j->n_choices && --j->refs == 0)
        job_free(j); /* the connection left first: nobody waits for it */
    else
        pthread_cond_broadcast(&j->changed);
}

/* A queued choice that never ran (its client left, time ran out, shutdown). */
static void drop_choice(serve_sched *q, serve_choice *c, const char *why) {
    um_session_cancel(c->s);
    finish_choice(q, c, why);
}

/* Marks a job whose time is up. */
static void check_deadline(serve_job *j, double now) {
    if (now > j->deadline && !j->timed_out) {
        j->timed_out = true;
        atomic_store(&j->cancelled, true);
    }
}

/* Drops the queued choices whose client left or whose time is up (all of
 * them when stopping), keeping the others in order: a request stuck behind
 * long ones still gets its answer by its deadline. */
static void prune_queue(serve_sched *q) {
    double now = um_now();
    int kept = 0, n = q->q_len;
    for (int i = 0; i < n; i++) {
        serve_choice *c = q->queue[(q->q_head + i) % q->queue_cap];
        serve_job *j = c->job;
        check_deadline(j, now);
        if (q->stopping) {
            j->shut_down = true;
            drop_choice(q, c, "the server is shutting down");
        } else if (atomic_load(&j->cancelled)) {
            drop_choice(q, c, j->timed_out ? "the request ran out of time" : "the client left");
        } else {
            q->queue[(q->q_head + kept++) % q->queue_cap] = c;
        }
    }
    q->q_len = kept;
}

/* Moves queued choices into the batch while there is room. */
static void admit(serve_sched *q) {
    prune_queue(q);
    while (q->q_len > 0 && q->n_live < q->parallel) {
        serve_choice *c = q->queue[q->q_head];
        q->q_head = (q->q_head + 1) % q->queue_cap;
        q->q_len--;
        c->started = true;
        q->live[q->n_live++] = c;
    }
}

/* Cancels live sessions whose client left or whose time is up (or all of
 * them once a shutdown's drain time is over), then hands back every finished
 * one. */
static void collect(serve_sched *q) {
    double now = um_now();
    for (int i = 0; i < q->n_live; i++) {
        serve_choice *c = q->live[i];
        serve_job *j = c->job;
        check_deadline(j, now);
        if (q->stopping && now > q->drain_until && !j->shut_down) {
            j->shut_down = true;
            atomic_store(&j->cancelled, true);
        }
        if (atomic_load(&j->cancelled))
            um_session_cancel(c->s);
    }
    for (int i = 0; i < q->n_live;) {
        serve_choice *c = q->live[i];
        if (um_session_finished(c->s)) {
            q->live[i] = q->live[--q->n_live];
            serve_job *j = c->job;
            finish_choice(q, c, j->timed_out ? "the request ran out of time"
                                : j->shut_down ? "the server is shutting down" : NULL);
        } else {
            i++;
        }
    }
}

static void *sched_main(void *arg) {
    serve_sched *q = arg;
    um_session **batch = malloc((size_t)q->parallel * sizeof *batch);
    pthread_mutex_lock(&q->mu);
    for (;;) {
        admit(q);
        collect(q);
        if (q->n_live == 0) {
            if (q->stopping && q->q_len == 0)
                break;
            if (q->q_len == 0)
                pthread_cond_wait(&q->wake, &q->mu);
            continue;
        }
        int n = q->n_live;
        for (int i = 0; i < n; i++)
            batch[i] = q->live[i]->s;
        /* the forward runs without the mutex: connections come and go meanwhile */
        pthread_mutex_unlock(&q->mu);
        um_error err = {0};
        double t0 = um_now();
        um_status st = um_sessions_step(q->ctx, batch, n, &err);
        double dt = um_now() - t0;
        pthread_mutex_lock(&q->mu);
        if (st != UM_OK)
            fprintf(stderr, "unmask serve: a batched step failed: %s\n", err.msg);
        q->m.forwards++;
        q->m.step_seconds += dt;
        q->m.last_step_seconds = dt;
        q->m.last_batch = n;
    }
    pthread_mutex_unlock(&q->mu);
    free(batch);
    return NULL;
}

bool sched_start(serve_sched *q, um_context *ctx, int parallel, int queue_cap, char *msg, size_t msg_size) {
    memset(q, 0, sizeof *q);
    q->ctx = ctx;
    q->parallel = parallel;
    q->queue_cap = queue_cap;
    q->queue = calloc((size_t)queue_cap, sizeof *q->queue);
    q->live = calloc((size_t)parallel, sizeof *q->live);
    if (!q->queue || !q->live) {
        snprintf(msg, msg_size, "out of memory");
        return false;
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->wake, NULL);
    if (pthread_create(&q->thread, NULL, sched_main, q) != 0) {
        snprintf(msg, msg_size, "cannot start the scheduler thread");
        return false;
    }
    q->running = true;
    return true;
}

void sched_stop(serve_sched *q, double drain_s) {
    if (!q->running)
        return;
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    q->drain_until = um_now() + drain_s;
    pthread_cond_signal(&q->wake);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    q->running = false;
}

void sched_free(serve_sched *q) {
    free(q->queue);
    free(q->live);
    if (q->queue_cap) {
        pthread_mutex_destroy(&q->mu);
        pthread_cond_destroy(&q->wake);
    }
}
