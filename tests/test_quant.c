/* llama.cpp's quantized formats against references written elsewhere:
 *  - the Q8_0 and F16 GGUF fixtures, written by llama.cpp's converter from
 *    the F32 checkpoint: quantizing the checkpoint's rows must give the
 *    file's bytes;
 *  - tests/data/quant_vectors.safetensors (made by make_quant_vectors.py
 *    beside it): bytes from gguf-py's quantizers (Q8_0, Q4_0, Q4_1) and from
 *    llama.cpp's own C reference quantizers (Q4_K, Q5_K, Q6_K), and gguf-py's
 *    dequantization of those and of random blocks;
 *  - llama.cpp's test-quantize-fns error threshold on its synthetic data,
 *    and error bounds on Gaussian data;
 *  - the matmul with quantized weights against the f32 matmul with the
 *    dequantized weights. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
#include "base/pool.h"
#include "base/rng.h"
#include "format/safetensors.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "testutil.h"

#define VECTORS "tests/data/quant_vectors.safetensors"

static const um_dtype qtypes[] = {UM_Q8_0, UM_Q4_0, UM_Q4_1, UM_Q4_K, UM_Q5_K, UM_Q6_K};
#define N_QTYPES (sizeof qtypes / sizeof *qtypes)

/* ---- helpers ------------------------------------------------------------- */

/* A tensor's bytes copied out of the (possibly unaligned) map. */
static void *st_copy(const um_st_file *f, const char *name, size_t *nbytes) {
    const um_st_tensor *t = um_st_find(f, name);
    if (nbytes)
        *nbytes = 0;
    if (!t)
        return NULL;
    void *p = malloc(t->nbytes ? t->nbytes : 1);
    memcpy(p, t->data, t->nbytes);
    if (nbytes)
        *nbytes = t->nbytes;
    return p;
}

/* Index of the first float whose bits differ, or -1. */
static int64_t first_bit_diff(const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0)
            return i;
    return -1;
}

