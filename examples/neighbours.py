#!/usr/bin/env python3
"""Nearest neighbours and near-duplicates over an spp-extract .npy, with numpy or faiss.

    python3 examples/neighbours.py feats.npy                      # numpy
    python3 examples/neighbours.py feats.npy --backend faiss      # faiss (pip install faiss-cpu)
    python3 examples/neighbours.py feats.npy -k 3 --threshold 0.95 --queries 2

Rows are L2-normalised, so the inner product is the cosine. Prints one JSON object on stdout:
  neighbours: for each query row (all rows, or the first --queries), its k nearest other rows
  duplicates: every pair of rows with cosine >= --threshold, most similar first
Each row is named by its path from the manifest beside the .npy (feats.manifest.jsonl), plus
box_index for region rows (--boxes / --grid).
"""
import argparse
import json
import os
import sys

import numpy as np


def load(npy_path, manifest_path):
    x = np.load(npy_path, allow_pickle=False).astype(np.float32)  # float16 outputs too
    if x.ndim != 2:
        sys.exit(f"{npy_path}: expected a 2-D array [rows, dim], got shape {x.shape}")
    with open(manifest_path, encoding="utf-8") as f:
        rows = [r for r in map(json.loads, filter(str.strip, f)) if r.get("type") == "row"]
    if len(rows) != len(x):
        sys.exit(f"{manifest_path}: {len(rows)} row records for {len(x)} rows of {npy_path}")
    ids = [r["path"] if "box_index" not in r else f"{r['path']}#{r['box_index']}" for r in rows]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    # An all-zero descriptor has no direction: it stays zero and matches nothing.
    x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    return x, ids


def numpy_search(x, queries, k, threshold, block=4096):
    """Exact search by blocks of query rows, so memory is block × N, not N × N."""
    n = len(x)
    neighbours, pairs = [], []
    for start in range(0, n, block):
        s = x[start:start + block] @ x.T  # cosines of this block against every row
        for i, row in enumerate(s, start):
            if i < queries:
                row_wo_self = row.copy()
                row_wo_self[i] = -np.inf
                kk = min(k, n - 1)
                top = np.argpartition(-row_wo_self, kk - 1)[:kk] if kk > 0 else np.array([], dtype=int)
                top = top[np.argsort(-row_wo_self[top], kind="stable")]
                neighbours.append([(int(j), float(row[j])) for j in top])
            js = np.nonzero(row[i + 1:] >= threshold)[0] + i + 1  # each pair once: j > i
            pairs.extend((i, int(j), float(row[j])) for j in js)
    return neighbours, pairs


def faiss_search(x, queries, k, threshold):
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    scores, idx = index.search(x[:queries], min(k + 1, len(x)))
    neighbours = []
    for i in range(queries):
        hits = [(int(j), float(c)) for j, c in zip(idx[i], scores[i]) if j != i and j >= 0]
        neighbours.append(hits[:k])
    # range_search keeps scores > radius; step the radius down one float32 ulp for >= threshold.
    radius = float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))
    lims, dist, labels = index.range_search(x, radius)
    pairs = [(i, int(j), float(c)) for i in range(len(x))
             for j, c in zip(labels[lims[i]:lims[i + 1]], dist[lims[i]:lims[i + 1]]) if j > i]
    return neighbours, pairs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("npy", help="an spp-extract .npy output")
    ap.add_argument("--manifest", help="its manifest (default: NAME.manifest.jsonl beside it)")
    ap.add_argument("-k", type=int, default=5, help="neighbours per query (default 5)")
    ap.add_argument("--threshold", type=float, default=0.9, help="cosine at or above which two rows are near-duplicates (default 0.9)")
    ap.add_argument("--queries", type=int, help="query only the first N rows (default: all)")
    ap.add_argument("--backend", choices=["numpy", "faiss"], default="numpy")
    a = ap.parse_args()
    if a.k < 1:
        ap.error("-k must be at least 1")
    manifest = a.manifest or os.path.splitext(a.npy)[0] + ".manifest.jsonl"
    x, ids = load(a.npy, manifest)
    queries = len(x) if a.queries is None else min(a.queries, len(x))
    search = numpy_search if a.backend == "numpy" else faiss_search
    neighbours, pairs = search(x, queries, a.k, a.threshold)
    pairs.sort(key=lambda p: (-p[2], p[0], p[1]))
    json.dump({
        "backend": a.backend,
        "rows": len(x),
        "dim": int(x.shape[1]),
        "k": a.k,
        "threshold": a.threshold,
        "neighbours": [{"path": ids[i], "neighbours": [{"path": ids[j], "cosine": round(c, 6)} for j, c in hits]}
                       for i, hits in enumerate(neighbours)],
        "duplicates": [{"a": ids[i], "b": ids[j], "cosine": round(c, 6)} for i, j, c in pairs],
    }, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
