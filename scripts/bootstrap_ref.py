#!/usr/bin/env python3
"""Reference transcription of lib/eval/bootstrap.ts in numpy, for
test/bootstrap.test.ts: the seeded draws (mixSeed + mulberry32 of
lib/data/prng.ts), the replicate means over the drawn seeds x clips grid and
numpy.percentile's default (linear) percentile interval.

Usage: bootstrap_ref.py CASES.json > RESULT.json
CASES.json: {"cases": [{"a": [[...], ...], "b": [[...], ...] (optional: paired a - b),
                        "resamples": 2000, "seed": 7, "level": 0.95}]}
Result: [{"estimate": x, "lo": x, "hi": x}, ...]
Exit status 3 with a line on stderr when numpy is missing.
"""
import json
import sys

try:
    import numpy as np
except ImportError:
    sys.stderr.write("numpy is missing (apt install python3-numpy)\n")
    sys.exit(3)

M = 0xFFFFFFFF


def imul(a, b):
    return (a * b) & M


def rotl(x, r):
    return ((x << r) | (x >> (32 - r))) & M


def mix_seed(*parts):
    h = (0x9E3779B9 ^ len(parts)) & M
    for p in parts:
        lo = int(p) & M
        hi = (int(p) // 4294967296) & M
        for w in (lo, hi):
            k = imul(w, 0xCC9E2D51)
            k = rotl(k, 15)
            k = imul(k, 0x1B873593)
            h ^= k
            h = rotl(h, 13)
            h = (imul(h, 5) + 0xE6546B64) & M
    h ^= h >> 16
    h = imul(h, 0x85EBCA6B)
    h ^= h >> 13
    h = imul(h, 0xC2B2AE35)
    h ^= h >> 16
    return h


class Mulberry32:
    def __init__(self, seed):
        self.state = mix_seed(seed)

    def next(self):
        self.state = (self.state + 0x6D2B79F5) & M
        t = self.state
        t = imul(t ^ (t >> 15), t | 1)
        t ^= (t + imul(t ^ (t >> 7), t | 61)) & M
        return ((t ^ (t >> 14)) & M) / 4294967296.0

    def int(self, n):
        return int(self.next() * n)


def bootstrap(d, resamples, seed, level):
    s, n = d.shape
    rng = Mulberry32(seed)
    reps = np.empty(resamples)
    for b in range(resamples):
        si = [rng.int(s) for _ in range(s)]
        ci = [rng.int(n) for _ in range(n)]
        reps[b] = d[np.ix_(si, ci)].mean()
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(reps, [tail, 100 - tail])
    return {"estimate": float(d.mean()), "lo": float(lo), "hi": float(hi)}


def main():
    cases = json.load(open(sys.argv[1]))["cases"]
    out = []
    for c in cases:
        d = np.asarray(c["a"], dtype=np.float64)
        if "b" in c:
            d = d - np.asarray(c["b"], dtype=np.float64)
        out.append(bootstrap(d, c.get("resamples", 10000), c.get("seed", 1), c.get("level", 0.95)))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
