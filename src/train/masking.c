/* Seeded masking for the masked-diffusion objective. */
#include "base/rng.h"
#include "train/train.h"

void um_mdm_mask(uint64_t seed, uint64_t step, int n_rows, int seq, const int32_t *x0, const int32_t *prompt_lengths,
                 int mask_id, double eps, int32_t *noisy, double *p_mask) {
    /* Low-discrepancy times (MDLM, Sahoo et al. 2024): t_r = frac(u + r / n_rows)
     * with one u per batch. Each t_r is still U(0, 1), so the objective is the
     * same, but a batch covers [0, 1) evenly instead of by chance: its 1/t
     * loss weights vary far less from batch to batch. */
    um_rng offset;
    um_rng_stream(&offset, seed, step, 0, 0x74696d65u /* "time" */);
    double u = um_rng_uniform(&offset);
    for (int r = 0; r < n_rows; r++) {
        um_rng rng;
        um_rng_stream(&rng, seed, step, (uint64_t)r, 0x6d61736bu /* "mask" */);
        double t = u + (double)r / n_rows;
        t -= t >= 1 ? 1 : 0;
        double p = (1 - eps) * t + eps;
        int start = prompt_lengths ? prompt_lengths[r] : 0;
        for (int i = 0; i < seq; i++) {
            size_t k = (size_t)r * seq + i;
            p_mask[k] = p;
            noisy[k] = x0[k];
            if (i >= start && um_rng_uniform(&rng) < p)
                noisy[k] = mask_id;
        }
    }
}
