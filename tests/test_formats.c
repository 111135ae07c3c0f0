#include "testutil.h"
static void placeholder(void **state) { (void)state; }
static const struct CMUnitTest tests[] = { cmocka_unit_test(placeholder) };
const test_group formats_group = {"formats", tests, sizeof tests / sizeof *tests};
