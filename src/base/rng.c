#include "rng.h"

#include <math.h>

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void um_rng_seed(um_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        x += 0x9e3779b97f4a7c15ull;
        r->s[i] = um_mix64(x);
    }
}

void um_rng_stream(um_rng *r, uint64_t seed, uint64_t k1, uint64_t k2, uint64_t k3) {
    uint64_t h = um_mix64(seed);
    h = um_mix64(h ^ k1);
    h = um_mix64(h ^ k2);
    h = um_mix64(h ^ k3);
    um_rng_seed(r, h);
}

uint64_t um_rng_next(um_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double um_rng_uniform(um_rng *r) { return (double)(um_rng_next(r) >> 11) * 0x1.0p-53; }

double um_rng_normal(um_rng *r) {
    double u1 = um_rng_uniform(r), u2 = um_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
