/* Small system helpers: clocks, memory accounting, read-only file maps,
 * overflow-checked size arithmetic. */
#ifndef UM_BASE_SYS_H
#define UM_BASE_SYS_H

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

double um_now(void); /* monotonic seconds */

typedef struct {
    const uint8_t *data;
    size_t size;
} um_mapped_file;

/* Maps a whole file read-only (an empty file maps to data == NULL, size 0). */
um_status um_map_file(const char *path, um_mapped_file *out, um_error *err);
void um_unmap_file(um_mapped_file *f);
/* Memory the system can still give this process, in bytes: MemAvailable
 * (free memory plus the page cache it can drop), or a container's cgroup
 * limit minus its usage where that is less (its usage counts page cache
 * too, so this errs low). */
size_t um_memory_available(void);
/* Lets the whole pages of [p, p + n), inside f's map, leave memory; a later
 * read maps them from the file again (the map is private and never written).
 * Nothing happens when the range is not inside the map. */
void um_mapped_file_release(const um_mapped_file *f, const void *p, size_t n);
/* Reads a whole (small) file into a NUL-terminated heap buffer. */
um_status um_read_file(const char *path, size_t max_size, char **out, size_t *out_size, um_error *err);
bool um_file_exists(const char *path);

/* Writing a file under its final name only once it is whole: um_open_partial
 * opens path + ".partial" (its name into partial, n bytes), the caller
 * writes, and um_finish_partial closes it and renames it over path, or
 * removes it when s (the writing's status) or the close failed. A write that
 * is interrupted (Ctrl-C) never leaves a truncated file under path. */
FILE *um_open_partial(const char *path, char *partial, size_t n);
um_status um_finish_partial(FILE *fp, const char *partial, const char *path, um_status s, um_error *err);
bool um_is_directory(const char *path);

/* a * b into *out, false on overflow. */
static inline bool um_mul_size(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}

void *um_aligned_alloc(size_t size); /* 64-byte aligned, zeroed; free with free() */

#endif
