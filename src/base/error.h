/* Errors that carry a message: every fallible internal call takes a um_error *
 * and returns a um_status, so the first failure's message reaches the user. */
#ifndef UM_BASE_ERROR_H
#define UM_BASE_ERROR_H

#include "unmask.h"

#if defined(__GNUC__)
#define UM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define UM_PRINTF(a, b)
#endif

/* Records code and message in err (which may be NULL) and returns code. */
um_status um_fail(um_error *err, um_status code, const char *fmt, ...) UM_PRINTF(3, 4);

/* Prefixes err's message with context, e.g. the file a parse error came from. */
void um_error_prefix(um_error *err, const char *fmt, ...) UM_PRINTF(2, 3);

#define UM_TRY(expr)                      \
    do {                                  \
        um_status um_try_s_ = (expr);     \
        if (um_try_s_ != UM_OK)           \
            return um_try_s_;             \
    } while (0)

#endif
