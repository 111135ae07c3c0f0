/* --visual: a live terminal view of the canvas being unmasked. */
#ifndef UM_TOOLS_VISUAL_H
#define UM_TOOLS_VISUAL_H

#include <stdbool.h>

#include "text.h"
#include "unmask.h"

typedef struct {
    cli_text *t;
    int mask_id;
    double t0;
    int committed; /* tokens committed so far */
} cli_visual;

/* False (and nothing drawn) when stdout is not a terminal: plain output then. */
bool cli_visual_begin(cli_visual *v, cli_text *t, int mask_id);
/* A um_step_callback: redraws the canvas, this step's commits highlighted. */
int cli_visual_step(const um_step_info *info, void *user);
void cli_visual_end(cli_visual *v);

#endif
