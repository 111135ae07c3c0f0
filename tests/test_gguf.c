/* GGUF reader and writer: llama.cpp's own files (made by convert_hf_to_gguf.py)
 * parse with the metadata and tensors the converter wrote, hold the
 * checkpoint's values, and come back byte for byte from our writer; hostile
 * files built by mutating one field of a valid file fail with a clear error. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
#include "format/checkpoint.h"
#include "format/gguf.h"
#include "testutil.h"

static const char *const fixture_names[] = {"tiny-llada-f32", "tiny-llada-f16", "tiny-llada-q8_0",
                                            "tiny-llada-gqa-f32", "tiny-llada-gqa-f16", "tiny-llada-gqa-q8_0"};
#define N_FIXTURES (sizeof fixture_names / sizeof *fixture_names)

static const char *gguf_fixture(const char *name) {
    char rel[128];
    snprintf(rel, sizeof rel, "llada/gguf/%s.gguf", name);
    return fixture(rel);
}

static void open_or_fail(const char *path, um_gguf_file *f) {
    um_error err;
    if (um_gguf_open(path, f, &err) != UM_OK)
        fail_msg("%s", err.msg);
}

static um_gguf_str str_of(const um_gguf_file *f, const char *key) {
    um_gguf_str s = {0};
    um_error err;
    if (um_gguf_get_str(f, key, &s, &err) != UM_OK)
        fail_msg("%s", err.msg);
    return s;
}

static uint32_t u32_of(const um_gguf_file *f, const char *key) {
    uint32_t v = 0;
    um_error err;
    if (um_gguf_get_u32(f, key, &v, &err) != UM_OK)
        fail_msg("%s", err.msg);
    return v;
}

/* Runs fn on a memory stream and returns what it wrote. */
static uint8_t *write_to_memory(um_gguf_writer *w, size_t *n) {
    char *buf = NULL;
    size_t size = 0;
    FILE *fp = open_memstream(&buf, &size);
    assert_non_null(fp);
    um_error err;
    um_status s = um_gguf_writer_write_fp(w, fp, "memory", &err);
    assert_int_equal(fclose(fp), 0);
    if (s != UM_OK)
        fail_msg("%s", err.msg);
    *n = size;
    return (uint8_t *)buf;
}

/* ------------------------------------------------ llama.cpp's files */

static const char *const blk_parts[][2] = {
    {"attn_norm", "attn_norm"}, {"attn_output", "attn_out"}, {"ffn_norm", "ff_norm"}, {"ffn_down", "ff_out"},
    {"ffn_gate", "ff_proj"},    {"ffn_up", "up_proj"},       {"attn_v", "v_proj"},    {"attn_q", "q_proj"},
    {"attn_k", "k_proj"},
};

/* The checkpoint tensor a GGUF tensor was converted from. */
static void checkpoint_name(const char *gguf, char *out, size_t n) {
    int b;
    char part[64];
    if (strcmp(gguf, "token_embd.weight") == 0)
        snprintf(out, n, "model.transformer.wte.weight");
    else if (strcmp(gguf, "output.weight") == 0)
        snprintf(out, n, "model.transformer.ff_out.weight");
    else if (strcmp(gguf, "output_norm.weight") == 0)
        snprintf(out, n, "model.transformer.ln_f.weight");
    else if (sscanf(gguf, "blk.%d.%63[a-z_].weight", &b, part) == 2) {
        for (size_t i = 0; i < sizeof blk_parts / sizeof *blk_parts; i++)
            if (strcmp(part, blk_parts[i][0]) == 0) {
                snprintf(out, n, "model.transformer.blocks.%d.%s.weight", b, blk_parts[i][1]);
                return;
            }
        fail_msg("unexpected tensor %s", gguf);
    } else
        fail_msg("unexpected tensor %s", gguf);
}

/* Row r of a q/k matrix after llama.cpp's permute for consecutive-pair RoPE:
 * within each head, row 2j + a holds the checkpoint's row a * head_dim/2 + j. */
static int64_t permuted_source_row(int64_t r, int head_dim) {
    int64_t h = r / head_dim, i = r % head_dim;
    return h * head_dim + (i % 2) * (head_dim / 2) + i / 2;
}

