/* Bad input never crashes: truncated or corrupt safetensors files, missing or
 * unexpected tensors, shapes that disagree with config.json, unsupported
 * architectures, broken shard indexes, out-of-vocabulary token ids and
 * lengths the sampler cannot split. Each must give a non-OK status and a
 * one-line message naming the file and the tensor, key or parameter at
 * fault; through the command line, a non-zero exit and one error line.
 *
 * Every hostile input is built at test time in a temporary directory from a
 * copy of a fixture model, corrupting one thing per case. The inputs kept by
 * the fuzzers (fuzz/regressions) are replayed here too. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/safetensors.h"
#include "model/model.h"
#include "testutil.h"

#define BF16_DIR "llada/tiny-llada/hf-bf16"
#define SHARDED_DIR "llada/tiny-llada/hf-f32-sharded"
#define INDEX "model.safetensors.index.json"
#define SHARD1 "model-00001-of-00002.safetensors"
#define SHARD2 "model-00002-of-00002.safetensors"
#define WTE "model.transformer.wte.weight"
#define LN_F "model.transformer.ln_f.weight"
#define HEAD "model.transformer.ff_out.weight"
#define B0_ATTN_NORM "model.transformer.blocks.0.attn_norm.weight"
#define B0_FF_NORM "model.transformer.blocks.0.ff_norm.weight"
#define B0_Q "model.transformer.blocks.0.q_proj.weight"
#define B1_Q "model.transformer.blocks.1.q_proj.weight"
#define B1_V "model.transformer.blocks.1.v_proj.weight"
#define B2_Q "model.transformer.blocks.2.q_proj.weight"

/* ---- scratch model directories -------------------------------------------- */

typedef struct {
    char *dir;
    char cfg[4200];   /* dir/config.json */
    char st[4200];    /* dir/model.safetensors (single-file layout) */
    char index[4200]; /* dir/model.safetensors.index.json (sharded layout) */
    char shard1[4200], shard2[4200];
} scratch;

static void copy_fixture_file(const char *layout, const char *name, const char *to) {
    char rel[512];
    snprintf(rel, sizeof rel, "%s/%s", layout, name);
    copy_file(fixture(rel), to);
}

/* A temporary copy of the BF16 single-file model: config.json + model.safetensors. */
static void scratch_single(scratch *s) {
    memset(s, 0, sizeof *s);
    s->dir = make_temp_dir();
    snprintf(s->cfg, sizeof s->cfg, "%s/config.json", s->dir);
    snprintf(s->st, sizeof s->st, "%s/model.safetensors", s->dir);
    copy_fixture_file(BF16_DIR, "config.json", s->cfg);
    copy_fixture_file(BF16_DIR, "model.safetensors", s->st);
}

/* A temporary copy of the F32 sharded model: config.json, the index, two shards. */
static void scratch_sharded(scratch *s) {
    memset(s, 0, sizeof *s);
    s->dir = make_temp_dir();
    snprintf(s->cfg, sizeof s->cfg, "%s/config.json", s->dir);
    snprintf(s->index, sizeof s->index, "%s/" INDEX, s->dir);
    snprintf(s->shard1, sizeof s->shard1, "%s/" SHARD1, s->dir);
    snprintf(s->shard2, sizeof s->shard2, "%s/" SHARD2, s->dir);
    copy_fixture_file(SHARDED_DIR, "config.json", s->cfg);
    copy_fixture_file(SHARDED_DIR, INDEX, s->index);
    copy_fixture_file(SHARDED_DIR, SHARD1, s->shard1);
    copy_fixture_file(SHARDED_DIR, SHARD2, s->shard2);
}

static void write_text(const char *path, const char *text) { write_file(path, text, strlen(text)); }

static void scratch_free(scratch *s) {
    remove_tree(s->dir);
    free(s->dir);
}

/* ---- expectations ---------------------------------------------------------- */

static void check_one_line(const um_error *err) {
    assert_true(err->msg[0] != 0);
    if (strchr(err->msg, '\n') || strchr(err->msg, '\r'))
        fail_msg("message is not one line: '%s'", err->msg);
}

static void check_names(const char *msg, va_list ap) {
    for (const char *name; (name = va_arg(ap, const char *)) != NULL;)
        if (!strstr(msg, name))
            fail_msg("message '%s' does not name '%s'", msg, name);
}

/* um_model_open(dir) fails with code, no model, and a one-line message
 * containing every string of the NULL-terminated list. */
static void expect_open_fails_(const char *dir, um_status code, ...) {
    um_model_params mp = {1, false};
    um_model *m = (um_model *)&mp; /* must be reset to NULL */
    um_error err;
    memset(&err, 0, sizeof err);
    um_status s = um_model_open(dir, &mp, &m, &err);
    if (s == UM_OK) {
        um_model_close(m);
        fail_msg("%s: opened, expected %s", dir, um_status_name(code));
    }
    if (s != code)
        fail_msg("expected %s, got %s: %s", um_status_name(code), um_status_name(s), err.msg);
    assert_null(m);
    assert_int_equal(err.code, code);
    check_one_line(&err);
    va_list ap;
    va_start(ap, code);
    check_names(err.msg, ap);
    va_end(ap);
}
#define expect_open_fails(dir, code, ...) expect_open_fails_(dir, code, __VA_ARGS__, (const char *)NULL)

/* um_st_parse of buf fails with UM_ERR_FORMAT and names label and the rest. */
static void expect_parse_fails_(const void *buf, size_t n, ...) {
    um_st_file f;
    um_error err;
    memset(&err, 0, sizeof err);
    um_status s = um_st_parse(buf, n, "hostile.safetensors", &f, &err);
    if (s == UM_OK) {
        um_st_close(&f);
        fail_msg("parsed a hostile image of %zu bytes", n);
    }
    assert_int_equal(s, UM_ERR_FORMAT);
    assert_int_equal(f.n_tensors, 0);
    assert_null(f.tensors);
    check_one_line(&err);
    assert_non_null(strstr(err.msg, "hostile.safetensors"));
    va_list ap;
    va_start(ap, n);
    check_names(err.msg, ap);
    va_end(ap);
}
#define expect_parse_fails(buf, n, ...) expect_parse_fails_(buf, n, __VA_ARGS__, (const char *)NULL)

/* ---- raw safetensors images ----------------------------------------------- */

/* A safetensors file split into its parsed header and its data area. */
typedef struct {
    cJSON *header;
    uint8_t *data;
    size_t data_size;
} st_image;

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void st_load(const char *path, st_image *im) {
    size_t n;
    uint8_t *buf = read_whole_file(path, &n);
    assert_true(n >= 8);
    uint64_t hlen = le64(buf);
    assert_true(hlen <= n - 8);
    im->header = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
    assert_non_null(im->header);
    im->data_size = n - 8 - (size_t)hlen;
    im->data = malloc(im->data_size + 64); /* room for st_append */
    memcpy(im->data, buf + 8 + hlen, im->data_size);
    free(buf);
}

/* Writes header text (padded with pad spaces) and data as a safetensors file. */
static void write_raw(const char *path, const char *header, size_t pad, const uint8_t *data, size_t data_size) {
    size_t hlen = strlen(header) + pad, n = 8 + hlen + data_size;
    uint8_t *buf = malloc(n);
    put_le64(buf, hlen);
    memcpy(buf + 8, header, strlen(header));
    memset(buf + 8 + strlen(header), ' ', pad);
    if (data_size)
        memcpy(buf + 8 + hlen, data, data_size);
    write_file(path, buf, n);
    free(buf);
}

/* Writes im with its header padded to a multiple of 8 plus extra_pad. */
static void st_save(const char *path, const st_image *im, size_t extra_pad) {
    char *text = cJSON_PrintUnformatted(im->header);
    size_t len = strlen(text);
    write_raw(path, text, ((len + 7) & ~(size_t)7) - len + extra_pad, im->data, im->data_size);
    free(text);
}

static void st_free(st_image *im) {
    cJSON_Delete(im->header);
    free(im->data);
}

static cJSON *st_entry(st_image *im, const char *tensor) {
    cJSON *e = cJSON_GetObjectItemCaseSensitive(im->header, tensor);
    if (!e)
        fail_msg("fixture has no tensor '%s'", tensor);
    return e;
}

/* Sets tensor's key (dtype, shape, data_offsets) to the JSON value in text. */
static void st_set(st_image *im, const char *tensor, const char *key, const char *json) {
    cJSON *v = cJSON_Parse(json);
    assert_non_null(v);
    cJSON *e = st_entry(im, tensor);
    if (cJSON_GetObjectItemCaseSensitive(e, key))
        assert_true(cJSON_ReplaceItemInObjectCaseSensitive(e, key, v));
    else
        cJSON_AddItemToObject(e, key, v);
}

