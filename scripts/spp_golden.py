#!/usr/bin/env python3
"""Golden SPP descriptors for test/unit/spp.test.ts, computed independently with numpy.

Usage: python3 scripts/spp_golden.py > fixtures/spp-golden.json

Bin i of n over a side of length a spans [floor(i*a/n), ceil((i+1)*a/n)) (PyTorch adaptive
pooling). Descriptor layout: levels in order; bins row-major (by, bx); channels contiguous.
Output is deterministic (fixed seeds, fixed float formatting).
"""
import json
import sys

import numpy as np

LEVEL_SETS = [[n] for n in range(1, 8)] + [[1, 2, 4], [6, 3, 2, 1]]
POOLS = ["max", "avg"]


def bin_edges(n, a):
    return [((i * a) // n, -((-(i + 1) * a) // n)) for i in range(n)]


def adaptive_pool(m, n, pool):
    """m: (H, W, C) float32 -> (n, n, C) float32, by slicing + reducing over the bin's axes."""
    h, w, c = m.shape
    out = np.empty((n, n, c), dtype=np.float32)
    for by, (y0, y1) in enumerate(bin_edges(n, h)):
        for bx, (x0, x1) in enumerate(bin_edges(n, w)):
            cell = m[y0:y1, x0:x1, :]
            if pool == "max":
                out[by, bx] = cell.max(axis=(0, 1))
            else:
                out[by, bx] = cell.mean(axis=(0, 1), dtype=np.float64).astype(np.float32)
    return out


def spp(m, levels, pool):
    # reshape(-1) of (n, n, C) is exactly the row-major bins / contiguous channels layout.
    return np.concatenate([adaptive_pool(m, n, pool).reshape(-1) for n in levels])


def l2(x32):
    x = x32.astype(np.float64)
    norm = np.sqrt(np.sum(x * x))
    return (x / norm).astype(np.float32) if norm > 0 else x32.copy()


def normalize(v, mode):
    if mode == "l2":
        return l2(v)
    # Signed sqrt rounded to float32 first, as the TS code does it in place on a Float32Array.
    s = (np.sign(v.astype(np.float64)) * np.sqrt(np.abs(v.astype(np.float64)))).astype(np.float32)
    return l2(s)


def f32list(a):
    # Shortest repr that round-trips through float32 (Math.fround(x) in JS recovers it exactly).
    return [float(str(v)) for v in np.asarray(a, dtype=np.float32).reshape(-1)]


def sizes():
    s = set()
    for h in range(1, 21):
        for w in (1, 3, 7, h, 20):
            s.add((h, w))
            if w in (1, 3, 20):
                s.add((w, h))  # wide and tall variants
    s.update([(2, 17), (13, 5), (19, 11), (5, 16), (11, 13), (17, 2)])
    return sorted(s)


def main():
    cases = []
    for k, (h, w) in enumerate(sizes()):
        c = 3
        rng = np.random.default_rng(1000 + k)
        m = rng.standard_normal((h, w, c), dtype=np.float32)
        results = [{"levels": lv, "pool": p, "expected": f32list(spp(m, lv, p))}
                   for lv in LEVEL_SETS for p in POOLS]
        cases.append({"height": h, "width": w, "channels": c, "data": f32list(m), "results": results})

    # A few wider-channel maps so a wrong channel stride cannot hide behind C = 3.
    for k, (h, w, c) in enumerate([(7, 7, 16), (4, 6, 9), (1, 2, 5)]):
        rng = np.random.default_rng(5000 + k)
        m = rng.standard_normal((h, w, c), dtype=np.float32)
        results = [{"levels": lv, "pool": p, "expected": f32list(spp(m, lv, p))}
                   for lv in ([1, 2, 4], [6, 3, 2, 1], [8]) for p in POOLS]
        cases.append({"height": h, "width": w, "channels": c, "data": f32list(m), "results": results})

    norm_cases = []
    rng = np.random.default_rng(7)
    vectors = [
        rng.standard_normal(12, dtype=np.float32),
        np.abs(rng.standard_normal(33, dtype=np.float32)),
        (rng.standard_normal(5, dtype=np.float32) * 1000).astype(np.float32),
        np.zeros(4, dtype=np.float32),
        np.array([0, -4, 0, 9, -0.25], dtype=np.float32),
    ]
    for v in vectors:
        for mode in ("l2", "sqrt"):
            norm_cases.append({"mode": mode, "input": f32list(v), "expected": f32list(normalize(v, mode))})

    doc = {
        "about": "Golden SPP descriptors from scripts/spp_golden.py (numpy); do not edit by hand.",
        "layout": "levels in order; bins row-major (by, bx); channels contiguous: "
                  "offset(level) + (by*n + bx)*C + c",
        "cases": cases,
        "normalize": norm_cases,
    }
    json.dump(doc, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
