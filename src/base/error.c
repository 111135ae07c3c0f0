#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

um_status um_fail(um_error *err, um_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        /* messages quote names taken from untrusted files (tensor names, JSON
         * keys): keep them one printable line whatever those hold */
        for (char *c = err->msg; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
        err->code = code;
    }
    return code;
}

void um_error_prefix(um_error *err, const char *fmt, ...) {
    if (!err)
        return;
    char prefix[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
}

const char *um_status_name(um_status status) {
    switch (status) {
    case UM_OK: return "ok";
    case UM_ERR_IO: return "i/o error";
    case UM_ERR_FORMAT: return "format error";
    case UM_ERR_UNSUPPORTED: return "unsupported";
    case UM_ERR_ARG: return "invalid argument";
    case UM_ERR_NOMEM: return "out of memory";
    case UM_ERR_ABORTED: return "aborted";
    }
    return "unknown status";
}
