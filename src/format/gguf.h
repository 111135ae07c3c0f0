/* GGUF files, llama.cpp's model format (ggml docs/gguf.md), versions 2 and 3,
 * little-endian:
 *
 *   "GGUF", u32 version, u64 tensor_count, u64 kv_count,
 *   kv_count x (string key, u32 value type, value),
 *   tensor_count x (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset),
 *   zero padding to general.alignment (default 32), the data section.
 *
 * A string is a u64 byte count and the bytes (no NUL); an array is a u32
 * element type, a u64 count and the elements. ne[0] is the innermost
 * (contiguous) dimension; offsets are relative to the data section and
 * multiples of the alignment.
 *
 * Files are mmapped; metadata values and tensor data point into the map. The
 * parser trusts nothing: every count, length, offset and shape is checked
 * against the file before use, and nothing is allocated for a count the file's
 * size cannot back. */
#ifndef UM_FORMAT_GGUF_H
#define UM_FORMAT_GGUF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/dtype.h"
#include "base/error.h"
#include "base/sys.h"

#define UM_GGUF_MAX_DIMS 4
#define UM_GGUF_DEFAULT_ALIGNMENT 32
#define UM_GGUF_MAX_NAME 63 /* llama.cpp's limit on tensor name length (GGML_MAX_NAME - 1) */

/* Metadata value types, numbered as in the file. */
typedef enum {
    UM_GGUF_UINT8 = 0,
    UM_GGUF_INT8 = 1,
    UM_GGUF_UINT16 = 2,
    UM_GGUF_INT16 = 3,
    UM_GGUF_UINT32 = 4,
    UM_GGUF_INT32 = 5,
    UM_GGUF_FLOAT32 = 6,
    UM_GGUF_BOOL = 7,
    UM_GGUF_STRING = 8,
    UM_GGUF_ARRAY = 9,
    UM_GGUF_UINT64 = 10,
    UM_GGUF_INT64 = 11,
    UM_GGUF_FLOAT64 = 12,
    UM_GGUF_TYPE_COUNT
} um_gguf_type;

/* "UINT32", "STRING", ...; "?" for anything else. */
const char *um_gguf_type_name(um_gguf_type t);

/* A string inside the file: not NUL-terminated. */
typedef struct {
    const char *ptr;
    size_t len;
} um_gguf_str;

/* One metadata pair. A scalar is an array of one element of its own type, so
 * the element accessors below serve both. */
typedef struct {
    char *key;              /* NUL-terminated copy */
    um_gguf_type type;      /* the value's type */
    um_gguf_type elem_type; /* arrays: the elements' type; scalars: == type */
    uint64_t count;         /* arrays: element count; scalars: 1 */
    const uint8_t *value;   /* encoded value inside the file (arrays: the first element) */
    size_t value_size;      /* its bytes (arrays: all elements) */
    size_t *str_offsets;    /* string arrays: element i's offset from value */
} um_gguf_kv;

typedef struct {
    char *name; /* NUL-terminated copy */
    int n_dims;
    int64_t ne[UM_GGUF_MAX_DIMS]; /* ne[0] innermost; 1 past n_dims */
    uint32_t ggml_type;           /* the id in the file */
    um_dtype type;
    uint64_t offset;     /* from the start of the data section */
    const uint8_t *data; /* inside the file */
    size_t nbytes;
} um_gguf_tensor;

typedef struct {
    char *path; /* the label given to um_gguf_parse, or the path */
    um_mapped_file map;
    uint32_t version;
    uint32_t alignment;
    um_gguf_kv *kvs; /* file order */
    size_t n_kv;
    um_gguf_tensor *tensors; /* file order */
    size_t n_tensors;
    const uint8_t *data; /* the data section */
    size_t data_size;
    const um_gguf_kv **kv_by_key;            /* sorted by key, for lookups */
    const um_gguf_tensor **tensor_by_name;   /* sorted by name */
} um_gguf_file;

