#include "testutil.h"
static void placeholder(void **state) { (void)state; }
static const struct CMUnitTest tests[] = { cmocka_unit_test(placeholder) };
const test_group bad_input_group = {"bad_input", tests, sizeof tests / sizeof *tests};
