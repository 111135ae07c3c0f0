/* The live view redraws the whole canvas after every step: the prompt in
 * the terminal's normal colour, masks as a dim placeholder, tokens committed
 * by this step in bold green, and a status line (step, NFE, tokens/s, masks
 * left). Plain ANSI escapes; nothing is drawn unless stdout is a terminal. */
#include "visual.h"

#include <stdio.h>
#include <unistd.h>

#include "base/sys.h"

#define MASK_GLYPH "\xe2\x96\x91" /* U+2591 LIGHT SHADE */

bool cli_visual_begin(cli_visual *v, cli_text *t, int mask_id) {
    if (!isatty(STDOUT_FILENO))
        return false;
    v->t = t;
    v->mask_id = mask_id;
    v->t0 = um_now();
    v->committed = 0;
    fputs("\x1b[2J", stdout); /* clear the screen once; each step redraws from the top */
    return true;
}

static bool just_committed(const um_step_info *info, int pos) {
    for (int i = 0; i < info->n_committed; i++)
        if (info->committed_pos[i] == pos)
            return true;
    return false;
}

/* One position: its token's bytes, or the mask glyph. */
static void draw_token(const cli_visual *v, const um_step_info *info, int pos) {
    int32_t id = info->canvas[pos];
    if (id == v->mask_id) {
        fputs("\x1b[2m" MASK_GLYPH "\x1b[0m", stdout);
        return;
    }
    size_t len = 0;
    const char *bytes = um_tokenizer_is_special(v->t->tok, id) ? NULL : um_tokenizer_token_bytes(v->t->tok, id, &len);
    bool fresh = just_committed(info, pos);
    if (fresh)
        fputs("\x1b[1;32m", stdout);
    if (bytes)
        fwrite(bytes, 1, len, stdout);
    if (fresh)
        fputs("\x1b[0m", stdout);
}

int cli_visual_step(const um_step_info *info, void *user) {
    cli_visual *v = user;
    v->committed += info->n_committed;
    fputs("\x1b[H", stdout);
    int masks = 0;
    for (int pos = 0; pos < info->canvas_len; pos++) {
        masks += info->canvas[pos] == v->mask_id;
        draw_token(v, info, pos);
    }
    double dt = um_now() - v->t0;
    printf("\x1b[J\n\n\x1b[7m step %d | NFE %d | %.1f tokens/s | %d masks left \x1b[0m\x1b[K", info->step + 1,
           info->step + 1, dt > 0 ? v->committed / dt : 0.0, masks);
    fflush(stdout);
    return 0;
}

void cli_visual_end(cli_visual *v) {
    (void)v;
    fputs("\n\n", stdout);
    fflush(stdout);
}