/* Parses a GGUF image held in memory (not copied: values and tensors point
 * into buf). label names the file in error messages. */
um_status um_gguf_parse(const uint8_t *buf, size_t size, const char *label, um_gguf_file *f, um_error *err);
um_status um_gguf_open(const char *path, um_gguf_file *f, um_error *err);
void um_gguf_close(um_gguf_file *f);

/* NULL when absent. O(log n). */
const um_gguf_kv *um_gguf_find_kv(const um_gguf_file *f, const char *key);
const um_gguf_tensor *um_gguf_find_tensor(const um_gguf_file *f, const char *name);
int64_t um_gguf_numel(const um_gguf_tensor *t);

/* Typed getters by key. A missing key is UM_ERR_FORMAT "missing metadata key";
 * a wrong type or a value out of the target's range is UM_ERR_FORMAT naming
 * the key. Integers convert between widths and signedness when the value fits;
 * get_f32/get_f64 take floats and integers; get_bool only BOOL; get_str only
 * STRING. */
um_status um_gguf_get_u32(const um_gguf_file *f, const char *key, uint32_t *out, um_error *err);
um_status um_gguf_get_i32(const um_gguf_file *f, const char *key, int32_t *out, um_error *err);
um_status um_gguf_get_u64(const um_gguf_file *f, const char *key, uint64_t *out, um_error *err);
um_status um_gguf_get_i64(const um_gguf_file *f, const char *key, int64_t *out, um_error *err);
um_status um_gguf_get_f32(const um_gguf_file *f, const char *key, float *out, um_error *err);
um_status um_gguf_get_f64(const um_gguf_file *f, const char *key, double *out, um_error *err);
um_status um_gguf_get_bool(const um_gguf_file *f, const char *key, bool *out, um_error *err);
um_status um_gguf_get_str(const um_gguf_file *f, const char *key, um_gguf_str *out, um_error *err);
/* The array at key; elem says what its elements must be: any integer type
 * accepts every integer element type, FLOAT32/FLOAT64 accept both float
 * types, BOOL and STRING only themselves, ARRAY anything. */
um_status um_gguf_get_arr(const um_gguf_file *f, const char *key, um_gguf_type elem, const um_gguf_kv **out,
                          um_error *err);

/* Element i of kv (i == 0 for a scalar); false when i is out of range, the
 * element has another kind, or the value does not fit. O(1), strings too. */
bool um_gguf_elem_i64(const um_gguf_kv *kv, uint64_t i, int64_t *out);
bool um_gguf_elem_u64(const um_gguf_kv *kv, uint64_t i, uint64_t *out);
bool um_gguf_elem_f64(const um_gguf_kv *kv, uint64_t i, double *out); /* floats and integers */
bool um_gguf_elem_bool(const um_gguf_kv *kv, uint64_t i, bool *out);
bool um_gguf_elem_str(const um_gguf_kv *kv, uint64_t i, um_gguf_str *out);
/* true when s holds exactly the NUL-terminated c */
bool um_gguf_str_eq(um_gguf_str s, const char *c);

/* ggml type ids <-> um_dtype: -1 when there is no counterpart. */
int um_gguf_dtype_from_ggml(uint32_t ggml_type);
int um_gguf_ggml_from_dtype(um_dtype t);
/* ggml's name of a type id ("q5_0"), known or not; "?" when unknown. */
const char *um_gguf_ggml_type_name(uint32_t ggml_type);

/* Writing. Collect metadata and tensor descriptions, then um_gguf_writer_write
 * writes a version 3 file: metadata and tensors in the order added, tensor
 * data aligned and zero padded. The alignment is 32 unless a
 * "general.alignment" UINT32 is added (the writer never adds that key itself,
 * as llama.cpp writes it only for other alignments). Tensor data is read only
 * while writing, one tensor at a time: from a pointer, or from a callback that
 * streams it, so a model larger than memory can be written. Bad arguments
 * (duplicate keys or names, shapes, types) fail when added, with UM_ERR_ARG
 * or UM_ERR_UNSUPPORTED. */
