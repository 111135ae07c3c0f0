/* Helpers over cJSON for reading configuration files with errors that name
 * the file and key. */
#ifndef UM_FORMAT_JSON_H
#define UM_FORMAT_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

/* Parses a JSON file (at most max_size bytes) that must hold an object. */
um_status um_json_load(const char *path, size_t max_size, cJSON **out, um_error *err);

/* Typed getters: return UM_OK and set *out when key is present and of the
 * right type; leave *out alone when absent and !required; otherwise fail with
 * a message naming file and key. */
um_status um_json_get_int(const cJSON *obj, const char *key, bool required, int64_t lo, int64_t hi, int64_t *out,
                          const char *file, um_error *err);
um_status um_json_get_double(const cJSON *obj, const char *key, bool required, double *out, const char *file,
                             um_error *err);
um_status um_json_get_bool(const cJSON *obj, const char *key, bool *out, const char *file, um_error *err);
/* The string value of key, or NULL if absent or not a string. */
const char *um_json_get_string(const cJSON *obj, const char *key);

#endif
