#include "gguf.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- types */

static const char *const type_names[UM_GGUF_TYPE_COUNT] = {
    "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
    "BOOL",  "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64",
};

/* bytes of one fixed-size value; 0 for STRING and ARRAY */
static const size_t type_size[UM_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *um_gguf_type_name(um_gguf_type t) { return (unsigned)t < UM_GGUF_TYPE_COUNT ? type_names[t] : "?"; }

static bool is_int_type(um_gguf_type t) {
    return t <= UM_GGUF_INT32 || t == UM_GGUF_UINT64 || t == UM_GGUF_INT64;
}
static bool is_signed_type(um_gguf_type t) {
    return t == UM_GGUF_INT8 || t == UM_GGUF_INT16 || t == UM_GGUF_INT32 || t == UM_GGUF_INT64;
}
static bool is_float_type(um_gguf_type t) { return t == UM_GGUF_FLOAT32 || t == UM_GGUF_FLOAT64; }

/* ggml's enum ggml_type (ggml.h); ids 4 and 5 were removed, 31-33 dropped from GGUF. */
static const char *const ggml_names[] = {
    [0] = "f32",      [1] = "f16",      [2] = "q4_0",    [3] = "q4_1",    [6] = "q5_0",    [7] = "q5_1",
    [8] = "q8_0",     [9] = "q8_1",     [10] = "q2_K",   [11] = "q3_K",   [12] = "q4_K",   [13] = "q5_K",
    [14] = "q6_K",    [15] = "q8_K",    [16] = "iq2_xxs", [17] = "iq2_xs", [18] = "iq3_xxs", [19] = "iq1_s",
    [20] = "iq4_nl",  [21] = "iq3_s",   [22] = "iq2_s",  [23] = "iq4_xs", [24] = "i8",     [25] = "i16",
    [26] = "i32",     [27] = "i64",     [28] = "f64",    [29] = "iq1_m",  [30] = "bf16",   [34] = "tq1_0",
    [35] = "tq2_0",   [39] = "mxfp4",
};

const char *um_gguf_ggml_type_name(uint32_t t) {
    return t < sizeof ggml_names / sizeof *ggml_names && ggml_names[t] ? ggml_names[t] : "?";
}

static const struct {
    uint32_t ggml;
    um_dtype dtype;
} type_map[] = {
    {0, UM_F32},   {1, UM_F16},   {2, UM_Q4_0},  {3, UM_Q4_1},  {8, UM_Q8_0},  {12, UM_Q4_K}, {13, UM_Q5_K},
    {14, UM_Q6_K}, {24, UM_I8},   {25, UM_I16},  {26, UM_I32},  {27, UM_I64},  {28, UM_F64},  {30, UM_BF16},
};

int um_gguf_dtype_from_ggml(uint32_t ggml_type) {
    for (size_t i = 0; i < sizeof type_map / sizeof *type_map; i++)
        if (type_map[i].ggml == ggml_type)
            return (int)type_map[i].dtype;
    return -1;
}

int um_gguf_ggml_from_dtype(um_dtype t) {
    for (size_t i = 0; i < sizeof type_map / sizeof *type_map; i++)
        if (type_map[i].dtype == t)
            return (int)type_map[i].ggml;
    return -1;
}

/* ------------------------------------------------------- little endian */

static uint64_t le(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

static void put_le(uint8_t *p, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* ------------------------------------------------------------- reading */

typedef struct {
    const uint8_t *buf;
    size_t size, pos;
    const char *label;
    um_error *err;
} reader;

static size_t left(const reader *r) { return r->size - r->pos; }

/* ctx names the item being read ("header", "kv 'general.name'", "tensor #3"). */
static um_status need(reader *r, size_t n, const char *ctx, const char *field) {
    if (left(r) >= n)
        return UM_OK;
    return um_fail(r->err, UM_ERR_FORMAT, "%s: %s: truncated: %s needs %zu bytes at offset %zu, the file has %zu",
                   r->label, ctx, field, n, r->pos, r->size);
}

static um_status rd_u32(reader *r, const char *ctx, const char *field, uint32_t *out) {
    UM_TRY(need(r, 4, ctx, field));
    *out = (uint32_t)le(r->buf + r->pos, 4);
    r->pos += 4;
    return UM_OK;
}

static um_status rd_u64(reader *r, const char *ctx, const char *field, uint64_t *out) {
    UM_TRY(need(r, 8, ctx, field));
    *out = le(r->buf + r->pos, 8);
    r->pos += 8;
    return UM_OK;
}

/* A string's length and bytes. */
static um_status rd_str(reader *r, const char *ctx, const char *field, const uint8_t **p, size_t *len) {
    uint64_t n;
    UM_TRY(rd_u64(r, ctx, field, &n));
    if (n > left(r))
        return um_fail(r->err, UM_ERR_FORMAT,
                       "%s: %s: %s length %llu at offset %zu runs past the end of the file (%zu bytes left)",
                       r->label, ctx, field, (unsigned long long)n, r->pos - 8, left(r));
    *p = r->buf + r->pos;
    *len = (size_t)n;
    r->pos += (size_t)n;
    return UM_OK;
}

/* A key or tensor name as a C string: one with a NUL byte inside would be
 * ambiguous, so it is refused. */
static um_status rd_name(reader *r, const char *ctx, const char *field, char **out) {
    const uint8_t *p = NULL;
    size_t n = 0;
    UM_TRY(rd_str(r, ctx, field, &p, &n));
    if (memchr(p, 0, n))
        return um_fail(r->err, UM_ERR_FORMAT, "%s: %s: %s contains a NUL byte", r->label, ctx, field);
    char *s = malloc(n + 1);
    if (!s)
        return um_fail(r->err, UM_ERR_NOMEM, "%s: out of memory", r->label);
    memcpy(s, p, n);
    s[n] = 0;
    *out = s;
    return UM_OK;
}

/* The value of a kv pair, after its key. */
static um_status parse_value(reader *r, const char *ctx, um_gguf_kv *kv) {
    uint32_t t;
    UM_TRY(rd_u32(r, ctx, "value type", &t));
    if (t >= UM_GGUF_TYPE_COUNT)
        return um_fail(r->err, UM_ERR_FORMAT, "%s: %s: unknown value type %u", r->label, ctx, t);
    kv->type = (um_gguf_type)t;
    kv->elem_type = kv->type;
    kv->count = 1;
    if (t == UM_GGUF_ARRAY) {
        uint32_t et;
        UM_TRY(rd_u32(r, ctx, "array element type", &et));
        if (et == UM_GGUF_ARRAY)
            return um_fail(r->err, UM_ERR_UNSUPPORTED, "%s: %s: nested arrays (arrays of arrays) are not supported",
                           r->label, ctx);
        if (et >= UM_GGUF_TYPE_COUNT)
            return um_fail(r->err, UM_ERR_FORMAT, "%s: %s: unknown array element type %u", r->label, ctx, et);
        kv->elem_type = (um_gguf_type)et;
        UM_TRY(rd_u64(r, ctx, "array count", &kv->count));
    }
    size_t start = r->pos;
    kv->value = r->buf + start;
    if (kv->elem_type == UM_GGUF_STRING) {
        /* every string takes at least its 8-byte length */
        if (t != UM_GGUF_ARRAY)
            UM_TRY(need(r, 8, ctx, "string length"));
        if (kv->count > left(r) / 8)
            return um_fail(r->err, UM_ERR_FORMAT,
                           "%s: %s: %llu strings cannot fit in the %zu bytes left in the file", r->label, ctx,
                           (unsigned long long)kv->count, left(r));
        if (t == UM_GGUF_ARRAY) {
            kv->str_offsets = malloc(((size_t)kv->count + 1) * sizeof *kv->str_offsets);
            if (!kv->str_offsets)
                return um_fail(r->err, UM_ERR_NOMEM, "%s: out of memory", r->label);
        }
        for (uint64_t i = 0; i < kv->count; i++) {
            if (kv->str_offsets)
                kv->str_offsets[i] = r->pos - start;
            uint64_t n = le(r->buf + r->pos, 8); /* in bounds: checked above */
            r->pos += 8;
            if (n > left(r)) {
                char elem[40] = "string";
                if (t == UM_GGUF_ARRAY)
                    snprintf(elem, sizeof elem, "string %llu: its", (unsigned long long)i);
                return um_fail(r->err, UM_ERR_FORMAT,
                               "%s: %s: %s length %llu runs past the end of the file (%zu bytes left)", r->label, ctx,
                               elem, (unsigned long long)n, left(r));
            }
            r->pos += (size_t)n;
            if (kv->count - i - 1 > left(r) / 8)
                return um_fail(r->err, UM_ERR_FORMAT,
                               "%s: %s: truncated: %llu more strings cannot fit in the %zu bytes left", r->label,
                               ctx, (unsigned long long)(kv->count - i - 1), left(r));
        }
    } else {
        size_t es = type_size[kv->elem_type];
        if (kv->count > left(r) / es) {
            if (t != UM_GGUF_ARRAY)
                return need(r, es, ctx, "value");
            return um_fail(r->err, UM_ERR_FORMAT,
                           "%s: %s: array of %llu %s values runs past the end of the file (%zu bytes left)",
                           r->label, ctx, (unsigned long long)kv->count, type_names[kv->elem_type], left(r));
        }
        size_t nb = (size_t)kv->count * es;
        if (kv->elem_type == UM_GGUF_BOOL)
            for (size_t i = 0; i < nb; i++)
                if (kv->value[i] > 1)
                    return um_fail(r->err, UM_ERR_FORMAT, "%s: %s: bool value %u (element %zu) is neither 0 nor 1",
                                   r->label, ctx, kv->value[i], i);
        r->pos += nb;
    }
    kv->value_size = r->pos - start;
    return UM_OK;
}

static int cmp_kv(const void *a, const void *b) {
    return strcmp((*(const um_gguf_kv *const *)a)->key, (*(const um_gguf_kv *const *)b)->key);
}
static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const um_gguf_tensor *const *)a)->name, (*(const um_gguf_tensor *const *)b)->name);
}
static int cmp_tensor_offset(const void *a, const void *b) {
    const um_gguf_tensor *x = *(const um_gguf_tensor *const *)a, *y = *(const um_gguf_tensor *const *)b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

static um_status parse_kvs(reader *r, um_gguf_file *f, uint64_t n_kv) {
    /* the smallest pair: an empty key's length, a type and a one-byte value */
    if (n_kv > left(r) / 13)
        return um_fail(r->err, UM_ERR_FORMAT, "%s: header: kv count %llu exceeds what the file's %zu bytes can hold",
                       r->label, (unsigned long long)n_kv, r->size);
    f->kvs = calloc((size_t)n_kv + 1, sizeof *f->kvs);
    f->kv_by_key = calloc((size_t)n_kv + 1, sizeof *f->kv_by_key);
    if (!f->kvs || !f->kv_by_key)
        return um_fail(r->err, UM_ERR_NOMEM, "%s: out of memory", r->label);
    char ctx[160];
    for (size_t i = 0; i < (size_t)n_kv; i++) {
        um_gguf_kv *kv = &f->kvs[i];
        snprintf(ctx, sizeof ctx, "kv #%zu", i);
        UM_TRY(rd_name(r, ctx, "key", &kv->key));
        f->n_kv++;
        snprintf(ctx, sizeof ctx, "kv '%.100s'", kv->key);
        UM_TRY(parse_value(r, ctx, kv));
        f->kv_by_key[i] = kv;
    }
    qsort(f->kv_by_key, f->n_kv, sizeof *f->kv_by_key, cmp_kv);
    for (size_t i = 1; i < f->n_kv; i++)
        if (strcmp(f->kv_by_key[i - 1]->key, f->kv_by_key[i]->key) == 0)
            return um_fail(r->err, UM_ERR_FORMAT, "%s: kv '%.100s' appears twice", r->label, f->kv_by_key[i]->key);
    f->alignment = UM_GGUF_DEFAULT_ALIGNMENT;
    const um_gguf_kv *al = um_gguf_find_kv(f, "general.alignment");
    if (al) {
        if (al->type != UM_GGUF_UINT32)
            return um_fail(r->err, UM_ERR_FORMAT, "%s: kv 'general.alignment' has type %s, must be UINT32", r->label,
                           type_names[al->type]);
        uint32_t a = (uint32_t)le(al->value, 4);
        if (a == 0 || (a & (a - 1)) != 0)
            return um_fail(r->err, UM_ERR_FORMAT, "%s: kv 'general.alignment' is %u, not a power of two", r->label,
                           a);
        f->alignment = a;
    }
    return UM_OK;
}

/* One tensor info; data bounds are checked once the data section is known. */
static um_status parse_tensor_info(reader *r, um_gguf_file *f, size_t i) {
    um_gguf_tensor *t = &f->tensors[i];
    char ctx[160], field[32];
    snprintf(ctx, sizeof ctx, "tensor #%zu", i);
    UM_TRY(rd_name(r, ctx, "name", &t->name));
    f->n_tensors++;
    snprintf(ctx, sizeof ctx, "tensor '%.100s'", t->name);
    uint32_t n_dims;
    UM_TRY(rd_u32(r, ctx, "n_dims", &n_dims));
    if (n_dims > UM_GGUF_MAX_DIMS)
        return um_fail(r->err, UM_ERR_FORMAT, "%s: %s: n_dims %u, at most %d supported", r->label, ctx, n_dims,
                       UM_GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    uint64_t numel = 1;
    for (int d = 0; d < UM_GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (int d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        snprintf(field, sizeof field, "ne[%d]", d);
        UM_TRY(rd_u64(r, ctx, field, &ne));
        if (ne == 0 || ne > INT64_MAX)
            return um_fail(r->err, UM_ERR_FORMAT, "%s: %s: ne[%d] = %llu, must be between 1 and 2^63-1", r->label,
                           ctx, d, (unsigned long long)ne);
        if (__builtin_mul_overflow(numel, ne, &numel) || numel > INT64_MAX)
            return um_fail(r->err, UM_ERR_FORMAT, "%s: %s: element count overflows at ne[%d] = %llu", r->label, ctx,
                           d, (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
    }
    UM_TRY(rd_u32(r, ctx, "type", &t->ggml_type));
    int dt = um_gguf_dtype_from_ggml(t->ggml_type);
    if (dt < 0)
        return um_fail(r->err, UM_ERR_UNSUPPORTED, "%s: %s: ggml type %u (%s) is not supported", r->label, ctx,
                       t->ggml_type, um_gguf_ggml_type_name(t->ggml_type));
    t->type = (um_dtype)dt;
    uint64_t be = (uint64_t)um_dtype_block_elems(t->type);
    if ((uint64_t)t->ne[0] % be != 0)
        return um_fail(r->err, UM_ERR_FORMAT, "%s: %s: ne[0] = %lld is not a multiple of %s's block size %llu",
                       r->label, ctx, (long long)t->ne[0], um_dtype_name(t->type), (unsigned long long)be);
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel / be, (uint64_t)um_dtype_block_bytes(t->type), &nbytes) || nbytes > SIZE_MAX)
        return um_fail(r->err, UM_ERR_FORMAT, "%s: %s: data size overflows", r->label, ctx);
    t->nbytes = (size_t)nbytes;
    UM_TRY(rd_u64(r, ctx, "offset", &t->offset));
    if (t->offset % f->alignment != 0)
        return um_fail(r->err, UM_ERR_FORMAT, "%s: %s: offset %llu is not a multiple of the alignment %u", r->label,
                       ctx, (unsigned long long)t->offset, f->alignment);
    return UM_OK;
}

static um_status parse_tensors(reader *r, um_gguf_file *f, uint64_t n_tensors) {
    /* the smallest info: an empty name's length, n_dims 0, a type and an offset */
    if (n_tensors > left(r) / 24)
        return um_fail(r->err, UM_ERR_FORMAT,
                       "%s: header: tensor count %llu exceeds what the %zu bytes after the metadata can hold",
                       r->label, (unsigned long long)n_tensors, left(r));
    f->tensors = calloc((size_t)n_tensors + 1, sizeof *f->tensors);
    f->tensor_by_name = calloc((size_t)n_tensors + 1, sizeof *f->tensor_by_name);
    if (!f->tensors || !f->tensor_by_name)
        return um_fail(r->err, UM_ERR_NOMEM, "%s: out of memory", r->label);
    for (size_t i = 0; i < (size_t)n_tensors; i++) {
        UM_TRY(parse_tensor_info(r, f, i));
        f->tensor_by_name[i] = &f->tensors[i];
    }
    size_t n = f->n_tensors;
    qsort(f->tensor_by_name, n, sizeof *f->tensor_by_name, cmp_tensor_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(f->tensor_by_name[i - 1]->name, f->tensor_by_name[i]->name) == 0)
            return um_fail(r->err, UM_ERR_FORMAT, "%s: tensor '%.100s' appears twice", r->label,
                           f->tensor_by_name[i]->name);

    /* the data section starts at the next multiple of the alignment */
    size_t pad = (f->alignment - r->pos % f->alignment) % f->alignment;
    size_t data_start = pad <= left(r) ? r->pos + pad : r->size;
    f->data = r->buf + data_start;
    f->data_size = r->size - data_start;
    for (size_t i = 0; i < n; i++) {
        um_gguf_tensor *t = &f->tensors[i];
        if (t->offset > f->data_size || t->nbytes > f->data_size - t->offset)
            return um_fail(r->err, UM_ERR_FORMAT,
                           "%s: tensor '%.100s': data at offset %llu (%zu bytes) runs past the end of the data "
                           "section (%zu bytes)",
                           r->label, t->name, (unsigned long long)t->offset, t->nbytes, f->data_size);
        t->data = f->data + t->offset;
    }
    if (n < 2)
        return UM_OK;
    const um_gguf_tensor **order = malloc(n * sizeof *order);
    if (!order)
        return um_fail(r->err, UM_ERR_NOMEM, "%s: out of memory", r->label);
    for (size_t i = 0; i < n; i++)
        order[i] = &f->tensors[i];
    qsort(order, n, sizeof *order, cmp_tensor_offset);
    um_status s = UM_OK;
    for (size_t i = 1; i < n && s == UM_OK; i++)
        if (order[i - 1]->offset + order[i - 1]->nbytes > order[i]->offset)
            s = um_fail(r->err, UM_ERR_FORMAT, "%s: tensor '%.100s' (offset %llu) overlaps tensor '%.100s'",
                        r->label, order[i]->name, (unsigned long long)order[i]->offset, order[i - 1]->name);
    free(order);
    return s;
}

static um_status parse(reader *r, um_gguf_file *f) {
    if (r->size < 4 || memcmp(r->buf, "GGUF", 4) != 0)
        return um_fail(r->err, UM_ERR_FORMAT, "%s: not a GGUF file (the first 4 bytes are not \"GGUF\")", r->label);
    r->pos = 4;
    UM_TRY(rd_u32(r, "header", "version", &f->version));
    if (f->version == 0x02000000u || f->version == 0x03000000u)
        return um_fail(r->err, UM_ERR_UNSUPPORTED, "%s: header: big-endian GGUF files are not supported", r->label);
    if (f->version == 1)
        return um_fail(r->err, UM_ERR_UNSUPPORTED,
                       "%s: header: GGUF version 1 is not supported (its 32-bit counts were replaced in version 2; "
                       "supported: 2, 3)",
                       r->label);
    if (f->version != 2 && f->version != 3)
        return um_fail(r->err, UM_ERR_UNSUPPORTED, "%s: header: unknown GGUF version %u (supported: 2, 3)", r->label,
                       f->version);
    uint64_t n_tensors, n_kv;
    UM_TRY(rd_u64(r, "header", "tensor count", &n_tensors));
    UM_TRY(rd_u64(r, "header", "kv count", &n_kv));
    if (n_tensors > left(r) / 24)
        return um_fail(r->err, UM_ERR_FORMAT,
                       "%s: header: tensor count %llu exceeds what the file's %zu bytes can hold", r->label,
                       (unsigned long long)n_tensors, r->size);
    UM_TRY(parse_kvs(r, f, n_kv));
    return parse_tensors(r, f, n_tensors);
}

um_status um_gguf_parse(const uint8_t *buf, size_t size, const char *label, um_gguf_file *f, um_error *err) {
    memset(f, 0, sizeof *f);
    reader r = {buf, size, 0, label, err};
    um_status s = parse(&r, f);
    if (s == UM_OK) {
        f->path = strdup(label);
        if (!f->path)
            s = um_fail(err, UM_ERR_NOMEM, "%s: out of memory", label);
    }
    if (s != UM_OK)
        um_gguf_close(f);
    return s;
}

um_status um_gguf_open(const char *path, um_gguf_file *f, um_error *err) {
    um_mapped_file map;
    memset(f, 0, sizeof *f);
    UM_TRY(um_map_file(path, &map, err));
    um_status s = um_gguf_parse(map.data, map.size, path, f, err);
    if (s != UM_OK) {
        um_unmap_file(&map);
        return s;
    }
    f->map = map;
    return UM_OK;
}

void um_gguf_close(um_gguf_file *f) {
    for (size_t i = 0; i < f->n_kv; i++) {
        free(f->kvs[i].key);
        free(f->kvs[i].str_offsets);
    }
    for (size_t i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->kvs);
    free(f->kv_by_key);
    free(f->tensors);
    free(f->tensor_by_name);
    free(f->path);
    um_unmap_file(&f->map);
    memset(f, 0, sizeof *f);
}

/* -------------------------------------------------------------- lookups */

static int cmp_key_kv(const void *key, const void *e) { return strcmp(key, (*(const um_gguf_kv *const *)e)->key); }
static int cmp_name_tensor(const void *name, const void *e) {
    return strcmp(name, (*(const um_gguf_tensor *const *)e)->name);
}

const um_gguf_kv *um_gguf_find_kv(const um_gguf_file *f, const char *key) {
    if (!f->kv_by_key)
        return NULL;
    const um_gguf_kv *const *p = bsearch(key, f->kv_by_key, f->n_kv, sizeof *f->kv_by_key, cmp_key_kv);
    return p ? *p : NULL;
}

const um_gguf_tensor *um_gguf_find_tensor(const um_gguf_file *f, const char *name) {
    if (!f->tensor_by_name)
        return NULL;
    const um_gguf_tensor *const *p =
        bsearch(name, f->tensor_by_name, f->n_tensors, sizeof *f->tensor_by_name, cmp_name_tensor);
    return p ? *p : NULL;
}

int64_t um_gguf_numel(const um_gguf_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++)
        n *= t->ne[i];
    return n;
}

/* Integer element i: its value as signed (is_signed) or unsigned. */
static bool elem_int(const um_gguf_kv *kv, uint64_t i, bool *is_signed, int64_t *s, uint64_t *u) {
    if (i >= kv->count || !is_int_type(kv->elem_type))
        return false;
    size_t es = type_size[kv->elem_type];
    uint64_t v = le(kv->value + i * es, es);
    *is_signed = is_signed_type(kv->elem_type);
    if (*is_signed) {
        /* two's complement by arithmetic, without implementation-defined conversions */
        if (es == 8)
            *s = v > INT64_MAX ? (int64_t)(v - (uint64_t)INT64_MAX - 1) + INT64_MIN : (int64_t)v;
        else
            *s = (int64_t)v - ((v >> (8 * es - 1)) ? (int64_t)1 << (8 * es) : 0);
    } else {
        *u = v;
    }
    return true;
}

bool um_gguf_elem_i64(const um_gguf_kv *kv, uint64_t i, int64_t *out) {
    bool sg;
    int64_t s;
    uint64_t u;
    if (!elem_int(kv, i, &sg, &s, &u))
        return false;
    if (sg) {
        *out = s;
        return true;
    }
    if (u > INT64_MAX)
        return false;
    *out = (int64_t)u;
    return true;
}

bool um_gguf_elem_u64(const um_gguf_kv *kv, uint64_t i, uint64_t *out) {
    bool sg;
    int64_t s;
    uint64_t u;
    if (!elem_int(kv, i, &sg, &s, &u))
        return false;
    if (sg) {
        if (s < 0)
            return false;
        *out = (uint64_t)s;
        return true;
    }
    *out = u;
    return true;
}

bool um_gguf_elem_f64(const um_gguf_kv *kv, uint64_t i, double *out) {
    if (i >= kv->count)
        return false;
    if (kv->elem_type == UM_GGUF_FLOAT32) {
        uint32_t b = (uint32_t)le(kv->value + i * 4, 4);
        float x;
        memcpy(&x, &b, 4);
        *out = x;
        return true;
    }
    if (kv->elem_type == UM_GGUF_FLOAT64) {
        uint64_t b = le(kv->value + i * 8, 8);
        memcpy(out, &b, 8);
        return true;
    }
    bool sg;
    int64_t s;
    uint64_t u;
    if (!elem_int(kv, i, &sg, &s, &u))
        return false;
    *out = sg ? (double)s : (double)u;
    return true;
}

bool um_gguf_elem_bool(const um_gguf_kv *kv, uint64_t i, bool *out) {
    if (i >= kv->count || kv->elem_type != UM_GGUF_BOOL)
        return false;
    *out = kv->value[i] != 0;
    return true;
}

bool um_gguf_elem_str(const um_gguf_kv *kv, uint64_t i, um_gguf_str *out) {
    if (i >= kv->count || kv->elem_type != UM_GGUF_STRING)
        return false;
    const uint8_t *p = kv->value + (kv->str_offsets ? kv->str_offsets[i] : 0);
    out->len = (size_t)le(p, 8);
    out->ptr = (const char *)p + 8;
    return true;
}

bool um_gguf_str_eq(um_gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

/* ------------------------------------------------------- typed getters */

static um_status get_scalar(const um_gguf_file *f, const char *key, const um_gguf_kv **out, um_error *err) {
    const um_gguf_kv *kv = um_gguf_find_kv(f, key);
    if (!kv)
        return um_fail(err, UM_ERR_FORMAT, "%s: missing metadata key '%s'", f->path, key);
    if (kv->type == UM_GGUF_ARRAY)
        return um_fail(err, UM_ERR_FORMAT, "%s: metadata key '%s' is an array of %llu %s, expected one value",
                       f->path, key, (unsigned long long)kv->count, type_names[kv->elem_type]);
    *out = kv;
    return UM_OK;
}

static um_status wrong_type(const um_gguf_file *f, const um_gguf_kv *kv, const char *want, um_error *err) {
    return um_fail(err, UM_ERR_FORMAT, "%s: metadata key '%s' has type %s, expected %s", f->path, kv->key,
                   type_names[kv->type], want);
}

static um_status int_range(const um_gguf_file *f, const um_gguf_kv *kv, int64_t lo, uint64_t hi, uint64_t *u,
                           int64_t *s, bool *neg, um_error *err) {
    if (!is_int_type(kv->type))
        return wrong_type(f, kv, "an integer", err);
    bool sg;
    elem_int(kv, 0, &sg, s, u);
    *neg = sg && *s < 0;
    if (!*neg && sg)
        *u = (uint64_t)*s;
    if (*neg ? *s < lo : *u > hi) {
        if (*neg)
            return um_fail(err, UM_ERR_FORMAT, "%s: metadata key '%s' is %lld, out of range [%lld, %llu]", f->path,
                           kv->key, (long long)*s, (long long)lo, (unsigned long long)hi);
        return um_fail(err, UM_ERR_FORMAT, "%s: metadata key '%s' is %llu, out of range [%lld, %llu]", f->path,
                       kv->key, (unsigned long long)*u, (long long)lo, (unsigned long long)hi);
    }
    return UM_OK;
}

#define GET_INT(fn, T, LO, HI)                                                                      \
    um_status fn(const um_gguf_file *f, const char *key, T *out, um_error *err) {                   \
        const um_gguf_kv *kv = NULL;                                                                \
        uint64_t u = 0;                                                                             \
        int64_t s = 0;                                                                              \
        bool neg = false;                                                                           \
        UM_TRY(get_scalar(f, key, &kv, err));                                                       \
        UM_TRY(int_range(f, kv, LO, HI, &u, &s, &neg, err));                                        \
        *out = neg ? (T)s : (T)u;                                                                   \
        return UM_OK;                                                                               \
    }

GET_INT(um_gguf_get_u32, uint32_t, 0, UINT32_MAX)
GET_INT(um_gguf_get_i32, int32_t, INT32_MIN, INT32_MAX)
GET_INT(um_gguf_get_u64, uint64_t, 0, UINT64_MAX)
GET_INT(um_gguf_get_i64, int64_t, INT64_MIN, INT64_MAX)

um_status um_gguf_get_f64(const um_gguf_file *f, const char *key, double *out, um_error *err) {
    const um_gguf_kv *kv = NULL;
    UM_TRY(get_scalar(f, key, &kv, err));
    if (!um_gguf_elem_f64(kv, 0, out))
        return wrong_type(f, kv, "a number", err);
    return UM_OK;
}

um_status um_gguf_get_f32(const um_gguf_file *f, const char *key, float *out, um_error *err) {
    double d;
    UM_TRY(um_gguf_get_f64(f, key, &d, err));
    if (isfinite(d) && (d > FLT_MAX || d < -FLT_MAX))
        return um_fail(err, UM_ERR_FORMAT, "%s: metadata key '%s' is %g, out of float32 range", f->path, key, d);
    *out = (float)d;
    return UM_OK;
}

um_status um_gguf_get_bool(const um_gguf_file *f, const char *key, bool *out, um_error *err) {
    const um_gguf_kv *kv = NULL;
    UM_TRY(get_scalar(f, key, &kv, err));
    if (!um_gguf_elem_bool(kv, 0, out))
        return wrong_type(f, kv, "BOOL", err);
    return UM_OK;
}

um_status um_gguf_get_str(const um_gguf_file *f, const char *key, um_gguf_str *out, um_error *err) {
    const um_gguf_kv *kv = NULL;
    UM_TRY(get_scalar(f, key, &kv, err));
    if (!um_gguf_elem_str(kv, 0, out))
        return wrong_type(f, kv, "STRING", err);
    return UM_OK;
}

um_status um_gguf_get_arr(const um_gguf_file *f, const char *key, um_gguf_type elem, const um_gguf_kv **out,
                          um_error *err) {
    const um_gguf_kv *kv = um_gguf_find_kv(f, key);
    if (!kv)
        return um_fail(err, UM_ERR_FORMAT, "%s: missing metadata key '%s'", f->path, key);
    if (kv->type != UM_GGUF_ARRAY)
        return um_fail(err, UM_ERR_FORMAT, "%s: metadata key '%s' has type %s, expected an array", f->path, key,
                       type_names[kv->type]);
    bool ok = elem == UM_GGUF_ARRAY || kv->elem_type == elem || (is_int_type(elem) && is_int_type(kv->elem_type)) ||
              (is_float_type(elem) && is_float_type(kv->elem_type));
    if (!ok)
        return um_fail(err, UM_ERR_FORMAT, "%s: metadata key '%s' is an array of %s, expected %s", f->path, key,
                       type_names[kv->elem_type],
                       is_int_type(elem) ? "integers" : is_float_type(elem) ? "floats" : um_gguf_type_name(elem));
    *out = kv;
    return UM_OK;
}

/* -------------------------------------------------------------- writing */

typedef struct {
    char *name;
    um_dtype type;
    uint32_t ggml_type;
    int n_dims;
    int64_t ne[UM_GGUF_MAX_DIMS];
    size_t nbytes;
    const void *data;
    um_gguf_data_fn fn;
    void *user;
} wtensor;

struct um_gguf_writer {
    uint8_t *kv_buf; /* the encoded kv pairs */
    size_t kv_len, kv_cap;
    char **keys;
    size_t n_kv, keys_cap;
    uint32_t alignment;
    wtensor *tensors;
    size_t n_tensors, tensors_cap;
};

struct um_gguf_sink {
    FILE *fp;
    const char *label, *tensor;
    size_t left;
};

um_gguf_writer *um_gguf_writer_new(void) {
    um_gguf_writer *w = calloc(1, sizeof *w);
    if (w)
        w->alignment = UM_GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void um_gguf_writer_free(um_gguf_writer *w) {
    if (!w)
        return;
    for (size_t i = 0; i < w->n_kv; i++)
        free(w->keys[i]);
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->keys);
    free(w->tensors);
    free(w->kv_buf);
    free(w);
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        if (__builtin_mul_overflow(c, 2, &c))
            return false;
    size_t bytes;
    if (!um_mul_size(c, elem, &bytes))
        return false;
    void *q = realloc(*p, bytes);
    if (!q)
        return false;
    *p = q;
    *cap = c;
    return true;
}

/* Checks a new key, reserves room for its pair (value_bytes after the type
 * field) and writes the key and type. align: the value when the key is
 * general.alignment and the type UINT32. */
static um_status kv_begin(um_gguf_writer *w, const char *key, um_gguf_type type, size_t value_bytes,
                          const uint32_t *align, um_error *err) {
    if (!key)
        return um_fail(err, UM_ERR_ARG, "gguf writer: NULL metadata key");
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0)
            return um_fail(err, UM_ERR_ARG, "gguf writer: metadata key '%.100s' added twice", key);
    if (strcmp(key, "general.alignment") == 0) {
        if (type != UM_GGUF_UINT32 || !align)
            return um_fail(err, UM_ERR_ARG, "gguf writer: general.alignment must be a UINT32, not %s",
                           um_gguf_type_name(type));
        if (*align == 0 || (*align & (*align - 1)) != 0)
            return um_fail(err, UM_ERR_ARG, "gguf writer: general.alignment %u is not a power of two", *align);
    }
    size_t klen = strlen(key), total;
    if (__builtin_add_overflow(klen, 12, &total) || __builtin_add_overflow(total, value_bytes, &total) ||
        __builtin_add_overflow(total, w->kv_len, &total))
        return um_fail(err, UM_ERR_ARG, "gguf writer: metadata key '%.100s': value too large", key);
    char *k = strdup(key);
    if (!k || !grow((void **)&w->kv_buf, &w->kv_cap, total, 1) ||
        !grow((void **)&w->keys, &w->keys_cap, w->n_kv + 1, sizeof *w->keys)) {
        free(k);
        return um_fail(err, UM_ERR_NOMEM, "gguf writer: out of memory");
    }
    w->keys[w->n_kv++] = k;
    if (strcmp(key, "general.alignment") == 0)
        w->alignment = *align;
    put_le(w->kv_buf + w->kv_len, klen, 8);
    memcpy(w->kv_buf + w->kv_len + 8, key, klen);
    put_le(w->kv_buf + w->kv_len + 8 + klen, (uint64_t)type, 4);
    w->kv_len += klen + 12;
    return UM_OK;
}

static void kv_put(um_gguf_writer *w, const void *p, size_t n) {
    memcpy(w->kv_buf + w->kv_len, p, n);
    w->kv_len += n;
}

static void kv_put_le(um_gguf_writer *w, uint64_t v, size_t n) {
    put_le(w->kv_buf + w->kv_len, v, n);
    w->kv_len += n;
}

static um_status add_scalar(um_gguf_writer *w, const char *key, um_gguf_type type, uint64_t bits, um_error *err) {
    uint32_t a = (uint32_t)bits;
    UM_TRY(kv_begin(w, key, type, type_size[type], type == UM_GGUF_UINT32 ? &a : NULL, err));
    kv_put_le(w, bits, type_size[type]);
    return UM_OK;
}

um_status um_gguf_writer_add_u8(um_gguf_writer *w, const char *key, uint8_t v, um_error *err) {
    return add_scalar(w, key, UM_GGUF_UINT8, v, err);
}
um_status um_gguf_writer_add_i8(um_gguf_writer *w, const char *key, int8_t v, um_error *err) {
    return add_scalar(w, key, UM_GGUF_INT8, (uint64_t)(int64_t)v, err);
}
um_status um_gguf_writer_add_u16(um_gguf_writer *w, const char *key, uint16_t v, um_error *err) {
    return add_scalar(w, key, UM_GGUF_UINT16, v, err);
}
um_status um_gguf_writer_add_i16(um_gguf_writer *w, const char *key, int16_t v, um_error *err) {
    return add_scalar(w, key, UM_GGUF_INT16, (uint64_t)(int64_t)v, err);
}
um_status um_gguf_writer_add_u32(um_gguf_writer *w, const char *key, uint32_t v, um_error *err) {
    return add_scalar(w, key, UM_GGUF_UINT32, v, err);
}
um_status um_gguf_writer_add_i32(um_gguf_writer *w, const char *key, int32_t v, um_error *err) {
    return add_scalar(w, key, UM_GGUF_INT32, (uint64_t)(int64_t)v, err);
}
um_status um_gguf_writer_add_u64(um_gguf_writer *w, const char *key, uint64_t v, um_error *err) {
    return add_scalar(w, key, UM_GGUF_UINT64, v, err);
}
um_status um_gguf_writer_add_i64(um_gguf_writer *w, const char *key, int64_t v, um_error *err) {
    return add_scalar(w, key, UM_GGUF_INT64, (uint64_t)v, err);
}
um_status um_gguf_writer_add_f32(um_gguf_writer *w, const char *key, float v, um_error *err) {
    uint32_t b;
    memcpy(&b, &v, 4);
    return add_scalar(w, key, UM_GGUF_FLOAT32, b, err);
}
um_status um_gguf_writer_add_f64(um_gguf_writer *w, const char *key, double v, um_error *err) {
    uint64_t b;
    memcpy(&b, &v, 8);
    return add_scalar(w, key, UM_GGUF_FLOAT64, b, err);
}
um_status um_gguf_writer_add_bool(um_gguf_writer *w, const char *key, bool v, um_error *err) {
    return add_scalar(w, key, UM_GGUF_BOOL, v ? 1 : 0, err);
}

um_status um_gguf_writer_add_strn(um_gguf_writer *w, const char *key, const char *v, size_t len, um_error *err) {
    if (!v && len)
        return um_fail(err, UM_ERR_ARG, "gguf writer: metadata key '%.100s': NULL string", key ? key : "?");
    if (len > SIZE_MAX - 8)
        return um_fail(err, UM_ERR_ARG, "gguf writer: metadata key '%.100s': string too long", key ? key : "?");
    UM_TRY(kv_begin(w, key, UM_GGUF_STRING, 8 + len, NULL, err));
    kv_put_le(w, len, 8);
    if (len)
        kv_put(w, v, len);
    return UM_OK;
}

um_status um_gguf_writer_add_str(um_gguf_writer *w, const char *key, const char *v, um_error *err) {
    if (!v)
        return um_fail(err, UM_ERR_ARG, "gguf writer: metadata key '%.100s': NULL string", key ? key : "?");
    return um_gguf_writer_add_strn(w, key, v, strlen(v), err);
}

um_status um_gguf_writer_add_arr(um_gguf_writer *w, const char *key, um_gguf_type elem, const void *values,
                                 size_t count, um_error *err) {
    if ((unsigned)elem >= UM_GGUF_TYPE_COUNT || elem == UM_GGUF_STRING || elem == UM_GGUF_ARRAY)
        return um_fail(err, UM_ERR_ARG, "gguf writer: metadata key '%.100s': um_gguf_writer_add_arr takes numbers "
                       "or bools, not %s", key ? key : "?", um_gguf_type_name(elem));
    if (!values && count)
        return um_fail(err, UM_ERR_ARG, "gguf writer: metadata key '%.100s': NULL values", key ? key : "?");
    size_t es = type_size[elem], nb;
    if (!um_mul_size(count, es, &nb) || nb > SIZE_MAX - 12)
        return um_fail(err, UM_ERR_ARG, "gguf writer: metadata key '%.100s': array too large", key ? key : "?");
    UM_TRY(kv_begin(w, key, UM_GGUF_ARRAY, 12 + nb, NULL, err));
    kv_put_le(w, (uint64_t)elem, 4);
    kv_put_le(w, count, 8);
    const uint8_t *p = values;
    for (size_t i = 0; i < count; i++) {
        uint64_t v;
        switch (es) {
        case 1:
            v = elem == UM_GGUF_BOOL ? (((const bool *)values)[i] ? 1 : 0) : p[i];
            break;
        case 2: {
            uint16_t x;
            memcpy(&x, p + 2 * i, 2);
            v = x;
            break;
        }
        case 4: {
            uint32_t x;
            memcpy(&x, p + 4 * i, 4);
            v = x;
            break;
        }
        default:
            memcpy(&v, p + 8 * i, 8);
        }
        kv_put_le(w, v, es);
    }
    return UM_OK;
}

um_status um_gguf_writer_add_str_arr(um_gguf_writer *w, const char *key, const char *const *strs,
                                     const size_t *lens, size_t count, um_error *err) {
    const char *k = key ? key : "?";
    if (!strs && count)
        return um_fail(err, UM_ERR_ARG, "gguf writer: metadata key '%.100s': NULL strings", k);
    size_t nb = 12;
    for (size_t i = 0; i < count; i++) {
        if (!strs[i] && (!lens || lens[i]))
            return um_fail(err, UM_ERR_ARG, "gguf writer: metadata key '%.100s': string %zu is NULL", k, i);
        size_t len = lens ? lens[i] : strlen(strs[i]);
        if (__builtin_add_overflow(nb, len, &nb) || __builtin_add_overflow(nb, 8, &nb))
            return um_fail(err, UM_ERR_ARG, "gguf writer: metadata key '%.100s': array too large", k);
    }
    UM_TRY(kv_begin(w, key, UM_GGUF_ARRAY, nb, NULL, err));
    kv_put_le(w, UM_GGUF_STRING, 4);
    kv_put_le(w, count, 8);
    for (size_t i = 0; i < count; i++) {
        size_t len = lens ? lens[i] : strlen(strs[i]);
        kv_put_le(w, len, 8);
        if (len)
            kv_put(w, strs[i], len);
    }
    return UM_OK;
}

um_status um_gguf_writer_add_kv(um_gguf_writer *w, const um_gguf_kv *kv, um_error *err) {
    if (!kv || (unsigned)kv->type >= UM_GGUF_TYPE_COUNT)
        return um_fail(err, UM_ERR_ARG, "gguf writer: invalid metadata pair");
    bool arr = kv->type == UM_GGUF_ARRAY;
    uint32_t a = 0;
    if (kv->type == UM_GGUF_UINT32)
        a = (uint32_t)le(kv->value, 4);
    if (kv->value_size > SIZE_MAX - 12)
        return um_fail(err, UM_ERR_ARG, "gguf writer: metadata key '%.100s': value too large", kv->key);
    UM_TRY(kv_begin(w, kv->key, kv->type, kv->value_size + (arr ? 12 : 0), kv->type == UM_GGUF_UINT32 ? &a : NULL,
                    err));
    if (arr) {
        kv_put_le(w, (uint64_t)kv->elem_type, 4);
        kv_put_le(w, kv->count, 8);
    }
    if (kv->value_size)
        kv_put(w, kv->value, kv->value_size);
    return UM_OK;
}

static um_status add_tensor(um_gguf_writer *w, const char *name, um_dtype type, int n_dims, const int64_t *ne,
                            const void *data, um_gguf_data_fn fn, void *user, um_error *err) {
    if (!name)
        return um_fail(err, UM_ERR_ARG, "gguf writer: NULL tensor name");
    if (strlen(name) > UM_GGUF_MAX_NAME)
        return um_fail(err, UM_ERR_ARG, "gguf writer: tensor '%.100s': name longer than %d bytes (llama.cpp's limit)",
                       name, UM_GGUF_MAX_NAME);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return um_fail(err, UM_ERR_ARG, "gguf writer: tensor '%.100s' added twice", name);
    int g = um_gguf_ggml_from_dtype(type);
    if (g < 0)
        return um_fail(err, UM_ERR_UNSUPPORTED, "gguf writer: tensor '%.100s': %s has no GGUF type", name,
                       um_dtype_name(type));
    if (n_dims < 0 || n_dims > UM_GGUF_MAX_DIMS || (n_dims > 0 && !ne))
        return um_fail(err, UM_ERR_ARG, "gguf writer: tensor '%.100s': n_dims %d, must be 0 to %d", name, n_dims,
                       UM_GGUF_MAX_DIMS);
    if (!data && !fn)
        return um_fail(err, UM_ERR_ARG, "gguf writer: tensor '%.100s': no data", name);
    wtensor t = {.type = type, .ggml_type = (uint32_t)g, .n_dims = n_dims, .data = data, .fn = fn, .user = user};
    uint64_t numel = 1;
    for (int d = 0; d < UM_GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] < 1 || __builtin_mul_overflow(numel, (uint64_t)t.ne[d], &numel) || numel > INT64_MAX)
            return um_fail(err, UM_ERR_ARG, "gguf writer: tensor '%.100s': ne[%d] = %lld is 0, negative or overflows",
                           name, d, (long long)t.ne[d]);
    }
    uint64_t be = (uint64_t)um_dtype_block_elems(type), nbytes;
    if ((uint64_t)t.ne[0] % be != 0)
        return um_fail(err, UM_ERR_ARG, "gguf writer: tensor '%.100s': ne[0] = %lld is not a multiple of %s's block "
                       "size %llu", name, (long long)t.ne[0], um_dtype_name(type), (unsigned long long)be);
    if (__builtin_mul_overflow(numel / be, (uint64_t)um_dtype_block_bytes(type), &nbytes) || nbytes > SIZE_MAX / 2)
        return um_fail(err, UM_ERR_ARG, "gguf writer: tensor '%.100s': data size overflows", name);
    t.nbytes = (size_t)nbytes;
    t.name = strdup(name);
    if (!t.name || !grow((void **)&w->tensors, &w->tensors_cap, w->n_tensors + 1, sizeof *w->tensors)) {
        free(t.name);
        return um_fail(err, UM_ERR_NOMEM, "gguf writer: out of memory");
    }
    w->tensors[w->n_tensors++] = t;
    return UM_OK;
}

