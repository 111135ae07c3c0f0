#include "kernels/cpu.h"

#include <pthread.h>
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
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>

/* The kernel's hwcaps (asm/hwcap.h), spelled here for older headers. */
#define HWCAP_BIT_ASIMD (1ul << 1)
#define HWCAP_BIT_ASIMDDP (1ul << 20)
#define HWCAP2_BIT_I8MM (1ul << 13)
#define HWCAP2_BIT_BF16 (1ul << 14)

static void detect(um_cpu_features *f) {
    memset(f, 0, sizeof *f);
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    f->neon = hw & HWCAP_BIT_ASIMD;
    f->neon_dot = f->neon && (hw & HWCAP_BIT_ASIMDDP);
    f->neon_i8mm = f->neon && (hw2 & HWCAP2_BIT_I8MM);
    f->neon_bf16 = f->neon && (hw2 & HWCAP2_BIT_BF16);
}
#else
static void detect(um_cpu_features *f) { memset(f, 0, sizeof *f); }
#endif

/* The classes UNMASK_CPU names: each the features a kind of CPU has. */
typedef struct {
    const char *name;
    um_cpu_features f;
} cpu_class;

static const cpu_class classes[] = {
    {"scalar", {0}},
    {"avx2", {.avx2 = 1}},                                                          /* Zen 2/3, Haswell */
    {"avx2-vnni", {.avx2 = 1, .avx_vnni = 1}},                                      /* Alder Lake */
    {"avx512-novnni", {.avx2 = 1, .avx512 = 1}},                                    /* Skylake-X */
    {"avx512-vnni", {.avx2 = 1, .avx512 = 1, .avx512_vnni = 1}},                    /* Cascade/Ice Lake */
    {"avx512", {.avx2 = 1, .avx512 = 1, .avx512_vnni = 1, .avx512_bf16 = 1}},       /* Zen 4 */
    {"neon", {.neon = 1}},                                                          /* Cortex-A72 */
    {"neon-dot", {.neon = 1, .neon_dot = 1}},                                       /* Neoverse N1 */
    {"neon-i8mm", {.neon = 1, .neon_dot = 1, .neon_i8mm = 1}},                      /* i8mm, no bf16 */
    {"neon-bf16", {.neon = 1, .neon_dot = 1, .neon_i8mm = 1, .neon_bf16 = 1}},     /* Neoverse V1/N2 */
};

/* The features' names, in the struct's order, for the notes. */
static const char *const feature_names[] = {"avx2",     "avx512",   "avx512_bf16", "avx512_vnni", "avx_vnni",
                                            "neon",     "asimddot", "i8mm",        "bf16"};
enum { N_FEATURES = sizeof feature_names / sizeof *feature_names };
_Static_assert(sizeof(um_cpu_features) == N_FEATURES * sizeof(bool), "one name per feature");

/* Written once, under features_once: a thread that asks while another
 * detects waits, and never sees the features half masked. */
static um_cpu_features detected, masked;
static const char *class_name = "native";
static pthread_once_t features_once = PTHREAD_ONCE_INIT;

/* Applies UNMASK_CPU to the detected features. */
static void apply_class(void) {
    masked = detected;
    const char *env = getenv("UNMASK_CPU");
    if (!env || !*env || strcmp(env, "native") == 0)
        return;
    const cpu_class *c = NULL;
    for (size_t i = 0; i < sizeof classes / sizeof *classes; i++)
        if (strcmp(env, classes[i].name) == 0)
            c = &classes[i];
    if (!c) {
        fprintf(stderr, "unmask: UNMASK_CPU=%s is not a CPU class (", env);
        for (size_t i = 0; i < sizeof classes / sizeof *classes; i++)
            fprintf(stderr, "%s, ", classes[i].name);
        fprintf(stderr, "native); using native\n");
        return;
    }
    class_name = c->name;
    const bool *want = (const bool *)&c->f, *have = (const bool *)&detected;
    bool *out = (bool *)&masked;
    char lacks[160] = "";
    for (int i = 0; i < N_FEATURES; i++) {
        out[i] = want[i] && have[i];
        if (want[i] && !have[i])
            snprintf(lacks + strlen(lacks), sizeof lacks - strlen(lacks), "%s%s", *lacks ? ", " : "",
                     feature_names[i]);
    }
    if (*lacks)
        fprintf(stderr, "unmask: UNMASK_CPU=%s: this CPU lacks %s; running without\n", env, lacks);
}

static void features_init(void) {
    detect(&detected);
    apply_class();
}

