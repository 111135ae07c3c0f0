#include "kernels/cpu.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* The OS must save the wider registers on context switches (XCR0), or the
 * instructions fault even where cpuid lists them. */
static unsigned long long xgetbv0(void) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

static void detect(um_cpu_features *f) {
    unsigned a, b, c, d;
    memset(f, 0, sizeof *f);
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12), f16c = c & (1u << 29);
    if (!osxsave || !avx)
        return;
    unsigned long long xcr0 = xgetbv0();
    bool ymm_state = (xcr0 & 0x6) == 0x6, zmm_state = (xcr0 & 0xe6) == 0xe6;
    if (__get_cpuid_max(0, NULL) < 7)
        return;
    __cpuid_count(7, 0, a, b, c, d);
    bool avx2 = b & (1u << 5), avx512f = b & (1u << 16), avx512dq = b & (1u << 17);
    bool avx512bw = b & (1u << 30), avx512vl = b & (1u << 31), vnni = c & (1u << 11);
    unsigned max_sub = a;
    bool bf16 = false, avx_vnni = false;
    if (max_sub >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        avx_vnni = a & (1u << 4);
        bf16 = a & (1u << 5);
    }
    f->avx2 = ymm_state && avx2 && fma && f16c;
    f->avx512 = f->avx2 && zmm_state && avx512f && avx512dq && avx512bw && avx512vl;
    f->avx512_bf16 = f->avx512 && bf16;
    f->avx512_vnni = f->avx512 && vnni;
    f->avx_vnni = f->avx2 && avx_vnni; /* ymm state only: no AVX-512 needed */
}
#else
static void detect(um_cpu_features *f) { memset(f, 0, sizeof *f); }
#endif

static um_cpu_features features;
static atomic_int features_ready;
static atomic_int path_current = -1;

const um_cpu_features *um_cpu_features_get(void) {
    if (!atomic_load(&features_ready)) {
        um_cpu_features f;
        detect(&f); /* idempotent: a race only detects twice */
        features = f;
        atomic_store(&features_ready, 1);
    }
    return &features;
}

um_kernel_path um_kernel_path_best(void) {
    const um_cpu_features *f = um_cpu_features_get();
    return f->avx512 ? UM_PATH_AVX512 : f->avx2 ? UM_PATH_AVX2 : UM_PATH_SCALAR;
}

const char *um_kernel_path_name(um_kernel_path p) {
    switch (p) {
    case UM_PATH_SCALAR:
        return "scalar";
    case UM_PATH_AVX2:
        return "avx2";
    case UM_PATH_AVX512:
        return "avx512";
    }
    return "?";
}

um_kernel_path um_kernel_path_set(um_kernel_path p) {
    um_kernel_path best = um_kernel_path_best();
    if (p > best)
        p = best;
    atomic_store(&path_current, (int)p);
    return p;
}

static atomic_int lib_current = -1;

um_kernel_lib um_kernel_lib_set(um_kernel_lib l) {
    if (l == UM_LIB_ONEDNN && !um_onednn_available())
        l = UM_LIB_NONE;
    atomic_store(&lib_current, (int)l);
    return l;
}

um_kernel_lib um_kernel_lib_get(void) {
    int l = atomic_load(&lib_current);
    if (l >= 0)
        return (um_kernel_lib)l;
    um_kernel_path_get(); /* reads UNMASK_KERNEL, which sets both */
    return (um_kernel_lib)atomic_load(&lib_current);
}

um_kernel_path um_kernel_path_get(void) {
    int p = atomic_load(&path_current);
    if (p >= 0)
        return (um_kernel_path)p;
    um_kernel_path want = um_kernel_path_best();
    um_kernel_lib lib = UM_LIB_AUTO;
    const char *env = getenv("UNMASK_KERNEL");
    if (env && *env && strcmp(env, "auto") != 0) {
        lib = UM_LIB_NONE;
        if (strcmp(env, "scalar") == 0)
            want = UM_PATH_SCALAR;
        else if (strcmp(env, "avx2") == 0)
            want = UM_PATH_AVX2;
        else if (strcmp(env, "avx512") == 0)
            want = UM_PATH_AVX512;
        else if (strcmp(env, "onednn") == 0) {
            lib = UM_LIB_ONEDNN;
            if (!um_onednn_available())
                fprintf(stderr, "unmask: UNMASK_KERNEL=onednn: this build has no oneDNN; using our %s kernels\n",
                        um_kernel_path_name(want));
        } else {
            lib = UM_LIB_AUTO;
            fprintf(stderr, "unmask: UNMASK_KERNEL=%s is not one of scalar, avx2, avx512, onednn, auto; using %s\n",
                    env, um_kernel_path_name(want));
        }
        if (want > um_kernel_path_best())
            fprintf(stderr, "unmask: UNMASK_KERNEL=%s: this CPU lacks it; using %s\n", env,
                    um_kernel_path_name(um_kernel_path_best()));
    }
    if (atomic_load(&lib_current) < 0)
        um_kernel_lib_set(lib);
    return um_kernel_path_set(want);
}
