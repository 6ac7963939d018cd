"""The project's seeded, counter-based random numbers: identical on every backend (CPU, CUDA, Python).

Algorithm (docs/reference.md repeats it for engine implementers); all integer ops are on uint64 mod 2^64:

    splitmix64(x):  z = x + 0x9E3779B97F4A7C15
                    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
                    z = (z ^ (z >> 27)) * 0x94D049BB133111EB
                    return z ^ (z >> 31)
    key          = splitmix64(seed)                       # seed: integer in [0, 2^64)
    bits(i)      = splitmix64(key + i)                     # counter i = 0, 1, 2, ...
    u53(b)       = (b >> 11) * 2^-53                       # float64 in [0, 1), exact
    normal(i)    = float32( sqrt(-2 ln(u53(bits(2i)) + 2^-53)) * cos(2 pi u53(bits(2i+1))) )   # in float64
    uniform(i)   = u53(bits(i))                            # token sampling: step i of a decode

Element i of a noise tensor is normal(i) with i the row-major flat index ([B, C, h, w]: batch b starts at
b*C*h*w). Each element depends only on (seed, i), so any backend can fill any slice in parallel.
The float64 -> float32 rounding is exact; float64 log/cos/sqrt may differ by an ulp between libms, which
changes the float32 result only when a value sits on a float32 rounding boundary (about 1 in 10^8
elements), so cross-backend tests allow 1 float32 ulp.
"""
import math

import numpy as np
import torch

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
M1 = 0xBF58476D1CE4E5B9
M2 = 0x94D049BB133111EB
TWO_PI = 6.283185307179586   # the float64 nearest 2*pi
INV_2_53 = 1.0 / 9007199254740992.0


def splitmix64(x):
    """Scalar reference (Python ints)."""
    z = (x + GOLDEN) & MASK
    z = ((z ^ (z >> 30)) * M1) & MASK
    z = ((z ^ (z >> 27)) * M2) & MASK
    return z ^ (z >> 31)


def _splitmix64_np(x):
    """Vectorised splitmix64 on a uint64 array (numpy wraps uint64 arithmetic mod 2^64)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(M1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(M2)
        return z ^ (z >> np.uint64(31))


def bits(seed, start, count):
    """bits(i) for i in [start, start + count) as uint64 array."""
    key = np.uint64(splitmix64(int(seed) & MASK))
    with np.errstate(over="ignore"):
        idx = np.arange(count, dtype=np.uint64) + np.uint64(start)
        return _splitmix64_np(key + idx)


def uniform(seed, i):
    """uniform(i) as a Python float in [0, 1)."""
    b = splitmix64((splitmix64(int(seed) & MASK) + i) & MASK)
    return (b >> 11) * INV_2_53


def normal_np(seed, n, offset=0):
    """float32 array of normal(offset + k), k < n."""
    b = bits(seed, 2 * offset, 2 * n).reshape(n, 2)
    u1 = (b[:, 0] >> np.uint64(11)).astype(np.float64) * INV_2_53 + INV_2_53   # (0, 1]: log never sees 0
    u2 = (b[:, 1] >> np.uint64(11)).astype(np.float64) * INV_2_53
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(TWO_PI * u2)).astype(np.float32)


def normal(seed, shape, offset=0):
    """torch float32 tensor of the given shape, element i (row-major) = normal(offset + i)."""
    n = int(np.prod(shape)) if len(shape) else 1
    return torch.from_numpy(normal_np(seed, n, offset)).reshape(shape)


def normal_scalar(seed, i):
    """Pure-Python normal(i) (for hand checks and docs)."""
    key = splitmix64(int(seed) & MASK)
    a = splitmix64((key + 2 * i) & MASK)
    b = splitmix64((key + 2 * i + 1) & MASK)
    u1 = (a >> 11) * INV_2_53 + INV_2_53
    u2 = (b >> 11) * INV_2_53
    return float(np.float32(math.sqrt(-2.0 * math.log(u1)) * math.cos(TWO_PI * u2)))
