#include "json.h"

#include <math.h>
#include <stdlib.h>

#include "base/sys.h"

um_status um_json_load(const char *path, size_t max_size, cJSON **out, um_error *err) {
    char *text;
    size_t n;
    *out = NULL;
    UM_TRY(um_read_file(path, max_size, &text, &n, err));
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - text) : 0;
        free(text);
        return um_fail(err, UM_ERR_FORMAT, "%s: invalid JSON near byte %zu", path, at);
    }
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return um_fail(err, UM_ERR_FORMAT, "%s: expected a JSON object", path);
    }
    *out = root;
    return UM_OK;
}

um_status um_json_get_int(const cJSON *obj, const char *key, bool required, int64_t lo, int64_t hi, int64_t *out,
                          const char *file, um_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return um_fail(err, UM_ERR_FORMAT, "%s: missing required key '%s'", file, key);
        return UM_OK;
    }
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || d < (double)lo || d > (double)hi)
        return um_fail(err, UM_ERR_FORMAT, "%s: '%s' must be an integer in [%lld, %lld]", file, key, (long long)lo,
                       (long long)hi);
    *out = (int64_t)d;
    return UM_OK;
}

um_status um_json_get_double(const cJSON *obj, const char *key, bool required, double *out, const char *file,
                             um_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return um_fail(err, UM_ERR_FORMAT, "%s: missing required key '%s'", file, key);
        return UM_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return um_fail(err, UM_ERR_FORMAT, "%s: '%s' must be a finite number", file, key);
    *out = v->valuedouble;
    return UM_OK;
}

um_status um_json_get_bool(const cJSON *obj, const char *key, bool *out, const char *file, um_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v))
        return UM_OK;
    if (!cJSON_IsBool(v))
        return um_fail(err, UM_ERR_FORMAT, "%s: '%s' must be true or false", file, key);
    *out = cJSON_IsTrue(v);
    return UM_OK;
}

const char *um_json_get_string(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