/* The model's safetensors file with tensor's key set to json: one edit. */
static void corrupt_entry(const char *path, const char *tensor, const char *key, const char *json) {
    st_image im;
    st_load(path, &im);
    st_set(&im, tensor, key, json);
    st_save(path, &im, 0);
    st_free(&im);
}

/* Rewrites the safetensors file at path through um_st_write: the same
 * tensors, less drop (may be NULL), with put (may be NULL) replacing the
 * tensor of its name or appended. */
static void rewrite_tensors(const char *path, const char *drop, const um_st_desc *put) {
    size_t n;
    uint8_t *bytes = read_whole_file(path, &n); /* parsed in memory: the file is rewritten below */
    um_st_file f;
    um_error err;
    if (um_st_parse(bytes, n, path, &f, &err) != UM_OK)
        fail_msg("%s", err.msg);
    um_st_desc *descs = calloc((size_t)f.n_tensors + 1, sizeof *descs);
    int count = 0;
    bool replaced = false;
    for (int i = 0; i < f.n_tensors; i++) {
        const um_st_tensor *t = &f.tensors[i];
        if (drop && strcmp(t->name, drop) == 0)
            continue;
        if (put && strcmp(t->name, put->name) == 0) {
            descs[count++] = *put;
            replaced = true;
            continue;
        }
        um_st_desc *d = &descs[count++];
        d->name = t->name;
        d->dtype = t->dtype;
        d->n_dims = t->n_dims;
        memcpy(d->shape, t->shape, sizeof d->shape);
        d->data = t->data;
    }
    if (put && !replaced)
        descs[count++] = *put;
    assert_int_equal(count, f.n_tensors - (drop ? 1 : 0) + (put && !replaced ? 1 : 0));
    if (um_st_write(path, descs, count, &err) != UM_OK)
        fail_msg("%s", err.msg);
    free(descs);
    um_st_close(&f);
    free(bytes);
}

/* ---- config.json edits ----------------------------------------------------- */

/* Sets key of the config at path to the JSON value in text (NULL: removes it). */
static void config_set(const char *path, const char *key, const char *json) {
    size_t n;
    char *text = read_whole_file(path, &n);
    cJSON *cfg = cJSON_Parse(text);
    free(text);
    assert_non_null(cfg);
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, key);
    if (json) {
        cJSON *v = cJSON_Parse(json);
        assert_non_null(v);
        cJSON_AddItemToObject(cfg, key, v);
    }
    char *out = cJSON_Print(cfg);
    write_file(path, out, strlen(out));
    free(out);
    cJSON_Delete(cfg);
}

/* One config.json edit on a fresh copy of the BF16 model, then expect_open_fails. */
#define CONFIG_CASE(key, json, code, ...)                   \
    do {                                                    \
        scratch s_;                                         \
        scratch_single(&s_);                                \
        config_set(s_.cfg, key, json);                      \
        expect_open_fails(s_.dir, code, s_.cfg, __VA_ARGS__); \
        scratch_free(&s_);                                  \
    } while (0)

/* ---- truncated and malformed files ------------------------------------------ */

/* Cut points: inside the length, right after it, inside the header, right
 * after it (no data), inside the data, one byte short. */
static void truncated_file(void **state) {
    scratch s;
    scratch_single(&s);
    size_t n;
    uint8_t *full = read_whole_file(s.st, &n);
    uint64_t hlen = le64(full);
    char hlen_text[32];
    snprintf(hlen_text, sizeof hlen_text, "header length %llu", (unsigned long long)hlen);
    const struct {
        size_t cut;
        const char *names[2];
    } cases[] = {
        {0, {"0 bytes, too short", NULL}},
        {5, {"5 bytes, too short", NULL}},
        {8, {hlen_text, "runs past the end of the file"}},
        {100, {hlen_text, "runs past the end of the file"}},
        {8 + (size_t)hlen - 1, {hlen_text, "runs past the end of the file"}},
        {8 + (size_t)hlen, {"tensor '", "run past the end of the data (0 bytes)"}},
        {8 + (size_t)hlen + 1000, {"tensor '", "run past the end of the data (1000 bytes)"}},
        {n / 2, {"tensor '", "run past the end of the data"}},
        {n - 1, {"tensor '" HEAD "'", "run past the end of the data"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        print_message("    cut at %zu of %zu bytes\n", cases[i].cut, n);
        write_file(s.st, full, cases[i].cut);
        expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, cases[i].names[0], cases[i].names[1] ? cases[i].names[1] : "");
    }
    free(full);
    scratch_free(&s);
}

static void shorter_than_8_bytes(void **state) {
    scratch s;
    scratch_single(&s);
    write_file(s.st, "\x10\0\0", 3);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "3 bytes", "8-byte header length");
    for (size_t n = 0; n < 8; n++)
        expect_parse_fails("\xff\xff\xff\xff\xff\xff\xff", n, "too short");
    scratch_free(&s);
}

static void header_length_past_end(void **state) {
    scratch s;
    scratch_single(&s);
    size_t n;
    uint8_t *full = read_whole_file(s.st, &n);
    put_le64(full, n - 7); /* one byte more than the file holds after the length */
    write_file(s.st, full, n);
    char want[64];
    snprintf(want, sizeof want, "header length %zu runs past the end of the file (%zu bytes)", n - 7, n);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, want);
    free(full);
    scratch_free(&s);
}

static void header_length_huge(void **state) {
    scratch s;
    scratch_single(&s);
    size_t n;
    uint8_t *full = read_whole_file(s.st, &n);
    put_le64(full, (uint64_t)1 << 63);
    write_file(s.st, full, n);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "header length 9223372036854775808", "past the end");
    put_le64(full, UINT64_MAX); /* size - 8 + hlen would wrap: must not */
    write_file(s.st, full, n);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "header length 18446744073709551615", "past the end");
    free(full);
    scratch_free(&s);
}

/* A header length inside the file but over the 100 MiB limit: a sparse file,
 * so nothing is written or read beyond the first bytes. */
static void header_length_over_limit(void **state) {
    scratch s;
    scratch_single(&s);
    uint8_t len[8];
    put_le64(len, (uint64_t)UM_ST_MAX_HEADER + 1);
    write_file(s.st, len, 8);
    assert_int_equal(truncate(s.st, (off_t)UM_ST_MAX_HEADER + 4096), 0);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "header length 104857601", "limit");
    scratch_free(&s);
}

static void invalid_json_header(void **state) {
    scratch s;
    scratch_single(&s);
    const uint8_t data[16] = {0};
    write_raw(s.st, "{\"" LN_F "\": {\"dtype\": \"BF16\", \"shape\": [8", 3, data, sizeof data);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "header is not valid JSON");
    write_raw(s.st, "{\"a\" 1}", 1, data, sizeof data);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "header is not valid JSON", "near byte 5");
    write_raw(s.st, "{\"a\": \"\xff\xfe", 0, data, 0); /* unterminated string at the very end of the file */
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "header is not valid JSON");
    scratch_free(&s);
}

static void header_not_an_object(void **state) {
    scratch s;
    scratch_single(&s);
    const char *headers[] = {"[1, 2, 3]", "\"tensors\"", "42", "null", " {}", "\xef\xbb\xbf{}"};
    for (size_t i = 0; i < sizeof headers / sizeof *headers; i++) {
        write_raw(s.st, headers[i], 7, NULL, 0);
        expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "header is not a JSON object");
    }
    /* an object whose entries are not objects */
    write_raw(s.st, "{\"" LN_F "\": [1, 2]}", 0, NULL, 0);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, LN_F, "header entry is not an object");
    scratch_free(&s);
}

/* Bytes after the JSON object other than the spaces that pad it. */
static void header_trailing_garbage(void **state) {
    scratch s;
    scratch_single(&s);
    st_image im;
    st_load(s.st, &im);
    char *text = cJSON_PrintUnformatted(im.header);
    size_t len = strlen(text);
    char *garbage = malloc(len + 16);
    snprintf(garbage, len + 16, "%s  xyz", text);
    write_raw(s.st, garbage, 0, im.data, im.data_size);
    char want[64];
    snprintf(want, sizeof want, "at byte %zu of the header", len + 2);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "after the JSON object", want);
    snprintf(garbage, len + 16, "%s\n\t\r ", text); /* whitespace is fine: the model loads */
    write_raw(s.st, garbage, 4, im.data, im.data_size);
    um_model *m = NULL;
    um_error err;
    um_model_params mp = {1, false};
    if (um_model_open(s.dir, &mp, &m, &err) != UM_OK)
        fail_msg("%s", err.msg);
    um_model_close(m);
    free(garbage);
    free(text);
    st_free(&im);
    scratch_free(&s);
}

