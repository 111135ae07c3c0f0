/* Reproducible random numbers. Generation draws from streams keyed by
 * (seed, step, position, purpose), so results do not depend on thread count
 * or on the order positions are visited. */
#ifndef UM_BASE_RNG_H
#define UM_BASE_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4]; /* xoshiro256** state */
} um_rng;

/* SplitMix64 finalizer: a good 64-bit mixing function. */
static inline uint64_t um_mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void um_rng_seed(um_rng *r, uint64_t seed);
/* A stream derived from a seed and up to three keys. */
void um_rng_stream(um_rng *r, uint64_t seed, uint64_t k1, uint64_t k2, uint64_t k3);
uint64_t um_rng_next(um_rng *r);
/* Uniform double in [0, 1) with 53 random bits, like torch.rand(dtype=float64). */
double um_rng_uniform(um_rng *r);
/* Standard normal (Box-Muller). */
double um_rng_normal(um_rng *r);

#endif