static int64_t first_byte_diff(const uint8_t *a, const uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return (int64_t)i;
    return -1;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* ---- basic shapes ---------------------------------------------------------- */

static void row_bytes_and_layout(void **state) {
    assert_int_equal(um_row_bytes(UM_Q8_0, 64), 68);
    assert_int_equal(um_row_bytes(UM_Q4_0, 4096), 128 * 18);
    assert_int_equal(um_row_bytes(UM_Q4_1, 32), 20);
    assert_int_equal(um_row_bytes(UM_Q4_K, 512), 288);
    assert_int_equal(um_row_bytes(UM_Q5_K, 256), 176);
    assert_int_equal(um_row_bytes(UM_Q6_K, 768), 630);
    assert_int_equal(um_row_bytes(UM_F32, 3), 12);
    assert_int_equal(um_row_bytes(UM_BF16, 5), 10);
    assert_int_equal(um_row_bytes(UM_Q8_0, 33), 0); /* not whole blocks */
    assert_int_equal(um_row_bytes(UM_Q6_K, 128), 0);
    assert_int_equal(um_row_bytes(UM_Q4_0, -32), 0);
    assert_int_equal(um_row_bytes(UM_Q4_0, 0), 0);
    /* the field offsets ggml-common.h gives */
    assert_int_equal(offsetof(um_block_q4_1, qs), 4);
    assert_int_equal(offsetof(um_block_q4_K, scales), 4);
    assert_int_equal(offsetof(um_block_q4_K, qs), 16);
    assert_int_equal(offsetof(um_block_q5_K, qh), 16);
    assert_int_equal(offsetof(um_block_q5_K, qs), 48);
    assert_int_equal(offsetof(um_block_q6_K, qh), 128);
    assert_int_equal(offsetof(um_block_q6_K, scales), 192);
    assert_int_equal(offsetof(um_block_q6_K, d), 208);
    for (size_t i = 0; i < N_QTYPES; i++)
        assert_int_equal(um_row_bytes(qtypes[i], um_dtype_block_elems(qtypes[i])), um_dtype_block_bytes(qtypes[i]));
}

/* ---- a minimal GGUF reader (v3, little-endian) ----------------------------- */

typedef struct {
    char name[96];
    uint32_t n_dims;
    uint64_t ne[4];
    uint32_t type; /* ggml type id */
    const uint8_t *data;
} gguf_tensor;

typedef struct {
    uint8_t *buf;
    size_t size;
    uint32_t head_count, head_count_kv;
    int n_tensors;
    gguf_tensor *tensors;
} gguf_file;

typedef struct {
    const uint8_t *p, *end;
} gguf_rd;

static void rd_need(gguf_rd *r, uint64_t n) { assert_true(n <= (uint64_t)(r->end - r->p)); }

static uint64_t rd_uint(gguf_rd *r, int bytes) {
    rd_need(r, (uint64_t)bytes);
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += bytes;
    return v;
}

/* A GGUF string (u64 length, bytes) into dst (truncated, NUL-terminated). */
static void rd_string(gguf_rd *r, char *dst, size_t cap) {
    uint64_t n = rd_uint(r, 8);
    rd_need(r, n);
    if (dst) {
        size_t k = n < cap - 1 ? (size_t)n : cap - 1;
        memcpy(dst, r->p, k);
        dst[k] = 0;
    }
    r->p += n;
}

/* Skips a value of GGUF type vt, returning it when it is a u32. */
static uint64_t rd_skip_value(gguf_rd *r, uint32_t vt) {
    static const int size[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8}; /* u8 i8 u16 i16 u32 i32 f32 bool str arr u64 i64 f64 */
    assert_true(vt <= 12);
    if (vt == 8) {
        rd_string(r, NULL, 0);
        return 0;
    }
    if (vt == 9) {
        uint32_t et = (uint32_t)rd_uint(r, 4);
        uint64_t count = rd_uint(r, 8);
        for (uint64_t i = 0; i < count; i++)
            rd_skip_value(r, et);
        return 0;
    }
    return rd_uint(r, size[vt]);
}

static void gguf_load(const char *path, gguf_file *g) {
    memset(g, 0, sizeof *g);
    g->buf = read_whole_file(path, &g->size);
    assert_non_null(g->buf);
    gguf_rd r = {g->buf, g->buf + g->size};
    rd_need(&r, 4);
    assert_memory_equal(r.p, "GGUF", 4);
    r.p += 4;
    assert_int_equal(rd_uint(&r, 4), 3);
    uint64_t n_tensors = rd_uint(&r, 8), n_kv = rd_uint(&r, 8);
    assert_true(n_tensors < 100000);
    uint64_t alignment = 32;
    for (uint64_t i = 0; i < n_kv; i++) {
        char key[256];
        rd_string(&r, key, sizeof key);
        uint32_t vt = (uint32_t)rd_uint(&r, 4);
        uint64_t v = rd_skip_value(&r, vt);
        if (strcmp(key, "general.alignment") == 0)
            alignment = v;
        else if (strstr(key, ".attention.head_count_kv"))
            g->head_count_kv = (uint32_t)v;
        else if (strstr(key, ".attention.head_count"))
            g->head_count = (uint32_t)v;
    }
    assert_true(alignment > 0);
    g->n_tensors = (int)n_tensors;
    g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    uint64_t *offsets = calloc(n_tensors ? n_tensors : 1, sizeof *offsets);
    for (uint64_t i = 0; i < n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        rd_string(&r, t->name, sizeof t->name);
        t->n_dims = (uint32_t)rd_uint(&r, 4);
        assert_true(t->n_dims >= 1 && t->n_dims <= 4);
        for (uint32_t d = 0; d < 4; d++)
            t->ne[d] = d < t->n_dims ? rd_uint(&r, 8) : 1;
        t->type = (uint32_t)rd_uint(&r, 4);
        offsets[i] = rd_uint(&r, 8);
    }
    uint64_t pos = (uint64_t)(r.p - g->buf);
    uint64_t data = (pos + alignment - 1) / alignment * alignment;
    for (uint64_t i = 0; i < n_tensors; i++) {
        assert_true(data + offsets[i] <= g->size);
        g->tensors[i].data = g->buf + data + offsets[i];
    }
    free(offsets);
}

static void gguf_free(gguf_file *g) {
    free(g->buf);
    free(g->tensors);
}

/* The F32 checkpoint's tensor, from whichever shard has it, as [rows][cols]. */
static float *hf_tensor(um_st_file shards[2], const char *name, int64_t *rows, int64_t *cols) {
    *rows = *cols = 0;
    for (int s = 0; s < 2; s++) {
        const um_st_tensor *t = um_st_find(&shards[s], name);
        if (!t)
            continue;
        assert_int_equal(t->dtype, UM_F32);
        *rows = t->n_dims == 2 ? t->shape[0] : 1;
        *cols = t->shape[t->n_dims - 1];
        float *w = xmalloc(t->nbytes);
        memcpy(w, t->data, t->nbytes);
        return w;
    }
    fail_msg("checkpoint lacks %s", name);
    return NULL;
}

/* GGUF name -> checkpoint name ("blk.N.attn_v.weight" -> "model.transformer.blocks.N.v_proj.weight"). */
static bool hf_name(const char *gguf, char *out, size_t cap, bool *is_q, bool *is_k) {
    static const char *const top[][2] = {{"token_embd.weight", "model.transformer.wte.weight"},
                                         {"output.weight", "model.transformer.ff_out.weight"},
                                         {"output_norm.weight", "model.transformer.ln_f.weight"}};
    static const char *const blk[][2] = {{"attn_q", "q_proj"},       {"attn_k", "k_proj"},
                                         {"attn_v", "v_proj"},       {"attn_output", "attn_out"},
                                         {"ffn_gate", "ff_proj"},    {"ffn_up", "up_proj"},
                                         {"ffn_down", "ff_out"},     {"attn_norm", "attn_norm"},
                                         {"ffn_norm", "ff_norm"}};
    *is_q = *is_k = false;
    for (size_t i = 0; i < sizeof top / sizeof *top; i++)
        if (strcmp(gguf, top[i][0]) == 0) {
            snprintf(out, cap, "%s", top[i][1]);
            return true;
        }
    int layer, used = 0;
    char part[64];
    if (sscanf(gguf, "blk.%d.%63[a-z_].weight%n", &layer, part, &used) != 2 || gguf[used] != 0)
        return false;
    for (size_t i = 0; i < sizeof blk / sizeof *blk; i++)
        if (strcmp(part, blk[i][0]) == 0) {
            snprintf(out, cap, "model.transformer.blocks.%d.%s.weight", layer, blk[i][1]);
            *is_q = i == 0;
            *is_k = i == 1;
            return true;
        }
    return false;
}

/* llama.cpp's converter reorders q/k rows for its RoPE: per head, the rows
 * (as reshape(n_head, 2, head_dim/2, cols).swapaxes(1, 2)) interleave the two
 * halves. New row h*hd + 2j + s is old row h*hd + s*hd/2 + j. */
static float *permute_qk(const float *w, int64_t rows, int64_t cols, int n_head) {
    float *p = xmalloc((size_t)(rows * cols) * sizeof(float));
    int64_t hd = rows / n_head;
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t j = 0; j < hd / 2; j++)
            for (int64_t s = 0; s < 2; s++)
                memcpy(p + (h * hd + 2 * j + s) * cols, w + (h * hd + s * (hd / 2) + j) * cols,
                       (size_t)cols * sizeof(float));
    return p;
}

