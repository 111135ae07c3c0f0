/* The masked-diffusion loss of LLaDA and its backward pass, in f32 on the
 * inference matmul kernels (every product of the forward and backward passes
 * is a um_matmul: y = x W^T directly, dx = dy W and dW = dy^T x through
 * transposed copies) and the model's thread pool.
 *
 * The forward pass is the one of src/model/llada.c, written out keeping what
 * the backward pass reads:
 *
 *   x_0 = wte[noisy]
 *   per layer l:  a = attn_norm(x)                 (RMSNorm with weight)
 *                 q, k, v = a Wq^T, a Wk^T, a Wv^T;  q, k = rope(q), rope(k)
 *                 o = softmax(q k^T / sqrt(hd)) v  (per head; GQA: query head h reads kv head h / group)
 *                 h = x + o Wo^T
 *                 f = ff_norm(h)
 *                 x' = h + (silu(f Wgate^T) * (f Wup^T)) Wdown^T
 *   z = ln_f(x_L) head^T
 *   loss = sum_t w_t * CE(z_t, x0_t)
 *
 * The backward pass walks it in reverse, every step adding the gradient of
 * its inputs and weights given the gradient of its output (names d*). */
#include "train/llada_grad.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parameters ----------------------------------------------------------- */

static um_train_tensor *add_tensor(um_train_params *p, const char *name, int64_t d0, int64_t d1) {
    um_train_tensor *t = &p->tensors[p->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = d1 > 0 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1 > 0 ? d1 : 0;
    t->numel = d0 * (d1 > 0 ? d1 : 1);
    t->data = calloc((size_t)t->numel, sizeof(float));
    return t;
}

um_status um_train_params_init(um_train_params *p, const um_hparams *hp, um_error *err) {
    memset(p, 0, sizeof *p);
    if (hp->bias || hp->qkv_bias)
        return um_fail(err, UM_ERR_UNSUPPORTED, "training: models with biases are not supported");
    if (hp->rope_interleaved)
        return um_fail(err, UM_ERR_UNSUPPORTED, "training: interleaved RoPE (GGUF q/k layout) is not supported");
    p->hp = *hp;
    int64_t d = hp->d_model, kv = (int64_t)hp->n_kv_heads * hp->head_dim, ff = hp->d_ff, V = hp->n_vocab;
    int cap = 3 + 9 * hp->n_layers;
    p->tensors = calloc((size_t)cap, sizeof *p->tensors);
    p->layers = calloc((size_t)hp->n_layers, sizeof *p->layers);
    if (!p->tensors || !p->layers)
        goto nomem;
    p->wte = add_tensor(p, "model.transformer.wte.weight", V, d)->data;
    for (int i = 0; i < hp->n_layers; i++) {
        um_train_layer *l = &p->layers[i];
        char name[96];
#define LAYER_TENSOR(field, suffix, d0, d1)                                          \
    snprintf(name, sizeof name, "model.transformer.blocks.%d.%s.weight", i, suffix); \
    l->field = add_tensor(p, name, d0, d1)->data;
        LAYER_TENSOR(attn_norm, "attn_norm", d, 0)
        LAYER_TENSOR(ff_norm, "ff_norm", d, 0)
        LAYER_TENSOR(wq, "q_proj", d, d)
        LAYER_TENSOR(wk, "k_proj", kv, d)
        LAYER_TENSOR(wv, "v_proj", kv, d)
        LAYER_TENSOR(wo, "attn_out", d, d)
        LAYER_TENSOR(w_gate, "ff_proj", ff, d)
        LAYER_TENSOR(w_up, "up_proj", ff, d)
        LAYER_TENSOR(w_down, "ff_out", d, ff)
#undef LAYER_TENSOR
    }
    p->ln_f = add_tensor(p, "model.transformer.ln_f.weight", d, 0)->data;
    p->head = hp->tied ? p->wte : add_tensor(p, "model.transformer.ff_out.weight", V, d)->data;
    for (int i = 0; i < p->n_tensors; i++)
        if (!p->tensors[i].data)
            goto nomem;
    return UM_OK;
nomem:
    um_train_params_free(p);
    return um_fail(err, UM_ERR_NOMEM, "training: out of memory for the parameters");
}

void um_train_params_free(um_train_params *p) {
    for (int i = 0; p->tensors && i < p->n_tensors; i++)
        free(p->tensors[i].data);
    free(p->tensors);
    free(p->layers);
    memset(p, 0, sizeof *p);
}

void um_train_params_zero(um_train_params *p) {
    for (int i = 0; i < p->n_tensors; i++)
        memset(p->tensors[i].data, 0, (size_t)p->tensors[i].numel * sizeof(float));
}

const um_train_tensor *um_train_params_find(const um_train_params *p, const char *name) {
    for (int i = 0; i < p->n_tensors; i++)
        if (strcmp(p->tensors[i].name, name) == 0)
            return &p->tensors[i];
    return NULL;
}

/* A weight matrix of the model (any type it loads) as f32. */
static void matrix_to_f32(const um_weight *w, float *out) {
    for (int64_t r = 0; r < w->rows; r++)
        um_weight_row_f32(w, r, out + r * w->cols);
}

static void vector_copy(const float *v, int64_t n, float *out) { memcpy(out, v, (size_t)n * sizeof *out); }

um_status um_train_params_from_model(um_train_params *p, const um_model *m, um_error *err) {
    UM_TRY(um_train_params_init(p, &m->hp, err));
    const um_hparams *hp = &m->hp;
    matrix_to_f32(&m->tok_embd, p->wte);
    for (int i = 0; i < hp->n_layers; i++) {
        const um_layer *ml = &m->layers[i];
        um_train_layer *l = &p->layers[i];
        vector_copy(ml->attn_norm, hp->d_model, l->attn_norm);
        vector_copy(ml->ffn_norm, hp->d_model, l->ff_norm);
        matrix_to_f32(&ml->wq, l->wq);
        matrix_to_f32(&ml->wk, l->wk);
        matrix_to_f32(&ml->wv, l->wv);
        matrix_to_f32(&ml->wo, l->wo);
        matrix_to_f32(&ml->w_gate, l->w_gate);
        matrix_to_f32(&ml->w_up, l->w_up);
        matrix_to_f32(&ml->w_down, l->w_down);
    }
    vector_copy(m->out_norm, hp->d_model, p->ln_f);
    if (!hp->tied)
        matrix_to_f32(&m->output, p->head);
    return UM_OK;
}

/* ---- the objective -------------------------------------------------------- */

um_status um_mdm_loss_weights(const um_mdm_batch *b, int mask_id, int n_vocab, double *w, um_error *err) {
    if (b->n_rows <= 0 || b->seq <= 0)
        return um_fail(err, UM_ERR_ARG, "training: empty batch (%d rows of %d tokens)", b->n_rows, b->seq);
    for (int r = 0; r < b->n_rows; r++) {
        int prompt = b->prompt_lengths ? b->prompt_lengths[r] : 0;
        if (prompt < 0 || prompt > b->seq)
            return um_fail(err, UM_ERR_ARG, "training: row %d: prompt length %d outside [0, %d]", r, prompt, b->seq);
        /* pre-training: the mean over all n_rows * seq positions;
         * SFT: per row, over its answer's positions, then the mean over rows */
        double norm = b->prompt_lengths ? (double)b->n_rows * (b->seq - prompt) : (double)b->n_rows * b->seq;
        for (int i = 0; i < b->seq; i++) {
            size_t t = (size_t)r * b->seq + i;
            if (b->x0[t] < 0 || b->x0[t] >= n_vocab || b->noisy[t] < 0 || b->noisy[t] >= n_vocab)
                return um_fail(err, UM_ERR_ARG, "training: row %d position %d: token id outside [0, %d)", r, i,
                               n_vocab);
            w[t] = 0;
            if (b->noisy[t] != mask_id)
                continue;
            if (i < prompt)
                return um_fail(err, UM_ERR_ARG, "training: row %d: prompt position %d is masked", r, i);
            if (!(b->p_mask[t] > 0 && b->p_mask[t] <= 1))
                return um_fail(err, UM_ERR_ARG, "training: row %d position %d: p_mask %g is not in (0, 1]", r, i,
                               b->p_mask[t]);
            w[t] = 1.0 / (b->p_mask[t] * norm);
        }
    }
    return UM_OK;
}

/* ---- products on the matmul kernels --------------------------------------- */

/* What every product needs: the pool, um_matmul's scratch, buffers for
 * transposed operands and one for a product before it is added in. */
typedef struct {
    um_pool *pool;
    um_exec ex;     /* f32 arithmetic on the process's instruction set */
    bool *oom;      /* set when a matmul could not have its buffers */
    float *mm;      /* um_matmul scratch */
    float *ta, *tb; /* transposed copies */
    float *prod;
} gemm_ctx;

/* y[n][o] = x[n][in] W^T, W [o][in]. */
static void linear(const gemm_ctx *G, float *y, const float *x, const float *W, int n, int o, int in) {
    um_weight w = {UM_F32, o, in, W, false, NULL};
    if (!um_matmul(&G->ex, x, n, &w, NULL, y, G->mm))
        *G->oom = true;
}

/* Transposes and sums run on the pool too, in bands of rows: at these model
 * sizes they would otherwise take a tenth of a step. */
enum { BAND = 32 };
typedef struct {
    float *out;
    const float *in;
    int rows, cols;
} band_job;

static int n_bands(int rows) { return (rows + BAND - 1) / BAND; }

/* out[c][r] = in[r][c] for the rows of one band of a [rows][cols] matrix,
 * through 16 x 16 tiles: each tile writes whole cache lines of out once.
 * Writing out column by column instead puts every store of a tile in the
 * same L1 set when rows is a multiple of 1024, and thrashed it. */
enum { TILE = 16 };
static void transpose_task(void *ctx, int task, int thread) {
    const band_job *J = ctx;
    int r_end = (task + 1) * BAND < J->rows ? (task + 1) * BAND : J->rows;
    float t[TILE][TILE];
    for (int r0 = task * BAND; r0 < r_end; r0 += TILE)
        for (int c0 = 0; c0 < J->cols; c0 += TILE) {
            int nr = r_end - r0 < TILE ? r_end - r0 : TILE, nc = J->cols - c0 < TILE ? J->cols - c0 : TILE;
            for (int r = 0; r < nr; r++)
                for (int c = 0; c < nc; c++)
                    t[c][r] = J->in[(size_t)(r0 + r) * J->cols + c0 + c];
            for (int c = 0; c < nc; c++)
                memcpy(J->out + (size_t)(c0 + c) * J->rows + r0, t[c], (size_t)nr * sizeof(float));
        }
}

static void transpose(const gemm_ctx *G, float *out, const float *in, int rows, int cols) {
    band_job J = {out, in, rows, cols};
    um_pool_run(G->pool, n_bands(rows), transpose_task, &J);
}

/* out += in over one band of rows. */
static void add_task(void *ctx, int task, int thread) {
    const band_job *J = ctx;
    size_t lo = (size_t)task * BAND * J->cols, hi = (size_t)(task + 1) * BAND * J->cols;
    if (hi > (size_t)J->rows * J->cols)
        hi = (size_t)J->rows * J->cols;
    for (size_t i = lo; i < hi; i++)
        J->out[i] += J->in[i];
}

static void add_matrix(const gemm_ctx *G, float *acc, const float *x, int rows, int cols) {
    band_job J = {acc, x, rows, cols};
    um_pool_run(G->pool, n_bands(rows), add_task, &J);
}

static void add_into(float *acc, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        acc[i] += x[i];
}

/* Backward of y = x W^T: dW += dy^T x ([o][in]) and dx += dy W ([n][in]).
 * Both are "activations times weights^T" products: dy W = dy (W^T)^T and
 * dy^T x = (dy^T) (x^T)^T. */
static void linear_backward(const gemm_ctx *G, const float *dy, const float *x, const float *W, int n, int o, int in,
                            float *dW, float *dx) {
    transpose(G, G->ta, W, o, in);
    linear(G, G->prod, dy, G->ta, n, in, o);
    add_matrix(G, dx, G->prod, n, in);
    transpose(G, G->ta, dy, n, o);
    transpose(G, G->tb, x, n, in);
    linear(G, G->prod, G->ta, G->tb, o, in, n);
    add_matrix(G, dW, G->prod, o, in);
}

/* ---- element-wise building blocks ----------------------------------------- */

/* y = x * rs * g with rs = 1 / sqrt(mean(x^2) + eps), per row; keeps rs. */
static void rmsnorm(float *y, float *rs, const float *x, const float *g, int n, int d, double eps) {
    for (int t = 0; t < n; t++) {
        const float *xr = x + (size_t)t * d;
        double ss = 0;
        for (int j = 0; j < d; j++)
            ss += (double)xr[j] * xr[j];
        rs[t] = (float)(1.0 / sqrt(ss / d + eps));
        for (int j = 0; j < d; j++)
            y[(size_t)t * d + j] = xr[j] * rs[t] * g[j];
    }
}

/* Backward of the RMSNorm: with a_j = dy_j g_j,
 *   dg_j += dy_j x_j rs
 *   dx_j += rs a_j - x_j rs^3 (sum_k a_k x_k) / d
 * (the second term: rs depends on every x_k through mean(x^2)). */
static void rmsnorm_backward(const float *dy, const float *x, const float *rs, const float *g, int n, int d,
                             float *dg, float *dx) {
    for (int t = 0; t < n; t++) {
        const float *xr = x + (size_t)t * d, *dyr = dy + (size_t)t * d;
        float r = rs[t];
        double dot = 0;
        for (int j = 0; j < d; j++) {
            dg[j] += dyr[j] * xr[j] * r;
            dot += (double)dyr[j] * g[j] * xr[j];
        }
        float k = (float)(r * r * r * dot / d);
        for (int j = 0; j < d; j++)
            dx[(size_t)t * d + j] += r * dyr[j] * g[j] - xr[j] * k;
    }
}

/* RoPE, rotate-half, on x[seq][n_heads][hd] of one row: the pair (j, j + hd/2)
 * at position p turns by angle p * theta^(-2j/hd). inverse turns it back,
 * which is also the backward pass (a rotation's transpose is its inverse). */
static void rope(float *x, int seq, int n_heads, int hd, const float *cos_t, const float *sin_t, bool inverse) {
    int half = hd / 2;
    for (int p = 0; p < seq; p++)
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)p * n_heads + h) * hd;
            const float *c = cos_t + (size_t)p * half, *s = sin_t + (size_t)p * half;
            float sign = inverse ? -1.0f : 1.0f;
            for (int j = 0; j < half; j++) {
                float a = v[j], b = v[j + half];
                v[j] = a * c[j] - b * s[j] * sign;
                v[j + half] = b * c[j] + a * s[j] * sign;
            }
        }
}