um_status um_gguf_writer_add_tensor(um_gguf_writer *w, const char *name, um_dtype type, int n_dims,
                                    const int64_t *ne, const void *data, um_error *err) {
    if (!data)
        return um_fail(err, UM_ERR_ARG, "gguf writer: tensor '%.100s': NULL data", name ? name : "?");
    return add_tensor(w, name, type, n_dims, ne, data, NULL, NULL, err);
}

um_status um_gguf_writer_add_tensor_fn(um_gguf_writer *w, const char *name, um_dtype type, int n_dims,
                                       const int64_t *ne, um_gguf_data_fn fn, void *user, um_error *err) {
    if (!fn)
        return um_fail(err, UM_ERR_ARG, "gguf writer: tensor '%.100s': NULL data callback", name ? name : "?");
    return add_tensor(w, name, type, n_dims, ne, NULL, fn, user, err);
}

static um_status out(FILE *fp, const void *p, size_t n, const char *label, um_error *err) {
    if (n && fwrite(p, 1, n, fp) != n)
        return um_fail(err, UM_ERR_IO, "%s: write failed: %s", label, strerror(errno));
    return UM_OK;
}

static um_status out_le(FILE *fp, uint64_t v, size_t n, const char *label, um_error *err) {
    uint8_t b[8];
    put_le(b, v, n);
    return out(fp, b, n, label, err);
}

