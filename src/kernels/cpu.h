/* Which instruction set the kernels use: detected once at run time (cpuid and
 * the OS's saved register state), so one x86-64 binary runs the AVX-512 code
 * where the CPU has it and the AVX2 or portable code elsewhere.
 *
 * UNMASK_KERNEL=scalar|avx2|avx512 forces a path (auto: the best the CPU
 * has). A forced path the CPU lacks falls back to the best one below it,
 * with a note on stderr, so a forced run never dies of an illegal
 * instruction.
 *
 * UNMASK_KERNEL=onednn forces the library backend (kernels/matmul_onednn.c,
 * where the build has oneDNN): F32 weights, and BF16 weights with
 * reduced-precision activations, go to oneDNN; every other type and mode
 * runs our kernels on the best path. A forced instruction-set path means our
 * kernels only. */
#ifndef UM_KERNELS_CPU_H
#define UM_KERNELS_CPU_H

#include <stdbool.h>

typedef enum {
    UM_PATH_SCALAR, /* portable C, no intrinsics: the reference */
    UM_PATH_AVX2,   /* AVX2 + FMA + F16C */
    UM_PATH_AVX512, /* AVX-512 F/BW/VL/DQ, with BF16 and VNNI where present */
} um_kernel_path;

typedef struct {
    bool avx2;        /* AVX2, FMA and F16C, with OS support for ymm state */
    bool avx512;      /* AVX-512 F, BW, VL and DQ, with OS support for zmm state */
    bool avx512_bf16; /* vdpbf16ps */
    bool avx512_vnni; /* vpdpbusd */
    bool avx_vnni;    /* vpdpbusd on ymm in the VEX encoding (AVX-VNNI: Alder Lake and later without AVX-512) */
} um_cpu_features;

/* What this CPU supports (cached). */
const um_cpu_features *um_cpu_features_get(void);

/* The path in use: UNMASK_KERNEL if set and supported, else the best one.
 * Read once; um_kernel_path_set() overrides it (tests, bench). */
um_kernel_path um_kernel_path_get(void);
/* Sets the path (clamped to what the CPU supports); returns the one taken. */
um_kernel_path um_kernel_path_set(um_kernel_path p);
/* The best path this CPU supports. */
um_kernel_path um_kernel_path_best(void);
const char *um_kernel_path_name(um_kernel_path p);

/* The matmul library backend. AUTO (no UNMASK_KERNEL, or auto) uses a
 * library only where it was measured faster (matmul.c: um_onednn_default);
 * NONE (a forced path) never; ONEDNN (UNMASK_KERNEL=onednn) wherever it
 * handles the type and mode. um_kernel_lib_set() overrides it (tests, bench);
 * ONEDNN without oneDNN in the build stays NONE (returned). */
typedef enum { UM_LIB_AUTO, UM_LIB_NONE, UM_LIB_ONEDNN } um_kernel_lib;
um_kernel_lib um_kernel_lib_get(void);
um_kernel_lib um_kernel_lib_set(um_kernel_lib l);
/* Whether this build links oneDNN (matmul_onednn.c). */
bool um_onednn_available(void);

#endif
