"""vae_dist's random streams in numpy, written from src/core/rng.{hpp,cpp} and src/data/epoch_plan.cpp: std::mt19937_64,
the seed derivation, the unbiased integer draw, the per-epoch Fisher-Yates shuffle and the Box-Muller noise. With them a
PyTorch run can train on the batches and the noise a one-rank vae_dist run of the same seed trains on (the training match
of launch/match_kl.sh). Run with Debian's /usr/bin/python3."""
import numpy as np

M64 = (1 << 64) - 1
# RngStream in src/data/epoch_plan.hpp
SHUFFLE, EPS = 2, 3


def _mix(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def derive_seed(seed, a, b=0, c=0):
    return _mix(_mix(_mix(_mix(seed) ^ a) ^ b) ^ c)


class MT19937_64:
    """std::mt19937_64: the state twisted in three vectorised segments, outputs tempered a block of 312 at a time."""
    N, M = 312, 156
    A = np.uint64(0xB5026F5AA96619E9)
    UPPER, LOWER = np.uint64(0xFFFFFFFF80000000), np.uint64(0x7FFFFFFF)

    def __init__(self, seed):
        mt = [seed & M64]
        for i in range(1, self.N):
            mt.append((6364136223846793005 * (mt[-1] ^ (mt[-1] >> 62)) + i) & M64)
        self.mt = np.array(mt, dtype=np.uint64)
        self.out = np.empty(0, dtype=np.uint64)
        self.pos = self.N  # the first draw twists, as in the standard library

    def _twist(self):
        mt, n, m = self.mt, self.N, self.M
        one = np.uint64(1)

        def step(i0, i1, nxt, far):  # mt[i] for i in [i0, i1) from mt[i+1] (nxt) and mt[i+m] (far)
            y = (mt[i0:i1] & self.UPPER) | (nxt & self.LOWER)
            mt[i0:i1] = far ^ (y >> one) ^ np.where(y & one, self.A, np.uint64(0))

        step(0, n - m, mt[1:n - m + 1].copy(), mt[m:n].copy())
        step(n - m, n - 1, mt[n - m + 1:n].copy(), mt[0:m - 1].copy())
        step(n - 1, n, mt[0:1].copy(), mt[m - 1:m].copy())
        y = mt.copy()
        y ^= (y >> np.uint64(29)) & np.uint64(0x5555555555555555)
        y ^= (y << np.uint64(17)) & np.uint64(0x71D67FFFEDA60000)
        y ^= (y << np.uint64(37)) & np.uint64(0xFFF7EEE000000000)
        y ^= y >> np.uint64(43)
        self.out, self.pos = y, 0

    def take(self, k):
        """The next k outputs, as uint64."""
        parts = []
        while k > 0:
            if self.pos == self.N:
                self._twist()
            n = min(k, self.N - self.pos)
            parts.append(self.out[self.pos:self.pos + n])
            self.pos += n
            k -= n
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)


class Rng:
    """vd::Rng: the draws the trainer makes, in its order."""

    def __init__(self, seed):
        self.engine = MT19937_64(seed)

    def next_u64(self):
        return int(self.engine.take(1)[0])

    def below(self, n):
        limit = M64 - M64 % n
        while True:
            x = self.next_u64()
            if x < limit:
                return x % n

    def uniform(self, k):
        return (self.engine.take(k) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53

    def fill_normal(self, n):
        """n float32 N(0, 1) values: Box-Muller pairs (cos, sin) of two uniforms each; an odd last value is the cos of
        its own pair."""
        pairs = (n + 1) // 2
        u = self.uniform(2 * pairs).reshape(pairs, 2)
        r = np.sqrt(-2.0 * np.log(1.0 - u[:, 0]))
        t = 2.0 * np.pi * u[:, 1]
        z = np.stack([r * np.cos(t), r * np.sin(t)], axis=1).reshape(-1)[:n]
        return z.astype(np.float32)


def make_rng(seed, stream, a=0, b=0):
    return Rng(derive_seed(seed, stream, a, b))


def epoch_order(seed, epoch, rows, rank=0):
    """EpochPlan::shuffle without a block layout (data in memory): the rows of the shard in training order."""
    rng = make_rng(seed, SHUFFLE, epoch, rank)
    perm = list(range(rows))
    for i in range(rows, 1, -1):
        j = rng.below(i)
        perm[i - 1], perm[j] = perm[j], perm[i - 1]
    return np.array(perm, dtype=np.int64)


def epoch_noise(seed, epoch, rank=0):
    """The epoch's noise stream: each step draws fill_normal(rows in the step x latent elements) from it."""
    return make_rng(seed, EPS, epoch, rank)


if __name__ == "__main__":
    # The C++ standard fixes the 10000th output of a default-seeded mt19937_64 (seed 5489).
    e = MT19937_64(5489)
    e.take(9999)
    assert int(e.take(1)[0]) == 9981545732273789042, "mt19937_64 does not match the standard"
    print("vd_rng: mt19937_64 matches the standard's 10000th value")
