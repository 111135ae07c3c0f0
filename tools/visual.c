/* The live view redraws the whole canvas after every step: the prompt in
 * the terminal's normal colour, masks as a dim placeholder, tokens committed
 * by this step in bold green, and a status line (step, NFE, tokens/s, masks
 * left). Plain ANSI escapes; nothing is drawn unless stdout is a terminal.
 * Each frame is built in memory first: a canvas taller than the terminal
 * shows its last rows (where the active block is), and every line is
 * cleared to its end so a shorter line leaves nothing of the last frame. */
#include "visual.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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

/* A frame being built. */
typedef struct {
    char *s;
    size_t n, cap;
} frame;

static void put(frame *f, const char *s, size_t n) {
    if (f->n + n + 1 > f->cap) {
        size_t cap = (f->n + n + 1) * 2;
        char *g = realloc(f->s, cap);
        if (!g)
            return; /* a frame short of memory is drawn short */
        f->s = g;
        f->cap = cap;
    }
    memcpy(f->s + f->n, s, n);
    f->n += n;
    f->s[f->n] = 0;
}

static void puts_frame(frame *f, const char *s) { put(f, s, strlen(s)); }

/* One position: its token's bytes (each newline clearing the rest of its
 * line first), or the mask glyph. */
static void draw_token(const cli_visual *v, const um_step_info *info, int pos, frame *f) {
    int32_t id = info->canvas[pos];
    if (id == v->mask_id) {
        puts_frame(f, "\x1b[2m" MASK_GLYPH "\x1b[0m");
        return;
    }
    size_t len = 0;
    const char *bytes = um_tokenizer_is_special(v->t->tok, id) ? NULL : um_tokenizer_token_bytes(v->t->tok, id, &len);
    bool fresh = just_committed(info, pos);
    if (fresh)
        puts_frame(f, "\x1b[1;32m");
    for (size_t i = 0; bytes && i < len; i++) {
        if (bytes[i] == '\n')
            puts_frame(f, "\x1b[K");
        put(f, bytes + i, 1);
    }
    if (fresh)
        puts_frame(f, "\x1b[0m");
}

/* Where the last `rows` screen rows of the frame begin, lines wrapping at
 * `cols` columns (escape sequences take none, a UTF-8 character one). */
static size_t last_rows(const frame *f, int rows, int cols) {
    size_t *starts = malloc((f->n + 1) * sizeof *starts);
    if (!starts)
        return 0;
    int n_rows = 1, col = 0;
    starts[0] = 0;
    for (size_t i = 0; i < f->n; i++) {
        unsigned char c = (unsigned char)f->s[i];
        if (c == 0x1b) { /* CSI: to its final byte */
            while (i + 1 < f->n && !((unsigned char)f->s[i + 1] >= 0x40 && f->s[i + 1] != '['))
                i++;
            i++;
            continue;
        }
        if (c == '\n' || ((c & 0xc0) != 0x80 && col == cols)) {
            starts[n_rows++] = c == '\n' ? i + 1 : i;
            col = c == '\n' ? 0 : 1;
            continue;
        }
        col += (c & 0xc0) != 0x80;
    }
    size_t at = n_rows > rows ? starts[n_rows - rows] : 0;
    free(starts);
    return at;
}

int cli_visual_step(const um_step_info *info, void *user) {
    cli_visual *v = user;
    v->committed += info->n_committed;
    frame f = {0};
    int masks = 0;
    for (int pos = 0; pos < info->canvas_len; pos++) {
        masks += info->canvas[pos] == v->mask_id;
        draw_token(v, info, pos, &f);
    }
    struct winsize ws;
    int rows = 24, cols = 80;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
        rows = ws.ws_row;
        cols = ws.ws_col;
    }
    size_t from = f.s ? last_rows(&f, rows > 4 ? rows - 3 : 1, cols) : 0; /* the status line takes 3 rows */
    fputs("\x1b[H", stdout);
    if (f.s)
        fwrite(f.s + from, 1, f.n - from, stdout);
    free(f.s);
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