/* ---- activations ---------------------------------------------------------- */

/* What the backward pass reads of one layer (n = n_rows * seq tokens). */
typedef struct {
    float *x;               /* [n][d] the layer's input */
    float *rs_a, *a;        /* attn_norm: 1/rms [n], output [n][d] */
    float *q, *k, *v;       /* [n][d], [n][kv], [n][kv]; q and k after RoPE */
    float *prob;            /* [n_rows][n_heads][seq][seq] attention probabilities */
    float *o;               /* [n][d] attention output, before attn_out */
    float *h;               /* [n][d] x + attn_out(o) */
    float *rs_f, *f;        /* ff_norm: 1/rms [n], output [n][d] */
    float *gate, *up, *act; /* [n][ff] ff_proj(f), up_proj(f), silu(gate) * up */
} layer_acts;

/* The loss reads only the masked positions' logits, so the head runs on
 * those rows alone (about half the tokens of a pre-training batch). */
typedef struct {
    layer_acts *layers;
    float *x_out;          /* [n][d] the last layer's output */
    float *rs_out, *xo;    /* ln_f: 1/rms [n], output [n][d] */
    int n_masked;          /* rows with a non-zero loss weight */
    int32_t *masked;       /* [n_masked] their token indices */
    float *xm;             /* [n_masked][d] xo of those rows */
    float *prob;           /* [n_masked][V] softmax of their logits */
    float *cos_t, *sin_t;  /* RoPE tables [seq][hd/2] */
    void **owned;
    int n_owned, cap_owned;
    bool failed;
} acts;

