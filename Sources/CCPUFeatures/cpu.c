#include "cpu.h"

#if defined(__x86_64__)
#include <cpuid.h>

int fw_cpu_has_avx2_fma(void) {
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return 0;
    // __builtin_cpu_supports checks that the OS enabled the YMM state for AVX/AVX2. `-target-cpu
    // haswell` also lets LLVM emit BMI1/BMI2/LZCNT/MOVBE/F16C/POPCNT instructions; every CPU
    // with AVX2 and FMA has had them, but check rather than assume (a hypervisor can mask bits).
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned int movbe = 1u << 22, popcnt = 1u << 23, f16c = 1u << 29;
    if ((c & (movbe | popcnt | f16c)) != (movbe | popcnt | f16c)) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const unsigned int bmi1 = 1u << 3, bmi2 = 1u << 8;
    if ((b & (bmi1 | bmi2)) != (bmi1 | bmi2)) return 0;
    if (!__get_cpuid(0x80000001, &a, &b, &c, &d)) return 0;
    const unsigned int lzcnt = 1u << 5;
    if (!(c & lzcnt)) return 0;
    return 1;
}

#else

int fw_cpu_has_avx2_fma(void) { return 0; }

#endif
