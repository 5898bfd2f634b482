#!/usr/bin/env python3
"""Golden region descriptors for test/unit/regions.test.ts, computed with torchvision's roi_pool.

Usage (Debian: apt-get install -y python3-torch python3-torchvision, then the system python):
    /usr/bin/python3 scripts/roi_golden.py > fixtures/roi-golden.json

What is independent of src/spp/regions.ts and what is not:
  * The window of each box (which map cells it covers) is read off torchvision itself: a probe map
    whose cells hold their own column (row) index is max-pooled to 1x1 with roi_pool over the box,
    once with spatial_scale = map.width / input.width for the columns and once with
    map.height / input.height for the rows (roi_pool takes one scale; ours is per axis).
    Our window's end is exclusive, [round(x0*s), round(x1*s)): a box edge snaps to the nearest
    cell boundary, so tiles of a grid do not share cells. roi_pool's RoI end is inclusive (Fast
    R-CNN), so the probe is given the box with its right / bottom edge moved in by one cell
    (x1 - 1/s): roi_pool then covers [round(x0*s), round(x1*s - 1) + 1) = our window, with C's
    round (half away from zero). When that RoI lies wholly past the map (a box in the last half
    cell of the right or bottom edge), roi_pool pools nothing and returns zeros; our rule keeps the
    nearest cell instead, and the case says torchvisionEmpty. The script asserts that the probe
    equals the formula.
  * Max pooling: roi_pool(output_size=(n, n), spatial_scale=1) over the window given as an RoI in
    cells, [x0, y0, x1 - 1, y1 - 1] — so torchvision's own float32 bin arithmetic
    (hstart = floor(ph * L/n), hend = ceil((ph+1) * L/n), plus the RoI start, clipped) picks the
    cells. We clip the window to the map *before* binning (so a whole-image box gives the image's
    own SPP descriptor); roi_pool on the (one-cell-in) box bins the unclipped RoI and clips each
    bin. Where that RoI lies inside the map the two agree, and the script checks that
    (sameAsRawRoiPool).
  * torchvision has no average or GeM RoI pooling, so avg and GeM are numpy over the same bins
    (the integer form [s + floor(i*L/n), s + ceil((i+1)*L/n)), which the script checks equals
    roi_pool's float32 bins for the golden levels).
  * GeM: (mean over the bin of max(x, 1e-6)^p)^(1/p), float64, stored as float32.

Layout of every descriptor: levels in order; bins row-major (by, bx); channels innermost — the
layout of spatialPyramidPool. Maps are stored HWC (our FeatureMap); torch gets them as NCHW.
Boxes are in input pixels and the test passes image = input (resize factor 1).
Output is deterministic (fixed seeds, fixed float formatting).
"""
import json
import sys

import numpy as np
import torch
import torchvision
from torchvision.ops import roi_pool

GOLDEN_LEVELS = [1, 2, 3, 4, 6]
GEM_EPS = 1e-6
STRIDE = 32  # MobileNet's; inputs are map * 32, give or take a few pixels


def c_round(v):
    """C's round(): half away from zero (std::round, what roi_pool uses)."""
    a = abs(v)
    r = float(np.floor(a))
    r += 1.0 if a - r >= 0.5 else 0.0  # a - floor(a) is exact in float64
    return -r if v < 0 else r


def bin_range(i, n, length):
    return (i * length) // n, -((-(i + 1) * length) // n)


def check_bins_match_roi_pool():
    """roi_pool's float32 bins equal the exact integer bins for the golden levels (L <= 1024)."""
    for length in range(1, 1025):
        for n in GOLDEN_LEVELS:
            size = np.float32(length) / np.float32(n)
            for i in range(n):
                lo = int(np.floor(np.float32(i) * size))
                hi = int(np.ceil(np.float32(i + 1) * size))
                assert (lo, hi) == bin_range(i, n, length), (length, n, i)


