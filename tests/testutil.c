#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/sys.h"

const char *fixtures_dir(void) {
    const char *e = getenv("UNMASK_FIXTURES");
    return e && *e ? e : "../shared/fixtures";
}

const char *fixture(const char *rel) {
    static char bufs[8][4096];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", fixtures_dir(), rel);
    return b;
}

static char *slurp_stream(FILE *fp) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n - 1, fp);
        n += got;
        if (got == 0)
            break;
        if (cap - n < 2048) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[n] = 0;
    return buf;
}

cmd_result run_unmask(const char *args_fmt, ...) {
    const char *bin = getenv("UNMASK_BIN");
    if (!bin || !*bin)
        bin = "build/unmask";
    char args[8192], cmd[16384], errpath[] = "/tmp/unmask-test-stderr-XXXXXX";
    va_list ap;
    va_start(ap, args_fmt);
    vsnprintf(args, sizeof args, args_fmt, ap);
    va_end(ap);
    int fd = mkstemp(errpath);
    assert_true(fd >= 0);
    snprintf(cmd, sizeof cmd, "%s %s 2>%s </dev/null", bin, args, errpath);
    FILE *fp = popen(cmd, "r");
    assert_non_null(fp);
    cmd_result r;
    r.out = slurp_stream(fp);
    int st = pclose(fp);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    FILE *ef = fdopen(fd, "r");
    r.err = slurp_stream(ef);
    fclose(ef);
    unlink(errpath);
    return r;
}

void cmd_result_free(cmd_result *r) {
    free(r->out);
    free(r->err);
}

char *make_temp_dir(void) {
    char *t = strdup("/tmp/unmask-test-XXXXXX");
    assert_non_null(mkdtemp(t));
    return t;
}

void remove_tree(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

void write_file(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

void *read_whole_file(const char *path, size_t *n) {
    char *buf;
    um_error err;
    if (um_read_file(path, (size_t)1 << 30, &buf, n, &err) != UM_OK)
        fail_msg("%s", err.msg);
    return buf;
}

void copy_file(const char *from, const char *to) {
    size_t n;
    void *buf = read_whole_file(from, &n);
    write_file(to, buf, n);
    free(buf);
}

cJSON *load_reference(const char *model) {
    char rel[256];
    snprintf(rel, sizeof rel, "llada/%s/reference.json", model);
    size_t n;
    char *text = read_whole_file(fixture(rel), &n);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    return root;
}

int32_t *json_int_array(const cJSON *arr, int *n) {
    assert_true(cJSON_IsArray(arr));
    *n = cJSON_GetArraySize(arr);
    int32_t *out = malloc((size_t)(*n > 0 ? *n : 1) * sizeof *out);
    for (int i = 0; i < *n; i++)
        out[i] = (int32_t)cJSON_GetArrayItem(arr, i)->valuedouble;
    return out;
}

um_model *open_fixture_model(const char *model, const char *layout, int n_threads) {
    char rel[256];
    snprintf(rel, sizeof rel, "llada/%s/%s", model, layout);
    um_model_params mp = {n_threads};
    um_model *m = NULL;
    um_error err;
    if (um_model_open(fixture(rel), &mp, &m, &err) != UM_OK)
        fail_msg("opening %s: %s", rel, err.msg);
    return m;
}
