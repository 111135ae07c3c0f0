/* The CPU backend: buffers in host memory, operations on the kernels of
 * src/kernels run on the backend's thread pool, with its arithmetic and
 * instruction-set path (um_exec). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/sys.h"
#include "kernels/moe.h"

typedef struct {
    um_exec ex;
    float *mm_scratch, *att_scratch; /* grown on demand */
    size_t mm_floats, att_floats;
    float *rope_cos, *rope_sin; /* [rope_len][rope_rot / 2] for rope_theta */
    int rope_len, rope_rot;
    float rope_theta;
    float *head_rows, *head_logits; /* pick's chunk of states and their logits */
    size_t head_rows_floats, head_logits_floats;
    float *moe_f;   /* moe: router logits and weights, the grouped rows, their gate/up and outputs */
    float *moe_i;   /* moe: expert ids and groups (int32_t; grown as floats, the same size) */
    size_t moe_floats, moe_ints;
} cpu_state;

/* Rows of logits a pick computes at once: what a step holds of logits. */
enum { PICK_CHUNK = 64 };

static cpu_state *state(const um_backend *be) { return be->impl; }
static float *f32(const um_tensor *t) { return (float *)((char *)t->buf->data + t->offset); }
static int32_t *i32(const um_tensor *t) { return (int32_t *)((char *)t->buf->data + t->offset); }

um_tensor um_tensor_rows(const um_tensor *t, int64_t r0, int64_t n) {
    um_tensor v = *t;
    v.offset += (size_t)r0 * (size_t)t->cols * um_dtype_size(t->type);
    v.rows = n;
    return v;
}

/* scratch holds at least n floats, grown (never shrunk) when not. */
static um_status grow(float **scratch, size_t *have, size_t n, um_error *err) {
    if (n <= *have)
        return UM_OK;
    float *p = um_aligned_alloc(n * sizeof(float));
    if (!p)
        return um_fail(err, UM_ERR_NOMEM, "out of memory for %zu floats of scratch", n);
    free(*scratch);
    *scratch = p;
    *have = n;
    return UM_OK;
}

static um_status oom(um_error *err, const char *what) {
    return um_fail(err, UM_ERR_NOMEM, "out of memory for the %s's packed operands", what);
}

/* ---- buffers ------------------------------------------------------------------ */

static um_status cpu_alloc(um_backend *be, um_buffer *buf, size_t bytes, um_error *err) {
    buf->data = um_aligned_alloc(bytes ? bytes : 1);
    buf->size = bytes;
    if (!buf->data)
        return um_fail(err, UM_ERR_NOMEM, "out of memory for a buffer of %.1f MiB", (double)bytes / 1048576.0);
    return UM_OK;
}

static void cpu_release(um_backend *be, um_buffer *buf) {
    free(buf->data);
    buf->data = NULL;
    buf->size = 0;
}

static size_t tensor_bytes(const um_tensor *t) { return (size_t)t->rows * (size_t)t->cols * um_dtype_size(t->type); }

static um_status cpu_upload(um_backend *be, const um_tensor *dst, const void *src, um_error *err) {
    memcpy((char *)dst->buf->data + dst->offset, src, tensor_bytes(dst));
    return UM_OK;
}

static um_status cpu_download(um_backend *be, void *dst, const um_tensor *src, um_error *err) {
    memcpy(dst, (const char *)src->buf->data + src->offset, tensor_bytes(src));
    return UM_OK;
}

/* ---- rows --------------------------------------------------------------------- */

static um_status cpu_get_rows(um_backend *be, const um_weight *w, const um_tensor *ids, const um_tensor *out,
                              um_error *err) {
    const int32_t *id = i32(ids);
    for (int64_t i = 0; i < ids->rows; i++) {
        if (id[i] < 0 || id[i] >= w->rows)
            return um_fail(err, UM_ERR_ARG, "row %d of a %lld-row weight", id[i], (long long)w->rows);
        um_weight_row_f32(w, id[i], f32(out) + (size_t)i * (size_t)out->cols);
    }
    return UM_OK;
}