def formula_window(b0, b1, scale, cells):
    """Our rule, in float64 as the TS code computes it: [round(b0*s), round(b1*s)) clipped, >= 1 cell.
    Also whether roi_pool, given the end moved in by one cell, pools nothing: its RoI
    [s0, max(s1 - 1, s0)] (a malformed RoI is one cell at its start) misses the map."""
    s0 = int(c_round(b0 * 1.0 * scale))
    s1 = int(c_round(b1 * 1.0 * scale))
    lo = min(max(s0, 0), cells - 1)
    hi = min(max(s1, lo + 1), cells)
    return lo, hi, (s0 > cells - 1 or max(s1 - 1, s0) < 0)


def probe_axis(b0, b1, scale, cells):
    """roi_pool's RoI along one axis, clipped to the map; None when it pools nothing."""
    vals = torch.arange(1, cells + 1, dtype=torch.float32)
    m = torch.stack([vals, -vals])[None, :, None, :]  # 1 x 2 x 1 x cells: values 1..cells
    roi = torch.tensor([[0, b0, 0, b1, 0]], dtype=torch.float32)
    out = roi_pool(m, roi, (1, 1), float(scale))[0, :, 0, 0]
    hi, lo = out[0].item(), -out[1].item()
    if hi == 0:
        return None  # is_empty: roi_pool writes 0
    return int(lo) - 1, int(hi)


def pool_numpy(m, window, levels, mode, p=None):
    """m: H x W x C float32; window (x0, y0, x1, y1); -> flat float32 in our layout."""
    x0, y0, x1, y1 = window
    parts = []
    for n in levels:
        out = np.empty((n, n, m.shape[2]), dtype=np.float32)
        for by in range(n):
            ya, yb = bin_range(by, n, y1 - y0)
            for bx in range(n):
                xa, xb = bin_range(bx, n, x1 - x0)
                cell = m[y0 + ya:y0 + yb, x0 + xa:x0 + xb, :].astype(np.float64)
                if mode == "avg":
                    out[by, bx] = cell.mean(axis=(0, 1))
                else:
                    out[by, bx] = np.power(np.power(np.maximum(cell, GEM_EPS), p).mean(axis=(0, 1)), 1.0 / p)
        parts.append(out.reshape(-1))
    return np.concatenate(parts)


def roi_pool_ours_layout(mt, roi, n, scale):
    out = roi_pool(mt, torch.tensor([roi], dtype=torch.float32), (n, n), float(scale))  # 1 x C x n x n
    return out[0].permute(1, 2, 0).contiguous().numpy().reshape(-1)  # n x n x C, row-major bins


def f32list(a):
    # Shortest repr that round-trips through float32 (Math.fround(x) in JS recovers it exactly).
    return [float(str(v)) for v in np.asarray(a, dtype=np.float32).reshape(-1)]


def near_tie(v, scale):
    f = abs(v * scale) % 1.0
    return abs(f - 0.5) < 1e-6


def coord(rng, lo, hi, scale, exact):
    """A box coordinate on a 1/16 px grid (exact in float32 and float64), not within 1e-6 of a
    .5-cell tie unless the scale is a power of two (exact arithmetic: ties are then meant)."""
    while True:
        v = float(np.round(rng.uniform(lo, hi) * 16) / 16)
        if exact or not near_tie(v, scale):
            return v