const um_cpu_features *um_cpu_features_get(void) {
    pthread_once(&features_once, features_init);
    return &masked;
}

const um_cpu_features *um_cpu_features_detected(void) {
    um_cpu_features_get();
    return &detected;
}

const char *um_cpu_class(void) {
    um_cpu_features_get();
    return class_name;
}

const char *um_kernel_path_lack(um_kernel_path p) {
    const um_cpu_features *f = um_cpu_features_get();
    switch (p) {
    case UM_PATH_SCALAR:
        return NULL;
    case UM_PATH_AVX2:
    case UM_PATH_AVX512:
#if defined(__x86_64__)
        return p == UM_PATH_AVX2 ? (f->avx2 ? NULL : "avx2") : (f->avx512 ? NULL : "avx512");
#else
        return "x86-64";
#endif
    case UM_PATH_NEON:
#if defined(__aarch64__)
        return f->neon ? NULL : "neon";
#else
        return "arm64";
#endif
    default:
        return "?";
    }
}

bool um_kernel_path_supported(um_kernel_path p) { return um_kernel_path_lack(p) == NULL; }

bool um_kernel_path_bf16_dot(um_kernel_path p) {
    const um_cpu_features *f = um_cpu_features_get();
    return (p == UM_PATH_AVX512 && f->avx512_bf16) || (p == UM_PATH_NEON && f->neon_bf16);
}

um_kernel_path um_kernel_path_best(void) {
    static const um_kernel_path order[] = {UM_PATH_AVX512, UM_PATH_AVX2, UM_PATH_NEON};
    for (size_t i = 0; i < sizeof order / sizeof *order; i++)
        if (um_kernel_path_supported(order[i]))
            return order[i];
    return UM_PATH_SCALAR;
}

const char *um_kernel_path_name(um_kernel_path p) {
    switch (p) {
    case UM_PATH_SCALAR:
        return "scalar";
    case UM_PATH_AVX2:
        return "avx2";
    case UM_PATH_AVX512:
        return "avx512";
    case UM_PATH_NEON:
        return "neon";
    default:
        return "?";
    }
}

static atomic_int path_current = -1;

/* The path taken for a wish: p where the CPU has it, else AVX2 for AVX-512
 * where it has that, else the best it has. */
static um_kernel_path path_fallback(um_kernel_path p) {
    if (um_kernel_path_supported(p))
        return p;
    if (p == UM_PATH_AVX512 && um_kernel_path_supported(UM_PATH_AVX2))
        return UM_PATH_AVX2;
    return um_kernel_path_best();
}

um_kernel_path um_kernel_path_set(um_kernel_path p) {
    p = path_fallback(p);
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

bool um_kernel_parse(const char *name, um_kernel_path *path, um_kernel_lib *lib) {
    *path = um_kernel_path_best();
    *lib = strcmp(name, "onednn") == 0 ? UM_LIB_ONEDNN : UM_LIB_AUTO;
    if (strcmp(name, "auto") == 0 || *lib == UM_LIB_ONEDNN)
        return true;
    for (int i = 0; i < UM_PATH_COUNT; i++)
        if (strcmp(name, um_kernel_path_name((um_kernel_path)i)) == 0) {
            *path = (um_kernel_path)i;
            *lib = UM_LIB_NONE;
            return true;
        }
    return false;
}

um_kernel_path um_kernel_path_get(void) {
    int p = atomic_load(&path_current);
    if (p >= 0)
        return (um_kernel_path)p;
    um_kernel_path want = um_kernel_path_best();
    um_kernel_lib lib = UM_LIB_AUTO;
    const char *env = getenv("UNMASK_KERNEL");
    if (env && *env) {
        if (!um_kernel_parse(env, &want, &lib))
            fprintf(stderr,
                    "unmask: UNMASK_KERNEL=%s is not one of scalar, avx2, avx512, neon, onednn, auto; using %s\n",
                    env, um_kernel_path_name(want));
        else if (lib == UM_LIB_ONEDNN && !um_onednn_available())
            fprintf(stderr, "unmask: UNMASK_KERNEL=onednn: this build has no oneDNN; using our %s kernels\n",
                    um_kernel_path_name(want));
        if (um_kernel_path_lack(want))
            fprintf(stderr, "unmask: UNMASK_KERNEL=%s: this CPU lacks %s; using %s\n", env,
                    um_kernel_path_lack(want), um_kernel_path_name(path_fallback(want)));
    }
    if (atomic_load(&lib_current) < 0)
        um_kernel_lib_set(lib);
    return um_kernel_path_set(want);
}
