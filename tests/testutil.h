/* Shared helpers of the test suite: where the fixtures are, running the
 * unmask command, temporary directories, reading reference JSON. */
#ifndef UM_TESTUTIL_H
#define UM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "unmask.h"

/* A group of tests: each test file defines one. */
typedef struct {
    const char *name;
    const struct CMUnitTest *tests;
    size_t count;
} test_group;

/* ../shared/fixtures (override with UNMASK_FIXTURES). */
const char *fixtures_dir(void);
/* fixtures_dir()/rel in a static buffer (one of a few rotating ones). */
const char *fixture(const char *rel);

/* Runs the unmask command (UNMASK_BIN, default build/unmask) with the given
 * arguments through /bin/sh; captures stdout and stderr; returns exit code. */
typedef struct {
    int status;
    char *out;
    char *err;
} cmd_result;
cmd_result run_unmask(const char *args_fmt, ...) __attribute__((format(printf, 1, 2)));
void cmd_result_free(cmd_result *r);

/* A fresh temporary directory (removed by remove_tree). */
char *make_temp_dir(void);
void remove_tree(const char *dir);
/* Writes/copies files for hand-made bad inputs. */
void write_file(const char *path, const void *data, size_t n);
void *read_whole_file(const char *path, size_t *n);
void copy_file(const char *from, const char *to);

/* The parsed reference.json of a fixture model ("tiny-llada" / "tiny-llada-gqa"). */
cJSON *load_reference(const char *model);
/* A JSON array of integers as a malloc'd int32 array. */
int32_t *json_int_array(const cJSON *arr, int *n);

um_model *open_fixture_model(const char *model, const char *layout, int n_threads);

#endif
