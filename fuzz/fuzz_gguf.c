/* libFuzzer target for the GGUF parser: any bytes must either parse into
 * metadata and tensors that lie inside the buffer, or fail with a one-line
 * message naming the file. What parses is also written back by our writer
 * and must parse again to the same contents, and is read by every
 * architecture's hyper-parameter reader (the shared key list, the expert
 * keys). Built and run by `make fuzz`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf.h"
#include "hparams_check.h"
#include "model/arch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *lo, *hi;

static void inside(const void *p, size_t n) {
    const uint8_t *q = p;
    if (q < lo || q > hi || n > (size_t)(hi - q))
        abort();
}

/* Reads every element of every value: ASan checks the reads stay in the input. */
static unsigned touch_values(const um_gguf_file *f) {
    unsigned sum = 0;
    for (size_t i = 0; i < f->n_kv; i++) {
        const um_gguf_kv *kv = &f->kvs[i];
        if (um_gguf_find_kv(f, kv->key) != kv)
            abort();
        inside(kv->value, kv->value_size);
        for (uint64_t e = 0; e < kv->count; e++) {
            int64_t x;
            uint64_t u;
            double d;
            bool b;
            um_gguf_str s;
            if (um_gguf_elem_str(kv, e, &s)) {
                inside(s.ptr, s.len);
                if (s.len)
                    sum += (unsigned char)s.ptr[0] + (unsigned char)s.ptr[s.len - 1];
            }
            sum += um_gguf_elem_i64(kv, e, &x) + um_gguf_elem_u64(kv, e, &u) + um_gguf_elem_f64(kv, e, &d) +
                   um_gguf_elem_bool(kv, e, &b);
        }
        if (um_gguf_elem_str(kv, kv->count, &(um_gguf_str){0}))
            abort();
    }
    for (size_t i = 0; i < f->n_tensors; i++) {
        const um_gguf_tensor *t = &f->tensors[i];
        inside(t->data, t->nbytes);
        if (!t->nbytes || um_gguf_find_tensor(f, t->name) != t || t->offset % f->alignment)
            abort();
        sum += t->data[0] + t->data[t->nbytes - 1];
        size_t be = (size_t)um_dtype_block_elems(t->type);
        if ((size_t)um_gguf_numel(t) / be * um_dtype_block_bytes(t->type) != t->nbytes)
            abort();
    }
    /* the typed getters on whatever keys exist */
    um_error err;
    for (size_t i = 0; i < f->n_kv; i++) {
        uint32_t u32;
        int64_t i64;
        float x;
        bool b;
        um_gguf_str s;
        const um_gguf_kv *kv;
        const char *k = f->kvs[i].key;
        sum += um_gguf_get_u32(f, k, &u32, &err) + um_gguf_get_i64(f, k, &i64, &err) +
               um_gguf_get_f32(f, k, &x, &err) + um_gguf_get_bool(f, k, &b, &err) + um_gguf_get_str(f, k, &s, &err) +
               um_gguf_get_arr(f, k, UM_GGUF_INT32, &kv, &err);
    }
    return sum;
}

/* Writes f with our writer and parses the result: same keys, values, tensors. */
static void round_trip(const um_gguf_file *f) {
    /* a legal but huge general.alignment (2^30) would make the rewrite pad
     * with gigabytes of zeros: not a parser bug (regressions/gguf-alignment-*) */
    if (f->alignment > 65536)
        return;
    um_gguf_writer *w = um_gguf_writer_new();
    um_error err;
    if (!w)
        abort();
    for (size_t i = 0; i < f->n_kv; i++)
        if (um_gguf_writer_add_kv(w, &f->kvs[i], &err) != UM_OK)
            abort();
    for (size_t i = 0; i < f->n_tensors; i++) {
        const um_gguf_tensor *t = &f->tensors[i];
        if (um_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &err) != UM_OK) {
            /* the writer refuses only names llama.cpp could not load */
            if (strlen(t->name) <= UM_GGUF_MAX_NAME)
                abort();
            um_gguf_writer_free(w);
            return;
        }
    }
    char *buf = NULL;
    size_t n = 0;
    FILE *fp = open_memstream(&buf, &n);
    if (!fp || um_gguf_writer_write_fp(w, fp, "rewrite", &err) != UM_OK || fclose(fp) != 0)
        abort();
    um_gguf_writer_free(w);
    um_gguf_file g;
    if (um_gguf_parse((const uint8_t *)buf, n, "rewrite", &g, &err) != UM_OK)
        abort();
    if (g.n_kv != f->n_kv || g.n_tensors != f->n_tensors || g.alignment != f->alignment)
        abort();
    for (size_t i = 0; i < f->n_kv; i++) {
        const um_gguf_kv *x = &f->kvs[i], *y = &g.kvs[i];
        if (strcmp(x->key, y->key) || x->type != y->type || x->elem_type != y->elem_type || x->count != y->count ||
            x->value_size != y->value_size || memcmp(x->value, y->value, x->value_size))
            abort();
    }
    for (size_t i = 0; i < f->n_tensors; i++) {
        const um_gguf_tensor *x = &f->tensors[i], *y = &g.tensors[i];
        if (strcmp(x->name, y->name) || x->type != y->type || x->n_dims != y->n_dims ||
            memcmp(x->ne, y->ne, sizeof x->ne) || x->nbytes != y->nbytes || memcmp(x->data, y->data, x->nbytes))
            abort();
    }
    um_gguf_close(&g);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    um_gguf_file f;
    um_error err;
    memset(&err, 0, sizeof err);
    if (um_gguf_parse(data, size, "fuzz.gguf", &f, &err) != UM_OK) {
        if (err.code == UM_OK || strncmp(err.msg, "fuzz.gguf: ", 11) != 0 || strchr(err.msg, '\n'))
            abort(); /* a failure must say what failed, in one line naming the file */
        return 0;
    }
    lo = data;
    hi = data + size;
    unsigned sum = touch_values(&f);
    round_trip(&f);
    for (int i = 0; um_archs[i]; i++) {
        um_hparams hp;
        if (um_arch_read_gguf(um_archs[i], &f, &hp, &err) == UM_OK)
            check_hparams(&hp);
        else if (err.code == UM_OK || strncmp(err.msg, "fuzz.gguf", 9) != 0 || strchr(err.msg, '\n'))
            abort();
    }
    um_gguf_close(&f);
    return (int)(sum & 0); /* keeps the reads */
}