static void check_fixture(const char *name, um_checkpoint *ck) {
    um_gguf_file f;
    open_or_fail(gguf_fixture(name), &f);
    bool gqa = strstr(name, "gqa") != NULL;
    um_dtype mat = strstr(name, "f32") ? UM_F32 : strstr(name, "f16") ? UM_F16 : UM_Q8_0;

    assert_int_equal(f.version, 3);
    assert_int_equal(f.alignment, 32);
    assert_int_equal(f.n_kv, 30);
    assert_true(um_gguf_str_eq(str_of(&f, "general.architecture"), "llada"));
    assert_true(um_gguf_str_eq(str_of(&f, "tokenizer.ggml.model"), "gpt2"));
    assert_true(um_gguf_str_eq(str_of(&f, "tokenizer.ggml.pre"), "gpt-2"));
    assert_int_equal(u32_of(&f, "llada.block_count"), 3);
    assert_int_equal(u32_of(&f, "llada.embedding_length"), 64);
    assert_int_equal(u32_of(&f, "llada.feed_forward_length"), 192);
    assert_int_equal(u32_of(&f, "llada.context_length"), 256);
    assert_int_equal(u32_of(&f, "llada.attention.head_count"), 4);
    assert_int_equal(u32_of(&f, "llada.attention.head_count_kv"), gqa ? 2 : 4);
    assert_int_equal(u32_of(&f, "llada.rope.dimension_count"), 16);
    assert_int_equal(u32_of(&f, "llada.vocab_size"), 512);
    assert_int_equal(u32_of(&f, "general.file_type"), mat == UM_F32 ? 0 : mat == UM_F16 ? 1 : 7);
    assert_int_equal(u32_of(&f, "tokenizer.ggml.mask_token_id"), 500);
    assert_int_equal(u32_of(&f, "tokenizer.ggml.bos_token_id"), 503);
    assert_int_equal(u32_of(&f, "tokenizer.ggml.eos_token_id"), 501);
    um_error err;
    float x;
    assert_int_equal(um_gguf_get_f32(&f, "llada.rope.freq_base", &x, &err), UM_OK);
    assert_true(x == 500000.0f);
    assert_int_equal(um_gguf_get_f32(&f, "llada.attention.layer_norm_rms_epsilon", &x, &err), UM_OK);
    assert_true(x == 1e-5f);
    bool b;
    assert_int_equal(um_gguf_get_bool(&f, "tokenizer.ggml.add_bos_token", &b, &err), UM_OK);
    assert_true(b);
    assert_int_equal(um_gguf_get_bool(&f, "llada.attention.causal", &b, &err), UM_OK);
    assert_false(b);
    assert_true(strncmp(str_of(&f, "tokenizer.chat_template").ptr, "{% set loop_messages", 20) == 0);

    const um_gguf_kv *tok, *merges, *tt;
    assert_int_equal(um_gguf_get_arr(&f, "tokenizer.ggml.tokens", UM_GGUF_STRING, &tok, &err), UM_OK);
    assert_int_equal(tok->count, 512);
    um_gguf_str s;
    assert_true(um_gguf_elem_str(tok, 500, &s) && um_gguf_str_eq(s, "<|mdm_mask|>"));
    assert_true(um_gguf_elem_str(tok, 501, &s) && um_gguf_str_eq(s, "<|endoftext|>"));
    assert_true(um_gguf_elem_str(tok, 502, &s) && um_gguf_str_eq(s, "<|eot_id|>"));
    assert_true(um_gguf_elem_str(tok, 0, &s) && um_gguf_str_eq(s, "!"));
    assert_false(um_gguf_elem_str(tok, 512, &s));
    assert_int_equal(um_gguf_get_arr(&f, "tokenizer.ggml.merges", UM_GGUF_STRING, &merges, &err), UM_OK);
    assert_int_equal(merges->count, 244);
    assert_true(um_gguf_elem_str(merges, 0, &s) && um_gguf_str_eq(s, "\xc4\xa0 t"));
    assert_int_equal(um_gguf_get_arr(&f, "tokenizer.ggml.token_type", UM_GGUF_INT32, &tt, &err), UM_OK);
    assert_int_equal(tt->elem_type, UM_GGUF_INT32);
    int64_t v;
    assert_true(um_gguf_elem_i64(tt, 0, &v) && v == 1);   /* normal */
    assert_true(um_gguf_elem_i64(tt, 500, &v) && v == 3); /* control */

    assert_int_equal(f.n_tensors, 30);
    int head_dim = 16;
    for (size_t i = 0; i < f.n_tensors; i++) {
        const um_gguf_tensor *t = &f.tensors[i];
        assert_ptr_equal(um_gguf_find_tensor(&f, t->name), t);
        bool norm = strstr(t->name, "norm") != NULL;
        assert_int_equal(t->type, norm ? UM_F32 : mat);
        assert_int_equal(t->n_dims, norm ? 1 : 2);
        assert_int_equal(t->offset % 32, 0);
        assert_ptr_equal(t->data, f.data + t->offset);

        char ckname[128];
        checkpoint_name(t->name, ckname, sizeof ckname);
        const um_st_tensor *ct = um_checkpoint_take(ck, ckname, NULL);
        assert_non_null(ct);
        /* GGUF lists dimensions innermost first: the reverse of PyTorch's shape */
        assert_int_equal(ct->n_dims, t->n_dims);
        for (int d = 0; d < t->n_dims; d++)
            assert_int_equal(t->ne[d], ct->shape[t->n_dims - 1 - d]);
        assert_int_equal(ct->dtype, UM_F32);
        const float *ref = (const float *)ct->data;
        int64_t n = um_gguf_numel(t), row = t->ne[0];
        bool permuted = strstr(t->name, "attn_q") || strstr(t->name, "attn_k");
        if (t->type == UM_F32 || t->type == UM_F16) {
            assert_int_equal(t->nbytes, (size_t)n * um_dtype_size(t->type));
            for (int64_t e = 0; e < n; e++) {
                int64_t r = e / row, c = e % row;
                float want = ref[(permuted ? permuted_source_row(r, head_dim) : r) * row + c];
                if (t->type == UM_F32) {
                    float got;
                    memcpy(&got, t->data + 4 * e, 4);
                    if (got != want)
                        fail_msg("%s %s[%lld]: %g != %g", name, t->name, (long long)e, got, want);
                } else {
                    uint16_t got;
                    memcpy(&got, t->data + 2 * e, 2);
                    if (got != um_f32_to_f16(want))
                        fail_msg("%s %s[%lld]: f16 %04x != %04x", name, t->name, (long long)e, got,
                                 um_f32_to_f16(want));
                }
            }
        } else {
            /* Q8_0 blocks: an f16 scale d and 32 int8 q, value d * q: within d/2 of the
             * original, plus up to 127 times the scale's own f16 rounding */
            assert_int_equal(t->nbytes, (size_t)n / 32 * 34);
            for (int64_t blk = 0; blk < n / 32; blk++) {
                const uint8_t *p = t->data + 34 * blk;
                float d = um_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
                for (int j = 0; j < 32; j++) {
                    int64_t e = blk * 32 + j, r = e / row, c = e % row;
                    float want = ref[(permuted ? permuted_source_row(r, head_dim) : r) * row + c];
                    float got = d * (float)(int8_t)p[2 + j];
                    if (fabsf(got - want) > d * (0.5f + 127.0f / 1024) + 1e-6f)
                        fail_msg("%s %s[%lld]: %g vs %g (scale %g)", name, t->name, (long long)e, got, want, d);
                }
            }
        }
    }
    const um_gguf_tensor *emb = um_gguf_find_tensor(&f, "token_embd.weight");
    assert_non_null(emb);
    assert_int_equal(emb->ne[0], 64);
    assert_int_equal(emb->ne[1], 512);
    const um_gguf_tensor *k = um_gguf_find_tensor(&f, "blk.2.attn_k.weight");
    assert_non_null(k);
    assert_int_equal(k->ne[1], gqa ? 32 : 64);
    assert_null(um_gguf_find_tensor(&f, "blk.3.attn_k.weight"));
    assert_null(um_gguf_find_kv(&f, "general.alignment"));
    um_gguf_close(&f);
}

static void gguf_reads_llamacpp_files(void **state) {
    for (size_t i = 0; i < N_FIXTURES; i++) {
        um_checkpoint ck;
        um_error err;
        char rel[128];
        snprintf(rel, sizeof rel, "llada/%s/hf-f32-sharded",
                 strstr(fixture_names[i], "gqa") ? "tiny-llada-gqa" : "tiny-llada");
        if (um_checkpoint_open(fixture(rel), &ck, &err) != UM_OK)
            fail_msg("%s", err.msg);
        check_fixture(fixture_names[i], &ck);
        /* every checkpoint tensor became one GGUF tensor */
        assert_int_equal(um_checkpoint_check_all_taken(&ck, &err), UM_OK);
        um_checkpoint_close(&ck);
    }
}

/* ------------------------------------------------------- round trip */

/* Streams a tensor in odd-sized pieces, as a converter would. */
static um_status stream_tensor(void *user, const char *name, um_gguf_sink *sink, um_error *err) {
    const um_gguf_tensor *t = user;
    assert_string_equal(name, t->name);
    for (size_t off = 0; off < t->nbytes; off += 100)
        UM_TRY(um_gguf_sink_write(sink, t->data + off, t->nbytes - off < 100 ? t->nbytes - off : 100, err));
    return UM_OK;
}