static void *acts_alloc(acts *A, size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p || A->n_owned == A->cap_owned) {
        free(p);
        A->failed = true;
        return NULL;
    }
    A->owned[A->n_owned++] = p;
    return p;
}

static void acts_free(acts *A) {
    for (int i = 0; i < A->n_owned; i++)
        free(A->owned[i]);
    free(A->owned);
    free(A->layers);
}

#define ACTS_F32(A, n) ((float *)acts_alloc(A, n, sizeof(float)))

static bool acts_init(acts *A, const um_hparams *hp, int n_rows, int seq, int n_masked) {
    memset(A, 0, sizeof *A);
    size_t n = (size_t)n_rows * seq, d = (size_t)hp->d_model, kv = (size_t)hp->n_kv_heads * hp->head_dim;
    size_t ff = (size_t)hp->d_ff, half = (size_t)hp->head_dim / 2;
    A->cap_owned = 16 * hp->n_layers + 8;
    A->owned = calloc((size_t)A->cap_owned, sizeof *A->owned);
    A->layers = calloc((size_t)hp->n_layers, sizeof *A->layers);
    if (!A->owned || !A->layers)
        return false;
    for (int i = 0; i < hp->n_layers; i++) {
        layer_acts *L = &A->layers[i];
        L->x = ACTS_F32(A, n * d);
        L->rs_a = ACTS_F32(A, n);
        L->a = ACTS_F32(A, n * d);
        L->q = ACTS_F32(A, n * d);
        L->k = ACTS_F32(A, n * kv);
        L->v = ACTS_F32(A, n * kv);
        L->prob = ACTS_F32(A, (size_t)n_rows * hp->n_heads * seq * seq);
        L->o = ACTS_F32(A, n * d);
        L->h = ACTS_F32(A, n * d);
        L->rs_f = ACTS_F32(A, n);
        L->f = ACTS_F32(A, n * d);
        L->gate = ACTS_F32(A, n * ff);
        L->up = ACTS_F32(A, n * ff);
        L->act = ACTS_F32(A, n * ff);
    }
    A->x_out = ACTS_F32(A, n * d);
    A->rs_out = ACTS_F32(A, n);
    A->xo = ACTS_F32(A, n * d);
    A->n_masked = n_masked;
    A->masked = acts_alloc(A, (size_t)n_masked, sizeof(int32_t));
    A->xm = ACTS_F32(A, (size_t)n_masked * d);
    A->prob = ACTS_F32(A, (size_t)n_masked * hp->n_vocab);
    A->cos_t = ACTS_F32(A, (size_t)seq * half);
    A->sin_t = ACTS_F32(A, (size_t)seq * half);
    return !A->failed;
}