static um_status cpu_copy_rows(um_backend *be, const um_tensor *dst, const int32_t *dst_rows, const um_tensor *src,
                               const int32_t *src_rows, int n, um_error *err) {
    size_t row = (size_t)src->cols * um_dtype_size(src->type);
    char *d = (char *)dst->buf->data + dst->offset;
    const char *s = (const char *)src->buf->data + src->offset;
    for (int i = 0; i < n; i++)
        memcpy(d + (size_t)(dst_rows ? dst_rows[i] : i) * row, s + (size_t)(src_rows ? src_rows[i] : i) * row, row);
    return UM_OK;
}

/* ---- products ------------------------------------------------------------------- */

static um_status cpu_matmul(um_backend *be, const um_tensor *x, int count, const um_weight *const *w,
                            const float *const *bias, const um_tensor *const *y, um_error *err) {
    cpu_state *st = state(be);
    int64_t max_cols = 0;
    float *out[8];
    if (count < 1 || count > 8)
        return um_fail(err, UM_ERR_ARG, "matmul: %d products at once (1 to 8)", count);
    for (int i = 0; i < count; i++) {
        if (w[i]->cols != x->cols || y[i]->cols != w[i]->rows || y[i]->rows != x->rows)
            return um_fail(err, UM_ERR_ARG, "matmul: [%lld x %lld] times a [%lld x %lld] weight into [%lld x %lld]",
                           (long long)x->rows, (long long)x->cols, (long long)w[i]->rows, (long long)w[i]->cols,
                           (long long)y[i]->rows, (long long)y[i]->cols);
        max_cols = w[i]->cols > max_cols ? w[i]->cols : max_cols;
        out[i] = f32(y[i]);
    }
    UM_TRY(grow(&st->mm_scratch, &st->mm_floats, um_matmul_scratch_floats(um_pool_threads(st->ex.pool), max_cols),
                err));
    bool ok = count == 1 ? um_matmul(&st->ex, f32(x), (int)x->rows, w[0], bias[0], out[0], st->mm_scratch)
                         : um_matmul_many(&st->ex, f32(x), (int)x->rows, count, w, bias, out, st->mm_scratch);
    return ok ? UM_OK : oom(err, "matmul");
}

static um_status cpu_attention(um_backend *be, const um_tensor *q, const um_tensor *k, const um_tensor *v, int n_kv,
                               const um_tensor *out, const um_attn_shape *sh, um_error *err) {
    cpu_state *st = state(be);
    if (n_kv < 1 || n_kv > k->rows || n_kv > v->rows)
        return um_fail(err, UM_ERR_ARG, "attention: %d keys of %lld", n_kv, (long long)k->rows);
    UM_TRY(grow(&st->att_scratch, &st->att_floats,
                um_attention_scratch_floats(um_pool_threads(st->ex.pool), n_kv, sh->n_kv_heads, sh->head_dim), err));
    um_attention(&st->ex, f32(q), (int)q->rows, f32(k), f32(v), n_kv, f32(out), sh->n_heads, sh->n_kv_heads,
                 sh->head_dim, sh->reduced, st->att_scratch);
    return UM_OK;
}

/* ---- elementwise, on the pool over ranges of rows ------------------------------- */

typedef enum { ROWS_ADD_NORM, ROWS_ROPE, ROWS_SWIGLU, ROWS_MOE_GATHER, ROWS_MOE_SUM } rows_op;

typedef struct {
    rows_op op;
    const cpu_state *st;
    float *a, *out;         /* ADD_NORM: x, out; ROPE: q; SWIGLU: gate */
    const float *b, *w;     /* ADD_NORM: add, weight; ROPE: k; SWIGLU: up; MOE_SUM: expert outputs, weights */
    const int32_t *pos;     /* ROPE; MOE_GATHER: the row of b each row of a copies; MOE_SUM: the row of each
                               (token, slot) in b */
    int slots;              /* MOE_SUM: experts per token, their weights in w */
    const um_rope_shape *rs;
    int64_t cols, cols_b;   /* values per row of a (and of b) */
    float eps;
    int64_t n, per;         /* rows in all, per task */
} rows_job;