/* Adds kv through the typed adders (not a raw copy). */
static void add_typed(um_gguf_writer *w, const um_gguf_kv *kv) {
    um_error err;
    um_status s = UM_OK;
    uint64_t u = 0;
    int64_t i = 0;
    double d = 0;
    bool b = false;
    um_gguf_str str = {0};
    if (kv->type != UM_GGUF_ARRAY) {
        um_gguf_elem_u64(kv, 0, &u);
        um_gguf_elem_i64(kv, 0, &i);
        um_gguf_elem_f64(kv, 0, &d);
        um_gguf_elem_bool(kv, 0, &b);
        um_gguf_elem_str(kv, 0, &str);
        switch (kv->type) {
        case UM_GGUF_UINT8: s = um_gguf_writer_add_u8(w, kv->key, (uint8_t)u, &err); break;
        case UM_GGUF_INT8: s = um_gguf_writer_add_i8(w, kv->key, (int8_t)i, &err); break;
        case UM_GGUF_UINT16: s = um_gguf_writer_add_u16(w, kv->key, (uint16_t)u, &err); break;
        case UM_GGUF_INT16: s = um_gguf_writer_add_i16(w, kv->key, (int16_t)i, &err); break;
        case UM_GGUF_UINT32: s = um_gguf_writer_add_u32(w, kv->key, (uint32_t)u, &err); break;
        case UM_GGUF_INT32: s = um_gguf_writer_add_i32(w, kv->key, (int32_t)i, &err); break;
        case UM_GGUF_UINT64: s = um_gguf_writer_add_u64(w, kv->key, u, &err); break;
        case UM_GGUF_INT64: s = um_gguf_writer_add_i64(w, kv->key, i, &err); break;
        case UM_GGUF_FLOAT32: s = um_gguf_writer_add_f32(w, kv->key, (float)d, &err); break;
        case UM_GGUF_FLOAT64: s = um_gguf_writer_add_f64(w, kv->key, d, &err); break;
        case UM_GGUF_BOOL: s = um_gguf_writer_add_bool(w, kv->key, b, &err); break;
        case UM_GGUF_STRING: s = um_gguf_writer_add_strn(w, kv->key, str.ptr, str.len, &err); break;
        default: fail_msg("type %d", kv->type);
        }
    } else if (kv->elem_type == UM_GGUF_STRING) {
        const char **p = malloc(kv->count * sizeof *p + 1);
        size_t *lens = malloc(kv->count * sizeof *lens + 1);
        for (uint64_t e = 0; e < kv->count; e++) {
            assert_true(um_gguf_elem_str(kv, e, &str));
            p[e] = str.ptr;
            lens[e] = str.len;
        }
        s = um_gguf_writer_add_str_arr(w, kv->key, p, lens, kv->count, &err);
        free(p);
        free(lens);
    } else {
        uint8_t *vals = malloc(kv->count * 8 + 1);
        for (uint64_t e = 0; e < kv->count; e++) {
            um_gguf_elem_u64(kv, e, &u);
            um_gguf_elem_i64(kv, e, &i);
            um_gguf_elem_f64(kv, e, &d);
            um_gguf_elem_bool(kv, e, &b);
            switch (kv->elem_type) {
            case UM_GGUF_UINT8: vals[e] = (uint8_t)u; break;
            case UM_GGUF_INT8: ((int8_t *)vals)[e] = (int8_t)i; break;
            case UM_GGUF_UINT16: ((uint16_t *)vals)[e] = (uint16_t)u; break;
            case UM_GGUF_INT16: ((int16_t *)vals)[e] = (int16_t)i; break;
            case UM_GGUF_UINT32: ((uint32_t *)vals)[e] = (uint32_t)u; break;
            case UM_GGUF_INT32: ((int32_t *)vals)[e] = (int32_t)i; break;
            case UM_GGUF_UINT64: ((uint64_t *)vals)[e] = u; break;
            case UM_GGUF_INT64: ((int64_t *)vals)[e] = i; break;
            case UM_GGUF_FLOAT32: ((float *)vals)[e] = (float)d; break;
            case UM_GGUF_FLOAT64: ((double *)vals)[e] = d; break;
            case UM_GGUF_BOOL: ((bool *)vals)[e] = b; break;
            default: fail_msg("element type %d", kv->elem_type);
            }
        }
        s = um_gguf_writer_add_arr(w, kv->key, kv->elem_type, vals, kv->count, &err);
        free(vals);
    }
    if (s != UM_OK)
        fail_msg("%s", err.msg);
}

static void assert_same_contents(const um_gguf_file *a, const um_gguf_file *b) {
    assert_int_equal(a->n_kv, b->n_kv);
    for (size_t i = 0; i < a->n_kv; i++) {
        const um_gguf_kv *x = &a->kvs[i], *y = um_gguf_find_kv(b, x->key);
        assert_non_null(y);
        assert_int_equal(x->type, y->type);
        assert_int_equal(x->elem_type, y->elem_type);
        assert_int_equal(x->count, y->count);
        assert_int_equal(x->value_size, y->value_size);
        assert_memory_equal(x->value, y->value, x->value_size);
    }
    assert_int_equal(a->n_tensors, b->n_tensors);
    for (size_t i = 0; i < a->n_tensors; i++) {
        const um_gguf_tensor *x = &a->tensors[i], *y = um_gguf_find_tensor(b, x->name);
        assert_non_null(y);
        assert_int_equal(x->type, y->type);
        assert_int_equal(x->ggml_type, y->ggml_type);
        assert_int_equal(x->n_dims, y->n_dims);
        assert_memory_equal(x->ne, y->ne, sizeof x->ne);
        assert_int_equal(x->nbytes, y->nbytes);
        assert_memory_equal(x->data, y->data, x->nbytes);
    }
}

/* Every fixture rewritten by our writer, in the same order, is the same file:
 * llama.cpp's gguf-py uses alignment 32, pads the last tensor too and writes
 * no general.alignment, as we do. */
static void gguf_round_trip_is_byte_identical(void **state) {
    char *dir = make_temp_dir(), path[512];
    for (size_t n = 0; n < N_FIXTURES; n++) {
        um_gguf_file f, g;
        um_error err;
        open_or_fail(gguf_fixture(fixture_names[n]), &f);
        for (int mode = 0; mode < 3; mode++) {
            /* 0: typed adders, in order; 1: raw kv copies, in order; 2: tensors reversed */
            um_gguf_writer *w = um_gguf_writer_new();
            assert_non_null(w);
            for (size_t i = 0; i < f.n_kv; i++) {
                if (mode == 1)
                    assert_int_equal(um_gguf_writer_add_kv(w, &f.kvs[i], &err), UM_OK);
                else
                    add_typed(w, &f.kvs[i]);
            }
            for (size_t k = 0; k < f.n_tensors; k++) {
                const um_gguf_tensor *t = &f.tensors[mode == 2 ? f.n_tensors - 1 - k : k];
                um_status s = k % 2 ? um_gguf_writer_add_tensor_fn(w, t->name, t->type, t->n_dims, t->ne,
                                                                   stream_tensor, (void *)t, &err)
                                    : um_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &err);
                if (s != UM_OK)
                    fail_msg("%s", err.msg);
            }
            snprintf(path, sizeof path, "%s/%s-%d.gguf", dir, fixture_names[n], mode);
            if (um_gguf_writer_write(w, path, &err) != UM_OK)
                fail_msg("%s", err.msg);
            um_gguf_writer_free(w);
            open_or_fail(path, &g);
            assert_same_contents(&f, &g);
            if (mode < 2) {
                assert_int_equal(g.map.size, f.map.size);
                assert_memory_equal(g.map.data, f.map.data, f.map.size);
            } else {
                assert_string_equal(g.tensors[0].name, f.tensors[f.n_tensors - 1].name);
                assert_int_equal(g.tensors[0].offset, 0);
            }
            um_gguf_close(&g);
        }
        um_gguf_close(&f);
    }
    remove_tree(dir);
    free(dir);
}

