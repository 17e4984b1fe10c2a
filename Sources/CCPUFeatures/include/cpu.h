#ifndef FLEETWATCH_CPU_H
#define FLEETWATCH_CPU_H

/// 1 when this x86-64 CPU and OS can run code built with `-target-cpu haswell` (EdgeKernelsAVX2):
/// AVX2 and FMA, the other Haswell extensions LLVM may use there (BMI1, BMI2, LZCNT, MOVBE,
/// F16C, POPCNT), and an OS that saves the YMM registers. 0 otherwise, and on other
/// architectures.
int fw_cpu_has_avx2_fma(void);

#endif