static void offsets_past_end(void **state) {
    scratch s;
    scratch_single(&s);
    st_image im;
    st_load(s.st, &im);
    char json[64];
    snprintf(json, sizeof json, "[%zu, %zu]", im.data_size, im.data_size + 128);
    st_free(&im);
    corrupt_entry(s.st, LN_F, "data_offsets", json);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor '" LN_F "'", "run past the end of the data");
    /* far past, near 2^53, where begin + size arithmetic could wrap if done carelessly */
    corrupt_entry(s.st, LN_F, "data_offsets", "[9007199254740000, 9007199254740128]");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor '" LN_F "'", "run past the end of the data");
    scratch_free(&s);
}

/* blocks.0.ff_norm moved onto blocks.0.attn_norm's bytes (same size). */
static void overlapping_offsets(void **state) {
    scratch s;
    scratch_single(&s);
    st_image im;
    st_load(s.st, &im);
    char *offs = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(st_entry(&im, B0_ATTN_NORM), "data_offsets"));
    st_set(&im, B0_FF_NORM, "data_offsets", offs);
    st_save(s.st, &im, 0);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "overlaps", B0_ATTN_NORM, B0_FF_NORM);
    /* a partial overlap: ln_f's range shifted half-way into the tensor before it */
    st_free(&im);
    st_load(s.st, &im);
    cJSON *ln = cJSON_GetObjectItemCaseSensitive(st_entry(&im, LN_F), "data_offsets");
    double b = cJSON_GetArrayItem(ln, 0)->valuedouble, e = cJSON_GetArrayItem(ln, 1)->valuedouble;
    char json[64];
    snprintf(json, sizeof json, "[%.0f, %.0f]", b - 64, e - 64);
    st_set(&im, LN_F, "data_offsets", json);
    st_save(s.st, &im, 0);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "overlaps", LN_F);
    free(offs);
    st_free(&im);
    scratch_free(&s);
}

/* The last tensor moved 8 bytes later: a hole; or 8 stray bytes at the end. */
static void hole_between_tensors(void **state) {
    scratch s;
    scratch_single(&s);
    st_image im;
    st_load(s.st, &im);
    cJSON *head = cJSON_GetObjectItemCaseSensitive(st_entry(&im, HEAD), "data_offsets");
    double b = cJSON_GetArrayItem(head, 0)->valuedouble, e = cJSON_GetArrayItem(head, 1)->valuedouble;
    assert_true(e == (double)im.data_size); /* the fixture stores the output head last */
    memset(im.data + im.data_size, 0, 8);
    im.data_size += 8;
    st_save(s.st, &im, 0);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "8 bytes after the last tensor");
    char json[64];
    snprintf(json, sizeof json, "[%.0f, %.0f]", b + 8, e + 8);
    st_set(&im, HEAD, "data_offsets", json);
    st_save(s.st, &im, 0);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "hole of 8 bytes", "before tensor '" HEAD "'");
    st_free(&im);
    scratch_free(&s);
}

static void begin_after_end(void **state) {
    scratch s;
    scratch_single(&s);
    corrupt_entry(s.st, LN_F, "data_offsets", "[65664, 65536]");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor '" LN_F "'", "begin <= end");
    const char *bad[] = {"[0]", "[0, 128, 256]", "[\"65536\", \"65664\"]", "[-128, 0]", "[65536.5, 65664]",
                         "[65536, 1e300]", "{\"begin\": 0}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        corrupt_entry(s.st, LN_F, "data_offsets", bad[i]);
        expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor '" LN_F "'", "data_offsets");
    }
    scratch_free(&s);
}

/* ln_f holds 64 BF16 values (128 bytes); a shape of 63 needs 126. */
static void byte_count_disagrees_with_shape(void **state) {
    scratch s;
    scratch_single(&s);
    corrupt_entry(s.st, LN_F, "shape", "[63]");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor '" LN_F "'", "128 bytes of data",
                      "dtype BF16 and shape need 126");
    corrupt_entry(s.st, LN_F, "shape", "[64]");
    corrupt_entry(s.st, LN_F, "dtype", "\"F32\""); /* same shape, twice the bytes */
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor '" LN_F "'", "dtype F32 and shape need 256");
    scratch_free(&s);
}

static void unknown_dtype(void **state) {
    scratch s;
    scratch_single(&s);
    corrupt_entry(s.st, LN_F, "dtype", "\"F17\"");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor '" LN_F "'", "unknown dtype 'F17'");
    corrupt_entry(s.st, LN_F, "dtype", "\"bf16\""); /* names are case-sensitive */
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor '" LN_F "'", "unknown dtype 'bf16'");
    corrupt_entry(s.st, LN_F, "dtype", "2");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor '" LN_F "'", "string 'dtype'");
    scratch_free(&s);
}

static void bad_shape_values(void **state) {
    scratch s;
    scratch_single(&s);
    const char *bad[] = {"[64.5]", "[-64]", "[\"64\"]", "[null]", "[1e300]", "[true]",
                         "[4503599627370496, 4096]" /* 2^64 elements: overflows */};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        corrupt_entry(s.st, LN_F, "shape", bad[i]);
        expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor '" LN_F "'", "invalid or overflowing shape");
    }
    corrupt_entry(s.st, LN_F, "shape", "[1, 1, 1, 1, 1, 1, 1, 1, 64]");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor '" LN_F "'", "9 dimensions");
    corrupt_entry(s.st, LN_F, "shape", "64");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor '" LN_F "'", "arrays 'shape'");
    scratch_free(&s);
}

static void entry_missing_a_field(void **state) {
    scratch s;
    scratch_single(&s);
    st_image im;
    st_load(s.st, &im);
    cJSON_DeleteItemFromObjectCaseSensitive(st_entry(&im, B0_Q), "data_offsets");
    st_save(s.st, &im, 0);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor '" B0_Q "'", "data_offsets");
    st_free(&im);
    scratch_free(&s);
}

/* JSON allows a key twice; a safetensors header must not. */
static void duplicate_tensor_name(void **state) {
    scratch s;
    scratch_single(&s);
    st_image im;
    st_load(s.st, &im);
    cJSON_AddItemToObject(im.header, LN_F, cJSON_Duplicate(st_entry(&im, LN_F), 1));
    st_save(s.st, &im, 0);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor '" LN_F "' appears twice");
    st_free(&im);
    scratch_free(&s);
}

/* Names come from the file: a newline in one must not split the message. */
static void control_characters_in_names(void **state) {
    scratch s;
    scratch_single(&s);
    st_image im;
    st_load(s.st, &im);
    cJSON *e = cJSON_Duplicate(st_entry(&im, LN_F), 1);
    cJSON_ReplaceItemInObjectCaseSensitive(e, "dtype", cJSON_CreateString("F\n32"));
    cJSON_AddItemToObject(im.header, "evil\nname\r\x1b[2J", e);
    st_save(s.st, &im, 0);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "evil?name??[2J", "unknown dtype 'F?32'");
    st_free(&im);
    scratch_free(&s);
}

/* An odd header length leaves every tensor misaligned: legal, and the model
 * must compute exactly what the aligned file gives (UBSan checks the loads). */
static void misaligned_data_loads(void **state) {
    scratch s;
    scratch_single(&s);
    st_image im;
    st_load(s.st, &im);
    st_save(s.st, &im, 1);
    st_free(&im);
    size_t n;
    uint8_t *bytes = read_whole_file(s.st, &n);
    assert_true(le64(bytes) % 2 == 1);
    free(bytes);
    um_model_params mp = {1, false};
    um_model *odd = NULL;
    um_error err;
    if (um_model_open(s.dir, &mp, &odd, &err) != UM_OK)
        fail_msg("%s", err.msg);
    um_model *ref = open_fixture_model("tiny-llada", "hf-bf16", 1);
    int32_t tokens[12] = {1, 7, 500, 42, 255, 300, 500, 500, 3, 9, 501, 0};
    size_t nl = 12 * 512;
    float *a = malloc(nl * sizeof *a), *b = malloc(nl * sizeof *b);
    assert_int_equal(t_forward(odd, tokens, 1, 12, a, &err), UM_OK);
    assert_int_equal(t_forward(ref, tokens, 1, 12, b, &err), UM_OK);
    assert_memory_equal(a, b, nl * sizeof *a);
    free(a);
    free(b);
    um_model_close(odd);
    um_model_close(ref);
    scratch_free(&s);
}

/* ---- tensors that disagree with the architecture ----------------------------- */

static void missing_tensor(void **state) {
    scratch s;
    scratch_single(&s);
    rewrite_tensors(s.st, B1_V, NULL);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "missing tensor '" B1_V "'");
    scratch_free(&s);
}

static void unexpected_tensor(void **state) {
    scratch s;
    scratch_single(&s);
    uint16_t zeros[4] = {0};
    um_st_desc extra = {"model.transformer.blocks.0.rotary.inv_freq", UM_BF16, 1, {4}, zeros};
    rewrite_tensors(s.st, NULL, &extra);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "unexpected tensor 'model.transformer.blocks.0.rotary.inv_freq'");
    scratch_free(&s);
}

