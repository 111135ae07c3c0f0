#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EXACT_INT 9007199254740992.0 /* 2^53: JSON numbers above are not exact doubles */

/* A JSON number that is a non-negative integer, as a uint64. */
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v))
        return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d < MAX_EXACT_INT) || d != (double)(uint64_t)d)
        return 0;
    *out = (uint64_t)d;
    return 1;
}

static int cmp_by_offset(const void *a, const void *b) {
    const um_st_tensor *x = *(const um_st_tensor *const *)a, *y = *(const um_st_tensor *const *)b;
    if (x->data != y->data)
        return x->data < y->data ? -1 : 1;
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

/* Reads one header entry into t; data_start/data_size bound the data area. */
static um_status parse_entry(const cJSON *e, const uint8_t *data_start, size_t data_size, const char *label,
                             um_st_tensor *t, um_error *err) {
    if (!cJSON_IsObject(e))
        return um_fail(err, UM_ERR_FORMAT, "%s: tensor '%s': header entry is not an object", label, e->string);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
        return um_fail(err, UM_ERR_FORMAT, "%s: tensor '%s': needs string 'dtype', arrays 'shape' and 'data_offsets'",
                       label, e->string);
    int dtype = um_dtype_from_name(dt->valuestring);
    if (dtype < 0)
        return um_fail(err, UM_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%.32s'", label, e->string,
                       dt->valuestring);
    t->dtype = (um_dtype)dtype;
    int n_dims = cJSON_GetArraySize(sh);
    if (n_dims > UM_ST_MAX_DIMS)
        return um_fail(err, UM_ERR_FORMAT, "%s: tensor '%s': %d dimensions, at most %d supported", label, e->string,
                       n_dims, UM_ST_MAX_DIMS);
    t->n_dims = n_dims;
    size_t numel = 1;
    for (int i = 0; i < n_dims; i++) {
        uint64_t d;
        if (!json_uint(cJSON_GetArrayItem(sh, i), &d) || d > INT64_MAX || !um_mul_size(numel, (size_t)d, &numel))
            return um_fail(err, UM_ERR_FORMAT, "%s: tensor '%s': invalid or overflowing shape", label, e->string);
        t->shape[i] = (int64_t)d;
    }
    size_t nbytes;
    if (!um_mul_size(numel, um_dtype_size(t->dtype), &nbytes))
        return um_fail(err, UM_ERR_FORMAT, "%s: tensor '%s': size overflows", label, e->string);
    uint64_t begin, end;
    if (cJSON_GetArraySize(off) != 2 || !json_uint(cJSON_GetArrayItem(off, 0), &begin) ||
        !json_uint(cJSON_GetArrayItem(off, 1), &end) || begin > end)
        return um_fail(err, UM_ERR_FORMAT, "%s: tensor '%s': data_offsets must be two integers begin <= end", label,
                       e->string);
    if (end > data_size)
        return um_fail(err, UM_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the data (%zu bytes)", label,
                       e->string, (unsigned long long)begin, (unsigned long long)end, data_size);
    if (end - begin != nbytes)
        return um_fail(err, UM_ERR_FORMAT, "%s: tensor '%s': %llu bytes of data, but dtype %s and shape need %zu",
                       label, e->string, (unsigned long long)(end - begin), um_dtype_name(t->dtype), nbytes);
    t->data = data_start + begin;
    t->nbytes = nbytes;
    return UM_OK;
}

/* The spec requires the data area to be covered exactly: no overlaps, no holes. */
static um_status check_coverage(um_st_file *f, const uint8_t *data_start, size_t data_size, const char *label,
                                um_error *err) {
    if (f->n_tensors == 0)
        return data_size == 0 ? UM_OK
                              : um_fail(err, UM_ERR_FORMAT, "%s: %zu bytes of data but no tensors", label, data_size);
    um_st_tensor **order = malloc((size_t)f->n_tensors * sizeof *order);
    if (!order)
        return um_fail(err, UM_ERR_NOMEM, "%s: out of memory", label);
    for (int i = 0; i < f->n_tensors; i++)
        order[i] = &f->tensors[i];
    qsort(order, (size_t)f->n_tensors, sizeof *order, cmp_by_offset);
    const uint8_t *expect = data_start;
    um_status s = UM_OK;
    for (int i = 0; i < f->n_tensors && s == UM_OK; i++) {
        if (order[i]->data < expect)
            s = um_fail(err, UM_ERR_FORMAT, "%s: tensor '%s' overlaps tensor '%s'", label, order[i]->name,
                        order[i - 1]->name);
        else if (order[i]->data > expect)
            s = um_fail(err, UM_ERR_FORMAT, "%s: hole of %zu bytes in the data before tensor '%s'", label,
                        (size_t)(order[i]->data - expect), order[i]->name);
        expect = order[i]->data + order[i]->nbytes;
    }
    if (s == UM_OK && expect != data_start + data_size)
        s = um_fail(err, UM_ERR_FORMAT, "%s: %zu bytes after the last tensor", label,
                    (size_t)(data_start + data_size - expect));
    free(order);
    return s;
}

um_status um_st_parse(const uint8_t *buf, size_t size, const char *label, um_st_file *f, um_error *err) {
    memset(f, 0, sizeof *f);
    if (size < 8)
        return um_fail(err, UM_ERR_FORMAT, "%s: %zu bytes, too short for the 8-byte header length", label, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
    if (hlen > size - 8)
        return um_fail(err, UM_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", label,
                       (unsigned long long)hlen, size);
    if (hlen > UM_ST_MAX_HEADER)
        return um_fail(err, UM_ERR_FORMAT, "%s: header length %llu exceeds the %u-byte limit", label,
                       (unsigned long long)hlen, UM_ST_MAX_HEADER);
    const char *hdr = (const char *)buf + 8;
    if (hlen < 2 || hdr[0] != '{')
        return um_fail(err, UM_ERR_FORMAT, "%s: header is not a JSON object", label);
    const char *json_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &json_end, 0);
    if (!root) {
        size_t at = json_end ? (size_t)(json_end - hdr) : 0;
        return um_fail(err, UM_ERR_FORMAT, "%s: header is not valid JSON (near byte %zu of the header)", label, at);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return um_fail(err, UM_ERR_FORMAT, "%s: header is not a JSON object", label);
    }
    /* the spec allows only whitespace padding after the object: anything else
     * means the header length or the JSON is wrong */
    for (const char *p = json_end; p < hdr + hlen; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return um_fail(err, UM_ERR_FORMAT, "%s: header has bytes other than padding after the JSON object "
                           "(at byte %zu of the header)", label, (size_t)(p - hdr));
        }
    }
    const uint8_t *data_start = buf + 8 + hlen;
    size_t data_size = size - 8 - (size_t)hlen;
    int n = 0;
    for (const cJSON *e = root->child; e; e = e->next)
        n++;
    f->tensors = calloc((size_t)n + 1, sizeof *f->tensors);
    um_status s = f->tensors ? UM_OK : um_fail(err, UM_ERR_NOMEM, "%s: out of memory", label);
    for (const cJSON *e = root->child; e && s == UM_OK; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0)
            continue; /* free-form string map; nothing we need */
        if (um_st_find(f, e->string)) {
            s = um_fail(err, UM_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", label, e->string);
            break;
        }
        um_st_tensor *t = &f->tensors[f->n_tensors];
        s = parse_entry(e, data_start, data_size, label, t, err);
        if (s == UM_OK) {
            t->name = strdup(e->string);
            if (!t->name)
                s = um_fail(err, UM_ERR_NOMEM, "%s: out of memory", label);
            else
                f->n_tensors++;
        }
    }
    cJSON_Delete(root);
    if (s == UM_OK)
        s = check_coverage(f, data_start, data_size, label, err);
    if (s != UM_OK)
        um_st_close(f);
    return s;
}