def boxes_for(rng, in_w, in_h, w, h, exact):
    sx, sy = w / in_w, h / in_h
    cx, cy = in_w / w, in_h / h  # one cell in input pixels

    def box(kind, x0, y0, x1, y1):
        return kind, [x0, y0, x1, y1]

    def c_x(lo, hi):
        return coord(rng, lo, hi, sx, exact)

    def c_y(lo, hi):
        return coord(rng, lo, hi, sy, exact)

    out = [box("whole", 0.0, 0.0, float(in_w), float(in_h))]
    # Smaller than a cell, anywhere.
    x0, y0 = c_x(0, in_w - cx), c_y(0, in_h - cy)
    out.append(box("sub-cell", x0, y0, c_x(x0 + 0.05 * cx, x0 + 0.9 * cx), c_y(y0 + 0.05 * cy, y0 + 0.9 * cy)))
    # Touching the right and bottom border.
    out.append(box("border", c_x(0, in_w * 0.9), c_y(0, in_h * 0.9), float(in_w), float(in_h)))
    # Partly outside: over the top-left corner, or past the right edge.
    if rng.uniform() < 0.5:
        out.append(box("outside", c_x(-in_w * 0.5, 0), c_y(-in_h * 0.5, 0), c_x(0.1 * in_w, in_w), c_y(0.1 * in_h, in_h)))
    else:
        out.append(box("outside", c_x(0, 0.8 * in_w), c_y(0, 0.8 * in_h), c_x(in_w, 1.5 * in_w), c_y(0.9 * in_h, 1.3 * in_h)))
    # Anywhere inside.
    xa, xb = sorted([c_x(0, in_w), c_x(0, in_w)])
    ya, yb = sorted([c_y(0, in_h), c_y(0, in_h)])
    out.append(box("random", xa, ya, max(xb, xa + 1 / 16), max(yb, ya + 1 / 16)))
    # A sliver in the last half cell of the right edge: roi_pool pools nothing there.
    if rng.uniform() < 0.5 or w == 1:
        out.append(box("last-half-cell", in_w - 0.4 * cx, c_y(0, in_h / 2), float(in_w), c_y(in_h / 2, in_h)))
    # Corners at exact .5-cell ties (half away from zero), where the arithmetic is exact.
    if exact:
        k, j = int(rng.integers(0, w)), int(rng.integers(0, h))
        out.append(box("tie", (k + 0.5) * cx, (j + 0.5) * cy, min((k + 1.5) * cx, in_w), min((j + 2.5) * cy, in_h)))
    return out


def shapes():
    fixed = [(3, 5), (5, 3), (7, 7), (7, 10), (10, 7), (1, 1), (1, 6), (6, 1), (2, 9), (12, 9)]
    rng = np.random.default_rng(42)
    rest = [(int(rng.integers(1, 13)), int(rng.integers(1, 13))) for _ in range(30)]
    return fixed + rest