static void tensor_with_wrong_shape(void **state) {
    scratch s;
    scratch_single(&s);
    static uint16_t half[64 * 32];
    um_st_desc q = {B1_Q, UM_BF16, 2, {64, 32}, half};
    rewrite_tensors(s.st, NULL, &q);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor '" B1_Q "'", "shape [64, 32]",
                      "config.json implies [64, 64]");
    static uint16_t wide[64 * 64 * 2];
    um_st_desc q3 = {B1_Q, UM_BF16, 3, {2, 64, 64}, wide};
    rewrite_tensors(s.st, NULL, &q3);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor '" B1_Q "'", "shape [2, 64, 64]");
    scratch_free(&s);
    scratch_single(&s);
    um_st_desc ln = {LN_F, UM_BF16, 0, {0}, half}; /* a scalar where a vector belongs */
    rewrite_tensors(s.st, NULL, &ln);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor '" LN_F "'", "shape []", "implies [64]");
    scratch_free(&s);
}

static void weight_with_integer_dtype(void **state) {
    scratch s;
    scratch_single(&s);
    static int32_t ints[64 * 64];
    um_st_desc q = {B0_Q, UM_I32, 2, {64, 64}, ints};
    rewrite_tensors(s.st, NULL, &q);
    expect_open_fails(s.dir, UM_ERR_UNSUPPORTED, s.st, "tensor '" B0_Q "'", "type I32");
    scratch_free(&s);
    scratch_single(&s);
    static double f64[64];
    um_st_desc ln = {LN_F, UM_F64, 1, {64}, f64};
    rewrite_tensors(s.st, NULL, &ln);
    expect_open_fails(s.dir, UM_ERR_UNSUPPORTED, s.st, "tensor '" LN_F "'", "type F64");
    scratch_free(&s);
}

static void no_weights_file(void **state) {
    scratch s;
    scratch_single(&s);
    assert_int_equal(unlink(s.st), 0);
    expect_open_fails(s.dir, UM_ERR_IO, s.dir, "no model.safetensors");
    scratch_free(&s);
}

static void model_path_not_a_directory(void **state) {
    scratch s;
    scratch_single(&s);
    char missing[4300];
    snprintf(missing, sizeof missing, "%s/no-such-model", s.dir);
    expect_open_fails(missing, UM_ERR_IO, missing, "no such model directory");
    expect_open_fails(s.st, UM_ERR_UNSUPPORTED, s.st, "not a GGUF file");
    scratch_free(&s);
}

/* ---- config.json ------------------------------------------------------------- */

static void config_missing(void **state) {
    scratch s;
    scratch_single(&s);
    assert_int_equal(unlink(s.cfg), 0);
    expect_open_fails(s.dir, UM_ERR_IO, s.cfg, "cannot open");
    scratch_free(&s);
}

static void config_invalid_json(void **state) {
    scratch s;
    scratch_single(&s);
    write_text(s.cfg, "{\"model_type\": \"llada\", \"n_layers\": 3,");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.cfg, "invalid JSON");
    write_text(s.cfg, "");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.cfg, "invalid JSON");
    write_text(s.cfg, "[\"llada\"]");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.cfg, "expected a JSON object");
    scratch_free(&s);
}

static void config_missing_key(void **state) {
    CONFIG_CASE("n_layers", NULL, UM_ERR_FORMAT, "missing required key 'n_layers'");
    CONFIG_CASE("d_model", NULL, UM_ERR_FORMAT, "missing required key 'd_model'");
    CONFIG_CASE("vocab_size", NULL, UM_ERR_FORMAT, "missing required key 'vocab_size'");
    CONFIG_CASE("mlp_hidden_size", NULL, UM_ERR_FORMAT, "missing required key 'mlp_hidden_size'");
}

static void config_bad_values(void **state) {
    CONFIG_CASE("n_layers", "\"three\"", UM_ERR_FORMAT, "'n_layers' must be an integer");
    CONFIG_CASE("n_layers", "0", UM_ERR_FORMAT, "'n_layers' must be an integer in [1, 4096]");
    CONFIG_CASE("n_layers", "2.5", UM_ERR_FORMAT, "'n_layers' must be an integer");
    CONFIG_CASE("n_heads", "-4", UM_ERR_FORMAT, "'n_heads' must be an integer");
    CONFIG_CASE("vocab_size", "1e30", UM_ERR_FORMAT, "'vocab_size' must be an integer");
    CONFIG_CASE("rms_norm_eps", "0", UM_ERR_FORMAT, "'rms_norm_eps' must be in");
    CONFIG_CASE("rms_norm_eps", "1e-85", UM_ERR_FORMAT, "'rms_norm_eps' must be in"); /* 0 as f32 */
    CONFIG_CASE("rope_theta", "1e39", UM_ERR_FORMAT, "'rope_theta' must be greater than 1 and at most"); /* inf as f32 */
    CONFIG_CASE("rope_theta", "-10000", UM_ERR_FORMAT, "'rope_theta' must be greater than 1");
    CONFIG_CASE("rope_theta", "500000.01e-300", UM_ERR_FORMAT, "'rope_theta' must be greater than 1"); /* 0 as f32: the config fuzzer's find */
    CONFIG_CASE("rope_theta", "1", UM_ERR_FORMAT, "'rope_theta' must be greater than 1");
    CONFIG_CASE("rope_theta", "\"big\"", UM_ERR_FORMAT, "'rope_theta' must be a finite number");
    CONFIG_CASE("weight_tying", "\"no\"", UM_ERR_FORMAT, "'weight_tying' must be true or false");
    CONFIG_CASE("mask_token_id", "512", UM_ERR_FORMAT, "mask_token_id 512 is outside the vocabulary");
    CONFIG_CASE("vocab_size", "1024", UM_ERR_FORMAT, "embedding_size 512 is smaller than vocab_size 1024");
}

/* config.json says one shape, the weights another: the first tensor bound
 * (or the first left over) names the disagreement. */
static void config_disagrees_with_weights(void **state) {
    scratch s;
    scratch_single(&s);
    config_set(s.cfg, "d_model", "128");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor '" WTE "'", "shape [512, 64]",
                      "config.json implies [512, 128]");
    scratch_free(&s);
    scratch_single(&s);
    config_set(s.cfg, "mlp_hidden_size", "256");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor 'model.transformer.blocks.0.ff_proj.weight'",
                      "shape [192, 64]", "implies [256, 64]");
    scratch_free(&s);
    scratch_single(&s);
    config_set(s.cfg, "embedding_size", "1024");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor '" WTE "'", "implies [1024, 64]");
    scratch_free(&s);
    scratch_single(&s);
    config_set(s.cfg, "n_kv_heads", "2"); /* MHA weights read as GQA: k_proj should be [32, 64] */
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor 'model.transformer.blocks.0.k_proj.weight'",
                      "implies [32, 64]");
    scratch_free(&s);
    scratch_single(&s);
    config_set(s.cfg, "n_layers", "4");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "missing tensor 'model.transformer.blocks.3.");
    scratch_free(&s);
    scratch_single(&s);
    config_set(s.cfg, "n_layers", "2");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "unexpected tensor 'model.transformer.blocks.2.");
    scratch_free(&s);
    scratch_single(&s);
    config_set(s.cfg, "weight_tying", "true"); /* then the separate output head is one too many */
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "unexpected tensor '" HEAD "'");
    scratch_free(&s);
    scratch_single(&s);
    config_set(s.cfg, "include_bias", "true");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "missing tensor 'model.transformer.blocks.0.q_proj.bias'");
    scratch_free(&s);
}

static void config_heads_do_not_divide(void **state) {
    CONFIG_CASE("n_kv_heads", "3", UM_ERR_FORMAT, "n_heads 4 is not a multiple of n_kv_heads 3");
    CONFIG_CASE("n_heads", "3", UM_ERR_FORMAT, "n_heads 3 is not a multiple of n_kv_heads 4");
    scratch s;
    scratch_single(&s);
    config_set(s.cfg, "n_heads", "3");
    config_set(s.cfg, "n_kv_heads", "3");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.cfg, "d_model 64 must split into n_heads 3 heads of even size");
    config_set(s.cfg, "n_heads", "64"); /* heads of size 1: RoPE needs pairs */
    config_set(s.cfg, "n_kv_heads", NULL);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.cfg, "d_model 64 must split into n_heads 64 heads of even size");
    scratch_free(&s);
}

/* A temporary copy of LLaDA-MoE's BF16 model, with its tokenizer (which
 * names the mask: its config has no mask id). */
#define MOE_DIR "llada-moe/tiny-llada-moe/hf-bf16"
#define MOE_ROUTER "model.layers.1.mlp.gate.weight"
#define MOE_EXPERT "model.layers.2.mlp.experts.5.down_proj.weight"

/* A temporary copy of another family's BF16 model (layout: its fixture
 * folder), tokenizer.json included. */
