/* The canvas: prompt followed by gen_length masks, one row per sequence the
 * forward pass runs (classifier-free guidance adds an unconditional copy
 * whose prompt is masked). */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "diffusion/diffusion.h"

um_status um_canvas_init(um_canvas *c, const int32_t *prompt, int n_prompt, int gen_length, int n_rows, int mask_id,
                         um_error *err) {
    memset(c, 0, sizeof *c);
    c->len = n_prompt + gen_length;
    c->n_prompt = n_prompt;
    c->n_rows = n_rows;
    c->mask_id = mask_id;
    c->rows = malloc((size_t)n_rows * (size_t)c->len * sizeof *c->rows);
    c->is_prompt = calloc((size_t)c->len, sizeof *c->is_prompt);
    if (!c->rows || !c->is_prompt) {
        um_canvas_free(c);
        return um_fail(err, UM_ERR_NOMEM, "out of memory for a canvas of %d tokens", n_prompt + gen_length);
    }
    for (int i = 0; i < c->len; i++) {
        c->rows[i] = i < n_prompt ? prompt[i] : mask_id;
        c->is_prompt[i] = c->rows[i] != mask_id;
    }
    um_canvas_sync_uncond(c);
    return UM_OK;
}

void um_canvas_free(um_canvas *c) {
    free(c->rows);
    free(c->is_prompt);
    memset(c, 0, sizeof *c);
}

int um_canvas_count_masks(const um_canvas *c, int from, int to) {
    int n = 0;
    for (int i = from; i < to; i++)
        n += c->rows[i] == c->mask_id;
    return n;
}

int um_canvas_masked(const um_canvas *c, int from, int to, int32_t *out) {
    int n = 0;
    for (int i = from; i < to; i++)
        if (c->rows[i] == c->mask_id)
            out[n++] = i;
    return n;
}

void um_canvas_sync_uncond(um_canvas *c) {
    for (int r = 1; r < c->n_rows; r++) {
        int32_t *un = c->rows + (size_t)r * c->len;
        for (int i = 0; i < c->len; i++)
            un[i] = c->is_prompt[i] ? c->mask_id : c->rows[i];
    }
}

bool um_canvas_eos_done(um_canvas *c, int eos_id) {
    if (eos_id < 0)
        return false;
    for (int i = 0; i < c->len; i++) {
        if (c->rows[i] == c->mask_id)
            return false;
        if (i >= c->n_prompt && c->rows[i] == eos_id) {
            for (int j = i + 1; j < c->len; j++)
                if (c->rows[j] == c->mask_id)
                    c->rows[j] = eos_id;
            return true;
        }
    }
    return false;
}
