/* The backend seam: what the model code asks of the hardware it runs on.
 *
 * The forward pass (model/forward.c) and the scheduler's picks
 * (diffusion/session.c) touch activations only through this table of
 * operations, on tensors the backend owns: a view (buffer, byte offset,
 * type, rows x cols) into a buffer from the backend's alloc. The CPU backend
 * (backend/cpu.c) is the kernels of src/kernels on a thread pool, with
 * buffers in host memory. A device backend (CUDA: cuBLAS plus kernels of
 * its own) is one more table: its alloc returns device memory, upload and
 * download cross the bus, and it keeps a device copy of each um_weight,
 * found by the weight's address (weights stay the model's; the model is
 * shared by every context). Small index lists (row numbers, pick requests)
 * are host arrays passed with the call.
 *
 * Every operation reports failure (out of memory for its packed operands,
 * a device error) as a um_status; none changes its arithmetic to get by.
 * Logits leave a backend only when asked (logits, for `unmask forward` and
 * eval); decoding asks for picks, computed next to the logits.
 *
 * tests/test_backend.c runs every operation of every backend (the CPU one on
 * each instruction-set path this CPU has) against the scalar path. */
#ifndef UM_BACKEND_H
#define UM_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "kernels/moe.h"
#include "kernels/pick.h"
#include "unmask.h"

typedef struct {
    void *data; /* host memory (CPU) or a device handle */
    size_t size;
} um_buffer;

/* rows x cols elements of type, row-major and contiguous, from offset bytes into buf. */
typedef struct {
    um_buffer *buf;
    size_t offset;
    um_dtype type;
    int64_t rows, cols;
} um_tensor;

/* rows [r0, r0 + n) of t. */
um_tensor um_tensor_rows(const um_tensor *t, int64_t r0, int64_t n);

/* Attention's shape: q rows hold n_heads heads, k/v rows n_kv_heads, each of
 * head_dim; reduced: bf16 operands (kernels.h: um_attention). */
typedef struct {
    int n_heads, n_kv_heads, head_dim;
    bool reduced;
} um_attn_shape;

/* RoPE's settings (kernels.h: um_rope_table, um_rope). */
typedef struct {
    int n_heads, n_kv_heads, head_dim;
    float theta;
    bool interleaved;
    int rot_dim; /* the rotated dimensions of a head: head_dim, or fewer for partial RoPE */
} um_rope_shape;

/* A mixture-of-experts FFN (the moe operation): a router and n_expert
 * gated FFNs, of which each token runs n_used. */
typedef struct {
    int n_expert, n_used;
    um_moe_router route;          /* how the router scores and chooses (kernels/moe.h) */
    um_weight router;             /* [n_expert][d_model], F32 */
    const float *bias;            /* [n_expert]: added to the scores for the choice only; NULL: none */
    um_weight *gate, *up, *down;  /* n_expert each: [d_ff][d_model] twice, [d_model][d_ff] */
} um_moe_weights;

typedef struct um_backend um_backend;

typedef struct {
    const char *name;
    void (*destroy)(um_backend *be); /* frees the backend and its state */
    um_status (*alloc)(um_backend *be, um_buffer *buf, size_t bytes, um_error *err);
    /* Frees buf; needs only the buffer (be may be NULL): a buffer (a session's
     * KV cache) may outlive the backend instance that allocated it, and any
     * backend of the same table may use it. */
    void (*release)(um_backend *be, um_buffer *buf);
    um_status (*upload)(um_backend *be, const um_tensor *dst, const void *src, um_error *err);
    um_status (*download)(um_backend *be, void *dst, const um_tensor *src, um_error *err);
    /* out[i] = row ids[i] of w, as f32 (the embedding lookup); ids I32 [n][1]. */
    um_status (*get_rows)(um_backend *be, const um_weight *w, const um_tensor *ids, const um_tensor *out,
                          um_error *err);
    /* dst row dst_rows[i] = src row src_rows[i] for i < n (either list NULL: i). */
    um_status (*copy_rows)(um_backend *be, const um_tensor *dst, const int32_t *dst_rows, const um_tensor *src,
                           const int32_t *src_rows, int n, um_error *err);
    /* y[i] = x w[i]^T (+ bias[i]) for i < count: products of one input (q, k, v) at once. */
    um_status (*matmul)(um_backend *be, const um_tensor *x, int count, const um_weight *const *w,
                        const float *const *bias, const um_tensor *const *y, um_error *err);
    /* x += add (unless NULL), then out = rmsnorm(x) * weight (unless weight is NULL). */
    um_status (*add_rmsnorm)(um_backend *be, const um_tensor *x, const um_tensor *add, const float *weight, float eps,
                             const um_tensor *out, um_error *err);
    /* RoPE in place on q and k rows, row i at position pos[i] (pos I32 [n][1]). */
    um_status (*rope)(um_backend *be, const um_tensor *q, const um_tensor *k, const um_tensor *pos,
                      const um_rope_shape *shape, um_error *err);
    /* gate = silu(gate) * up. */
    um_status (*swiglu)(um_backend *be, const um_tensor *gate, const um_tensor *up, um_error *err);
    /* out = the FFN of w for each row of x: the router's scores, the n_used
     * best experts, out = sum of weight * down(silu(gate(x)) * up(x))
     * (kernels/moe.h). Each expert's weights are read once for all its rows. */
    um_status (*moe)(um_backend *be, const um_tensor *x, const um_moe_weights *w, const um_tensor *out,
                     um_error *err);
    /* out = attention of the q rows against keys and values rows [0, n_kv) (no mask). */
    um_status (*attention)(um_backend *be, const um_tensor *q, const um_tensor *k, const um_tensor *v, int n_kv,
                           const um_tensor *out, const um_attn_shape *shape, um_error *err);
    /* Logits of the states' rows, written to host memory [rows][head rows]. */
    um_status (*logits)(um_backend *be, const um_tensor *states, const um_weight *head, const float *bias,
                        float *host, um_error *err);
    /* The picks of n requests over the states' rows through the output head
     * (kernels/pick.h: guidance, EOS masks, credit and sampling inside);
     * holds at most a few dozen rows of logits at a time. */
    um_status (*pick)(um_backend *be, const um_tensor *states, const um_weight *head, const float *bias,
                      const um_pick_request *req, int n, um_pick *out, um_error *err);
} um_backend_ops;

struct um_backend {
    const um_backend_ops *ops;
    bool reduced; /* its arithmetic: reduced-precision activations (kernels.h), else f32 */
    void *impl;   /* the backend's own state */
};

/* The CPU backend on a pool of n_threads, with ex's arithmetic and path
 * (ex.pool is ignored: the backend makes its own). */
um_status um_cpu_backend_create(int n_threads, um_exec ex, um_backend **out, um_error *err);
/* be->ops->destroy(be); NULL is fine. */
void um_backend_free(um_backend *be);
/* The CPU backend's execution settings (its pool, arithmetic, path). */
const um_exec *um_cpu_backend_exec(const um_backend *be);

#endif