static void scratch_family(scratch *s, const char *layout) {
    memset(s, 0, sizeof *s);
    s->dir = make_temp_dir();
    snprintf(s->cfg, sizeof s->cfg, "%s/config.json", s->dir);
    snprintf(s->st, sizeof s->st, "%s/model.safetensors", s->dir);
    char tok[4200];
    snprintf(tok, sizeof tok, "%s/tokenizer.json", s->dir);
    copy_fixture_file(layout, "config.json", s->cfg);
    copy_fixture_file(layout, "model.safetensors", s->st);
    copy_fixture_file(layout, "tokenizer.json", tok);
}

static void scratch_moe(scratch *s) { scratch_family(s, MOE_DIR); }

/* Dream's generation needs its mask id, which only its config carries; its
 * head counts are checked as every family's. */
static void dream_config_faults(void **state) {
    scratch s;
    scratch_family(&s, "dream/tiny-dream/hf-bf16");
    config_set(s.cfg, "mask_token_id", NULL);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.cfg, "mask_token_id");
    config_set(s.cfg, "mask_token_id", "511");
    config_set(s.cfg, "num_key_value_heads", "3");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.cfg, "num_attention_heads 4 is not a multiple of num_key_value_heads 3");
    scratch_free(&s);
}

#define MOE_CONFIG_CASE(key, json, code, ...)                 \
    do {                                                      \
        scratch s_;                                           \
        scratch_moe(&s_);                                     \
        config_set(s_.cfg, key, json);                        \
        expect_open_fails(s_.dir, code, s_.cfg, __VA_ARGS__); \
        scratch_free(&s_);                                    \
    } while (0)

/* Mixture-of-experts settings that do not fit, each named. */
static void moe_config_does_not_fit(void **state) {
    MOE_CONFIG_CASE("num_experts_per_tok", "9", UM_ERR_FORMAT, "num_experts_per_tok = 9 does not fit num_experts 8");
    MOE_CONFIG_CASE("num_experts_per_tok", "0", UM_ERR_FORMAT, "num_experts_per_tok");
    MOE_CONFIG_CASE("num_experts", "0", UM_ERR_FORMAT, "num_experts");
    MOE_CONFIG_CASE("num_experts", NULL, UM_ERR_FORMAT, "num_experts");
    MOE_CONFIG_CASE("expert_intermediate_size", NULL, UM_ERR_FORMAT, "expert_intermediate_size");
    MOE_CONFIG_CASE("num_key_value_heads", "3", UM_ERR_FORMAT,
                    "num_attention_heads 4 is not a multiple of num_key_value_heads 3");
    MOE_CONFIG_CASE("moe_layer_freq", "[1, 0, 1]", UM_ERR_UNSUPPORTED, "moe_layer_freq must be all 1");
    MOE_CONFIG_CASE("shared_expert_intermediate_size", "64", UM_ERR_UNSUPPORTED, "shared_expert_intermediate_size");
    MOE_CONFIG_CASE("moe_router_enable_expert_bias", "true", UM_ERR_UNSUPPORTED, "moe_router_enable_expert_bias");
    /* more experts than the checkpoint has: the router's shape says so first */
    scratch s;
    scratch_moe(&s);
    config_set(s.cfg, "num_experts", "16");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, "tensor 'model.layers.0.mlp.gate.weight' has shape [8, 64]",
                      "config.json implies [16, 64]");
    scratch_free(&s);
}

/* Without tokenizer.json nothing names the mask, and the released model's
 * id does not fit this vocabulary. */
static void moe_without_mask_id(void **state) {
    scratch s;
    scratch_moe(&s);
    char tok[4200];
    snprintf(tok, sizeof tok, "%s/tokenizer.json", s.dir);
    remove(tok);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.cfg, "<|mask|> in tokenizer.json", "156895 is outside the vocabulary");
    config_set(s.cfg, "mask_token_id", "500"); /* a config that says it is fine */
    um_model *m = NULL;
    um_error err;
    assert_int_equal(um_model_open(s.dir, NULL, &m, &err), UM_OK);
    um_model_close(m);
    scratch_free(&s);
}

#define LLADA2_DIR "llada2/tiny-llada2/hf-bf16"
#define LLADA2_CONFIG_CASE(key, json, code, ...)              \
    do {                                                      \
        scratch s_;                                           \
        scratch_family(&s_, LLADA2_DIR);                      \
        config_set(s_.cfg, key, json);                        \
        expect_open_fails(s_.dir, code, s_.cfg, __VA_ARGS__); \
        scratch_free(&s_);                                    \
    } while (0)

/* LLaDA2's router groups, dense layers, partial RoPE and options, each named;
 * a missing expert bias or fused q/k/v by its checkpoint name. */
static void llada2_config_does_not_fit(void **state) {
    LLADA2_CONFIG_CASE("n_group", "3", UM_ERR_FORMAT, "n_group = 3 does not divide num_experts 8 into groups");
    LLADA2_CONFIG_CASE("topk_group", "3", UM_ERR_FORMAT, "topk_group = 3 is outside [1, n_group 2]");
    LLADA2_CONFIG_CASE("num_experts_per_tok", "5", UM_ERR_FORMAT,
                       "num_experts_per_tok = 5 exceeds the 4 experts that topk_group 1 of 2 groups allow");
    LLADA2_CONFIG_CASE("first_k_dense_replace", "4", UM_ERR_FORMAT,
                       "first_k_dense_replace = 4 is outside [0, num_hidden_layers 3]");
    LLADA2_CONFIG_CASE("rotary_dim", "7", UM_ERR_FORMAT, "rotated dimensions", "= 7 must be even");
    LLADA2_CONFIG_CASE("routed_scaling_factor", "-1", UM_ERR_FORMAT, "weight scale -1 is outside");
    LLADA2_CONFIG_CASE("score_function", "\"tanh\"", UM_ERR_UNSUPPORTED, "score_function 'tanh' is not supported");
    LLADA2_CONFIG_CASE("use_qkv_bias", "true", UM_ERR_UNSUPPORTED, "use_qkv_bias = true is not supported");
    LLADA2_CONFIG_CASE("head_dim", "32", UM_ERR_UNSUPPORTED, "head_dim 32 times num_attention_heads 4");
    const char *drop[] = {"model.layers.2.mlp.gate.expert_bias", "model.layers.0.attention.query_key_value.weight",
                          "model.layers.1.mlp.shared_experts.down_proj.weight"};
    for (int i = 0; i < 3; i++) {
        scratch s;
        scratch_family(&s, LLADA2_DIR);
        rewrite_tensors(s.st, drop[i], NULL);
        char want[256];
        snprintf(want, sizeof want, "missing tensor '%s'", drop[i]);
        expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, want);
        scratch_free(&s);
    }
}

/* Generation settings a block-causal model does not take, each with its reason. */
static void llada2_generation_does_not_fit(void **state) {
    um_model *m;
    um_error err;
    assert_int_equal(um_model_open(fixture(LLADA2_DIR), NULL, &m, &err), UM_OK);
    const int32_t prompt[] = {1, 2, 3};
    um_generate_params p = um_generate_default_params();
    um_session *s;
    p.gen_length = 32;
    p.block_length = 8;
    p.steps = 8;
    p.cache = UM_CACHE_DUAL;
    assert_int_equal(um_session_begin(m, prompt, 3, &p, &s, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "the dual cache does not apply to a block-causal model"));
    p.cache = UM_CACHE_NONE;
    p.loop = UM_LOOP_DINFER;
    assert_int_equal(um_session_begin(m, prompt, 3, &p, &s, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "run block diffusion only, not dInfer's loop"));
    p.loop = UM_LOOP_BLOCKS;
    p.cfg_scale = 1.0;
    assert_int_equal(um_session_begin(m, prompt, 3, &p, &s, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "classifier-free guidance"));
    p.cfg_scale = 0;
    p.minimal_topk = 64;
    assert_int_equal(um_session_begin(m, prompt, 3, &p, &s, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "gen_length 32 leaves no step at minimal_topk 64"));
    p.minimal_topk = 1;
    const int32_t masked[] = {1, 500, 3};
    assert_int_equal(um_session_begin(m, masked, 3, &p, &s, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "does not fill masks inside the prompt"));
    p.gen_length = 512;
    assert_int_equal(um_session_begin(m, prompt, 3, &p, &s, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "in whole blocks of 8, exceeds the model's max_sequence_length 512"));
    um_model_close(m);
    /* a bidirectional model does not run block diffusion; the command line says why, exit 2 */
    cmd_result r =
        run_unmask("run -m %s --prompt-tokens 1,2,3 -n 8 --loop blocks", fixture("llada/tiny-llada/hf-bf16"));
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "block diffusion needs a block-causal model (LLaDA2), not llada"));
    cmd_result_free(&r);
    r = run_unmask("run -m %s --prompt-tokens 1,2,3 -n 8 --cache prefix", fixture(LLADA2_DIR));
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "the prefix cache does not apply to a block-causal model"));
    cmd_result_free(&r);
}

