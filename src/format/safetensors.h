/* Safetensors files (https://huggingface.co/docs/safetensors): an 8-byte
 * little-endian header length, a JSON header naming each tensor's dtype, shape
 * and [begin, end) byte range, then the data. Files are mmapped and tensors
 * point into the map. The parser trusts nothing: every length, offset and
 * shape is checked before use. */
#ifndef UM_FORMAT_SAFETENSORS_H
#define UM_FORMAT_SAFETENSORS_H

#include <stdint.h>
#include <stdio.h>

#include "base/dtype.h"
#include "base/error.h"
#include "base/sys.h"

#define UM_ST_MAX_DIMS 8
#define UM_ST_MAX_HEADER (100u << 20) /* the reference implementation's limit */

typedef struct {
    char *name;
    um_dtype dtype;
    int n_dims;
    int64_t shape[UM_ST_MAX_DIMS];
    const uint8_t *data; /* inside the file's map; may be unaligned */
    size_t nbytes;
} um_st_tensor;

typedef struct {
    char *path;
    um_mapped_file map;
    um_st_tensor *tensors;
    int n_tensors;
} um_st_file;

/* Parses a safetensors image held in memory (not copied: tensors point into
 * buf). label names the file in error messages. */
um_status um_st_parse(const uint8_t *buf, size_t size, const char *label, um_st_file *f, um_error *err);
um_status um_st_open(const char *path, um_st_file *f, um_error *err);
void um_st_close(um_st_file *f);
const um_st_tensor *um_st_find(const um_st_file *f, const char *name);
int64_t um_st_numel(const um_st_tensor *t);

/* Writing: describe the tensors, write the header, then each tensor's bytes in
 * the order given (um_st_write does all three for tensors held in memory). */
typedef struct {
    const char *name;
    um_dtype dtype;
    int n_dims;
    int64_t shape[UM_ST_MAX_DIMS];
    const void *data; /* used by um_st_write only */
} um_st_desc;

um_status um_st_write_header(FILE *fp, const um_st_desc *descs, int n, const char *path, um_error *err);
um_status um_st_write(const char *path, const um_st_desc *descs, int n, um_error *err);
size_t um_st_desc_nbytes(const um_st_desc *d);

#endif