static void rows_task(void *arg, int task, int thread) {
    const rows_job *j = arg;
    int64_t t0 = task * j->per, t1 = t0 + j->per < j->n ? t0 + j->per : j->n;
    size_t at = (size_t)t0 * (size_t)j->cols, count = (size_t)(t1 - t0) * (size_t)j->cols;
    switch (j->op) {
    case ROWS_ADD_NORM:
        for (size_t i = 0; j->b && i < count; i++)
            j->a[at + i] += j->b[at + i];
        if (j->w)
            um_rmsnorm(j->out + at, j->a + at, j->w, (int)(t1 - t0), (int)j->cols, j->eps);
        break;
    case ROWS_ROPE: {
        int half = j->rs->rot_dim / 2;
        for (int64_t t = t0; t < t1;) { /* runs of consecutive positions */
            int run = 1;
            while (t + run < t1 && j->pos[t + run] == j->pos[t] + run)
                run++;
            const float *c = j->st->rope_cos + (size_t)j->pos[t] * half, *s = j->st->rope_sin + (size_t)j->pos[t] * half;
            um_rope(j->a + (size_t)t * j->cols, run, j->rs->n_heads, j->rs->head_dim, j->rs->rot_dim,
                    j->rs->interleaved, c, s);
            um_rope((float *)j->b + (size_t)t * j->cols_b, run, j->rs->n_kv_heads, j->rs->head_dim, j->rs->rot_dim,
                    j->rs->interleaved, c, s);
            t += run;
        }
        break;
    }
    case ROWS_SWIGLU:
        um_swiglu(j->st->ex.path, j->a + at, j->b + at, (int64_t)count);
        break;
    case ROWS_MOE_GATHER: /* a[r] = b[pos[r]] */
        for (int64_t r = t0; r < t1; r++)
            memcpy(j->a + (size_t)r * j->cols, j->b + (size_t)j->pos[r] * j->cols, (size_t)j->cols * sizeof(float));
        break;
    case ROWS_MOE_SUM: /* a[t] = sum over slots of w[t][slot] * b[its row], slots in order */
        for (int64_t t = t0; t < t1; t++) {
            float *o = j->a + (size_t)t * j->cols;
            memset(o, 0, (size_t)j->cols * sizeof *o);
            for (int k = 0; k < j->slots; k++) {
                size_t pair = (size_t)t * j->slots + k;
                const float *y = j->b + (size_t)j->pos[pair] * j->cols;
                for (int64_t c = 0; c < j->cols; c++)
                    o[c] += j->w[pair] * y[c];
            }
        }
        break;
    }
}

static void run_rows(const cpu_state *st, rows_job j) {
    int64_t tasks = 4 * um_pool_threads(st->ex.pool);
    j.st = st;
    j.per = (j.n + tasks - 1) / tasks;
    if (j.n > 0)
        um_pool_run(st->ex.pool, (int)((j.n + j.per - 1) / j.per), rows_task, &j);
}

static um_status cpu_add_rmsnorm(um_backend *be, const um_tensor *x, const um_tensor *add, const float *weight,
                                 float eps, const um_tensor *out, um_error *err) {
    run_rows(state(be), (rows_job){.op = ROWS_ADD_NORM, .a = f32(x), .out = out ? f32(out) : NULL,
                                   .b = add ? f32(add) : NULL, .w = weight, .cols = x->cols, .eps = eps, .n = x->rows});
    return UM_OK;
}