static void moe_missing_tensors(void **state) {
    const char *drop[] = {MOE_ROUTER, MOE_EXPERT};
    for (int i = 0; i < 2; i++) {
        scratch s;
        scratch_moe(&s);
        rewrite_tensors(s.st, drop[i], NULL);
        char want[256];
        snprintf(want, sizeof want, "missing tensor '%s'", drop[i]);
        expect_open_fails(s.dir, UM_ERR_FORMAT, s.st, want);
        scratch_free(&s);
    }
}

static void unsupported_architecture(void **state) {
    CONFIG_CASE("model_type", "\"llama\"", UM_ERR_UNSUPPORTED, "unsupported architecture 'llama'");
    CONFIG_CASE("block_type", "\"sequential\"", UM_ERR_UNSUPPORTED, "block_type 'sequential' is not supported");
    CONFIG_CASE("layer_norm_type", "\"default\"", UM_ERR_UNSUPPORTED, "layer_norm_type 'default'");
    CONFIG_CASE("activation_type", "\"gelu\"", UM_ERR_UNSUPPORTED, "activation_type 'gelu'");
    CONFIG_CASE("alibi", "true", UM_ERR_UNSUPPORTED, "alibi = true is not supported");
    CONFIG_CASE("rope", "false", UM_ERR_UNSUPPORTED, "rope = false is not supported");
    CONFIG_CASE("clip_qkv", "8.0", UM_ERR_UNSUPPORTED, "clip_qkv");
    /* no model_type: architectures[0] decides */
    scratch s;
    scratch_single(&s);
    config_set(s.cfg, "model_type", NULL);
    config_set(s.cfg, "architectures", "[\"LlamaForCausalLM\"]");
    expect_open_fails(s.dir, UM_ERR_UNSUPPORTED, s.cfg, "unsupported architecture 'LlamaForCausalLM'");
    config_set(s.cfg, "architectures", "[]");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.cfg, "no 'model_type' or 'architectures'");
    config_set(s.cfg, "architectures", "[7]");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.cfg, "no 'model_type' or 'architectures'");
    scratch_free(&s);
}

/* ---- sharded checkpoints ------------------------------------------------------ */

/* Sets weight_map[tensor] of the index at path to json (NULL: removes it). */
static void index_set(const char *path, const char *tensor, const char *json) {
    size_t n;
    char *text = read_whole_file(path, &n);
    cJSON *root = cJSON_Parse(text);
    free(text);
    cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    assert_non_null(map);
    cJSON_DeleteItemFromObjectCaseSensitive(map, tensor);
    if (json)
        cJSON_AddItemToObject(map, tensor, cJSON_Parse(json));
    char *out = cJSON_Print(root);
    write_file(path, out, strlen(out));
    free(out);
    cJSON_Delete(root);
}

static void sharded_missing_shard(void **state) {
    scratch s;
    scratch_sharded(&s);
    assert_int_equal(unlink(s.shard2), 0);
    expect_open_fails(s.dir, UM_ERR_IO, s.shard2, "cannot open");
    scratch_free(&s);
}

static void sharded_name_escapes_directory(void **state) {
    scratch s;
    scratch_sharded(&s);
    const char *bad[] = {"\"../" SHARD1 "\"", "\"/etc/passwd\"", "\"sub/" SHARD1 "\"", "\".hidden\"", "\"\""};
    const char *shown[] = {"'../" SHARD1 "'", "'/etc/passwd'", "'sub/" SHARD1 "'", "'.hidden'", "''"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        index_set(s.index, LN_F, bad[i]);
        expect_open_fails(s.dir, UM_ERR_FORMAT, s.index, "tensor '" LN_F "'", shown[i], "not a plain file name");
    }
    index_set(s.index, LN_F, "1");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.index, "tensor '" LN_F "'", "must map to a shard file name");
    scratch_free(&s);
}

static void sharded_index_lists_absent_tensor(void **state) {
    scratch s;
    scratch_sharded(&s);
    index_set(s.index, "model.transformer.blocks.9.q_proj.weight", "\"" SHARD2 "\"");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.index, "tensor 'model.transformer.blocks.9.q_proj.weight'",
                      "listed in " SHARD2 " but missing from it");
    scratch_free(&s);
}

static void sharded_bad_index(void **state) {
    scratch s;
    scratch_sharded(&s);
    write_text(s.index, "{\"weight_map\": {}}");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.index, "'weight_map' lists no tensors");
    write_text(s.index, "{\"metadata\": {}}");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.index, "missing object 'weight_map'");
    write_text(s.index, "{\"weight_map\": [\"" SHARD1 "\"]}");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.index, "missing object 'weight_map'");
    write_text(s.index, "{\"weight_map\": {\"a\": ");
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.index, "invalid JSON");
    scratch_free(&s);
}

/* A tensor gone from both the index and its shard: the error names the index. */
static void sharded_missing_tensor(void **state) {
    scratch s;
    scratch_sharded(&s);
    rewrite_tensors(s.shard2, B2_Q, NULL);
    index_set(s.index, B2_Q, NULL);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.index, "missing tensor '" B2_Q "'");
    scratch_free(&s);
}

static void sharded_tensor_in_two_shards(void **state) {
    scratch s;
    scratch_sharded(&s);
    static float ones[64];
    um_st_desc ln = {LN_F, UM_F32, 1, {64}, ones};
    rewrite_tensors(s.shard2, NULL, &ln);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.shard2, "tensor '" LN_F "' also appears in", s.shard1);
    scratch_free(&s);
}

static void sharded_corrupt_shard(void **state) {
    scratch s;
    scratch_sharded(&s);
    size_t n;
    uint8_t *full = read_whole_file(s.shard2, &n);
    write_file(s.shard2, full, n - 4);
    expect_open_fails(s.dir, UM_ERR_FORMAT, s.shard2, "tensor '", "run past the end of the data");
    free(full);
    scratch_free(&s);
}

/* ---- requests that the model or the sampler cannot serve -------------------- */

static um_model *tiny_model(void) { return open_fixture_model("tiny-llada", "hf-bf16", 1); }

/* um_generate fails with UM_ERR_ARG, leaves out empty, names every string given. */
static void expect_generate_fails_(um_model *m, const int32_t *prompt, int n_prompt, const um_generate_params *p,
                                   ...) {
    um_generation out;
    memset(&out, 0xab, sizeof out);
    um_error err;
    memset(&err, 0, sizeof err);
    um_status s = t_generate(m, prompt, n_prompt, p, &out, &err);
    if (s == UM_OK) {
        um_generation_free(&out);
        fail_msg("generation succeeded, expected UM_ERR_ARG");
    }
    if (s != UM_ERR_ARG)
        fail_msg("expected invalid argument, got %s: %s", um_status_name(s), err.msg);
    assert_null(out.tokens);
    assert_int_equal(out.n_tokens, 0);
    check_one_line(&err);
    va_list ap;
    va_start(ap, p);
    check_names(err.msg, ap);
    va_end(ap);
}
#define expect_generate_fails(m, prompt, n, p, ...) \
    expect_generate_fails_(m, prompt, n, p, __VA_ARGS__, (const char *)NULL)

static um_generate_params small_params(int gen_length, int block_length, int steps) {
    um_generate_params p = um_generate_default_params();
    p.gen_length = gen_length;
    p.block_length = block_length;
    p.steps = steps;
    return p;
}

static void token_ids_outside_vocabulary(void **state) {
    um_model *m = tiny_model();
    um_generate_params p = small_params(8, 8, 8);
    int32_t big[] = {1, 2, 512, 3};
    expect_generate_fails(m, big, 4, &p, "prompt token 512", "index 2", "vocabulary [0, 512)");
    int32_t huge[] = {INT32_MAX};
    expect_generate_fails(m, huge, 1, &p, "prompt token 2147483647", "index 0");
    int32_t neg[] = {1, -1};
    expect_generate_fails(m, neg, 2, &p, "prompt token -1", "index 1");
    expect_generate_fails(m, neg, -3, &p, "prompt");
    expect_generate_fails(m, NULL, 2, &p, "prompt");
    /* the plain forward pass checks ids too */
    float *logits = malloc(4 * 512 * sizeof *logits);
    um_error err;
    assert_int_equal(t_forward(m, big, 1, 4, logits, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "token id 512 at position 2"));
    assert_int_equal(t_forward(m, neg, 1, 2, logits, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "token id -1 at position 1"));
    assert_int_equal(t_forward(m, big, 0, 4, logits, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "empty input"));
    free(logits);
    um_model_close(m);
}