/* ---- attention ------------------------------------------------------------ */

/* One attention job: the tensors of a layer for a batch of rows, split into
 * tasks of (row, kv head); each task handles the query heads of its group so
 * that the backward pass's dk/dv sums have one writer. Per-thread scratch:
 * a head's keys or values transposed ([hd][seq]) and a [seq][seq] matrix. */
typedef struct {
    const um_hparams *hp;
    int seq;
    const float *q, *k, *v;
    float *prob, *o;      /* forward */
    const float *d_o;     /* backward: given */
    float *dq, *dk, *dv;  /* backward: added into */
    float *scratch;       /* [threads][attn_scratch_floats] */
} attn_job;

static size_t attn_scratch_floats(const um_hparams *hp, int seq) {
    return (size_t)seq * hp->head_dim + (size_t)seq * seq;
}

/* kT[c][j] = k[j][off + c]: one head's column block, transposed. */
static void gather_head_t(float *kT, const float *k, int seq, int stride, int off, int hd) {
    for (int j = 0; j < seq; j++)
        for (int c = 0; c < hd; c++)
            kT[(size_t)c * seq + j] = k[(size_t)j * stride + off + c];
}

/* prob = softmax(q k^T / sqrt(hd)) per head, o = prob v. */
static void attn_forward_task(void *ctx, int task, int thread) {
    const attn_job *J = ctx;
    const um_hparams *hp = J->hp;
    int seq = J->seq, hd = hp->head_dim, nkv = hp->n_kv_heads, group = hp->n_heads / nkv;
    int r = task / nkv, g = task % nkv, d = hp->n_heads * hd, kvd = nkv * hd;
    float *kT = J->scratch + (size_t)thread * attn_scratch_floats(hp, seq);
    const float *q = J->q + (size_t)r * seq * d, *v = J->v + (size_t)r * seq * kvd + (size_t)g * hd;
    gather_head_t(kT, J->k + (size_t)r * seq * kvd, seq, kvd, g * hd, hd);
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = g * group; h < (g + 1) * group; h++) {
        float *P = J->prob + ((size_t)r * hp->n_heads + h) * seq * seq, *o = J->o + (size_t)r * seq * d + h * hd;
        memset(P, 0, (size_t)seq * seq * sizeof *P);
        um_gemm_acc(um_kernel_path_get(), P, seq, q + h * hd, d, 1, kT, seq, seq, seq, hd);
        for (int i = 0; i < seq; i++) {
            float *p = P + (size_t)i * seq, mx = -INFINITY;
            for (int j = 0; j < seq; j++)
                mx = fmaxf(mx, p[j] *= scale);
            double sum = 0;
            for (int j = 0; j < seq; j++)
                sum += p[j] = expf(p[j] - mx);
            float inv = (float)(1.0 / sum);
            for (int j = 0; j < seq; j++)
                p[j] *= inv;
            memset(o + (size_t)i * d, 0, (size_t)hd * sizeof *o);
        }
        um_gemm_acc(um_kernel_path_get(), o, d, P, seq, 1, v, kvd, seq, hd, seq);
    }
}