static um_dtype from_ggml_type(uint32_t t) {
    switch (t) {
    case 0: return UM_F32;
    case 1: return UM_F16;
    case 2: return UM_Q4_0;
    case 3: return UM_Q4_1;
    case 8: return UM_Q8_0;
    case 12: return UM_Q4_K;
    case 13: return UM_Q5_K;
    case 14: return UM_Q6_K;
    default: fail_msg("unexpected ggml type %u", t); return UM_F32;
    }
}

/* Every tensor of the GGUF file equals our conversion of the checkpoint's
 * tensor to the file's type, byte for byte. */
static void gguf_matches_our_quantizer(const char *gguf_rel, um_dtype want_2d) {
    gguf_file g;
    gguf_load(fixture(gguf_rel), &g);
    assert_true(g.head_count > 0 && g.head_count_kv > 0);
    um_st_file shards[2];
    um_error err;
    assert_int_equal(um_st_open(fixture("llada/tiny-llada/hf-f32-sharded/model-00001-of-00002.safetensors"),
                                &shards[0], &err),
                     UM_OK);
    assert_int_equal(um_st_open(fixture("llada/tiny-llada/hf-f32-sharded/model-00002-of-00002.safetensors"),
                                &shards[1], &err),
                     UM_OK);
    int n_quant = 0, n_permuted = 0;
    for (int i = 0; i < g.n_tensors; i++) {
        const gguf_tensor *t = &g.tensors[i];
        char name[160];
        bool is_q, is_k;
        if (!hf_name(t->name, name, sizeof name, &is_q, &is_k))
            fail_msg("unexpected tensor %s", t->name);
        int64_t rows = 0, cols = 0;
        float *w = hf_tensor(shards, name, &rows, &cols);
        /* GGUF's ne[0] is the input (column) dimension */
        assert_int_equal(t->ne[0], cols);
        assert_int_equal(t->n_dims == 2 ? t->ne[1] : 1, rows);
        um_dtype type = from_ggml_type(t->type);
        assert_int_equal(type, t->n_dims == 2 ? want_2d : UM_F32); /* norms stay f32 */
        if (is_q || is_k) {
            float *p = permute_qk(w, rows, cols, (int)(is_q ? g.head_count : g.head_count_kv));
            free(w);
            w = p;
            n_permuted++;
        }
        size_t rb = um_row_bytes(type, cols);
        assert_true(rb > 0);
        uint8_t *row = xmalloc(rb);
        for (int64_t r = 0; r < rows; r++) {
            um_quantize_row(type, w + r * cols, row, cols);
            int64_t at = first_byte_diff(row, t->data + r * rb, rb);
            if (at >= 0)
                fail_msg("%s (%s) row %lld differs at byte %lld: ours %02x, file %02x", t->name,
                         um_dtype_name(type), (long long)r, (long long)at, row[at], t->data[r * rb + at]);
        }
        if (type != UM_F32)
            n_quant++;
        free(row);
        free(w);
    }
    print_message("    %s: %d tensors byte-identical (%d %s, %d with permuted q/k rows)\n", gguf_rel, g.n_tensors,
                  n_quant, um_dtype_name(want_2d), n_permuted);
    assert_int_equal(g.n_tensors, 30);
    assert_int_equal(n_permuted, 6);
    um_st_close(&shards[0]);
    um_st_close(&shards[1]);
    gguf_free(&g);
}