static void lengths_that_do_not_divide(void **state) {
    um_model *m = tiny_model();
    int32_t prompt[] = {1, 2, 3};
    um_generate_params p = small_params(10, 4, 10);
    expect_generate_fails(m, prompt, 3, &p, "gen_length 10 is not a multiple of block_length 4");
    p = small_params(16, 8, 3); /* two blocks, three steps */
    expect_generate_fails(m, prompt, 3, &p, "steps 3", "multiple of the block count 2");
    p = small_params(16, 4, 6); /* four blocks */
    expect_generate_fails(m, prompt, 3, &p, "steps 6", "block count 4");
    p = small_params(16, 8, 0);
    expect_generate_fails(m, prompt, 3, &p, "steps 0");
    p = small_params(16, 8, -2);
    expect_generate_fails(m, prompt, 3, &p, "steps -2");
    p = small_params(0, 8, 8);
    expect_generate_fails(m, prompt, 3, &p, "gen_length must be at least 1 (got 0)");
    p = small_params(-8, 8, 8);
    expect_generate_fails(m, prompt, 3, &p, "gen_length must be at least 1 (got -8)");
    p = small_params(16, 0, 8);
    expect_generate_fails(m, prompt, 3, &p, "block_length must be at least 1 (got 0)");
    p = small_params(16, 32, 8); /* a block longer than the generation */
    expect_generate_fails(m, prompt, 3, &p, "gen_length 16 is not a multiple of block_length 32");
    um_model_close(m);
}

