/* Number formats and the safetensors container against their published
 * definitions: IEEE 754 binary16 and bfloat16 bit patterns, and the
 * safetensors layout (8-byte little-endian header length, JSON header,
 * data offsets relative to the end of the header). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
#include "format/safetensors.h"
#include "testutil.h"

static void f16_known_values(void **state) {
    assert_true(um_f16_to_f32(0x3c00) == 1.0f);
    assert_true(um_f16_to_f32(0xc000) == -2.0f);
    assert_true(um_f16_to_f32(0x7bff) == 65504.0f);     /* largest finite */
    assert_true(um_f16_to_f32(0x0400) == ldexpf(1, -14)); /* smallest normal */
    assert_true(um_f16_to_f32(0x0001) == ldexpf(1, -24)); /* smallest subnormal */
    assert_true(um_f16_to_f32(0x03ff) == ldexpf(1023, -24));
    assert_true(isinf(um_f16_to_f32(0x7c00)) && um_f16_to_f32(0xfc00) < 0);
    assert_true(isnan(um_f16_to_f32(0x7e00)));
    assert_true(um_f16_to_f32(0x3555) == 0.333251953125f);

    assert_int_equal(um_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(um_f32_to_f16(1.0f / 3.0f), 0x3555);
    assert_int_equal(um_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(um_f32_to_f16(65519.0f), 0x7bff); /* below the midpoint to 65536 */
    assert_int_equal(um_f32_to_f16(65520.0f), 0x7c00); /* the midpoint rounds to even: inf */
    assert_int_equal(um_f32_to_f16(ldexpf(1, -25)), 0x0000);   /* half the smallest subnormal: to even (0) */
    assert_int_equal(um_f32_to_f16(ldexpf(3, -26)), 0x0001);   /* 0.75 of it: up */
    assert_int_equal(um_f32_to_f16(ldexpf(3, -25)), 0x0002);   /* 1.5 units: to even (2) */
    assert_int_equal(um_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00); /* tie: to even */
    assert_int_equal(um_f32_to_f16(1.0f + ldexpf(3, -11)), 0x3c02); /* tie: to even */
    assert_int_equal(um_f32_to_f16(-0.0f), 0x8000);
    /* every finite half survives the round trip */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00)
            continue;
        assert_int_equal(um_f32_to_f16(um_f16_to_f32((uint16_t)h)), h);
    }
}

static void bf16_known_values(void **state) {
    assert_true(um_bf16_to_f32(0x3f80) == 1.0f);
    assert_true(um_bf16_to_f32(0xc040) == -3.0f);
    assert_int_equal(um_f32_to_bf16(1.0f), 0x3f80);
    float f;
    uint32_t u = 0x3f808000u; /* halfway between 0x3f80 and 0x3f81: to even */
    memcpy(&f, &u, 4);
    assert_int_equal(um_f32_to_bf16(f), 0x3f80);
    u = 0x3f818000u; /* halfway between 0x3f81 and 0x3f82: to even */
    memcpy(&f, &u, 4);
    assert_int_equal(um_f32_to_bf16(f), 0x3f82);
    u = 0x3f808001u;
    memcpy(&f, &u, 4);
    assert_int_equal(um_f32_to_bf16(f), 0x3f81);
    assert_true(isnan(um_bf16_to_f32(um_f32_to_bf16(NAN))));
}

