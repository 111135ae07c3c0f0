/* Which instruction set the kernels use: detected once at run time (cpuid and
 * the OS's saved register state on x86-64, the kernel's hwcaps on arm64), so
 * one binary runs the best code the CPU has.
 *
 * UNMASK_CPU=CLASS masks the detected features down to those of a smaller CPU
 * class, so that one machine can run everything exactly as a smaller one
 * dispatches it, the oneDNN backend included (its ISA is capped to match):
 *
 *   x86-64  scalar, avx2, avx2-vnni, avx512-novnni, avx512-vnni, avx512
 *   arm64   scalar, neon, neon-dot, neon-i8mm, neon-bf16
 *   both    native (the default: everything the CPU has)
 *
 * A class is a ceiling: a feature it names that the CPU lacks stays off,
 * with one note on stderr.
 *
 * UNMASK_KERNEL=scalar|avx2|avx512|neon forces a path (auto: the best the
 * CPU has). A forced path the CPU lacks falls back to the best one it has,
 * with a note on stderr, so a forced run never dies of an illegal
 * instruction.
 *
 * UNMASK_KERNEL=onednn forces the library backend (kernels/matmul_onednn.c,
 * where the build has oneDNN): F32 weights, and BF16 weights with
 * reduced-precision activations on AVX-512 CPUs, go to oneDNN; every other
 * type and mode runs our kernels on the best path. A forced instruction-set
 * path means our kernels only. */
#ifndef UM_KERNELS_CPU_H
#define UM_KERNELS_CPU_H

#include <stdbool.h>

typedef enum {
    UM_PATH_SCALAR, /* portable C, no intrinsics: the reference */
    UM_PATH_AVX2,   /* x86-64: AVX2 + FMA + F16C, with AVX-VNNI where present */
    UM_PATH_AVX512, /* x86-64: AVX-512 F/BW/VL/DQ, with BF16 and VNNI where present */
    UM_PATH_NEON,   /* arm64: Advanced SIMD, with dot product, i8mm and bf16 where present */
    UM_PATH_COUNT
} um_kernel_path;

typedef struct {
    /* x86-64 */
    bool avx2;        /* AVX2, FMA and F16C, with OS support for ymm state */
    bool avx512;      /* AVX-512 F, BW, VL and DQ, with OS support for zmm state */
    bool avx512_bf16; /* vdpbf16ps */
    bool avx512_vnni; /* vpdpbusd */
    bool avx_vnni;    /* vpdpbusd on ymm in the VEX encoding (AVX-VNNI: Alder Lake and later without AVX-512) */
    /* arm64 */
    bool neon;      /* Advanced SIMD with fp16 conversions (every arm64 CPU) */
    bool neon_dot;  /* sdot/udot (hwcap asimddot) */
    bool neon_i8mm; /* smmla/ummla/usmmla (hwcap2 i8mm) */
    bool neon_bf16; /* bfdot/bfmmla (hwcap2 bf16) */
} um_cpu_features;

/* What this CPU supports, less what UNMASK_CPU masks (cached). */
const um_cpu_features *um_cpu_features_get(void);
/* The class UNMASK_CPU named ("native" when unset). */
const char *um_cpu_class(void);
/* What the CPU itself supports, before any mask. */
const um_cpu_features *um_cpu_features_detected(void);

/* The path in use: UNMASK_KERNEL if set and supported, else the best one.
 * Read once; um_kernel_path_set() overrides it (tests, bench). */
um_kernel_path um_kernel_path_get(void);
/* Sets the path (a path the CPU lacks falls back to the best one it has);
 * returns the one taken. */
um_kernel_path um_kernel_path_set(um_kernel_path p);
/* The best path this CPU supports. */
um_kernel_path um_kernel_path_best(void);
/* Whether this CPU (as masked) can run path p. */
bool um_kernel_path_supported(um_kernel_path p);
/* What path p needs that the CPU lacks ("avx2", "avx512", "neon", "x86-64",
 * "arm64"), or NULL when it has it: for skip notes and warnings. */
const char *um_kernel_path_lack(um_kernel_path p);
const char *um_kernel_path_name(um_kernel_path p);
/* Whether path p has a bf16 dot-product instruction on this CPU (vdpbf16ps
 * on AVX-512 BF16, bfmlalb/bfmlalt on arm64 bf16): where the reduced bf16
 * arithmetic runs on SIMD. */
bool um_kernel_path_bf16_dot(um_kernel_path p);

/* The path and library a kernel name asks for ("scalar", "avx2", "avx512",
 * "neon": that path and our kernels only; "onednn" and "auto": the best path
 * with that library choice); false, with the auto choice, for an unknown name. */
typedef enum { UM_LIB_AUTO, UM_LIB_NONE, UM_LIB_ONEDNN } um_kernel_lib;
bool um_kernel_parse(const char *name, um_kernel_path *path, um_kernel_lib *lib);

/* The matmul library backend. AUTO (no UNMASK_KERNEL, or auto) uses a
 * library only where it was measured faster (matmul.c: um_onednn_default);
 * NONE (a forced path) never; ONEDNN (UNMASK_KERNEL=onednn) wherever it
 * handles the type and mode. um_kernel_lib_set() overrides it (tests, bench);
 * ONEDNN without oneDNN in the build stays NONE (returned). */
um_kernel_lib um_kernel_lib_get(void);
um_kernel_lib um_kernel_lib_set(um_kernel_lib l);
/* Whether this build links oneDNN (matmul_onednn.c). */
bool um_onednn_available(void);

#endif