/* Backward of one (row, kv head)'s attention, per query head, as products:
 *   dP = do v^T                                   (o = P v)
 *   dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik)          (softmax backward)
 *   dv += P^T do,  dq += scale dS k,  dk += scale dS^T q */
static void attn_backward_task(void *ctx, int task, int thread) {
    const attn_job *J = ctx;
    const um_hparams *hp = J->hp;
    int seq = J->seq, hd = hp->head_dim, nkv = hp->n_kv_heads, group = hp->n_heads / nkv;
    int r = task / nkv, g = task % nkv, d = hp->n_heads * hd, kvd = nkv * hd;
    float *vT = J->scratch + (size_t)thread * attn_scratch_floats(hp, seq), *dS = vT + (size_t)seq * hd;
    size_t ro = (size_t)r * seq * d, rkv = (size_t)r * seq * kvd + (size_t)g * hd;
    gather_head_t(vT, J->v + (size_t)r * seq * kvd, seq, kvd, g * hd, hd);
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = g * group; h < (g + 1) * group; h++) {
        const float *P = J->prob + ((size_t)r * hp->n_heads + h) * seq * seq;
        const float *d_o = J->d_o + ro + h * hd, *q = J->q + ro + h * hd;
        memset(dS, 0, (size_t)seq * seq * sizeof *dS);
        um_gemm_acc(um_kernel_path_get(), dS, seq, d_o, d, 1, vT, seq, seq, seq, hd);
        for (int i = 0; i < seq; i++) {
            const float *p = P + (size_t)i * seq;
            float *ds = dS + (size_t)i * seq;
            double dot = 0;
            for (int j = 0; j < seq; j++)
                dot += (double)p[j] * ds[j];
            for (int j = 0; j < seq; j++)
                ds[j] = p[j] * (ds[j] - (float)dot) * scale;
        }
        um_gemm_acc(um_kernel_path_get(), J->dv + rkv, kvd, P, 1, seq, d_o, d, seq, hd, seq);
        um_gemm_acc(um_kernel_path_get(), J->dq + ro + h * hd, d, dS, seq, 1, J->k + rkv, kvd, seq, hd, seq);
        um_gemm_acc(um_kernel_path_get(), J->dk + rkv, kvd, dS, 1, seq, q, d, seq, hd, seq);
    }
}

/* ---- forward -------------------------------------------------------------- */

static void layer_forward(const gemm_ctx *G, const um_hparams *hp, const um_train_layer *l, layer_acts *L,
                          float *x_next, int n_rows, int seq, const acts *A, float *attn_scratch) {
    int n = n_rows * seq, d = hp->d_model, kv = hp->n_kv_heads * hp->head_dim, ff = hp->d_ff;
    rmsnorm(L->a, L->rs_a, L->x, l->attn_norm, n, d, hp->norm_eps);
    linear(G, L->q, L->a, l->wq, n, d, d);
    linear(G, L->k, L->a, l->wk, n, kv, d);
    linear(G, L->v, L->a, l->wv, n, kv, d);
    for (int r = 0; r < n_rows; r++) {
        rope(L->q + (size_t)r * seq * d, seq, hp->n_heads, hp->head_dim, A->cos_t, A->sin_t, false);
        rope(L->k + (size_t)r * seq * kv, seq, hp->n_kv_heads, hp->head_dim, A->cos_t, A->sin_t, false);
    }
    attn_job J = {.hp = hp, .seq = seq, .q = L->q, .k = L->k, .v = L->v, .prob = L->prob, .o = L->o,
                  .scratch = attn_scratch};
    um_pool_run(G->pool, n_rows * hp->n_kv_heads, attn_forward_task, &J);
    linear(G, L->h, L->o, l->wo, n, d, d);
    add_into(L->h, L->x, (size_t)n * d);
    rmsnorm(L->f, L->rs_f, L->h, l->ff_norm, n, d, hp->norm_eps);
    linear(G, L->gate, L->f, l->w_gate, n, ff, d);
    linear(G, L->up, L->f, l->w_up, n, ff, d);
    for (size_t i = 0; i < (size_t)n * ff; i++)
        L->act[i] = L->gate[i] / (1 + expf(-L->gate[i])) * L->up[i];
    linear(G, x_next, L->act, l->w_down, n, d, ff);
    add_into(x_next, L->h, (size_t)n * d);
}

