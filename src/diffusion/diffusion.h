/* The generation loop's parts, split as dInfer does:
 *
 *   canvas.c    the token state: rows, masks, the prompt, the EOS early stop
 *   schedule.c  blocks, steps, how many tokens a count-based step commits
 *   cache.c     what a step recomputes (none, prefix, dual, vicinity)
 *   decoder.c   which candidates a step commits (top-k, threshold, factor, ...)
 *   session.c   the loop that ties them together, one step at a time, and the
 *               scheduler that steps many sessions in one forward pass
 *   generate.c  the default parameters and um_generate, a loop over one session */
#ifndef UM_DIFFUSION_H
#define UM_DIFFUSION_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/pick.h"
#include "model/model.h"
#include "unmask.h"

/* ---- canvas --------------------------------------------------------------- */

/* The canvas, and with classifier-free guidance its unconditional copy. */
#define UM_CANVAS_MAX_ROWS 2

typedef struct {
    int32_t *rows;   /* [n_rows][len]: the canvas, then (CFG) the unconditional copy */
    bool *is_prompt; /* positions that were not masks at the start */
    int len, n_prompt, n_rows, mask_id;
} um_canvas;

um_status um_canvas_init(um_canvas *c, const int32_t *prompt, int n_prompt, int gen_length, int n_rows, int mask_id,
                         um_error *err);
void um_canvas_free(um_canvas *c);
/* Masks of the canvas (row 0) in [from, to). */
int um_canvas_count_masks(const um_canvas *c, int from, int to);
/* Writes the masked positions in [from, to), ascending; returns how many. */
int um_canvas_masked(const um_canvas *c, int from, int to, int32_t *out);
/* Refreshes the unconditional row of classifier-free guidance: the canvas with the prompt masked. */
void um_canvas_sync_uncond(um_canvas *c);
/* Early stop: when the canvas's first generated EOS has no mask before it,
 * its masks after it become EOS and the function returns true. */
bool um_canvas_eos_done(um_canvas *c, int eos_id);

/* ---- schedule ------------------------------------------------------------- */

/* LLaDA's get_num_transfer_tokens: n_masked tokens over steps, base count
 * n_masked / steps each, the remainder given one each to the first steps. */
void um_schedule_transfer_counts(int n_masked, int steps, int *counts);
/* The power-increasing schedule: 1, 2, 4, ... tokens, the last step taking
 * what remains; writes at most cap counts and returns how many. */
int um_schedule_power_counts(int n_masked, int *counts, int cap);
/* A block's counts under p's schedule; returns the number of steps. counts
 * holds max(steps_per_block, 64) ints. */
int um_schedule_block_counts(const um_generate_params *p, int n_masked, int steps_per_block, int *counts);
/* The timesteps schedule's fraction of the masks left that step (0-based)
 * of steps commits: 1 - t[step+1]/t[step] in float32, 1 at the last step;
 * and its count with n_masked masks left (unmask.h: UM_SCHEDULE_TIMESTEPS). */
float um_schedule_timestep_fraction(int step, int steps, double eps);
int um_schedule_timestep_count(int n_masked, int step, int steps, double eps);
/* EOS early rejection's gamma at a block's step (0-based) of n_steps:
 * linear from gamma0 to 1, then 1. */
double um_schedule_eos_gamma(double gamma0, int step, int n_steps);
/* Do the decoder's steps commit a scheduled count (topk, margin, entropy)? */
bool um_decoder_counts(um_decoder d);
/* Does a block end after its planned steps, masks left or not (the count-based
 * decoders and origin), rather than when it has no mask left? */
bool um_schedule_plans_steps(const um_generate_params *p);

/* Checks lengths and every generation parameter; err names the parameter. */
um_status um_schedule_check(const um_generate_params *p, int n_prompt, int n_prompt_masks, int max_seq,
                            um_error *err);
/* Blocks of a generation: gen_length / block_length, or one when gen_length
 * is 0 and the prompt's own masks are the only ones to fill. */
int um_schedule_n_blocks(const um_generate_params *p);
/* Block b spans canvas positions [start, end); its masks are counted (and
 * candidates taken) from count_from, which is 0 for the first block so masks
 * inside the prompt are decoded with it. */
void um_schedule_block_range(const um_generate_params *p, int n_prompt, int b, int *count_from, int *start,
                             int *end);

/* ---- cache manager -------------------------------------------------------- */

