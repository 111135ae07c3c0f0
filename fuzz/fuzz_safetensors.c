/* libFuzzer target for the safetensors parser: any bytes must either parse
 * into tensors that lie inside the buffer, or fail with a one-line message
 * naming the file. Built and run by `make fuzz`. */
#include <stdlib.h>
#include <string.h>

#include "format/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    um_st_file f;
    um_error err;
    memset(&err, 0, sizeof err);
    if (um_st_parse(data, size, "fuzz.safetensors", &f, &err) != UM_OK) {
        if (err.code == UM_OK || strncmp(err.msg, "fuzz.safetensors: ", 18) != 0 || strchr(err.msg, '\n'))
            abort(); /* a failure must say what failed, in one line naming the file */
        return 0;
    }
    unsigned sum = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const um_st_tensor *t = &f.tensors[i];
        /* every tensor's bytes are inside the input: ASan checks these reads */
        if (t->data < data || t->data + t->nbytes > data + size)
            abort();
        if (t->nbytes) {
            sum += t->data[0];
            sum += t->data[t->nbytes - 1];
        }
        if ((size_t)um_st_numel(t) * um_dtype_size(t->dtype) != t->nbytes || um_st_find(&f, t->name) != t)
            abort();
    }
    um_st_close(&f);
    return (int)(sum & 0); /* keeps the reads */
}