/* Softmax and cross-entropy of the masked rows, in tasks of ROWS_PER_TASK
 * rows: CE(z, y) = logsumexp(z) - z_y, prob becomes softmax(z). Each task
 * writes its own partial loss, summed in task order (deterministic). */
enum { ROWS_PER_TASK = 16 };
typedef struct {
    const acts *A;
    const int32_t *x0;
    const double *w;
    int V;
    double *partial;
} ce_job;

static void ce_task(void *ctx, int task, int thread) {
    const ce_job *J = ctx;
    double sum_loss = 0;
    for (int m = task * ROWS_PER_TASK; m < J->A->n_masked && m < (task + 1) * ROWS_PER_TASK; m++) {
        float *z = J->A->prob + (size_t)m * J->V;
        int t = J->A->masked[m];
        float mx = -INFINITY;
        for (int c = 0; c < J->V; c++)
            mx = fmaxf(mx, z[c]);
        double sum = 0;
        for (int c = 0; c < J->V; c++)
            sum += expf(z[c] - mx);
        double lse = mx + log(sum);
        sum_loss += J->w[t] * (lse - z[J->x0[t]]);
        for (int c = 0; c < J->V; c++)
            z[c] = (float)exp(z[c] - lse);
    }
    J->partial[task] = sum_loss;
}

static int ce_tasks(int n_masked) { return (n_masked + ROWS_PER_TASK - 1) / ROWS_PER_TASK; }

/* The whole forward pass and the loss; A->prob holds the masked rows' softmax. */
static double forward(const gemm_ctx *G, const um_train_params *p, const um_mdm_batch *b, const double *w, acts *A,
                      float *attn_scratch, double *partial) {
    const um_hparams *hp = &p->hp;
    int n = b->n_rows * b->seq, d = hp->d_model, V = hp->n_vocab, half = hp->head_dim / 2;
    for (int pos = 0; pos < b->seq; pos++)
        for (int j = 0; j < half; j++) {
            double inv_freq = pow((double)hp->rope_theta, -2.0 * j / hp->head_dim);
            A->cos_t[(size_t)pos * half + j] = (float)cos(pos * inv_freq);
            A->sin_t[(size_t)pos * half + j] = (float)sin(pos * inv_freq);
        }
    for (int t = 0; t < n; t++)
        memcpy(A->layers[0].x + (size_t)t * d, p->wte + (size_t)b->noisy[t] * d, (size_t)d * sizeof(float));
    for (int i = 0; i < hp->n_layers; i++)
        layer_forward(G, hp, &p->layers[i], &A->layers[i], i + 1 < hp->n_layers ? A->layers[i + 1].x : A->x_out,
                      b->n_rows, b->seq, A, attn_scratch);
    rmsnorm(A->xo, A->rs_out, A->x_out, p->ln_f, n, d, hp->norm_eps);
    for (int m = 0; m < A->n_masked; m++)
        memcpy(A->xm + (size_t)m * d, A->xo + (size_t)A->masked[m] * d, (size_t)d * sizeof(float));
    if (A->n_masked == 0)
        return 0;
    linear(G, A->prob, A->xm, p->head, A->n_masked, V, d);
    ce_job J = {A, b->x0, w, V, partial};
    um_pool_run(G->pool, ce_tasks(A->n_masked), ce_task, &J);
    double loss = 0;
    for (int i = 0; i < ce_tasks(A->n_masked); i++)
        loss += partial[i];
    return loss;
}

/* ---- backward ------------------------------------------------------------- */

/* Scratch of the backward pass, sized for n tokens. */
typedef struct {
    float *dh, *dn, *dq, *dk, *dv, *d_o, *dgate, *dup;
} grad_scratch;

/* Backward of one layer: dx holds the gradient of the layer's output on entry
 * and of its input on return. */
