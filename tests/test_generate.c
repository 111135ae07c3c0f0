/* Every generation case of fixtures/llada/MODEL/reference.json produced by
 * the LLaDA reference sampler (ML-GSAI/LLaDA generate.py: generate) must be
 * reproduced exactly: the output, the NFE, and the (position, token) pairs
 * committed after every forward pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* Runs every reference-sampler case of one model loaded from one layout. */
static void check_cases(const char *model, const char *layout) {
    um_model *m = open_fixture_model(model, layout, 2);
    int checked = run_reference_cases(m, model, layout, expect_reference_exact, NULL);
    assert_true(checked >= 6); /* the fixtures hold six reference-sampler cases per model */
    um_model_close(m);
}

static void mha_bf16(void **state) { check_cases("tiny-llada", "hf-bf16"); }
static void mha_f32_sharded(void **state) { check_cases("tiny-llada", "hf-f32-sharded"); }
static void gqa_bf16(void **state) { check_cases("tiny-llada-gqa", "hf-bf16"); }
static void gqa_f32_sharded(void **state) { check_cases("tiny-llada-gqa", "hf-f32-sharded"); }

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(mha_bf16),
    cmocka_unit_test(mha_f32_sharded),
    cmocka_unit_test(gqa_bf16),
    cmocka_unit_test(gqa_f32_sharded),
};
const test_group generate_group = {"generate", tests, sizeof tests / sizeof *tests};