static um_status out_zeros(FILE *fp, size_t n, const char *label, um_error *err) {
    static const uint8_t zeros[4096];
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        UM_TRY(out(fp, zeros, k, label, err));
        n -= k;
    }
    return UM_OK;
}

static size_t pad_to(uint64_t pos, uint32_t align) { return (size_t)((align - pos % align) % align); }

um_status um_gguf_sink_write(um_gguf_sink *sink, const void *data, size_t n, um_error *err) {
    if (n > sink->left)
        return um_fail(err, UM_ERR_ARG, "%s: tensor '%.100s': the data callback wrote %zu bytes more than the tensor "
                       "holds", sink->label, sink->tensor, n - sink->left);
    sink->left -= n;
    return out(sink->fp, data, n, sink->label, err);
}

um_status um_gguf_writer_write_fp(um_gguf_writer *w, FILE *fp, const char *label, um_error *err) {
    /* offsets: each tensor starts aligned, in the order added */
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        if (off > UINT64_MAX - w->tensors[i].nbytes - w->alignment)
            return um_fail(err, UM_ERR_ARG, "%s: tensor data too large", label);
        off += w->tensors[i].nbytes;
        off += pad_to(off, w->alignment);
    }
    uint64_t pos = 24 + w->kv_len;
    UM_TRY(out(fp, "GGUF", 4, label, err));
    UM_TRY(out_le(fp, 3, 4, label, err));
    UM_TRY(out_le(fp, w->n_tensors, 8, label, err));
    UM_TRY(out_le(fp, w->n_kv, 8, label, err));
    UM_TRY(out(fp, w->kv_buf, w->kv_len, label, err));
    off = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        size_t len = strlen(t->name);
        UM_TRY(out_le(fp, len, 8, label, err));
        UM_TRY(out(fp, t->name, len, label, err));
        UM_TRY(out_le(fp, (uint64_t)t->n_dims, 4, label, err));
        for (int d = 0; d < t->n_dims; d++)
            UM_TRY(out_le(fp, (uint64_t)t->ne[d], 8, label, err));
        UM_TRY(out_le(fp, t->ggml_type, 4, label, err));
        UM_TRY(out_le(fp, off, 8, label, err));
        pos += 8 + len + 4 + 8 * (uint64_t)t->n_dims + 4 + 8;
        off += t->nbytes;
        off += pad_to(off, w->alignment);
    }
    UM_TRY(out_zeros(fp, pad_to(pos, w->alignment), label, err));
    for (size_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        if (t->data) {
            UM_TRY(out(fp, t->data, t->nbytes, label, err));
        } else {
            um_gguf_sink sink = {fp, label, t->name, t->nbytes};
            um_status s = t->fn(t->user, t->name, &sink, err);
            if (s != UM_OK)
                return s;
            if (sink.left)
                return um_fail(err, UM_ERR_ARG, "%s: tensor '%.100s': the data callback wrote %zu of its %zu bytes",
                               label, t->name, t->nbytes - sink.left, t->nbytes);
        }
        UM_TRY(out_zeros(fp, pad_to(t->nbytes, w->alignment), label, err));
    }
    if (fflush(fp) != 0)
        return um_fail(err, UM_ERR_IO, "%s: write failed: %s", label, strerror(errno));
    return UM_OK;
}

um_status um_gguf_writer_write(um_gguf_writer *w, const char *path, um_error *err) {
    char partial[4200];
    FILE *fp = um_open_partial(path, partial, sizeof partial);
    if (!fp)
        return um_fail(err, UM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    return um_finish_partial(fp, partial, path, um_gguf_writer_write_fp(w, fp, path, err), err);
}