/* The cos/sin tables cover positions [0, len) for (theta, rot_dim). */
static um_status rope_tables(cpu_state *st, const um_rope_shape *rs, int len, um_error *err) {
    if (len <= st->rope_len && rs->rot_dim == st->rope_rot && rs->theta == st->rope_theta)
        return UM_OK;
    len = len > st->rope_len ? len : st->rope_len;
    size_t n = (size_t)len * (size_t)(rs->rot_dim / 2);
    float *c = um_aligned_alloc(n * sizeof(float) + 1), *s = um_aligned_alloc(n * sizeof(float) + 1);
    if (!c || !s) {
        free(c);
        free(s);
        return um_fail(err, UM_ERR_NOMEM, "out of memory for RoPE tables of %d positions", len);
    }
    um_rope_table(c, s, len, rs->rot_dim, rs->theta);
    free(st->rope_cos);
    free(st->rope_sin);
    st->rope_cos = c;
    st->rope_sin = s;
    st->rope_len = len;
    st->rope_rot = rs->rot_dim;
    st->rope_theta = rs->theta;
    return UM_OK;
}

static um_status cpu_rope(um_backend *be, const um_tensor *q, const um_tensor *k, const um_tensor *pos,
                          const um_rope_shape *rs, um_error *err) {
    cpu_state *st = state(be);
    const int32_t *p = i32(pos);
    if (rs->rot_dim < 2 || rs->rot_dim > rs->head_dim || rs->rot_dim % 2)
        return um_fail(err, UM_ERR_ARG, "rope: %d rotated dimensions of a head of %d", rs->rot_dim, rs->head_dim);
    int len = 0;
    for (int64_t i = 0; i < pos->rows; i++) {
        if (p[i] < 0)
            return um_fail(err, UM_ERR_ARG, "rope: position %d", p[i]);
        len = p[i] + 1 > len ? p[i] + 1 : len;
    }
    UM_TRY(rope_tables(st, rs, len, err));
    run_rows(st, (rows_job){.op = ROWS_ROPE, .a = f32(q), .b = f32(k), .pos = p, .rs = rs, .cols = q->cols,
                            .cols_b = k->cols, .n = q->rows});
    return UM_OK;
}

static um_status cpu_swiglu(um_backend *be, const um_tensor *gate, const um_tensor *up, um_error *err) {
    run_rows(state(be), (rows_job){.op = ROWS_SWIGLU, .a = f32(gate), .b = f32(up), .cols = gate->cols, .n = gate->rows});
    return UM_OK;
}

/* ---- mixture of experts ---------------------------------------------------------- */

/* The expert products of the grouped rows: each expert's gate and up over
 * its rows at once, then (after the SwiGLU of all rows) its down. */
static bool moe_experts(cpu_state *st, const um_moe_weights *w, const int32_t *start, int64_t d, int64_t ff,
                        float *xg, float *g, float *u, float *yg, bool down) {
    for (int e = 0; e < w->n_expert; e++) {
        int r = start[e], cnt = start[e + 1] - start[e];
        if (cnt == 0)
            continue;
        const um_weight *gu[] = {&w->gate[e], &w->up[e]};
        const float *no_bias[] = {NULL, NULL};
        float *gu_out[] = {g + (size_t)r * ff, u + (size_t)r * ff};
        bool ok = down ? um_matmul(&st->ex, g + (size_t)r * ff, cnt, &w->down[e], NULL, yg + (size_t)r * d,
                                   st->mm_scratch)
                       : um_matmul_many(&st->ex, xg + (size_t)r * d, cnt, 2, gu, no_bias, gu_out, st->mm_scratch);
        if (!ok)
            return false;
    }
    return true;
}