/* A file laid out by hand from the format description. */
static void safetensors_parse_handmade(void **state) {
    const char hdr[] = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"a\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                       "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[16,22]}}";
    size_t hl = strlen(hdr), total = 8 + hl + 22;
    uint8_t *buf = calloc(1, total);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    int32_t a[4] = {1, -2, 3, 40000};
    memcpy(buf + 8 + hl, a, 16);
    uint16_t b[3] = {0x3f80, 0xc040, 0x0000};
    memcpy(buf + 8 + hl + 16, b, 6);

    um_st_file f;
    um_error err;
    assert_int_equal(um_st_parse(buf, total, "handmade", &f, &err), UM_OK);
    assert_int_equal(f.n_tensors, 2);
    const um_st_tensor *ta = um_st_find(&f, "a"), *tb = um_st_find(&f, "b");
    assert_non_null(ta);
    assert_non_null(tb);
    assert_int_equal(ta->dtype, UM_I32);
    assert_int_equal(ta->n_dims, 2);
    assert_int_equal(ta->shape[0], 2);
    assert_int_equal(ta->nbytes, 16);
    assert_memory_equal(ta->data, a, 16);
    assert_int_equal(tb->dtype, UM_BF16);
    assert_ptr_equal(tb->data, buf + 8 + hl + 16);
    assert_null(um_st_find(&f, "__metadata__"));
    um_st_close(&f);
    free(buf);
}

/* The fixture files were written by the Hugging Face safetensors library. */
static void safetensors_reads_reference_files(void **state) {
    um_st_file f;
    um_error err;
    assert_int_equal(um_st_open(fixture("llada/tiny-llada/forward.safetensors"), &f, &err), UM_OK);
    const um_st_tensor *ids = um_st_find(&f, "input_ids"), *lg = um_st_find(&f, "logits");
    assert_non_null(ids);
    assert_non_null(lg);
    assert_int_equal(ids->n_dims, 2);
    assert_int_equal(ids->shape[0], 2);
    assert_int_equal(ids->shape[1], 24);
    assert_int_equal(lg->n_dims, 3);
    assert_int_equal(lg->shape[2], 512);
    um_st_close(&f);
    assert_int_equal(um_st_open(fixture("llada/tiny-llada/pretrain_step.safetensors"), &f, &err), UM_OK);
    assert_true(f.n_tensors > 20);
    um_st_close(&f);
}

/* The writer's output, checked field by field with the JSON library rather
 * than our reader. */
static void safetensors_writer_layout(void **state) {
    char *dir = make_temp_dir(), path[512];
    snprintf(path, sizeof path, "%s/t.safetensors", dir);
    float x[6] = {1, 2, 3, 4, 5, 6};
    uint16_t y[1] = {0x3f80};
    um_st_desc d[2] = {{"x", UM_F32, 2, {2, 3}, x}, {"y.weight", UM_BF16, 1, {1}, y}};
    um_error err;
    assert_int_equal(um_st_write(path, d, 2, &err), UM_OK);
    size_t n;
    uint8_t *buf = read_whole_file(path, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | buf[i];
    assert_int_equal(hl % 8, 0); /* data starts aligned */
    assert_int_equal(n, 8 + hl + 24 + 2);
    cJSON *h = cJSON_ParseWithLength((const char *)buf + 8, hl);
    assert_non_null(h);
    const cJSON *jx = cJSON_GetObjectItem(h, "x"), *jy = cJSON_GetObjectItem(h, "y.weight");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(jx, "dtype")), "F32");
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(jx, "shape"), 1)->valueint, 3);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(jx, "data_offsets"), 0)->valueint, 0);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(jx, "data_offsets"), 1)->valueint, 24);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(jy, "dtype")), "BF16");
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(jy, "data_offsets"), 0)->valueint, 24);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(jy, "data_offsets"), 1)->valueint, 26);
    assert_memory_equal(buf + 8 + hl, x, 24);
    assert_memory_equal(buf + 8 + hl + 24, y, 2);
    cJSON_Delete(h);
    free(buf);
    remove_tree(dir);
    free(dir);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(f16_known_values),
    cmocka_unit_test(bf16_known_values),
    cmocka_unit_test(safetensors_parse_handmade),
    cmocka_unit_test(safetensors_reads_reference_files),
    cmocka_unit_test(safetensors_writer_layout),
};
const test_group formats_group = {"formats", tests, sizeof tests / sizeof *tests};