static void canvas_beyond_max_sequence_length(void **state) {
    um_model *m = tiny_model(); /* max_sequence_length 256 */
    int32_t prompt[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    um_generate_params p = small_params(256, 256, 256);
    expect_generate_fails(m, prompt, 8, &p, "prompt (8) + gen_length (256)", "max_sequence_length 256");
    p = small_params(1 << 30, 1 << 30, 1 << 30);
    expect_generate_fails(m, prompt, 8, &p, "gen_length", "max_sequence_length 256");
    p = small_params(INT32_MAX, 1, INT32_MAX); /* divides; the sum must not wrap */
    expect_generate_fails(m, prompt, 8, &p, "gen_length (2147483647)", "max_sequence_length 256");
    float *logits = malloc(512 * sizeof *logits);
    int32_t *many = calloc(257, sizeof *many);
    um_error err;
    assert_int_equal(t_forward(m, many, 1, 257, logits, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "max_sequence_length 256"));
    free(many);
    free(logits);
    um_model_close(m);
}

static void other_bad_parameters(void **state) {
    um_model *m = tiny_model();
    int32_t prompt[] = {1, 2, 3};
    um_generate_params p = small_params(8, 8, 8);
    p.temperature = NAN;
    expect_generate_fails(m, prompt, 3, &p, "temperature");
    p.temperature = -1;
    expect_generate_fails(m, prompt, 3, &p, "temperature");
    p = small_params(8, 8, 8);
    p.cfg_scale = -0.5;
    expect_generate_fails(m, prompt, 3, &p, "cfg_scale");
    p.cfg_scale = INFINITY;
    expect_generate_fails(m, prompt, 3, &p, "cfg_scale");
    p = small_params(8, 8, 8);
    p.remasking = (um_remasking)7;
    expect_generate_fails(m, prompt, 3, &p, "remasking strategy 7");
    /* pure infilling (gen_length 0, masks in the prompt) checks them alike */
    um_model_info info;
    um_model_get_info(m, &info);
    int32_t holes[] = {1, info.mask_id, 3};
    p = small_params(0, 8, 8);
    p.temperature = NAN;
    expect_generate_fails(m, holes, 3, &p, "temperature");
    p = small_params(0, 8, 8);
    p.cfg_scale = -0.5;
    expect_generate_fails(m, holes, 3, &p, "cfg_scale");
    p = small_params(0, 8, 8);
    p.remasking = (um_remasking)7;
    expect_generate_fails(m, holes, 3, &p, "remasking strategy 7");
    um_model_close(m);
}

/* Options that need a special id the config does not give. */
static void options_need_special_ids(void **state) {
    scratch s;
    scratch_single(&s);
    config_set(s.cfg, "eos_token_id", NULL);
    um_model_params mp = {1, false};
    um_model *m = NULL;
    um_error err;
    if (um_model_open(s.dir, &mp, &m, &err) != UM_OK) /* no tokenizer.json: no EOT either */
        fail_msg("%s", err.msg);
    int32_t prompt[] = {1, 2, 3};
    um_generate_params p = small_params(8, 8, 8);
    p.logits_eos_inf = true;
    expect_generate_fails(m, prompt, 3, &p, "logits_eos_inf", "EOS");
    p.logits_eos_inf = false;
    p.confidence_eos_eot_inf = true;
    expect_generate_fails(m, prompt, 3, &p, "confidence_eos_eot_inf", "EOT");
    um_model_close(m);
    scratch_free(&s);
}

/* ---- the command line -------------------------------------------------------- */

/* A failed `unmask run`: non-zero exit (not a signal), nothing on stdout, and
 * one stderr line "unmask run: error: ..." naming every string given. When
 * the error comes after the model loaded, the model summary line precedes it. */
static void expect_cli_error_(cmd_result *r, bool after_load, ...) {
    if (r->status == 0 || r->status >= 128)
        fail_msg("exit status %d, stderr: %s", r->status, r->err);
    assert_string_equal(r->out, "");
    const char *line = r->err;
    if (after_load && strncmp(line, "model: ", 7) == 0) {
        line = strchr(line, '\n');
        assert_non_null(line);
        line++;
    }
    if (strncmp(line, "unmask run: error: ", 19) != 0)
        fail_msg("stderr does not start with the error line: '%s'", r->err);
    const char *nl = strchr(line, '\n');
    if (!nl || nl[1] != 0)
        fail_msg("stderr is not exactly one error line: '%s'", r->err);
    va_list ap;
    va_start(ap, after_load);
    check_names(line, ap);
    va_end(ap);
}
#define expect_cli_error(r, after_load, ...) expect_cli_error_(r, after_load, __VA_ARGS__, (const char *)NULL)

#define RUN_ARGS "run -t 1 -n 8 --steps 8 --block-length 8 --prompt-tokens 1,2,3"

static void cli_bad_model_files(void **state) {
    scratch s;
    scratch_single(&s);
    size_t n;
    uint8_t *full = read_whole_file(s.st, &n);
    write_file(s.st, full, n - 1);
    cmd_result r = run_unmask(RUN_ARGS " -m %s", s.dir);
    expect_cli_error(&r, false, s.st, "tensor '" HEAD "'", "run past the end");
    cmd_result_free(&r);

    write_file(s.st, full, 4);
    r = run_unmask(RUN_ARGS " -m %s", s.dir);
    expect_cli_error(&r, false, s.st, "too short");
    cmd_result_free(&r);

    write_file(s.st, full, n);
    rewrite_tensors(s.st, B1_V, NULL);
    r = run_unmask(RUN_ARGS " -m %s", s.dir);
    expect_cli_error(&r, false, s.st, "missing tensor '" B1_V "'");
    cmd_result_free(&r);
    free(full);
    scratch_free(&s);
}

static void cli_bad_config(void **state) {
    scratch s;
    scratch_single(&s);
    config_set(s.cfg, "model_type", "\"llama\"");
    cmd_result r = run_unmask(RUN_ARGS " -m %s", s.dir);
    expect_cli_error(&r, false, s.cfg, "unsupported architecture 'llama'");
    cmd_result_free(&r);
    config_set(s.cfg, "model_type", "\"llada\"");
    config_set(s.cfg, "d_model", "128");
    r = run_unmask(RUN_ARGS " -m %s", s.dir);
    expect_cli_error(&r, false, s.st, "tensor '" WTE "'", "config.json implies [512, 128]");
    cmd_result_free(&r);
    config_set(s.cfg, "n_layers", NULL);
    r = run_unmask(RUN_ARGS " -m %s", s.dir);
    expect_cli_error(&r, false, s.cfg, "'n_layers'");
    cmd_result_free(&r);
    scratch_free(&s);
}

static void cli_bad_model_path(void **state) {
    cmd_result r = run_unmask(RUN_ARGS " -m /nonexistent/unmask-model");
    expect_cli_error(&r, false, "/nonexistent/unmask-model", "no such model directory");
    cmd_result_free(&r);
    /* without -m: $UNMASK_MODEL, then the checkout's models/stories beside the binary */
    setenv("UNMASK_MODEL", "/nonexistent/env-model", 1);
    r = run_unmask(RUN_ARGS);
    expect_cli_error(&r, false, "/nonexistent/env-model", "no such model directory");
    cmd_result_free(&r);
    unsetenv("UNMASK_MODEL");
    const char *bin = getenv("UNMASK_BIN") ? getenv("UNMASK_BIN") : "build/unmask";
    char *dir = make_temp_dir(), copy[4200], *saved = strdup(bin);
    snprintf(copy, sizeof copy, "%s/unmask", dir);
    size_t n;
    void *exe = read_whole_file(bin, &n);
    assert_non_null(exe);
    FILE *fp = fopen(copy, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(exe, 1, n, fp), n);
    fclose(fp);
    free(exe);
    assert_int_equal(chmod(copy, 0755), 0);
    setenv("UNMASK_BIN", copy, 1);
    r = run_unmask(RUN_ARGS);
    setenv("UNMASK_BIN", saved, 1);
    expect_cli_error(&r, false, "no model given", "models/stories", "UNMASK_MODEL");
    cmd_result_free(&r);
    remove_tree(dir);
    free(dir);
    free(saved);
}

static void cli_bad_flags(void **state) {
    const char *model = fixture(BF16_DIR);
    const struct {
        const char *args;
        const char *names[2];
    } cases[] = {
        {"run -m %s --prompt-tokens 1,2 --steps abc", {"--steps", "'abc'"}},
        {"run -m %s --prompt-tokens 1,2 --steps 0", {"--steps", "'0'"}},
        {"run -m %s --prompt-tokens 1,2 --steps 8x", {"--steps", "'8x'"}},
        {"run -m %s --prompt-tokens 1,2 -n 99999999999", {"-n", "'99999999999'"}},
        {"run -m %s --prompt-tokens 1,2 --temp -1", {"--temp", "'-1'"}},
        {"run -m %s --prompt-tokens 1,2 --temp nan", {"--temp", "'nan'"}},
        {"run -m %s --prompt-tokens 1,2 --seed -5", {"--seed", "'-5'"}},
        {"run -m %s --prompt-tokens 1,2 --remasking best", {"--remasking", "'best'"}},
        {"run -m %s --prompt-tokens 1,2 --bogus-flag", {"unknown argument '--bogus-flag'", ""}},
        {"run -m %s --prompt-tokens 1,2 --steps", {"--steps needs a value", ""}},
        {"run -m %s --prompt-tokens 1,,2", {"--prompt-tokens", "'1,,2'"}},
        {"run -m %s --prompt-tokens 1,2,", {"--prompt-tokens", "'1,2,'"}},
        {"run -m %s --prompt-tokens ,1", {"--prompt-tokens", "',1'"}},
        {"run -m %s --prompt-tokens 1,-2", {"--prompt-tokens", "'1,-2'"}},
        {"run -m %s --prompt-tokens 1,x", {"--prompt-tokens", "'1,x'"}},
        {"run -m %s --prompt-tokens 99999999999", {"--prompt-tokens", "'99999999999'"}},
        {"run -m %s", {"no prompt", "--prompt-tokens"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        print_message("    unmask %s\n", cases[i].args);
        char args[512];
        snprintf(args, sizeof args, cases[i].args, model);
        cmd_result r = run_unmask("%s", args);
        expect_cli_error(&r, false, cases[i].names[0], cases[i].names[1]);
        cmd_result_free(&r);
    }
}

/* Errors found after the model loaded: the sampler's checks. */
static void cli_bad_request(void **state) {
    const char *model = fixture(BF16_DIR);
    cmd_result r = run_unmask("run -t 1 -m %s -n 8 --steps 8 --prompt-tokens 1,512,3", model);
    expect_cli_error(&r, true, "prompt token 512", "vocabulary");
    cmd_result_free(&r);
    r = run_unmask("run -t 1 -m %s -n 10 --block-length 4 --prompt-tokens 1,2", model);
    expect_cli_error(&r, true, "gen_length 10 is not a multiple of block_length 4");
    cmd_result_free(&r);
    r = run_unmask("run -t 1 -m %s -n 16 --block-length 8 --steps 3 --prompt-tokens 1,2", model);
    expect_cli_error(&r, true, "steps 3", "block count 2");
    cmd_result_free(&r);
    r = run_unmask("run -t 1 -m %s -n 256 --prompt-tokens 1,2", model);
    expect_cli_error(&r, true, "gen_length (256)", "max_sequence_length 256");
    cmd_result_free(&r);
}

/* ---- fuzzer regressions ------------------------------------------------------ */

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Every input a fuzzer once crashed on (and a few hand-made ones that a
 * parser once accepted), replayed: fuzz/regressions/st-NAME.bin through the
 * safetensors parser, config-NAME.json through the config parser (other
 * prefixes belong to other readers' tests). Each is malformed, so each must
 * fail cleanly. */
static void fuzz_regressions(void **state) {
    const char *dir = "fuzz/regressions";
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("%s: cannot open (run the tests from the repository root)", dir);
    int n_bin = 0, n_json = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        bool bin = strncmp(e->d_name, "st-", 3) == 0 && has_suffix(e->d_name, ".bin");
        bool json = strncmp(e->d_name, "config-", 7) == 0 && has_suffix(e->d_name, ".json");
        if (!bin && !json)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t n;
        uint8_t *bytes = read_whole_file(path, &n);
        um_error err;
        memset(&err, 0, sizeof err);
        if (bin) {
            um_st_file f;
            um_status s = um_st_parse(bytes, n, path, &f, &err);
            if (s == UM_OK) {
                um_st_close(&f);
                fail_msg("%s: parsed, expected an error", path);
            }
            n_bin++;
        } else { /* the config fuzzer passes only objects on */
            cJSON *cfg = cJSON_ParseWithLength((const char *)bytes, n);
            if (!cJSON_IsObject(cfg))
                fail_msg("%s: not a JSON object", path);
            um_hparams hp;
            um_status s = um_llada_parse_hparams(cfg, path, &hp, &err);
            cJSON_Delete(cfg);
            if (s == UM_OK)
                fail_msg("%s: parsed, expected an error", path);
            n_json++;
        }
        check_one_line(&err);
        if (!strstr(err.msg, path))
            fail_msg("message '%s' does not name %s", err.msg, path);
        free(bytes);
    }
    closedir(d);
    print_message("    %d safetensors and %d config inputs replayed\n", n_bin, n_json);
    assert_true(n_bin > 0 && n_json > 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(truncated_file),
    cmocka_unit_test(shorter_than_8_bytes),
    cmocka_unit_test(header_length_past_end),
    cmocka_unit_test(header_length_huge),
    cmocka_unit_test(header_length_over_limit),
    cmocka_unit_test(invalid_json_header),
    cmocka_unit_test(header_not_an_object),
    cmocka_unit_test(header_trailing_garbage),
    cmocka_unit_test(offsets_past_end),
    cmocka_unit_test(overlapping_offsets),
    cmocka_unit_test(hole_between_tensors),
    cmocka_unit_test(begin_after_end),
    cmocka_unit_test(byte_count_disagrees_with_shape),
    cmocka_unit_test(unknown_dtype),
    cmocka_unit_test(bad_shape_values),
    cmocka_unit_test(entry_missing_a_field),
    cmocka_unit_test(duplicate_tensor_name),
    cmocka_unit_test(control_characters_in_names),
    cmocka_unit_test(misaligned_data_loads),
    cmocka_unit_test(missing_tensor),
    cmocka_unit_test(unexpected_tensor),
    cmocka_unit_test(tensor_with_wrong_shape),
    cmocka_unit_test(weight_with_integer_dtype),
    cmocka_unit_test(no_weights_file),
    cmocka_unit_test(model_path_not_a_directory),
    cmocka_unit_test(config_missing),
    cmocka_unit_test(config_invalid_json),
    cmocka_unit_test(config_missing_key),
    cmocka_unit_test(config_bad_values),
    cmocka_unit_test(config_disagrees_with_weights),
    cmocka_unit_test(config_heads_do_not_divide),
    cmocka_unit_test(unsupported_architecture),
    cmocka_unit_test(moe_config_does_not_fit),
    cmocka_unit_test(moe_without_mask_id),
    cmocka_unit_test(moe_missing_tensors),
    cmocka_unit_test(llada2_config_does_not_fit),
    cmocka_unit_test(llada2_generation_does_not_fit),
    cmocka_unit_test(dream_config_faults),
    cmocka_unit_test(sharded_missing_shard),
    cmocka_unit_test(sharded_name_escapes_directory),
    cmocka_unit_test(sharded_index_lists_absent_tensor),
    cmocka_unit_test(sharded_bad_index),
    cmocka_unit_test(sharded_missing_tensor),
    cmocka_unit_test(sharded_tensor_in_two_shards),
    cmocka_unit_test(sharded_corrupt_shard),
    cmocka_unit_test(token_ids_outside_vocabulary),
    cmocka_unit_test(lengths_that_do_not_divide),
    cmocka_unit_test(canvas_beyond_max_sequence_length),
    cmocka_unit_test(other_bad_parameters),
    cmocka_unit_test(options_need_special_ids),
    cmocka_unit_test(cli_bad_model_files),
    cmocka_unit_test(cli_bad_config),
    cmocka_unit_test(cli_bad_model_path),
    cmocka_unit_test(cli_bad_flags),
    cmocka_unit_test(cli_bad_request),
    cmocka_unit_test(fuzz_regressions),
};
const test_group bad_input_group = {"bad_input", tests, sizeof tests / sizeof *tests};