def main():
    torch.set_num_threads(1)
    check_bins_match_roi_pool()
    gem_ps = [3.0, 3.0, 1.0, 2.0, 4.5, 8.0]
    cases = []
    stats = {"boxes": 0, "torchvisionEmpty": 0, "sameAsRawRoiPool": 0, "differsFromRawRoiPool": 0}
    for k, (h, w) in enumerate(shapes()):
        rng = np.random.default_rng(2000 + k)
        c = int(rng.integers(1, 4))
        exact = k % 2 == 0  # input = map * 32 on both axes: scale 1/32, exact arithmetic
        if exact:
            in_w, in_h = w * STRIDE, h * STRIDE
        else:  # e.g. 299 x 224 -> 10 x 7: the two axes scale differently
            in_w, in_h = w * STRIDE - int(rng.integers(0, STRIDE)), h * STRIDE - int(rng.integers(0, STRIDE))
        sx, sy = w / in_w, h / in_h
        m = np.round(rng.standard_normal((h, w, c)) * 1000) / 1000  # short decimals keep the JSON small
        if k % 4 < 2:  # ReLU-like activations (zeros included); the others keep their negatives
            m = np.maximum(m, 0)
        m = m.astype(np.float32)
        mt = torch.from_numpy(m).permute(2, 0, 1)[None].contiguous()  # 1 x C x H x W
        n_levels = int(rng.integers(1, 3))
        levels = [int(v) for v in rng.choice(GOLDEN_LEVELS, size=n_levels, replace=False)]
        gem_p = gem_ps[k % len(gem_ps)]

        results = []
        for kind, b in boxes_for(rng, in_w, in_h, w, h, exact):
            # The right / bottom edge moved in by one cell: roi_pool's inclusive end is then ours, exclusive.
            inner = [b[0], b[1], b[2] - 1.0 / sx, b[3] - 1.0 / sy]
            px = probe_axis(inner[0], inner[2], sx, w)
            py = probe_axis(inner[1], inner[3], sy, h)
            fx0, fx1, ex = formula_window(b[0], b[2], sx, w)
            fy0, fy1, ey = formula_window(b[1], b[3], sy, h)
            tv_empty = px is None or py is None
            assert (px is None) == ex and (py is None) == ey, (k, kind, b, px, py)
            if px is not None:
                assert px == (fx0, fx1), (k, kind, b, px, (fx0, fx1))
            if py is not None:
                assert py == (fy0, fy1), (k, kind, b, py, (fy0, fy1))
            window = (fx0, fy0, fx1, fy1)

            roi = [0, fx0, fy0, fx1 - 1, fy1 - 1]
            mx = np.concatenate([roi_pool_ours_layout(mt, roi, n, 1.0) for n in levels])
            # Same bins as numpy's integer form (max over the numpy slices).
            mx_np = np.concatenate([
                np.array([[m[fy0 + bin_range(by, n, fy1 - fy0)[0]:fy0 + bin_range(by, n, fy1 - fy0)[1],
                            fx0 + bin_range(bx, n, fx1 - fx0)[0]:fx0 + bin_range(bx, n, fx1 - fx0)[1]].max(axis=(0, 1))
                           for bx in range(n)] for by in range(n)], dtype=np.float32).reshape(-1)
                for n in levels])
            assert np.array_equal(mx, mx_np), (k, kind, b)

            same_raw = None
            if sx == sy and not tv_empty:
                raw = np.concatenate([roi_pool_ours_layout(mt, [0] + inner, n, sx) for n in levels])
                same_raw = bool(np.array_equal(raw, mx))
                raw_inside = (c_round(b[0] * sx) >= 0 and c_round(b[1] * sy) >= 0
                              and c_round(b[2] * sx) <= w and c_round(b[3] * sy) <= h
                              and c_round(b[2] * sx) > c_round(b[0] * sx) and c_round(b[3] * sy) > c_round(b[1] * sy))
                if raw_inside:
                    assert same_raw, (k, kind, b)
                stats["sameAsRawRoiPool" if same_raw else "differsFromRawRoiPool"] += 1
            stats["boxes"] += 1
            stats["torchvisionEmpty"] += int(tv_empty)

            results.append({
                "kind": kind,
                "box": b,
                "window": {"x0": fx0, "y0": fy0, "x1": fx1, "y1": fy1},
                "torchvisionEmpty": tv_empty,
                "sameAsRawRoiPool": same_raw,
                "max": f32list(mx),
                "avg": f32list(pool_numpy(m, window, levels, "avg")),
                "gem": f32list(pool_numpy(m, window, levels, "gem", gem_p)),
            })
        cases.append({
            "height": h, "width": w, "channels": c,
            "input": {"width": in_w, "height": in_h},
            "levels": levels, "gemP": gem_p,
            "data": f32list(m),
            "boxes": results,
        })

    doc = {
        "about": "Golden region descriptors from scripts/roi_golden.py (torchvision roi_pool for the windows "
                 "and max pooling; numpy for avg and GeM, which torchvision lacks); do not edit by hand.",
        "generatedWith": {"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": np.__version__},
        "layout": "levels in order; bins row-major (by, bx); channels contiguous: offset(level) + (by*n + bx)*C + c",
        "boxes": "input pixels [x0, y0, x1, y1]; window in map cells, end exclusive",
        "gemEps": GEM_EPS,
        "stats": stats,
        "cases": cases,
    }
    json.dump(doc, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