static void gguf_q8_0_byte_exact(void **state) { gguf_matches_our_quantizer("llada/gguf/tiny-llada-q8_0.gguf", UM_Q8_0); }

static void gguf_f16_byte_exact(void **state) { gguf_matches_our_quantizer("llada/gguf/tiny-llada-f16.gguf", UM_F16); }

/* ---- independent test vectors ---------------------------------------------- */

static const char *const cases[] = {"gauss", "weights", "zeros",  "constant", "outlier", "tiny",
                                    "negative", "positive", "mixed", "halves",  "ramp"};

/* Our quantizer reproduces the reference bytes (gguf-py for Q8_0/Q4_0/Q4_1,
 * llama.cpp's C for the K formats) and our dequantizer gguf-py's floats. */
static void vectors_quantize_and_dequantize(void **state) {
    um_st_file f;
    um_error err;
    assert_int_equal(um_st_open(VECTORS, &f, &err), UM_OK);
    int n_checked = 0;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char name[96];
        snprintf(name, sizeof name, "input.%s", cases[c]);
        size_t nb = 0;
        float *x = st_copy(&f, name, &nb);
        assert_non_null(x);
        int64_t n = (int64_t)(nb / sizeof(float));
        float *y = xmalloc(nb);
        for (size_t t = 0; t < N_QTYPES; t++) {
            const char *tn = um_dtype_name(qtypes[t]);
            size_t rb = um_row_bytes(qtypes[t], n), qn = 0, dn = 0;
            snprintf(name, sizeof name, "%s.%s.q", tn, cases[c]);
            uint8_t *ref_q = st_copy(&f, name, &qn);
            snprintf(name, sizeof name, "%s.%s.deq", tn, cases[c]);
            float *ref_d = st_copy(&f, name, &dn);
            /* the generator always writes these; the K formats need llama.cpp's C */
            if (!ref_q || !ref_d)
                fail_msg("%s: no %s.%s vectors (regenerate with --llama-cpp)", VECTORS, tn, cases[c]);
            assert_int_equal(qn, rb);
            assert_int_equal(dn, nb);
            uint8_t *q = xmalloc(rb);
            um_quantize_row(qtypes[t], x, q, n);
            int64_t at = first_byte_diff(q, ref_q, rb);
            if (at >= 0)
                fail_msg("%s.%s: quantized byte %lld (block %lld) is %02x, reference %02x", tn, cases[c],
                         (long long)at, (long long)(at / (int64_t)um_dtype_block_bytes(qtypes[t])), q[at],
                         ref_q[at]);
            um_dequantize_row(qtypes[t], ref_q, y, n);
            at = first_bit_diff(y, ref_d, n);
            if (at >= 0)
                fail_msg("%s.%s: dequantized value %lld is %.9g, gguf-py %.9g", tn, cases[c], (long long)at,
                         y[at], ref_d[at]);
            n_checked++;
            free(q);
            free(ref_q);
            free(ref_d);
        }
        free(x);
        free(y);
    }
    print_message("    %d (type, input) pairs byte- and bit-exact\n", n_checked);
    um_st_close(&f);
}