/* ------------------------------------------- a small file, and mutations */

static const char *const small_tokens[] = {"a", "bc", "<|mdm_mask|>"};
static const int32_t small_ids[] = {1, -2, 3};

/* A valid file exercising every value kind; tensors "wa.f32" F32 [4,2],
 * "wb.q8" Q8_0 [32,2], "wc.f16" F16 [3]. align: 0 for the default. */
static uint8_t *small_file(size_t *n, uint32_t align) {
    static float f32[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    static uint8_t q8[68];
    static uint16_t f16[3] = {0x3c00, 0x4000, 0xc000};
    for (int i = 0; i < 68; i++)
        q8[i] = (uint8_t)(i * 7);
    um_gguf_writer *w = um_gguf_writer_new();
    um_error err;
    assert_non_null(w);
    assert_int_equal(um_gguf_writer_add_str(w, "general.architecture", "llada", &err), UM_OK);
    if (align)
        assert_int_equal(um_gguf_writer_add_u32(w, "general.alignment", align, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_u32(w, "test.u32", 7, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_str_arr(w, "test.tokens", small_tokens, NULL, 3, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_arr(w, "test.ids", UM_GGUF_INT32, small_ids, 3, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_bool(w, "test.flag", true, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_f32(w, "test.f32", 0.5f, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_i8(w, "test.i8", -5, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_u64(w, "test.big", (uint64_t)1 << 40, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_i64(w, "test.i64", -((int64_t)1 << 40), &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_f64(w, "test.f64", 0.25, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_u16(w, "test.u16", 65535, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_i16(w, "test.i16", -32768, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_u8(w, "test.u8", 200, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_i32(w, "test.i32", INT32_MIN, &err), UM_OK);
    int64_t ne_a[2] = {4, 2}, ne_b[2] = {32, 2}, ne_c[1] = {3};
    assert_int_equal(um_gguf_writer_add_tensor(w, "wa.f32", UM_F32, 2, ne_a, f32, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_tensor(w, "wb.q8", UM_Q8_0, 2, ne_b, q8, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_tensor(w, "wc.f16", UM_F16, 1, ne_c, f16, &err), UM_OK);
    uint8_t *buf = write_to_memory(w, n);
    um_gguf_writer_free(w);
    return buf;
}

/* Offset just past the first occurrence of s (a key or tensor name) in buf. */
static size_t after(const uint8_t *buf, size_t n, const char *s) {
    size_t len = strlen(s);
    for (size_t i = 0; i + len <= n; i++)
        if (memcmp(buf + i, s, len) == 0)
            return i + len;
    fail_msg("'%s' not found", s);
    return 0;
}

static void put(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Parses buf, expecting code and a message with the label and want in it. */
static void expect_fail(const uint8_t *buf, size_t n, um_status code, const char *want) {
    um_gguf_file f;
    um_error err = {0};
    um_status s = um_gguf_parse(buf, n, "hostile.gguf", &f, &err);
    if (s == UM_OK) {
        um_gguf_close(&f);
        fail_msg("parsed, expected an error with '%s'", want);
    }
    if (s != code || strncmp(err.msg, "hostile.gguf: ", 14) != 0 || !strstr(err.msg, want))
        fail_msg("status %d, message '%s'; expected %d with '%s'", s, err.msg, code, want);
    assert_null(strchr(err.msg, '\n'));
    assert_null(f.kvs); /* cleaned up */
    assert_null(f.tensors);
}

static void gguf_small_file_parses(void **state) {
    size_t n;
    uint8_t *buf = small_file(&n, 0);
    um_gguf_file f;
    um_error err;
    assert_int_equal(um_gguf_parse(buf, n, "small", &f, &err), UM_OK);
    assert_int_equal(f.version, 3);
    assert_int_equal(f.n_kv, 14);
    assert_int_equal(f.n_tensors, 3);
    assert_int_equal(n % 32, 0);
    assert_int_equal((size_t)(f.data - buf) % 32, 0);
    const um_gguf_tensor *a = um_gguf_find_tensor(&f, "wa.f32"), *b = um_gguf_find_tensor(&f, "wb.q8"),
                         *c = um_gguf_find_tensor(&f, "wc.f16");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_int_equal(a->offset, 0);
    assert_int_equal(a->nbytes, 32);
    assert_int_equal(b->offset, 32);
    assert_int_equal(b->nbytes, 68);
    assert_int_equal(c->offset, 128);
    assert_int_equal(c->nbytes, 6);
    assert_int_equal(c->ne[1], 1);
    assert_int_equal(um_gguf_numel(b), 64);
    assert_int_equal(f.data_size, 160);
    for (size_t i = 6; i < 32; i++) /* padding after the last tensor */
        assert_int_equal(c->data[i], 0);

    /* typed getters and coercion */
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    float f32;
    double f64;
    bool bl;
    um_gguf_str s;
    assert_int_equal(um_gguf_get_u32(&f, "test.u32", &u32, &err), UM_OK);
    assert_int_equal(u32, 7);
    assert_int_equal(um_gguf_get_i64(&f, "test.u32", &i64, &err), UM_OK);
    assert_int_equal(i64, 7);
    assert_int_equal(um_gguf_get_i32(&f, "test.i8", &i32, &err), UM_OK);
    assert_int_equal(i32, -5);
    assert_int_equal(um_gguf_get_i64(&f, "test.i64", &i64, &err), UM_OK);
    assert_true(i64 == -((int64_t)1 << 40));
    assert_int_equal(um_gguf_get_i32(&f, "test.i32", &i32, &err), UM_OK);
    assert_true(i32 == INT32_MIN);
    assert_int_equal(um_gguf_get_i32(&f, "test.i16", &i32, &err), UM_OK);
    assert_int_equal(i32, -32768);
    assert_int_equal(um_gguf_get_u32(&f, "test.u16", &u32, &err), UM_OK);
    assert_int_equal(u32, 65535);
    assert_int_equal(um_gguf_get_u32(&f, "test.u8", &u32, &err), UM_OK);
    assert_int_equal(u32, 200);
    assert_int_equal(um_gguf_get_u64(&f, "test.big", &u64, &err), UM_OK);
    assert_true(u64 == (uint64_t)1 << 40);
    assert_int_equal(um_gguf_get_f32(&f, "test.f32", &f32, &err), UM_OK);
    assert_true(f32 == 0.5f);
    assert_int_equal(um_gguf_get_f32(&f, "test.f64", &f32, &err), UM_OK);
    assert_true(f32 == 0.25f);
    assert_int_equal(um_gguf_get_f64(&f, "test.u32", &f64, &err), UM_OK); /* integers convert to floats */
    assert_true(f64 == 7.0);
    assert_int_equal(um_gguf_get_bool(&f, "test.flag", &bl, &err), UM_OK);
    assert_true(bl);
    assert_int_equal(um_gguf_get_str(&f, "general.architecture", &s, &err), UM_OK);
    assert_true(um_gguf_str_eq(s, "llada"));

    /* errors name the file and the key */
    assert_int_equal(um_gguf_get_u32(&f, "test.missing", &u32, &err), UM_ERR_FORMAT);
    assert_string_equal(err.msg, "small: missing metadata key 'test.missing'");
    assert_int_equal(um_gguf_get_u32(&f, "test.i8", &u32, &err), UM_ERR_FORMAT);
    assert_string_equal(err.msg, "small: metadata key 'test.i8' is -5, out of range [0, 4294967295]");
    assert_int_equal(um_gguf_get_u32(&f, "test.big", &u32, &err), UM_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "'test.big' is 1099511627776, out of range"));
    assert_int_equal(um_gguf_get_i32(&f, "test.i64", &i32, &err), UM_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "out of range"));
    assert_int_equal(um_gguf_get_u64(&f, "test.i64", &u64, &err), UM_ERR_FORMAT);
    assert_int_equal(um_gguf_get_u32(&f, "test.f32", &u32, &err), UM_ERR_FORMAT);
    assert_string_equal(err.msg, "small: metadata key 'test.f32' has type FLOAT32, expected an integer");
    assert_int_equal(um_gguf_get_str(&f, "test.u32", &s, &err), UM_ERR_FORMAT);
    assert_string_equal(err.msg, "small: metadata key 'test.u32' has type UINT32, expected STRING");
    assert_int_equal(um_gguf_get_bool(&f, "test.u8", &bl, &err), UM_ERR_FORMAT);
    assert_int_equal(um_gguf_get_f32(&f, "general.architecture", &f32, &err), UM_ERR_FORMAT);
    assert_int_equal(um_gguf_get_u32(&f, "test.ids", &u32, &err), UM_ERR_FORMAT);
    assert_string_equal(err.msg, "small: metadata key 'test.ids' is an array of 3 INT32, expected one value");

    /* arrays */
    const um_gguf_kv *ids, *toks;
    assert_int_equal(um_gguf_get_arr(&f, "test.ids", UM_GGUF_INT64, &ids, &err), UM_OK);
    assert_int_equal(um_gguf_get_arr(&f, "test.ids", UM_GGUF_ARRAY, &ids, &err), UM_OK);
    assert_int_equal(um_gguf_get_arr(&f, "test.ids", UM_GGUF_STRING, &ids, &err), UM_ERR_FORMAT);
    assert_string_equal(err.msg, "small: metadata key 'test.ids' is an array of INT32, expected STRING");
    assert_int_equal(um_gguf_get_arr(&f, "test.ids", UM_GGUF_FLOAT32, &ids, &err), UM_ERR_FORMAT);
    assert_string_equal(err.msg, "small: metadata key 'test.ids' is an array of INT32, expected floats");
    assert_int_equal(um_gguf_get_arr(&f, "test.u32", UM_GGUF_INT32, &ids, &err), UM_ERR_FORMAT);
    assert_int_equal(um_gguf_get_arr(&f, "test.ids", UM_GGUF_UINT8, &ids, &err), UM_OK);
    assert_true(um_gguf_elem_i64(ids, 1, &i64) && i64 == -2);
    assert_false(um_gguf_elem_u64(ids, 1, &u64)); /* negative */
    assert_true(um_gguf_elem_u64(ids, 2, &u64) && u64 == 3);
    assert_true(um_gguf_elem_f64(ids, 1, &f64) && f64 == -2.0);
    assert_false(um_gguf_elem_i64(ids, 3, &i64)); /* out of range */
    assert_false(um_gguf_elem_str(ids, 0, &s));
    assert_false(um_gguf_elem_bool(ids, 0, &bl));
    assert_int_equal(um_gguf_get_arr(&f, "test.tokens", UM_GGUF_STRING, &toks, &err), UM_OK);
    for (int i = 2; i >= 0; i--)
        assert_true(um_gguf_elem_str(toks, (uint64_t)i, &s) && um_gguf_str_eq(s, small_tokens[i]));
    assert_false(um_gguf_elem_i64(toks, 0, &i64));
    um_gguf_close(&f);

    /* the same through a file */
    char *dir = make_temp_dir(), path[512];
    snprintf(path, sizeof path, "%s/small.gguf", dir);
    write_file(path, buf, n);
    open_or_fail(path, &f);
    assert_string_equal(f.path, path);
    assert_int_equal(f.n_tensors, 3);
    um_gguf_close(&f);
    snprintf(path, sizeof path, "%s/absent.gguf", dir);
    assert_int_equal(um_gguf_open(path, &f, &err), UM_ERR_IO);
    remove_tree(dir);
    free(dir);
    free(buf);
}

static void gguf_custom_alignment(void **state) {
    size_t n;
    uint8_t *buf = small_file(&n, 64);
    um_gguf_file f;
    um_error err;
    assert_int_equal(um_gguf_parse(buf, n, "small", &f, &err), UM_OK);
    assert_int_equal(f.alignment, 64);
    assert_int_equal((size_t)(f.data - buf) % 64, 0);
    assert_int_equal(um_gguf_find_tensor(&f, "wb.q8")->offset, 64);
    assert_int_equal(um_gguf_find_tensor(&f, "wc.f16")->offset, 192);
    assert_int_equal(n % 64, 0);
    um_gguf_close(&f);

    size_t at = after(buf, n, "general.alignment");
    assert_int_equal(get(buf + at, 4), UM_GGUF_UINT32);
    put(buf + at + 4, 0, 4);
    expect_fail(buf, n, UM_ERR_FORMAT, "kv 'general.alignment' is 0, not a power of two");
    put(buf + at + 4, 48, 4);
    expect_fail(buf, n, UM_ERR_FORMAT, "kv 'general.alignment' is 48, not a power of two");
    put(buf + at + 4, 64, 4);
    put(buf + at, UM_GGUF_INT32, 4);
    expect_fail(buf, n, UM_ERR_FORMAT, "kv 'general.alignment' has type INT32, must be UINT32");
    put(buf + at, UM_GGUF_UINT32, 4);
    put(buf + at + 4, 32, 4); /* the offsets (multiples of 64) still fit 32 */
    assert_int_equal(um_gguf_parse(buf, n, "small", &f, &err), UM_OK);
    assert_int_equal(f.alignment, 32);
    um_gguf_close(&f);
    free(buf);
}

/* Every prefix of a valid file fails cleanly, until the last tensor's data is
 * complete (its trailing padding is optional). */
static void gguf_truncated_anywhere(void **state) {
    size_t n;
    uint8_t *buf = small_file(&n, 0);
    size_t complete = n - 32 + 6;
    for (size_t len = 0; len < n; len++) {
        uint8_t *copy = malloc(len + 1); /* exact size, so ASan sees any overread */
        memcpy(copy, buf, len);
        um_gguf_file f;
        um_error err;
        um_status s = um_gguf_parse(copy, len, "hostile.gguf", &f, &err);
        if (len >= complete) {
            assert_int_equal(s, UM_OK);
            um_gguf_close(&f);
        } else {
            if (s != UM_ERR_FORMAT || strncmp(err.msg, "hostile.gguf: ", 14) != 0)
                fail_msg("prefix of %zu bytes: status %d: %s", len, s, err.msg);
            if (len >= 4 && !strstr(err.msg, "truncated") && !strstr(err.msg, "past the end") &&
                !strstr(err.msg, "cannot fit") && !strstr(err.msg, "exceeds"))
                fail_msg("prefix of %zu bytes: unexpected message %s", len, err.msg);
        }
        free(copy);
    }
    expect_fail(buf, 3, UM_ERR_FORMAT, "not a GGUF file");
    expect_fail(buf, 10, UM_ERR_FORMAT, "header: truncated: tensor count needs 8 bytes at offset 8");
    expect_fail(buf, after(buf, n, "wc.f16") + 2, UM_ERR_FORMAT, "tensor 'wc.f16': truncated: n_dims");
    expect_fail(buf, n - 32, UM_ERR_FORMAT, "tensor 'wc.f16': data at offset 128 (6 bytes) runs past the end");
    free(buf);
}

static void gguf_hostile_headers(void **state) {
    size_t n;
    uint8_t *buf = small_file(&n, 0), *m = malloc(n);
#define MUTATE(off, v, width)                    \
    do {                                         \
        memcpy(m, buf, n);                       \
        put(m + (off), (uint64_t)(v), (width));  \
    } while (0)
    /* header */
    MUTATE(3, 'X', 1); /* "GGUX" */
    expect_fail(m, n, UM_ERR_FORMAT, "not a GGUF file");
    MUTATE(4, 1, 4);
    expect_fail(m, n, UM_ERR_UNSUPPORTED, "GGUF version 1 is not supported");
    MUTATE(4, 4, 4);
    expect_fail(m, n, UM_ERR_UNSUPPORTED, "unknown GGUF version 4 (supported: 2, 3)");
    MUTATE(4, 0x03000000, 4);
    expect_fail(m, n, UM_ERR_UNSUPPORTED, "big-endian GGUF files are not supported");
    MUTATE(4, 2, 4); /* version 2 has the same layout */
    um_gguf_file f;
    um_error err;
    assert_int_equal(um_gguf_parse(m, n, "v2", &f, &err), UM_OK);
    assert_int_equal(f.version, 2);
    um_gguf_close(&f);
    MUTATE(8, UINT64_MAX, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "header: tensor count 18446744073709551615 exceeds");
    MUTATE(8, (uint64_t)1 << 62, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "tensor count 4611686018427387904 exceeds");
    MUTATE(16, UINT64_MAX, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "header: kv count 18446744073709551615 exceeds");
    MUTATE(16, n / 13 + 1, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "exceeds what the file's");
    MUTATE(8, 4, 8); /* one tensor more than listed: the data is read as its info */
    expect_fail(m, n, UM_ERR_FORMAT, "tensor 'wa.f32' (offset 0) overlaps tensor ''"); /* zeros: an F32 scalar '' */
    MUTATE(16, 15, 8); /* one kv more: the first tensor info is read as a kv of type 2 (its n_dims) */
    expect_fail(m, n, UM_ERR_FORMAT, "tensor #0: name length 562949953421312");
    MUTATE(16, 13, 8); /* one kv less: the last kv is read as a tensor info */
    expect_fail(m, n, UM_ERR_FORMAT, "tensor 'test.i32'");

    /* kv pairs */
    size_t key0 = 24; /* the first key's length */
    MUTATE(key0, UINT64_MAX, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "kv #0: key length 18446744073709551615 at offset 24 runs past the end");
    MUTATE(key0, n - 24 - 8, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "kv #0");
    MUTATE(key0 + 8, 0, 1); /* a NUL inside the key */
    expect_fail(m, n, UM_ERR_FORMAT, "kv #0: key contains a NUL byte");
    size_t u32 = after(buf, n, "test.u32");
    MUTATE(u32, 13, 4);
    expect_fail(m, n, UM_ERR_FORMAT, "kv 'test.u32': unknown value type 13");
    MUTATE(u32, 0xffffffff, 4);
    expect_fail(m, n, UM_ERR_FORMAT, "kv 'test.u32': unknown value type 4294967295");
    size_t arch = after(buf, n, "general.architecture");
    MUTATE(arch + 4, n, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "kv 'general.architecture': string length ");
    size_t ids = after(buf, n, "test.ids");
    assert_int_equal(get(buf + ids, 4), UM_GGUF_ARRAY);
    MUTATE(ids + 4, UM_GGUF_ARRAY, 4);
    expect_fail(m, n, UM_ERR_UNSUPPORTED, "kv 'test.ids': nested arrays (arrays of arrays) are not supported");
    MUTATE(ids + 4, 77, 4);
    expect_fail(m, n, UM_ERR_FORMAT, "kv 'test.ids': unknown array element type 77");
    MUTATE(ids + 8, UINT64_MAX, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "kv 'test.ids': array of 18446744073709551615 INT32 values runs past the end");
    MUTATE(ids + 8, UINT64_MAX / 2, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "INT32 values runs past the end");
    size_t toks = after(buf, n, "test.tokens");
    MUTATE(toks + 8, (uint64_t)1 << 61, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "kv 'test.tokens': 2305843009213693952 strings cannot fit");
    MUTATE(toks + 8, n / 8 - 1, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "kv 'test.tokens': ");
    MUTATE(toks + 16 + 8 + 1, (uint64_t)1 << 40, 8); /* the second string's length */
    expect_fail(m, n, UM_ERR_FORMAT, "kv 'test.tokens': string 1: its length 1099511627776 runs past the end");
    size_t flag = after(buf, n, "test.flag");
    MUTATE(flag + 4, 2, 1);
    expect_fail(m, n, UM_ERR_FORMAT, "kv 'test.flag': bool value 2 (element 0) is neither 0 nor 1");
    memcpy(m, buf, n); /* test.u32 -> test.f32, which exists */
    memcpy(m + u32 - 3, "f32", 3);
    expect_fail(m, n, UM_ERR_FORMAT, "kv 'test.f32' appears twice");
    free(m);
    free(buf);
#undef MUTATE
}

static void gguf_hostile_tensors(void **state) {
    size_t n;
    uint8_t *buf = small_file(&n, 0), *m = malloc(n);
#define MUTATE(off, v, width)                    \
    do {                                         \
        memcpy(m, buf, n);                       \
        put(m + (off), (uint64_t)(v), (width));  \
    } while (0)
    /* each info: name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset */
    size_t a = after(buf, n, "wa.f32"), b = after(buf, n, "wb.q8"), c = after(buf, n, "wc.f16");
    size_t a_ne = a + 4;
    size_t b_ne = b + 4, b_type = b + 4 + 16, b_off = b_type + 4;
    size_t c_ne = c + 4, c_type = c + 4 + 8, c_off = c_type + 4;
    assert_int_equal(get(buf + a, 4), 2);
    assert_int_equal(get(buf + b_ne, 8), 32);
    assert_int_equal(get(buf + b_type, 4), 8);
    assert_int_equal(get(buf + c_off, 8), 128);

    MUTATE(a - 6 - 8, 1000, 8); /* name length */
    expect_fail(m, n, UM_ERR_FORMAT, "tensor #0: name length 1000");
    MUTATE(a - 1, 0, 1);
    expect_fail(m, n, UM_ERR_FORMAT, "tensor #0: name contains a NUL byte");
    MUTATE(a, 5, 4);
    expect_fail(m, n, UM_ERR_FORMAT, "tensor 'wa.f32': n_dims 5, at most 4 supported");
    MUTATE(a, 0xffffffffu, 4);
    expect_fail(m, n, UM_ERR_FORMAT, "tensor 'wa.f32': n_dims 4294967295");
    MUTATE(a_ne + 8, 0, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "tensor 'wa.f32': ne[1] = 0, must be between 1 and 2^63-1");
    MUTATE(a_ne, (uint64_t)1 << 63, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "tensor 'wa.f32': ne[0] = 9223372036854775808, must be between");
    MUTATE(a_ne, (uint64_t)1 << 62, 8); /* times ne[1] = 2 */
    expect_fail(m, n, UM_ERR_FORMAT, "tensor 'wa.f32': element count overflows at ne[1] = 2");
    MUTATE(a_ne + 8, 1, 8);
    put(m + a_ne, (uint64_t)1 << 62, 8); /* 2^62 F32 values: 2^64 bytes */
    expect_fail(m, n, UM_ERR_FORMAT, "tensor 'wa.f32': data size overflows");
    MUTATE(a_ne, (uint64_t)1 << 40, 8); /* fine arithmetic, but far more than the file */
    expect_fail(m, n, UM_ERR_FORMAT, "tensor 'wa.f32': data at offset 0 (8796093022208 bytes) runs past the end");
    MUTATE(b_ne, 33, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "tensor 'wb.q8': ne[0] = 33 is not a multiple of Q8_0's block size 32");
    MUTATE(b_ne, 16, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "not a multiple of Q8_0's block size 32");
    MUTATE(b_type, 6, 4);
    expect_fail(m, n, UM_ERR_UNSUPPORTED, "tensor 'wb.q8': ggml type 6 (q5_0) is not supported");
    MUTATE(b_type, 4, 4);
    expect_fail(m, n, UM_ERR_UNSUPPORTED, "tensor 'wb.q8': ggml type 4 (?) is not supported");
    MUTATE(b_type, 1000000, 4);
    expect_fail(m, n, UM_ERR_UNSUPPORTED, "tensor 'wb.q8': ggml type 1000000 (?) is not supported");
    MUTATE(b_off, 33, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "tensor 'wb.q8': offset 33 is not a multiple of the alignment 32");
    MUTATE(c_off, 160, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "tensor 'wc.f16': data at offset 160 (6 bytes) runs past the end of the data "
                                     "section (160 bytes)");
    MUTATE(c_off, (uint64_t)1 << 63, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "tensor 'wc.f16': data at offset 9223372036854775808");
    MUTATE(c_off, UINT64_MAX - 31, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "runs past the end of the data section");
    MUTATE(b_off, 0, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "tensor 'wb.q8' (offset 0) overlaps tensor 'wa.f32'");
    MUTATE(c_off, 64, 8); /* inside t.q8's 68 bytes */
    expect_fail(m, n, UM_ERR_FORMAT, "tensor 'wc.f16' (offset 64) overlaps tensor 'wb.q8'");
    MUTATE(c - 2, '3', 1); /* wc.f16 -> wc.f36: still valid */
    {
        um_gguf_file f;
        um_error err;
        assert_int_equal(um_gguf_parse(m, n, "renamed", &f, &err), UM_OK);
        assert_non_null(um_gguf_find_tensor(&f, "wc.f36"));
        um_gguf_close(&f);
    }
    memcpy(m + c - 6, "wa.f32", 6); /* a second wa.f32 */
    expect_fail(m, n, UM_ERR_FORMAT, "tensor 'wa.f32' appears twice");
    MUTATE(c_ne, 0, 8);
    expect_fail(m, n, UM_ERR_FORMAT, "tensor 'wc.f16': ne[0] = 0");
    free(m);
    free(buf);
#undef MUTATE
}

/* ------------------------------------------------------------ writer */

static um_status write_short(void *user, const char *name, um_gguf_sink *sink, um_error *err) {
    return um_gguf_sink_write(sink, "abc", 3, err);
}

static um_status write_long(void *user, const char *name, um_gguf_sink *sink, um_error *err) {
    static const uint8_t z[16];
    UM_TRY(um_gguf_sink_write(sink, z, 8, err));
    return um_gguf_sink_write(sink, z, 16, err);
}

static um_status write_fails(void *user, const char *name, um_gguf_sink *sink, um_error *err) {
    return um_fail(err, UM_ERR_IO, "source shard unreadable");
}

static void gguf_writer_rejects_bad_arguments(void **state) {
    um_gguf_writer *w = um_gguf_writer_new();
    um_error err;
    float x[64] = {0};
    int64_t ne[4] = {4, 2, 1, 1};
    assert_int_equal(um_gguf_writer_add_u32(w, "a", 1, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_str(w, "a", "x", &err), UM_ERR_ARG);
    assert_string_equal(err.msg, "gguf writer: metadata key 'a' added twice");
    assert_int_equal(um_gguf_writer_add_u32(w, "general.alignment", 48, &err), UM_ERR_ARG);
    assert_string_equal(err.msg, "gguf writer: general.alignment 48 is not a power of two");
    assert_int_equal(um_gguf_writer_add_u64(w, "general.alignment", 64, &err), UM_ERR_ARG);
    assert_string_equal(err.msg, "gguf writer: general.alignment must be a UINT32, not UINT64");
    assert_int_equal(um_gguf_writer_add_arr(w, "s", UM_GGUF_STRING, x, 1, &err), UM_ERR_ARG);
    assert_int_equal(um_gguf_writer_add_str(w, NULL, "x", &err), UM_ERR_ARG);
    assert_int_equal(um_gguf_writer_add_tensor(w, "t", UM_F32, 2, ne, x, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_tensor(w, "t", UM_F32, 2, ne, x, &err), UM_ERR_ARG);
    assert_string_equal(err.msg, "gguf writer: tensor 't' added twice");
    assert_int_equal(um_gguf_writer_add_tensor(w, "u", UM_U8, 2, ne, x, &err), UM_ERR_UNSUPPORTED);
    assert_string_equal(err.msg, "gguf writer: tensor 'u': U8 has no GGUF type");
    assert_int_equal(um_gguf_writer_add_tensor(w, "q", UM_Q8_0, 2, ne, x, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "ne[0] = 4 is not a multiple of Q8_0's block size 32"));
    assert_int_equal(um_gguf_writer_add_tensor(w, "v", UM_F32, 5, ne, x, &err), UM_ERR_ARG);
    int64_t zero[2] = {4, 0};
    assert_int_equal(um_gguf_writer_add_tensor(w, "z", UM_F32, 2, zero, x, &err), UM_ERR_ARG);
    assert_int_equal(um_gguf_writer_add_tensor(w, "n", UM_F32, 2, ne, NULL, &err), UM_ERR_ARG);
    char longname[80];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    assert_int_equal(um_gguf_writer_add_tensor(w, longname, UM_F32, 2, ne, x, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "name longer than 63 bytes"));
    size_t n;
    uint8_t *buf = write_to_memory(w, &n); /* the failed calls left nothing behind */
    um_gguf_file f;
    assert_int_equal(um_gguf_parse(buf, n, "w", &f, &err), UM_OK);
    assert_int_equal(f.n_kv, 1);
    assert_int_equal(f.n_tensors, 1);
    um_gguf_close(&f);
    free(buf);
    um_gguf_writer_free(w);

    /* a callback must write exactly the tensor's bytes */
    char *dir = make_temp_dir(), path[512];
    snprintf(path, sizeof path, "%s/t.gguf", dir);
    um_gguf_data_fn fns[3] = {write_short, write_long, write_fails};
    const char *msgs[3] = {"tensor 't': the data callback wrote 3 of its 16 bytes",
                           "tensor 't': the data callback wrote 8 bytes more than the tensor holds",
                           "source shard unreadable"};
    for (int i = 0; i < 3; i++) {
        w = um_gguf_writer_new();
        int64_t ne4[1] = {4};
        assert_int_equal(um_gguf_writer_add_tensor_fn(w, "t", UM_F32, 1, ne4, fns[i], NULL, &err), UM_OK);
        assert_int_not_equal(um_gguf_writer_write(w, path, &err), UM_OK);
        assert_non_null(strstr(err.msg, msgs[i]));
        assert_false(um_file_exists(path)); /* no partial file left, under either name */
        char partial[4300];
        snprintf(partial, sizeof partial, "%s.partial", path);
        assert_false(um_file_exists(partial));
        um_gguf_writer_free(w);
    }
    /* the file appears under its name only whole: a failed rewrite leaves the old one as it was */
    w = um_gguf_writer_new();
    assert_int_equal(um_gguf_writer_write(w, path, &err), UM_OK);
    um_gguf_writer_free(w);
    size_t before;
    free(read_whole_file(path, &before));
    w = um_gguf_writer_new();
    int64_t ne4[1] = {4};
    assert_int_equal(um_gguf_writer_add_tensor_fn(w, "t", UM_F32, 1, ne4, fns[0], NULL, &err), UM_OK);
    assert_int_not_equal(um_gguf_writer_write(w, path, &err), UM_OK);
    um_gguf_writer_free(w);
    size_t after;
    free(read_whole_file(path, &after));
    assert_int_equal(after, before);
    snprintf(path, sizeof path, "%s/no/such/dir.gguf", dir);
    w = um_gguf_writer_new();
    assert_int_equal(um_gguf_writer_write(w, path, &err), UM_ERR_IO);
    um_gguf_writer_free(w);
    remove_tree(dir);
    free(dir);
}

/* An empty file (no kv, no tensors) and scalar tensors (n_dims 0). */
static void gguf_writer_edge_cases(void **state) {
    um_gguf_writer *w = um_gguf_writer_new();
    size_t n;
    uint8_t *buf = write_to_memory(w, &n);
    assert_int_equal(n, 32); /* header, padded */
    um_gguf_file f;
    um_error err;
    assert_int_equal(um_gguf_parse(buf, n, "empty", &f, &err), UM_OK);
    assert_int_equal(f.n_kv + f.n_tensors, 0);
    um_gguf_close(&f);
    assert_int_equal(um_gguf_parse(buf, 24, "empty", &f, &err), UM_OK); /* without the padding */
    um_gguf_close(&f);
    free(buf);
    float one = 1;
    bool flags[3] = {true, false, true};
    double dd[2] = {1.5, -2};
    assert_int_equal(um_gguf_writer_add_tensor(w, "scalar", UM_F32, 0, NULL, &one, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_arr(w, "flags", UM_GGUF_BOOL, flags, 3, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_arr(w, "dd", UM_GGUF_FLOAT64, dd, 2, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_arr(w, "none", UM_GGUF_UINT16, NULL, 0, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_str_arr(w, "nostr", NULL, NULL, 0, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_strn(w, "empty", NULL, 0, &err), UM_OK);
    buf = write_to_memory(w, &n);
    assert_int_equal(um_gguf_parse(buf, n, "edge", &f, &err), UM_OK);
    assert_int_equal(f.tensors[0].n_dims, 0);
    assert_int_equal(um_gguf_numel(&f.tensors[0]), 1);
    assert_int_equal(f.tensors[0].nbytes, 4);
    const um_gguf_kv *kv;
    bool b;
    double d;
    um_gguf_str s;
    assert_int_equal(um_gguf_get_arr(&f, "flags", UM_GGUF_BOOL, &kv, &err), UM_OK);
    assert_true(um_gguf_elem_bool(kv, 0, &b) && b);
    assert_true(um_gguf_elem_bool(kv, 1, &b) && !b);
    assert_int_equal(um_gguf_get_arr(&f, "dd", UM_GGUF_FLOAT32, &kv, &err), UM_OK);
    assert_true(um_gguf_elem_f64(kv, 1, &d) && d == -2);
    assert_int_equal(um_gguf_get_arr(&f, "none", UM_GGUF_UINT16, &kv, &err), UM_OK);
    assert_int_equal(kv->count, 0);
    assert_int_equal(um_gguf_get_arr(&f, "nostr", UM_GGUF_STRING, &kv, &err), UM_OK);
    assert_false(um_gguf_elem_str(kv, 0, &s));
    assert_int_equal(um_gguf_get_str(&f, "empty", &s, &err), UM_OK);
    assert_int_equal(s.len, 0);
    um_gguf_close(&f);
    free(buf);
    um_gguf_writer_free(w);
}

/* Inputs that once broke the parser (found by fuzz/fuzz_gguf.c) fail cleanly;
 * the seed corpus parses. */
static void gguf_fuzz_files(void **state) {
    const char *dirs[2] = {"fuzz/regressions", "fuzz/corpus/gguf"};
    int seen[2] = {0, 0};
    for (int d = 0; d < 2; d++) {
        DIR *dp = opendir(dirs[d]);
        if (!dp)
            continue;
        struct dirent *e;
        while ((e = readdir(dp))) {
            if (e->d_name[0] == '.' || (d == 0 && strncmp(e->d_name, "gguf-", 5) != 0))
                continue;
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dirs[d], e->d_name);
            size_t n;
            uint8_t *buf = read_whole_file(path, &n);
            um_gguf_file f;
            um_error err = {0};
            um_status s = um_gguf_parse(buf, n, path, &f, &err);
            if (d == 0) {
                if (s == UM_OK)
                    um_gguf_close(&f);
                else if (strncmp(err.msg, path, strlen(path)) != 0)
                    fail_msg("%s: message '%s'", path, err.msg);
            } else {
                if (s != UM_OK)
                    fail_msg("%s", err.msg);
                um_gguf_close(&f);
            }
            free(buf);
            seen[d]++;
        }
        closedir(dp);
    }
    assert_true(seen[1] > 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(gguf_reads_llamacpp_files),
    cmocka_unit_test(gguf_round_trip_is_byte_identical),
    cmocka_unit_test(gguf_small_file_parses),
    cmocka_unit_test(gguf_custom_alignment),
    cmocka_unit_test(gguf_truncated_anywhere),
    cmocka_unit_test(gguf_hostile_headers),
    cmocka_unit_test(gguf_hostile_tensors),
    cmocka_unit_test(gguf_writer_rejects_bad_arguments),
    cmocka_unit_test(gguf_writer_edge_cases),
    cmocka_unit_test(gguf_fuzz_files),
};
const test_group gguf_group = {"gguf", tests, sizeof tests / sizeof *tests};