static um_status cpu_moe(um_backend *be, const um_tensor *x, const um_moe_weights *w, const um_tensor *out,
                         um_error *err) {
    cpu_state *st = state(be);
    int64_t n = x->rows, d = x->cols, ff = w->gate[0].rows, E = w->n_expert, k = w->n_used, pairs = n * k;
    if (w->router.cols != d || w->router.rows != E || k < 1 || k > E || out->rows != n || out->cols != d)
        return um_fail(err, UM_ERR_ARG, "moe: %lld rows of %lld into [%lld x %lld] with %lld of %lld experts",
                       (long long)n, (long long)d, (long long)out->rows, (long long)out->cols, (long long)k,
                       (long long)E);
    UM_TRY(grow(&st->moe_f, &st->moe_floats, (size_t)(n * E + pairs + pairs * (2 * d + 2 * ff)), err));
    UM_TRY(grow(&st->moe_i, &st->moe_ints, (size_t)(3 * pairs + E + 1), err));
    UM_TRY(grow(&st->mm_scratch, &st->mm_floats,
                um_matmul_scratch_floats(um_pool_threads(st->ex.pool), d > ff ? d : ff), err));
    float *logits = st->moe_f, *weights = logits + n * E, *xg = weights + pairs, *g = xg + pairs * d,
          *u = g + pairs * ff, *yg = u + pairs * ff;
    int32_t *ids = (int32_t *)st->moe_i, *token_of = ids + pairs, *row_of = token_of + pairs, *start = row_of + pairs;
    if (!um_matmul(&st->ex, f32(x), (int)n, &w->router, NULL, logits, st->mm_scratch))
        return oom(err, "router");
    um_moe_route(logits, (int)n, (int)E, (int)k, &w->route, w->bias, ids, weights);
    um_moe_group(ids, (int)n, (int)k, (int)E, start, token_of, row_of);
    run_rows(st, (rows_job){.op = ROWS_MOE_GATHER, .a = xg, .b = f32(x), .pos = token_of, .cols = d, .n = pairs});
    if (!moe_experts(st, w, start, d, ff, xg, g, u, yg, false))
        return oom(err, "experts");
    run_rows(st, (rows_job){.op = ROWS_SWIGLU, .a = g, .b = u, .cols = ff, .n = pairs});
    if (!moe_experts(st, w, start, d, ff, xg, g, u, yg, true))
        return oom(err, "experts");
    run_rows(st, (rows_job){.op = ROWS_MOE_SUM, .a = f32(out), .b = yg, .w = weights, .pos = row_of,
                            .slots = (int)k, .cols = d, .n = n});
    return UM_OK;
}

/* ---- the output head ---------------------------------------------------------------- */

static um_status cpu_logits(um_backend *be, const um_tensor *states, const um_weight *head, const float *bias,
                            float *host, um_error *err) {
    cpu_state *st = state(be);
    UM_TRY(grow(&st->mm_scratch, &st->mm_floats, um_matmul_scratch_floats(um_pool_threads(st->ex.pool), head->cols),
                err));
    if (states->rows > 0 && !um_matmul(&st->ex, f32(states), (int)states->rows, head, bias, host, st->mm_scratch))
        return oom(err, "output head");
    return UM_OK;
}

typedef struct {
    const um_pick_request *req;
    const int *row_at; /* request i's logits: row row_at[i] of the chunk (its unconditional row next) */
    float *logits;
    size_t n_vocab;
    um_pick *out;
} pick_job;

/* Requests are independent (their draws are keyed by position), so they are
 * picked in parallel; the credit decoder's are left to cpu_pick, in order. */
static void pick_task(void *arg, int i, int thread) {
    const pick_job *j = arg;
    const um_pick_request *r = &j->req[i];
    if (r->credit)
        return;
    float *cond = j->logits + (size_t)j->row_at[i] * j->n_vocab;
    um_pick_row(r, cond, r->uncond_row >= 0 ? cond + j->n_vocab : NULL, (int)j->n_vocab, &j->out[i]);
}

/* The head over up to PICK_CHUNK rows (a request's conditional row, then
 * its unconditional one), and their requests' picks. */