/* Random block bytes (any levels, scales, high bits) decode as in gguf-py,
 * also from an odd address. */
static void vectors_random_blocks(void **state) {
    um_st_file f;
    um_error err;
    assert_int_equal(um_st_open(VECTORS, &f, &err), UM_OK);
    for (size_t t = 0; t < N_QTYPES; t++) {
        const char *tn = um_dtype_name(qtypes[t]);
        char name[64];
        size_t qn = 0, dn = 0;
        snprintf(name, sizeof name, "%s.random.q", tn);
        uint8_t *q = st_copy(&f, name, &qn);
        snprintf(name, sizeof name, "%s.random.deq", tn);
        float *ref = st_copy(&f, name, &dn);
        assert_non_null(q);
        assert_non_null(ref);
        int64_t n = (int64_t)(dn / sizeof(float));
        assert_int_equal(um_row_bytes(qtypes[t], n), qn);
        float *y = xmalloc(dn);
        uint8_t *odd = xmalloc(qn + 1);
        memcpy(odd + 1, q, qn);
        for (int pass = 0; pass < 2; pass++) {
            memset(y, 0xff, dn);
            um_dequantize_row(qtypes[t], pass ? odd + 1 : q, y, n);
            int64_t at = first_bit_diff(y, ref, n);
            if (at >= 0)
                fail_msg("%s random blocks: value %lld is %.9g, gguf-py %.9g", tn, (long long)at, y[at], ref[at]);
        }
        free(odd);
        free(y);
        free(q);
        free(ref);
    }
    um_st_close(&f);
}