static void layer_backward(const gemm_ctx *G, const um_hparams *hp, const um_train_layer *l, const layer_acts *L,
                           um_train_layer *g, float *dx, int n_rows, int seq, const acts *A, const grad_scratch *S,
                           float *attn_scratch) {
    int n = n_rows * seq, d = hp->d_model, kv = hp->n_kv_heads * hp->head_dim, ff = hp->d_ff;
    size_t nd = (size_t)n * d, nff = (size_t)n * ff;

    /* x' = h + act Wdown^T: dh = dx' (+ the feed-forward's share below), d act = dx' Wdown */
    memcpy(S->dh, dx, nd * sizeof(float));
    memset(S->dgate, 0, nff * sizeof(float)); /* holds d act first */
    linear_backward(G, dx, L->act, l->w_down, n, d, ff, g->w_down, S->dgate);
    /* act = silu(gate) * up: dup = dact silu(gate), dgate = dact up silu'(gate),
     * silu'(z) = s (1 + z (1 - s)) with s = sigmoid(z) */
    for (size_t i = 0; i < nff; i++) {
        float z = L->gate[i], s = 1 / (1 + expf(-z)), dact = S->dgate[i];
        S->dup[i] = dact * z * s;
        S->dgate[i] = dact * L->up[i] * s * (1 + z * (1 - s));
    }
    /* gate = f Wgate^T, up = f Wup^T: df = dgate Wgate + dup Wup */
    memset(S->dn, 0, nd * sizeof(float));
    linear_backward(G, S->dgate, L->f, l->w_gate, n, ff, d, g->w_gate, S->dn);
    linear_backward(G, S->dup, L->f, l->w_up, n, ff, d, g->w_up, S->dn);
    /* f = ff_norm(h) */
    rmsnorm_backward(S->dn, L->h, L->rs_f, l->ff_norm, n, d, g->ff_norm, S->dh);

    /* h = x + o Wo^T: dx = dh (+ the attention's share below), do = dh Wo */
    memcpy(dx, S->dh, nd * sizeof(float));
    memset(S->d_o, 0, nd * sizeof(float));
    linear_backward(G, S->dh, L->o, l->wo, n, d, d, g->wo, S->d_o);
    /* attention, then RoPE's inverse rotation on dq and dk */
    memset(S->dq, 0, nd * sizeof(float));
    memset(S->dk, 0, (size_t)n * kv * sizeof(float));
    memset(S->dv, 0, (size_t)n * kv * sizeof(float));
    attn_job J = {.hp = hp, .seq = seq, .q = L->q, .k = L->k, .v = L->v, .prob = L->prob, .d_o = S->d_o,
                  .dq = S->dq, .dk = S->dk, .dv = S->dv, .scratch = attn_scratch};
    um_pool_run(G->pool, n_rows * hp->n_kv_heads, attn_backward_task, &J);
    for (int r = 0; r < n_rows; r++) {
        rope(S->dq + (size_t)r * seq * d, seq, hp->n_heads, hp->head_dim, A->cos_t, A->sin_t, true);
        rope(S->dk + (size_t)r * seq * kv, seq, hp->n_kv_heads, hp->head_dim, A->cos_t, A->sin_t, true);
    }
    /* q, k, v = a W^T: da = dq Wq + dk Wk + dv Wv */
    memset(S->dn, 0, nd * sizeof(float));
    linear_backward(G, S->dq, L->a, l->wq, n, d, d, g->wq, S->dn);
    linear_backward(G, S->dk, L->a, l->wk, n, kv, d, g->wk, S->dn);
    linear_backward(G, S->dv, L->a, l->wv, n, kv, d, g->wv, S->dn);
    /* a = attn_norm(x) */
    rmsnorm_backward(S->dn, L->x, L->rs_a, l->attn_norm, n, d, g->attn_norm, dx);
}

static void backward(const gemm_ctx *G, const um_train_params *p, const um_mdm_batch *b, const double *w,
                     const acts *A, um_train_params *g, float *dz, float *dx, const grad_scratch *S,
                     float *attn_scratch) {
    const um_hparams *hp = &p->hp;
    int n = b->n_rows * b->seq, d = hp->d_model, V = hp->n_vocab;
    /* loss = sum_t w_t CE(z_t, y_t): dz_t = w_t (softmax(z_t) - onehot(y_t));
     * only masked rows have logits and a non-zero dz */
    for (int m = 0; m < A->n_masked; m++) {
        int t = A->masked[m];
        float wt = (float)w[t], *dzm = dz + (size_t)m * V;
        const float *pm = A->prob + (size_t)m * V;
        for (int c = 0; c < V; c++)
            dzm[c] = wt * pm[c];
        dzm[b->x0[t]] -= wt;
    }
    /* z = xm head^T: dhead += dz^T xm, dxm = dz head, scattered back to its rows */
    memset(dx, 0, (size_t)n * d * sizeof(float));
    memset(S->dn, 0, (size_t)n * d * sizeof(float));
    if (A->n_masked > 0) {
        float *dxm = S->dh; /* n_masked <= n rows of d: free until the layers */
        memset(dxm, 0, (size_t)A->n_masked * d * sizeof(float));
        linear_backward(G, dz, A->xm, p->head, A->n_masked, V, d, g->head, dxm);
        for (int m = 0; m < A->n_masked; m++)
            memcpy(S->dn + (size_t)A->masked[m] * d, dxm + (size_t)m * d, (size_t)d * sizeof(float));
    }
    /* xo = ln_f(x_out) */
    rmsnorm_backward(S->dn, A->x_out, A->rs_out, p->ln_f, n, d, g->ln_f, dx);
    for (int i = hp->n_layers - 1; i >= 0; i--)
        layer_backward(G, hp, &p->layers[i], &A->layers[i], &g->layers[i], dx, b->n_rows, b->seq, A, S,
                       attn_scratch);
    /* embedding gather: each token's row gets its positions' gradients (when
     * tied, wte also got the head's gradient above: g->head == g->wte) */
    for (int t = 0; t < n; t++)
        add_into(g->wte + (size_t)b->noisy[t] * d, dx + (size_t)t * d, (size_t)d);
}

/* ---- the entry point ------------------------------------------------------ */

