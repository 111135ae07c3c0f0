/* The masked-diffusion loss of LLaDA and its backward pass, in float64.
 *
 * The forward pass is the one of src/model/llada.c, written out with plain
 * loops and keeping what the backward pass reads:
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
    t->data = calloc((size_t)t->numel, sizeof(double));
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
        memset(p->tensors[i].data, 0, (size_t)p->tensors[i].numel * sizeof(double));
}

const um_train_tensor *um_train_params_find(const um_train_params *p, const char *name) {
    for (int i = 0; i < p->n_tensors; i++)
        if (strcmp(p->tensors[i].name, name) == 0)
            return &p->tensors[i];
    return NULL;
}

/* A weight matrix of the model (any type it loads) as float64. */
static void matrix_to_f64(const um_weight *w, double *out, float *row) {
    for (int64_t r = 0; r < w->rows; r++) {
        um_weight_row_f32(w, r, row);
        for (int64_t c = 0; c < w->cols; c++)
            out[r * w->cols + c] = row[c];
    }
}

static void vector_to_f64(const float *v, int64_t n, double *out) {
    for (int64_t i = 0; i < n; i++)
        out[i] = v[i];
}

um_status um_train_params_from_model(um_train_params *p, const um_model *m, um_error *err) {
    UM_TRY(um_train_params_init(p, &m->hp, err));
    const um_hparams *hp = &m->hp;
    int64_t max_cols = hp->d_ff > hp->d_model ? hp->d_ff : hp->d_model;
    float *row = malloc((size_t)max_cols * sizeof *row);
    if (!row) {
        um_train_params_free(p);
        return um_fail(err, UM_ERR_NOMEM, "training: out of memory");
    }
    matrix_to_f64(&m->tok_embd, p->wte, row);
    for (int i = 0; i < hp->n_layers; i++) {
        const um_layer *ml = &m->layers[i];
        um_train_layer *l = &p->layers[i];
        vector_to_f64(ml->attn_norm, hp->d_model, l->attn_norm);
        vector_to_f64(ml->ffn_norm, hp->d_model, l->ff_norm);
        matrix_to_f64(&ml->wq, l->wq, row);
        matrix_to_f64(&ml->wk, l->wk, row);
        matrix_to_f64(&ml->wv, l->wv, row);
        matrix_to_f64(&ml->wo, l->wo, row);
        matrix_to_f64(&ml->w_gate, l->w_gate, row);
        matrix_to_f64(&ml->w_up, l->w_up, row);
        matrix_to_f64(&ml->w_down, l->w_down, row);
    }
    vector_to_f64(m->out_norm, hp->d_model, p->ln_f);
    if (!hp->tied)
        matrix_to_f64(&m->output, p->head, row);
    free(row);
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

/* ---- building blocks, forward and backward -------------------------------- */

/* y[n][o] = x[n][i] W^T, W [o][i]. */
static void linear(double *y, const double *x, const double *W, int n, int o, int in) {
    for (int t = 0; t < n; t++)
        for (int r = 0; r < o; r++) {
            double s = 0;
            for (int c = 0; c < in; c++)
                s += x[(size_t)t * in + c] * W[(size_t)r * in + c];
            y[(size_t)t * o + r] = s;
        }
}

/* Backward of y = x W^T: dW += dy^T x ([o][i]) and dx += dy W ([n][i]). */
static void linear_backward(const double *dy, const double *x, const double *W, int n, int o, int in, double *dW,
                            double *dx) {
    for (int t = 0; t < n; t++)
        for (int r = 0; r < o; r++) {
            double g = dy[(size_t)t * o + r];
            if (g == 0)
                continue;
            const double *xr = x + (size_t)t * in, *wr = W + (size_t)r * in;
            double *dwr = dW + (size_t)r * in, *dxr = dx + (size_t)t * in;
            for (int c = 0; c < in; c++) {
                dwr[c] += g * xr[c];
                dxr[c] += g * wr[c];
            }
        }
}

/* y = x * rs * g with rs = 1 / sqrt(mean(x^2) + eps), per row; keeps rs. */
static void rmsnorm(double *y, double *rs, const double *x, const double *g, int n, int d, double eps) {
    for (int t = 0; t < n; t++) {
        const double *xr = x + (size_t)t * d;
        double ss = 0;
        for (int j = 0; j < d; j++)
            ss += xr[j] * xr[j];
        rs[t] = 1.0 / sqrt(ss / d + eps);
        for (int j = 0; j < d; j++)
            y[(size_t)t * d + j] = xr[j] * rs[t] * g[j];
    }
}

/* Backward of the RMSNorm: with a_j = dy_j g_j,
 *   dg_j += dy_j x_j rs
 *   dx_j += rs a_j - x_j rs^3 (sum_k a_k x_k) / d
 * (the second term: rs depends on every x_k through mean(x^2)). */
static void rmsnorm_backward(const double *dy, const double *x, const double *rs, const double *g, int n, int d,
                             double *dg, double *dx) {
    for (int t = 0; t < n; t++) {
        const double *xr = x + (size_t)t * d, *dyr = dy + (size_t)t * d;
        double r = rs[t], dot = 0;
        for (int j = 0; j < d; j++) {
            dg[j] += dyr[j] * xr[j] * r;
            dot += dyr[j] * g[j] * xr[j];
        }
        for (int j = 0; j < d; j++)
            dx[(size_t)t * d + j] += r * dyr[j] * g[j] - xr[j] * r * r * r * dot / d;
    }
}

/* RoPE, rotate-half, on x[seq][n_heads][hd] of one row: the pair (j, j + hd/2)
 * at position p turns by angle p * theta^(-2j/hd). inverse turns it back,
 * which is also the backward pass (a rotation's transpose is its inverse). */
static void rope(double *x, int seq, int n_heads, int hd, const double *cos_t, const double *sin_t, bool inverse) {
    int half = hd / 2;
    for (int p = 0; p < seq; p++)
        for (int h = 0; h < n_heads; h++) {
            double *v = x + ((size_t)p * n_heads + h) * hd;
            for (int j = 0; j < half; j++) {
                double c = cos_t[(size_t)p * half + j], s = inverse ? -sin_t[(size_t)p * half + j]
                                                                    : sin_t[(size_t)p * half + j];
                double a = v[j], b = v[j + half];
                v[j] = a * c - b * s;
                v[j + half] = b * c + a * s;
            }
        }
}

static double silu(double g) { return g / (1 + exp(-g)); }

/* ---- activations ---------------------------------------------------------- */

/* What the backward pass reads of one layer (n = n_rows * seq tokens). */
typedef struct {
    double *x;        /* [n][d] the layer's input */
    double *rs_a, *a; /* attn_norm: 1/rms [n], output [n][d] */
    double *q, *k, *v; /* [n][d], [n][kv], [n][kv]; q and k after RoPE */
    double *prob;     /* [n_rows][n_heads][seq][seq] attention probabilities */
    double *o;        /* [n][d] attention output, before attn_out */
    double *h;        /* [n][d] x + attn_out(o) */
    double *rs_f, *f; /* ff_norm: 1/rms [n], output [n][d] */
    double *gate, *up, *act; /* [n][ff] ff_proj(f), up_proj(f), silu(gate) * up */
} layer_acts;

typedef struct {
    layer_acts *layers;
    double *x_out;        /* [n][d] the last layer's output */
    double *rs_out, *xo;  /* ln_f: 1/rms [n], output [n][d] */
    double *prob;         /* [n][V] softmax of the logits */
    double *cos_t, *sin_t; /* RoPE tables [seq][hd/2] */
    double **owned;
    int n_owned, cap_owned;
    bool failed;
} acts;

static double *acts_alloc(acts *A, size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
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

static bool acts_init(acts *A, const um_hparams *hp, int n_rows, int seq) {
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
        L->x = acts_alloc(A, n * d);
        L->rs_a = acts_alloc(A, n);
        L->a = acts_alloc(A, n * d);
        L->q = acts_alloc(A, n * d);
        L->k = acts_alloc(A, n * kv);
        L->v = acts_alloc(A, n * kv);
        L->prob = acts_alloc(A, (size_t)n_rows * hp->n_heads * seq * seq);
        L->o = acts_alloc(A, n * d);
        L->h = acts_alloc(A, n * d);
        L->rs_f = acts_alloc(A, n);
        L->f = acts_alloc(A, n * d);
        L->gate = acts_alloc(A, n * ff);
        L->up = acts_alloc(A, n * ff);
        L->act = acts_alloc(A, n * ff);
    }
    A->x_out = acts_alloc(A, n * d);
    A->rs_out = acts_alloc(A, n);
    A->xo = acts_alloc(A, n * d);
    A->prob = acts_alloc(A, n * (size_t)hp->n_vocab);
    A->cos_t = acts_alloc(A, (size_t)seq * half);
    A->sin_t = acts_alloc(A, (size_t)seq * half);
    return !A->failed;
}

/* ---- forward -------------------------------------------------------------- */

/* Multi-head bidirectional attention of one row: prob = softmax(q k^T * scale)
 * per head, o = prob v. */
static void attention(const um_hparams *hp, int seq, const double *q, const double *k, const double *v, double *prob,
                      double *o) {
    int H = hp->n_heads, hd = hp->head_dim, group = hp->n_heads / hp->n_kv_heads;
    int d = H * hd, kv = hp->n_kv_heads * hd;
    double scale = 1.0 / sqrt((double)hd);
    for (int h = 0; h < H; h++) {
        int g = h / group;
        for (int i = 0; i < seq; i++) {
            double *p = prob + ((size_t)h * seq + i) * seq, mx = -INFINITY, sum = 0;
            const double *qi = q + (size_t)i * d + h * hd;
            for (int j = 0; j < seq; j++) {
                const double *kj = k + (size_t)j * kv + g * hd;
                double s = 0;
                for (int c = 0; c < hd; c++)
                    s += qi[c] * kj[c];
                p[j] = s * scale;
                if (p[j] > mx)
                    mx = p[j];
            }
            for (int j = 0; j < seq; j++)
                sum += p[j] = exp(p[j] - mx);
            for (int j = 0; j < seq; j++)
                p[j] /= sum;
            double *oi = o + (size_t)i * d + h * hd;
            for (int c = 0; c < hd; c++) {
                double s = 0;
                for (int j = 0; j < seq; j++)
                    s += p[j] * v[(size_t)j * kv + g * hd + c];
                oi[c] = s;
            }
        }
    }
}

static void layer_forward(const um_hparams *hp, const um_train_layer *l, layer_acts *L, double *x_next, int n_rows,
                          int seq, const acts *A) {
    int n = n_rows * seq, d = hp->d_model, kv = hp->n_kv_heads * hp->head_dim, ff = hp->d_ff;
    rmsnorm(L->a, L->rs_a, L->x, l->attn_norm, n, d, hp->norm_eps);
    linear(L->q, L->a, l->wq, n, d, d);
    linear(L->k, L->a, l->wk, n, kv, d);
    linear(L->v, L->a, l->wv, n, kv, d);
    for (int r = 0; r < n_rows; r++) {
        double *q = L->q + (size_t)r * seq * d, *k = L->k + (size_t)r * seq * kv, *v = L->v + (size_t)r * seq * kv;
        rope(q, seq, hp->n_heads, hp->head_dim, A->cos_t, A->sin_t, false);
        rope(k, seq, hp->n_kv_heads, hp->head_dim, A->cos_t, A->sin_t, false);
        attention(hp, seq, q, k, v, L->prob + (size_t)r * hp->n_heads * seq * seq, L->o + (size_t)r * seq * d);
    }
    linear(L->h, L->o, l->wo, n, d, d);
    for (size_t i = 0; i < (size_t)n * d; i++)
        L->h[i] += L->x[i];
    rmsnorm(L->f, L->rs_f, L->h, l->ff_norm, n, d, hp->norm_eps);
    linear(L->gate, L->f, l->w_gate, n, ff, d);
    linear(L->up, L->f, l->w_up, n, ff, d);
    for (size_t i = 0; i < (size_t)n * ff; i++)
        L->act[i] = silu(L->gate[i]) * L->up[i];
    linear(x_next, L->act, l->w_down, n, d, ff);
    for (size_t i = 0; i < (size_t)n * d; i++)
        x_next[i] += L->h[i];
}

/* The whole forward pass and the loss; A->prob holds each position's softmax. */
static double forward(const um_train_params *p, const um_mdm_batch *b, const double *w, acts *A) {
    const um_hparams *hp = &p->hp;
    int n = b->n_rows * b->seq, d = hp->d_model, V = hp->n_vocab, half = hp->head_dim / 2;
    for (int pos = 0; pos < b->seq; pos++)
        for (int j = 0; j < half; j++) {
            double inv_freq = pow((double)hp->rope_theta, -2.0 * j / hp->head_dim);
            A->cos_t[(size_t)pos * half + j] = cos(pos * inv_freq);
            A->sin_t[(size_t)pos * half + j] = sin(pos * inv_freq);
        }
    /* embedding gather */
    for (int t = 0; t < n; t++)
        memcpy(A->layers[0].x + (size_t)t * d, p->wte + (size_t)b->noisy[t] * d, (size_t)d * sizeof(double));
    for (int i = 0; i < hp->n_layers; i++)
        layer_forward(hp, &p->layers[i], &A->layers[i], i + 1 < hp->n_layers ? A->layers[i + 1].x : A->x_out,
                      b->n_rows, b->seq, A);
    rmsnorm(A->xo, A->rs_out, A->x_out, p->ln_f, n, d, hp->norm_eps);
    linear(A->prob, A->xo, p->head, n, V, d);
    /* CE(z, y) = logsumexp(z) - z_y; prob becomes softmax(z) */
    double loss = 0;
    for (int t = 0; t < n; t++) {
        double *z = A->prob + (size_t)t * V, mx = -INFINITY, sum = 0;
        for (int c = 0; c < V; c++)
            mx = z[c] > mx ? z[c] : mx;
        for (int c = 0; c < V; c++)
            sum += exp(z[c] - mx);
        double lse = mx + log(sum);
        if (w[t] != 0)
            loss += w[t] * (lse - z[b->x0[t]]);
        for (int c = 0; c < V; c++)
            z[c] = exp(z[c] - lse);
    }
    return loss;
}

/* ---- backward ------------------------------------------------------------- */

/* Backward of one row's attention. Given do (the gradient of o):
 *   dv_j += sum_i P_ij do_i                      (o_i = sum_j P_ij v_j)
 *   dP_ij = do_i . v_j
 *   dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik)        (softmax backward)
 *   dq_i += scale sum_j dS_ij k_j,  dk_j += scale sum_i dS_ij q_i
 * With GQA, the query heads of one group all add into their kv head. */
static void attention_backward(const um_hparams *hp, int seq, const double *q, const double *k, const double *v,
                               const double *prob, const double *d_o, double *dq, double *dk, double *dv,
                               double *dP) {
    int H = hp->n_heads, hd = hp->head_dim, group = hp->n_heads / hp->n_kv_heads;
    int d = H * hd, kv = hp->n_kv_heads * hd;
    double scale = 1.0 / sqrt((double)hd);
    for (int h = 0; h < H; h++) {
        int g = h / group;
        for (int i = 0; i < seq; i++) {
            const double *P = prob + ((size_t)h * seq + i) * seq, *doi = d_o + (size_t)i * d + h * hd;
            double dot = 0;
            for (int j = 0; j < seq; j++) {
                const double *vj = v + (size_t)j * kv + g * hd;
                double *dvj = dv + (size_t)j * kv + g * hd, s = 0;
                for (int c = 0; c < hd; c++) {
                    dvj[c] += P[j] * doi[c];
                    s += doi[c] * vj[c];
                }
                dP[j] = s;
                dot += P[j] * s;
            }
            const double *qi = q + (size_t)i * d + h * hd;
            double *dqi = dq + (size_t)i * d + h * hd;
            for (int j = 0; j < seq; j++) {
                double ds = P[j] * (dP[j] - dot) * scale;
                const double *kj = k + (size_t)j * kv + g * hd;
                double *dkj = dk + (size_t)j * kv + g * hd;
                for (int c = 0; c < hd; c++) {
                    dqi[c] += ds * kj[c];
                    dkj[c] += ds * qi[c];
                }
            }
        }
    }
}

/* Scratch of the backward pass, sized for n tokens. */
typedef struct {
    double *dh, *dn, *dq, *dk, *dv, *d_o, *dgate, *dup, *dP;
} grad_scratch;

/* Backward of one layer: dx holds the gradient of the layer's output on entry
 * and of its input on return. */
static void layer_backward(const um_hparams *hp, const um_train_layer *l, const layer_acts *L, um_train_layer *g,
                           double *dx, int n_rows, int seq, const acts *A, const grad_scratch *S) {
    int n = n_rows * seq, d = hp->d_model, kv = hp->n_kv_heads * hp->head_dim, ff = hp->d_ff;
    size_t nd = (size_t)n * d, nff = (size_t)n * ff;

    /* x' = h + act Wdown^T: dh = dx' (+ the feed-forward's share below), d act = dx' Wdown */
    memcpy(S->dh, dx, nd * sizeof(double));
    memset(S->dgate, 0, nff * sizeof(double)); /* holds d act first */
    linear_backward(dx, L->act, l->w_down, n, d, ff, g->w_down, S->dgate);
    /* act = silu(gate) * up: dup = dact silu(gate), dgate = dact up silu'(gate),
     * silu'(z) = s (1 + z (1 - s)) with s = sigmoid(z) */
    for (size_t i = 0; i < nff; i++) {
        double z = L->gate[i], s = 1 / (1 + exp(-z)), dact = S->dgate[i];
        S->dup[i] = dact * z * s;
        S->dgate[i] = dact * L->up[i] * s * (1 + z * (1 - s));
    }
    /* gate = f Wgate^T, up = f Wup^T: df = dgate Wgate + dup Wup */
    memset(S->dn, 0, nd * sizeof(double));
    linear_backward(S->dgate, L->f, l->w_gate, n, ff, d, g->w_gate, S->dn);
    linear_backward(S->dup, L->f, l->w_up, n, ff, d, g->w_up, S->dn);
    /* f = ff_norm(h) */
    rmsnorm_backward(S->dn, L->h, L->rs_f, l->ff_norm, n, d, g->ff_norm, S->dh);

    /* h = x + o Wo^T: dx = dh (+ the attention's share below), do = dh Wo */
    memcpy(dx, S->dh, nd * sizeof(double));
    memset(S->d_o, 0, nd * sizeof(double));
    linear_backward(S->dh, L->o, l->wo, n, d, d, g->wo, S->d_o);
    /* attention, then RoPE's inverse rotation on dq and dk */
    memset(S->dq, 0, nd * sizeof(double));
    memset(S->dk, 0, (size_t)n * kv * sizeof(double));
    memset(S->dv, 0, (size_t)n * kv * sizeof(double));
    for (int r = 0; r < n_rows; r++) {
        size_t od = (size_t)r * seq * d, okv = (size_t)r * seq * kv;
        attention_backward(hp, seq, L->q + od, L->k + okv, L->v + okv, L->prob + (size_t)r * hp->n_heads * seq * seq,
                           S->d_o + od, S->dq + od, S->dk + okv, S->dv + okv, S->dP);
        rope(S->dq + od, seq, hp->n_heads, hp->head_dim, A->cos_t, A->sin_t, true);
        rope(S->dk + okv, seq, hp->n_kv_heads, hp->head_dim, A->cos_t, A->sin_t, true);
    }
    /* q, k, v = a W^T: da = dq Wq + dk Wk + dv Wv */
    memset(S->dn, 0, nd * sizeof(double));
    linear_backward(S->dq, L->a, l->wq, n, d, d, g->wq, S->dn);
    linear_backward(S->dk, L->a, l->wk, n, kv, d, g->wk, S->dn);
    linear_backward(S->dv, L->a, l->wv, n, kv, d, g->wv, S->dn);
    /* a = attn_norm(x) */
    rmsnorm_backward(S->dn, L->x, L->rs_a, l->attn_norm, n, d, g->attn_norm, dx);
}

static void backward(const um_train_params *p, const um_mdm_batch *b, const double *w, const acts *A,
                     um_train_params *g, double *dz, double *dx, const grad_scratch *S) {
    const um_hparams *hp = &p->hp;
    int n = b->n_rows * b->seq, d = hp->d_model, V = hp->n_vocab;
    /* loss = sum_t w_t CE(z_t, y_t): dz_t = w_t (softmax(z_t) - onehot(y_t)).
     * (positions with w_t = 0 get dz = 0). */
    for (int t = 0; t < n; t++)
        for (int c = 0; c < V; c++)
            dz[(size_t)t * V + c] = w[t] * (A->prob[(size_t)t * V + c] - (c == b->x0[t]));
    /* z = xo head^T: dhead += dz^T xo, dxo = dz head (reusing S->dn) */
    memset(S->dn, 0, (size_t)n * d * sizeof(double));
    linear_backward(dz, A->xo, p->head, n, V, d, g->head, S->dn);
    /* xo = ln_f(x_out) */
    memset(dx, 0, (size_t)n * d * sizeof(double));
    rmsnorm_backward(S->dn, A->x_out, A->rs_out, p->ln_f, n, d, g->ln_f, dx);
    for (int i = hp->n_layers - 1; i >= 0; i--)
        layer_backward(hp, &p->layers[i], &A->layers[i], &g->layers[i], dx, b->n_rows, b->seq, A, S);
    /* embedding gather: each token's row gets its positions' gradients (when
     * tied, wte also got the head's gradient above: g->head == g->wte) */
    for (int t = 0; t < n; t++)
        for (int j = 0; j < d; j++)
            g->wte[(size_t)b->noisy[t] * d + j] += dx[(size_t)t * d + j];
}

um_status um_llada_loss_grad(const um_train_params *p, const um_mdm_batch *b, double *loss, um_train_params *grad,
                             um_error *err) {
    const um_hparams *hp = &p->hp;
    if (grad && (grad->n_tensors != p->n_tensors || grad->hp.n_layers != hp->n_layers ||
                 grad->hp.d_model != hp->d_model || grad->hp.n_vocab != hp->n_vocab || grad->hp.d_ff != hp->d_ff ||
                 grad->hp.n_kv_heads != hp->n_kv_heads || grad->hp.tied != hp->tied))
        return um_fail(err, UM_ERR_ARG, "training: the gradient's shapes are not the parameters'");
    if (b->n_rows <= 0 || b->seq <= 0 || b->seq > hp->max_seq ||
        (int64_t)b->n_rows * b->seq * hp->n_vocab > ((int64_t)1 << 40))
        return um_fail(err, UM_ERR_ARG, "training: a batch of %d rows of %d tokens does not fit", b->n_rows, b->seq);
    size_t n = (size_t)b->n_rows * b->seq, d = (size_t)hp->d_model, kv = (size_t)hp->n_kv_heads * hp->head_dim;
    size_t ff = (size_t)hp->d_ff;
    double *w = malloc(n * sizeof *w);
    if (!w)
        return um_fail(err, UM_ERR_NOMEM, "training: out of memory");
    um_status s = um_mdm_loss_weights(b, hp->mask_id, hp->n_vocab, w, err);
    if (s != UM_OK) {
        free(w);
        return s;
    }
    acts A;
    double *bufs[11] = {0};
    if (!acts_init(&A, hp, b->n_rows, b->seq)) {
        s = um_fail(err, UM_ERR_NOMEM, "training: out of memory for the activations");
        goto done;
    }
    *loss = forward(p, b, w, &A);
    if (!grad)
        goto done;
    size_t sizes[11] = {n * d, n * d, n * d, n * d, n * kv, n * kv, n * d, n * ff, n * ff, (size_t)b->seq,
                        n * (size_t)hp->n_vocab};
    for (int i = 0; i < 11; i++)
        if (!(bufs[i] = calloc(sizes[i], sizeof(double)))) {
            s = um_fail(err, UM_ERR_NOMEM, "training: out of memory for the backward pass");
            goto done;
        }
    grad_scratch S = {bufs[1], bufs[2], bufs[3], bufs[4], bufs[5], bufs[6], bufs[7], bufs[8], bufs[9]};
    backward(p, b, w, &A, grad, bufs[10], bufs[0], &S);
done:
    for (int i = 0; i < 11; i++)
        free(bufs[i]);
    acts_free(&A);
    free(w);
    return s;
}
