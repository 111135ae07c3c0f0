#include "testutil.h"
static void placeholder(void **state) { (void)state; }
static const struct CMUnitTest tests[] = { cmocka_unit_test(placeholder) };
const test_group cli_group = {"cli", tests, sizeof tests / sizeof *tests};
