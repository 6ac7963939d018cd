// LATTE_HD marks small inline functions that nvcc compiles for both host and device (dtype
// conversions, the counter RNG), so the CUDA kernels use the CPU's exact rules instead of copies.
// A plain C++ compiler sees ordinary inline functions.
#pragma once

#if defined(__CUDACC__)
#define LATTE_HD __host__ __device__
#else
#define LATTE_HD
#endif