/* ---- error bounds ------------------------------------------------------------ */

static double rel_rmse(um_dtype t, const float *x, int64_t n) {
    uint8_t *q = xmalloc(um_row_bytes(t, n));
    float *y = xmalloc((size_t)n * sizeof(float));
    um_quantize_row(t, x, q, n);
    um_dequantize_row(t, q, y, n);
    double se = 0, sx = 0;
    for (int64_t i = 0; i < n; i++) {
        se += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        sx += (double)x[i] * x[i];
    }
    free(q);
    free(y);
    return sqrt(se / sx);
}

/* Relative RMSE on N(0, 1) data, each type under a bound about 15% above
 * what the reference quantizers achieve (the same over other seeds within
 * 1%), and in the order of their bits. */
static void gaussian_error_bounds(void **state) {
    const int64_t n = 256 * 256;
    float *x = xmalloc((size_t)n * sizeof(float));
    um_rng rng;
    um_rng_seed(&rng, 1234);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)um_rng_normal(&rng);
    /* Q8_0 Q4_0 Q4_1 Q4_K Q5_K Q6_K; measured 0.0054 0.086 0.078 0.071 0.036 0.018 */
    static const double bound[] = {0.0062, 0.099, 0.090, 0.082, 0.042, 0.0205};
    double e[N_QTYPES];
    for (size_t t = 0; t < N_QTYPES; t++) {
        e[t] = rel_rmse(qtypes[t], x, n);
        print_message("    %-5s relative RMSE %.5f (bound %.4f)\n", um_dtype_name(qtypes[t]), e[t], bound[t]);
        assert_true(e[t] < bound[t]);
    }
    assert_true(e[0] < e[5] && e[5] < e[4] && e[4] < e[3]); /* Q8_0 < Q6_K < Q5_K < Q4_K */
    assert_true(e[3] < e[2] && e[2] < e[1]);                 /* Q4_K < Q4_1 < Q4_0 */
    free(x);
}

/* llama.cpp's tests/test-quantize-fns.cpp: data 0.1 + 2 cos(i), 4096 values,
 * error sqrt(sum of squares) / n below MAX_QUANTIZATION_TOTAL_ERROR = 0.002
 * for all these types. */
static void llama_cpp_total_error_threshold(void **state) {
    enum { N = 32 * 128 };
    static float x[N], y[N];
    static uint8_t q[2 * N];
    for (size_t i = 0; i < N; i++)
        x[i] = (float)(0.1 + 2.0f * cosf((float)i + 0.0f));
    for (size_t t = 0; t < N_QTYPES; t++) {
        um_quantize_row(qtypes[t], x, q, N);
        um_dequantize_row(qtypes[t], q, y, N);
        double sum = 0;
        for (size_t i = 0; i < N; i++)
            sum += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        float err = sqrtf((float)sum) / N;
        assert_true(err < 0.002f);
    }
}

/* Degenerate rows quantize to exact values where the format can hold them. */
static void special_rows(void **state) {
    float x[256], y[256];
    uint8_t q[512];
    for (size_t t = 0; t < N_QTYPES; t++) {
        memset(x, 0, sizeof x);
        um_quantize_row(qtypes[t], x, q, 256);
        um_dequantize_row(qtypes[t], q, y, 256);
        for (int i = 0; i < 256; i++)
            assert_true(y[i] == 0.0f);
    }
    /* Q8_0: a block holding -127..127 integers has d = 1 exactly */
    for (int i = 0; i < 256; i++)
        x[i] = (float)((i * 37) % 255 - 127);
    for (int b = 0; b < 8; b++)
        x[32 * b] = 127;
    um_quantize_row(UM_Q8_0, x, q, 256);
    um_dequantize_row(UM_Q8_0, q, y, 256);
    assert_memory_equal(x, y, sizeof x);
    /* n not a multiple of the block: nothing written */
    memset(q, 0xab, sizeof q);
    um_quantize_row(UM_Q4_K, x, q, 255);
    for (size_t i = 0; i < sizeof q; i++)
        assert_int_equal(q[i], 0xab);
}