static bool same_shapes(const um_train_params *a, const um_train_params *b) {
    const um_hparams *x = &a->hp, *y = &b->hp;
    return a->n_tensors == b->n_tensors && x->n_layers == y->n_layers && x->d_model == y->d_model &&
           x->n_vocab == y->n_vocab && x->d_ff == y->d_ff && x->n_kv_heads == y->n_kv_heads && x->tied == y->tied;
}

static int max3(int a, int b, int c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

/* Every buffer of one call, freed together. */
typedef struct {
    double *w, *partial;
    float *attn, *mm, *ta, *tb, *prod, *dz, *dx, *bwd;
} call_buffers;

static void call_buffers_free(call_buffers *B) {
    void *all[] = {B->w, B->partial, B->attn, B->mm, B->ta, B->tb, B->prod, B->dz, B->dx, B->bwd};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]);
}

static bool call_buffers_alloc(call_buffers *B, um_pool *pool, const um_hparams *hp, int n_rows, int seq,
                               bool backward) {
    size_t n = (size_t)n_rows * seq, d = (size_t)hp->d_model, kv = (size_t)hp->n_kv_heads * hp->head_dim;
    size_t ff = (size_t)hp->d_ff, V = (size_t)hp->n_vocab, wide = (size_t)max3((int)d, (int)ff, (int)V);
    size_t inner = d > ff ? d : ff, big = n > wide ? n : wide;
    int threads = um_pool_threads(pool);
    memset(B, 0, sizeof *B);
    B->w = malloc(n * sizeof *B->w);
    B->partial = malloc((n / ROWS_PER_TASK + 1) * sizeof *B->partial);
    B->attn = malloc((size_t)threads * attn_scratch_floats(hp, seq) * sizeof(float));
    B->mm = malloc(um_matmul_scratch_floats(threads, (int64_t)big) * sizeof(float));
    bool ok = B->w && B->partial && B->attn && B->mm;
    if (!ok || !backward)
        return ok;
    B->ta = malloc(big * wide * sizeof(float));   /* dy^T [o][n] or W^T [in][o] */
    B->tb = malloc(n * inner * sizeof(float));    /* x^T [in][n] */
    B->prod = malloc(big * inner * sizeof(float)); /* dx [n][in] or dW [o][in] */
    B->dz = malloc(n * V * sizeof(float));
    B->dx = malloc(n * d * sizeof(float));
    B->bwd = malloc((6 * n * d + 2 * n * kv + 2 * n * ff) * sizeof(float));
    return B->ta && B->tb && B->prod && B->dz && B->dx && B->bwd;
}

um_status um_llada_loss_grad(um_pool *pool, const um_train_params *p, const um_mdm_batch *b, double *loss,
                             um_train_params *grad, um_error *err) {
    const um_hparams *hp = &p->hp;
    if (grad && !same_shapes(p, grad))
        return um_fail(err, UM_ERR_ARG, "training: the gradient's shapes are not the parameters'");
    if (b->n_rows <= 0 || b->seq <= 0 || b->seq > hp->max_seq ||
        (int64_t)b->n_rows * b->seq * hp->n_vocab > ((int64_t)1 << 40))
        return um_fail(err, UM_ERR_ARG, "training: a batch of %d rows of %d tokens does not fit", b->n_rows, b->seq);
    size_t n = (size_t)b->n_rows * b->seq, d = (size_t)hp->d_model, kv = (size_t)hp->n_kv_heads * hp->head_dim;
    call_buffers B;
    acts A = {0};
    um_status s = UM_OK;
    if (!call_buffers_alloc(&B, pool, hp, b->n_rows, b->seq, grad != NULL)) {
        s = um_fail(err, UM_ERR_NOMEM, "training: out of memory for a batch of %d x %d", b->n_rows, b->seq);
        goto done;
    }
    if ((s = um_mdm_loss_weights(b, hp->mask_id, hp->n_vocab, B.w, err)) != UM_OK)
        goto done;
    int n_masked = 0;
    for (size_t t = 0; t < n; t++)
        n_masked += B.w[t] != 0;
    if (!acts_init(&A, hp, b->n_rows, b->seq, n_masked)) {
        s = um_fail(err, UM_ERR_NOMEM, "training: out of memory for the activations");
        goto done;
    }
    for (size_t t = 0, m = 0; t < n; t++)
        if (B.w[t] != 0)
            A.masked[m++] = (int32_t)t;
    bool oom = false;
    um_exec ex = um_exec_defaults(pool);
    ex.reduced = false;
    gemm_ctx G = {pool, ex, &oom, B.mm, B.ta, B.tb, B.prod};
    *loss = forward(&G, p, b, B.w, &A, B.attn, B.partial);
    if (grad) {
        float *s0 = B.bwd;
        grad_scratch S = {s0, s0 + n * d, s0 + 2 * n * d, s0 + 3 * n * d, s0 + 3 * n * d + n * kv,
                          s0 + 3 * n * d + 2 * n * kv, s0 + 4 * n * d + 2 * n * kv,
                          s0 + 4 * n * d + 2 * n * kv + n * (size_t)hp->d_ff};
        backward(&G, p, b, B.w, &A, grad, B.dz, B.dx, &S, B.attn);
    }
    if (oom)
        s = um_fail(err, UM_ERR_NOMEM, "training: out of memory for a matmul's packed operands");
done:
    acts_free(&A);
    call_buffers_free(&B);
    return s;
}