um_status um_st_open(const char *path, um_st_file *f, um_error *err) {
    um_mapped_file map;
    memset(f, 0, sizeof *f);
    UM_TRY(um_map_file(path, &map, err));
    um_status s = um_st_parse(map.data, map.size, path, f, err);
    if (s != UM_OK) {
        um_unmap_file(&map);
        return s;
    }
    f->map = map;
    f->path = strdup(path);
    if (!f->path) {
        um_st_close(f);
        return um_fail(err, UM_ERR_NOMEM, "%s: out of memory", path);
    }
    return UM_OK;
}

void um_st_close(um_st_file *f) {
    for (int i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    free(f->path);
    um_unmap_file(&f->map);
    memset(f, 0, sizeof *f);
}

const um_st_tensor *um_st_find(const um_st_file *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

int64_t um_st_numel(const um_st_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++)
        n *= t->shape[i];
    return n;
}

size_t um_st_desc_nbytes(const um_st_desc *d) {
    size_t n = um_dtype_size(d->dtype);
    for (int i = 0; i < d->n_dims; i++)
        n *= (size_t)d->shape[i];
    return n;
}

um_status um_st_write_header(FILE *fp, const um_st_desc *descs, int n, const char *path, um_error *err) {
    cJSON *root = cJSON_CreateObject();
    size_t offset = 0;
    for (int i = 0; root && i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, descs[i].name);
        double shape[UM_ST_MAX_DIMS];
        for (int d = 0; d < descs[i].n_dims; d++)
            shape[d] = (double)descs[i].shape[d];
        size_t nbytes = um_st_desc_nbytes(&descs[i]);
        double offsets[2] = {(double)offset, (double)(offset + nbytes)};
        offset += nbytes;
        if (!e || !cJSON_AddStringToObject(e, "dtype", um_dtype_name(descs[i].dtype)) ||
            !cJSON_AddItemToObject(e, "shape", cJSON_CreateDoubleArray(shape, descs[i].n_dims)) ||
            !cJSON_AddItemToObject(e, "data_offsets", cJSON_CreateDoubleArray(offsets, 2))) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    char *json = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json)
        return um_fail(err, UM_ERR_NOMEM, "%s: out of memory building the header", path);
    /* pad with spaces so the data starts 8-byte aligned, as the reference writer does */
    size_t len = strlen(json), padded = (len + 7) & ~(size_t)7;
    uint8_t lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int ok = fwrite(lenbuf, 1, 8, fp) == 8 && fwrite(json, 1, len, fp) == len;
    for (size_t i = len; ok && i < padded; i++)
        ok = fputc(' ', fp) != EOF;
    free(json);
    return ok ? UM_OK : um_fail(err, UM_ERR_IO, "%s: write failed: %s", path, strerror(errno));
}

um_status um_st_write(const char *path, const um_st_desc *descs, int n, um_error *err) {
    char partial[4200];
    FILE *fp = um_open_partial(path, partial, sizeof partial);
    if (!fp)
        return um_fail(err, UM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    um_status s = um_st_write_header(fp, descs, n, path, err);
    for (int i = 0; s == UM_OK && i < n; i++) {
        size_t nb = um_st_desc_nbytes(&descs[i]);
        if (fwrite(descs[i].data, 1, nb, fp) != nb)
            s = um_fail(err, UM_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return um_finish_partial(fp, partial, path, s, err);
}