typedef struct um_gguf_writer um_gguf_writer;
typedef struct um_gguf_sink um_gguf_sink;

/* Streams a tensor's bytes into sink with um_gguf_sink_write; must write
 * exactly the tensor's size in total. */
typedef um_status (*um_gguf_data_fn)(void *user, const char *tensor_name, um_gguf_sink *sink, um_error *err);
um_status um_gguf_sink_write(um_gguf_sink *sink, const void *data, size_t n, um_error *err);

um_gguf_writer *um_gguf_writer_new(void); /* NULL when out of memory */
void um_gguf_writer_free(um_gguf_writer *w);

um_status um_gguf_writer_add_u8(um_gguf_writer *w, const char *key, uint8_t v, um_error *err);
um_status um_gguf_writer_add_i8(um_gguf_writer *w, const char *key, int8_t v, um_error *err);
um_status um_gguf_writer_add_u16(um_gguf_writer *w, const char *key, uint16_t v, um_error *err);
um_status um_gguf_writer_add_i16(um_gguf_writer *w, const char *key, int16_t v, um_error *err);
um_status um_gguf_writer_add_u32(um_gguf_writer *w, const char *key, uint32_t v, um_error *err);
um_status um_gguf_writer_add_i32(um_gguf_writer *w, const char *key, int32_t v, um_error *err);
um_status um_gguf_writer_add_u64(um_gguf_writer *w, const char *key, uint64_t v, um_error *err);
um_status um_gguf_writer_add_i64(um_gguf_writer *w, const char *key, int64_t v, um_error *err);
um_status um_gguf_writer_add_f32(um_gguf_writer *w, const char *key, float v, um_error *err);
um_status um_gguf_writer_add_f64(um_gguf_writer *w, const char *key, double v, um_error *err);
um_status um_gguf_writer_add_bool(um_gguf_writer *w, const char *key, bool v, um_error *err);
um_status um_gguf_writer_add_str(um_gguf_writer *w, const char *key, const char *v, um_error *err);
um_status um_gguf_writer_add_strn(um_gguf_writer *w, const char *key, const char *v, size_t len, um_error *err);
/* An array of numbers or bools: values holds count elements of elem's C type
 * (uint8_t ... double, bool) in host order. */
um_status um_gguf_writer_add_arr(um_gguf_writer *w, const char *key, um_gguf_type elem, const void *values,
                                 size_t count, um_error *err);
/* An array of strings; lens == NULL: each is NUL-terminated. */
um_status um_gguf_writer_add_str_arr(um_gguf_writer *w, const char *key, const char *const *strs,
                                     const size_t *lens, size_t count, um_error *err);
/* A metadata pair of a parsed file, copied as it is. */
um_status um_gguf_writer_add_kv(um_gguf_writer *w, const um_gguf_kv *kv, um_error *err);

/* Tensors: ne[0] innermost, n_dims 0..4, every ne >= 1, ne[0] a multiple of
 * the type's block size. data must stay valid until um_gguf_writer_write. */
um_status um_gguf_writer_add_tensor(um_gguf_writer *w, const char *name, um_dtype type, int n_dims,
                                    const int64_t *ne, const void *data, um_error *err);
um_status um_gguf_writer_add_tensor_fn(um_gguf_writer *w, const char *name, um_dtype type, int n_dims,
                                       const int64_t *ne, um_gguf_data_fn fn, void *user, um_error *err);

/* Writes the file (removed again if writing fails), or into fp (label names
 * it in errors). Either may be called more than once. */
um_status um_gguf_writer_write(um_gguf_writer *w, const char *path, um_error *err);
um_status um_gguf_writer_write_fp(um_gguf_writer *w, FILE *fp, const char *label, um_error *err);

#endif