/* ---- matmul with quantized weights ------------------------------------------ */

static void matmul_quantized_weights(void **state) {
    enum { ROWS = 37, COLS = 512, N = 5 }; /* rows not a multiple of the row block */
    um_pool *pool = um_pool_create(2);
    assert_non_null(pool);
    um_rng rng;
    um_rng_seed(&rng, 99);
    float *w = xmalloc(ROWS * COLS * sizeof(float)), *wd = xmalloc(ROWS * COLS * sizeof(float));
    float x[N * COLS], bias[ROWS], y_q[N * ROWS], y_f[N * ROWS];
    for (int i = 0; i < ROWS * COLS; i++)
        w[i] = (float)(0.05 * um_rng_normal(&rng));
    for (int i = 0; i < N * COLS; i++)
        x[i] = (float)um_rng_normal(&rng);
    for (int i = 0; i < ROWS; i++)
        bias[i] = (float)(0.1 * um_rng_normal(&rng));
    float *scratch = xmalloc(um_matmul_scratch_floats(um_pool_threads(pool), COLS) * sizeof(float));
    bool reduced = um_matmul_reduced();
    um_matmul_set_reduced(false); /* f32 activations: the weights' expansion is all that differs */
    for (size_t t = 0; t < N_QTYPES; t++) {
        size_t rb = um_row_bytes(qtypes[t], COLS);
        uint8_t *wq = xmalloc(rb * ROWS);
        for (int r = 0; r < ROWS; r++) {
            um_quantize_row(qtypes[t], w + r * COLS, wq + r * rb, COLS);
            um_dequantize_row(qtypes[t], wq + r * rb, wd + r * COLS, COLS);
        }
        um_weight qw = {qtypes[t], ROWS, COLS, wq, false, NULL}, fw = {UM_F32, ROWS, COLS, wd, false, NULL};
        for (int r = 0; r < ROWS; r += 9) { /* the row accessor finds row r's blocks */
            float row[COLS];
            um_weight_row_f32(&qw, r, row);
            assert_memory_equal(row, wd + r * COLS, sizeof row);
        }
        um_matmul(exec_now(pool), x, N, &qw, bias, y_q, scratch);
        um_matmul(exec_now(pool), x, N, &fw, bias, y_f, scratch);
        for (int i = 0; i < N; i++)
            for (int r = 0; r < ROWS; r++) {
                double scale = fabs(bias[r]);
                for (int k = 0; k < COLS; k++)
                    scale += fabs((double)wd[r * COLS + k] * x[i * COLS + k]);
                double d = fabs((double)y_q[i * ROWS + r] - y_f[i * ROWS + r]);
                if (d > 1e-5 * scale)
                    fail_msg("%s: y[%d][%d] = %.9g, f32 path %.9g", um_dtype_name(qtypes[t]), i, r,
                             y_q[i * ROWS + r], y_f[i * ROWS + r]);
            }
        free(wq);
    }
    um_matmul_set_reduced(reduced);
    free(scratch);
    free(w);
    free(wd);
    um_pool_destroy(pool);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(row_bytes_and_layout),
    cmocka_unit_test(gguf_q8_0_byte_exact),
    cmocka_unit_test(gguf_f16_byte_exact),
    cmocka_unit_test(vectors_quantize_and_dequantize),
    cmocka_unit_test(vectors_random_blocks),
    cmocka_unit_test(gaussian_error_bounds),
    cmocka_unit_test(llama_cpp_total_error_threshold),
    cmocka_unit_test(special_rows),
    cmocka_unit_test(matmul_quantized_weights),
};

const test_group quant_group = {"quant", tests, sizeof tests / sizeof *tests};
