/* unmask run --batch: requests from a JSON Lines file, stepped together. */
#ifndef UM_TOOLS_RUN_BATCH_H
#define UM_TOOLS_RUN_BATCH_H

#include "cli.h"
#include "text.h"

/* Runs every request of the file at path with ctx, at most parallel (<= 0:
 * all) at once; defaults holds the command line's generation flags (before
 * cli_generation_finish). Returns the exit code. */
int run_batch(um_context *ctx, const char *path, const cli_gen_flags *defaults, int parallel, const char *model_path);

#endif