static um_status pick_chunk(um_backend *be, const um_tensor *states, const um_weight *head, const float *bias,
                            const um_pick_request *req, int n, um_pick *out, um_error *err) {
    cpu_state *st = state(be);
    int row_at[PICK_CHUNK], rows = 0;
    int64_t d = states->cols;
    for (int i = 0; i < n; i++) {
        row_at[i] = rows;
        for (int g = 0; g < (req[i].uncond_row >= 0 ? 2 : 1); g++, rows++) {
            int32_t r = g ? req[i].uncond_row : req[i].row;
            if (r < 0 || r >= states->rows)
                return um_fail(err, UM_ERR_ARG, "pick: row %d of %lld states", r, (long long)states->rows);
            memcpy(st->head_rows + (size_t)rows * d, f32(states) + (size_t)r * d, (size_t)d * sizeof(float));
        }
    }
    um_buffer b = {st->head_rows, 0};
    um_tensor chunk = {&b, 0, UM_F32, rows, d};
    UM_TRY(cpu_logits(be, &chunk, head, bias, st->head_logits, err));
    pick_job j = {req, row_at, st->head_logits, (size_t)head->rows, out};
    um_pool_run(st->ex.pool, n, pick_task, &j);
    for (int i = 0; i < n; i++)
        if (req[i].credit) {
            float *cond = j.logits + (size_t)row_at[i] * j.n_vocab;
            um_pick_row(&req[i], cond, req[i].uncond_row >= 0 ? cond + j.n_vocab : NULL, (int)j.n_vocab, &out[i]);
        }
    return UM_OK;
}

static um_status cpu_pick(um_backend *be, const um_tensor *states, const um_weight *head, const float *bias,
                          const um_pick_request *req, int n, um_pick *out, um_error *err) {
    cpu_state *st = state(be);
    UM_TRY(grow(&st->head_rows, &st->head_rows_floats, (size_t)PICK_CHUNK * (size_t)states->cols, err));
    UM_TRY(grow(&st->head_logits, &st->head_logits_floats, (size_t)PICK_CHUNK * (size_t)head->rows, err));
    for (int i = 0; i < n;) { /* whole requests per chunk: a guided one takes two rows */
        int k = 0, rows = 0;
        while (i + k < n && rows + (req[i + k].uncond_row >= 0 ? 2 : 1) <= PICK_CHUNK)
            rows += req[i + k++].uncond_row >= 0 ? 2 : 1;
        UM_TRY(pick_chunk(be, states, head, bias, req + i, k, out + i, err));
        i += k;
    }
    return UM_OK;
}

/* ---- the table ------------------------------------------------------------------------ */

static void cpu_destroy(um_backend *be);

static const um_backend_ops cpu_ops = {
    "cpu",         cpu_destroy,     cpu_alloc,       cpu_release, cpu_upload, cpu_download, cpu_get_rows, cpu_copy_rows,
    cpu_matmul,    cpu_add_rmsnorm, cpu_rope,    cpu_swiglu, cpu_moe,    cpu_attention, cpu_logits, cpu_pick,
};

um_status um_cpu_backend_create(int n_threads, um_exec ex, um_backend **out, um_error *err) {
    *out = NULL;
    um_backend *be = calloc(1, sizeof *be);
    cpu_state *st = calloc(1, sizeof *st);
    if (!be || !st) {
        free(be);
        free(st);
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    }
    be->ops = &cpu_ops;
    be->reduced = ex.reduced;
    be->impl = st;
    st->ex = ex;
    st->ex.pool = um_pool_create(n_threads);
    if (!st->ex.pool) {
        cpu_destroy(be);
        return um_fail(err, UM_ERR_NOMEM, "cannot start %d threads", n_threads);
    }
    *out = be;
    return UM_OK;
}

void um_backend_free(um_backend *be) {
    if (be)
        be->ops->destroy(be);
}

static void cpu_destroy(um_backend *be) {
    cpu_state *st = be->impl;
    if (st) {
        um_pool_destroy(st->ex.pool);
        free(st->mm_scratch);
        free(st->att_scratch);
        free(st->rope_cos);
        free(st->rope_sin);
        free(st->head_rows);
        free(st->head_logits);
        free(st->moe_f);
        free(st->moe_i);
        free(st);
    }
    free(be);
}

const um_exec *um_cpu_backend_exec(const um_backend *be) { return &state(be)->ex; }