typedef struct {
    um_cache_mode mode;
    int before, after, refresh; /* vicinity: positions recomputed before and after the block; full-pass interval */
    int block;                  /* block diffusion: the block-causal mask's block length (0: not block-causal) */
    um_kv_cache kv[UM_CANVAS_MAX_ROWS]; /* one per canvas row; empty for UM_CACHE_NONE */
} um_cache;

/* What one step recomputes: positions [q0, q1); full: the whole canvas. */
typedef struct {
    int q0, q1;
    bool full;
} um_cache_plan;

void um_cache_init(um_cache *c, const um_generate_params *p);
/* Allocates the rows' caches in be at a session's first step (a no-op after,
 * and for UM_CACHE_NONE); a session stays on the kind of backend that first
 * stepped it. */
um_status um_cache_ready(um_cache *c, um_backend *be, const um_model *m, int n_rows, int len, um_error *err);
void um_cache_free(um_cache *c);
um_cache_plan um_cache_plan_step(const um_cache *c, int len, int block_start, int block_end, int step_in_block);
/* A step's range that is not a full pass: [block start, len) (prefix), the
 * block (dual), the block and its vicinity; the whole canvas without a cache. */
um_cache_plan um_cache_plan_range(const um_cache *c, int len, int block_start, int block_end);
/* The batch entries of the planned pass, one per canvas row (out holds
 * n_rows), each with outputs for sel (which must lie inside the plan). */
void um_cache_entries(um_cache *c, const int32_t *rows, int n_rows, int len, um_cache_plan plan, const int32_t *sel,
                      int n_sel, um_batch_entry *out);

/* ---- decoder -------------------------------------------------------------- */

/* The credit decoder's memory for one block (dInfer's credit matrix, kept
 * sparse): per block position, the tokens that were its top-1 and their
 * decayed, accumulated credit (kernels/pick.h: um_credit_entry; the pick
 * adds this step's credit and applies the boost). */
typedef struct {
    int start, len, cap; /* block [start, start + len); cap entries per position */
    int *n;              /* entries per position */
    um_credit_entry *e;  /* [len][cap] */
    int steps;
} um_credit;

um_status um_credit_begin_block(um_credit *c, int start, int len, um_error *err);
void um_credit_free(um_credit *c);
/* Starts a step: credit from earlier steps decays by the factor. */
void um_credit_step(um_credit *c, double decay);
/* Makes room for one more entry at every position (before a step's picks,
 * each of which may add one). */
um_status um_credit_reserve(um_credit *c, um_error *err);
/* Points r at pos's credit entries (NULL for positions outside the block:
 * their logits are left alone). */
void um_credit_point(um_credit *c, int pos, um_pick_request *r);

/* The decoder's rule applied to n candidates (positions ascending, their
 * picks): writes the positions to commit to out, best first, and returns how
 * many (>= 1 when n >= 1, unless count is 0 for a count-based decoder or
 * the quota), -1 when out of memory. count: the schedule's count (count-based
 * decoders) or the step's quota (the quota schedule: only the count best
 * are ranked); eos_gamma scales EOS candidates (1: off). */
int um_decode_select(const um_generate_params *p, const int32_t *pos, const um_pick *picks, int n, int count,
                     int eos_id, double eos_gamma, int32_t *out);
/* dInfer's decoders (the loop UM_LOOP_DINFER) on the block's masked
 * positions (ascending) and their picks, at this step's threshold: threshold
 * and credit commit every candidate whose token is not the mask id with
 * conf >= min(threshold, best - 1e-5); hierarchical the best of each run of
 * adjacent masks above low_threshold, every one above threshold, and the
 * best. Writes positions in ascending order; returns how many (0 when no
 * candidate qualifies), -1 when out of memory. */
int um_decode_dinfer(const um_generate_params *p, const int32_t *pos, const um_pick *picks, int n, double threshold,
                     int mask_id, int32_t *out);
/* Dream's origin: every candidate whose uniform draw (um_pick.draw) is below
 * transfer_p, in position order; returns how many (possibly 0). */
int um_decode_origin(const int32_t *pos, const um_pick *picks, int n, double transfer_p, int32_t *out);

/* ---- session --------------------------------------------------------------- */

/* A source of the uniform draws that the origin decoder and alg_temp use
 * (um_pick.draw), by forward pass (0-based) and position. */
typedef double (*um_draw_fn)(int step, int pos, void *user);
/* For tests: s's draws come from fn instead of its random streams. Dream's
 * origin draws from torch's generator, which unmask does not reproduce; a
 * test replays upstream's recorded positions through this (draw 0 for a
 * position to commit, 1 for one to keep masked). */
void um_session_set_draws(um_session *s, um_draw_fn fn, void *user);

#endif
