#!/usr/bin/env python3
"""How much a learned projection (pre-transform -> centre -> PCA [-> whiten] -> L2) helps or
hurts SPP descriptors, measured on labelled photos; used to choose the projection's defaults.

Usage:
    node bin/spp-extract.cjs /work/shared/images/labelled -o /tmp/pcaq/v1.npy \
        --model /work/shared/models/keras-mobilenet_v1_0.75_224 -q
    python3 scripts/pca_quality.py /tmp/pcaq/v1.npy [/tmp/pcaq/v2.npy ...] [--json OUT.json]

Each .npy is read with the manifest beside it (X.manifest.jsonl: a header line, then lines with
"row" and "path"); an image's class is the name of its parent folder.

Split (fixed rule, no randomness): within each class, the class's paths are sorted by their
byte strings and numbered 0, 1, 2, ...; even numbers form the FIT half, odd numbers the EVAL half
(--swap exchanges the halves, as a check on how much the numbers move with the split).

The PCA is fitted (float64, sklearn PCA svd_solver='full') on the FIT half only, without labels.
On the EVAL half:
  nn1    leave-one-out 1-NN accuracy within the eval half, cosine similarity;
  map    leave-one-out mean average precision: each eval image queries the other eval images,
         relevant = same class, ranked by cosine;
  probe  sklearn LogisticRegression(max_iter=2000, C=1) trained on the FIT half's descriptors
         (projected the same way, not standardised) with their labels, accuracy on EVAL.
Descriptors: raw (cosine on the raw descriptor), raw-l2 and raw-sqrt (pre-transform only, no
PCA), and pre in {none, l2, sqrt} x K x whitening {none, alpha}. With 250 fitting rows the
centred data has rank <= 249, so the largest K is 249 (standing in for 256).
Whitening: scale = 1/sqrt(ev + alpha*mean(ev[:K])).
"""
import argparse
import json
import os
import sys
import time
import warnings

import numpy as np
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pca_golden import pre  # noqa: E402  (one pre-transform for the golden values and the study)

PRES = ["none", "l2", "sqrt"]
KS = [32, 64, 128, 256]
ALPHAS = [None, 0.01, 0.1, 1.0, 10.0]


def l2(y):
    return y / np.linalg.norm(y, axis=1, keepdims=True)


def load(npy, swap=False):
    x = np.load(npy)
    base = npy[:-4] if npy.endswith(".npy") else npy
    paths = {}
    with open(base + ".manifest.jsonl", encoding="utf-8") as f:
        header = json.loads(f.readline())
        for line in f:
            rec = json.loads(line)
            if "row" in rec and "path" in rec:
                paths[rec["row"]] = rec["path"]
    assert len(paths) == x.shape[0], (len(paths), x.shape)
    rows = sorted(paths)
    labels = np.array([os.path.basename(os.path.dirname(paths[r])) for r in rows])
    by_class = {}
    for r in rows:
        by_class.setdefault(os.path.basename(os.path.dirname(paths[r])), []).append(r)
    fit, ev = [], []
    for c in sorted(by_class):
        ordered = sorted(by_class[c], key=lambda r: paths[r].encode("utf-8"))
        fit += ordered[1::2] if swap else ordered[0::2]
        ev += ordered[0::2] if swap else ordered[1::2]
    return x, labels, np.array(sorted(fit)), np.array(sorted(ev)), header


def retrieval(y, labels):
    """Leave-one-out 1-NN accuracy and mAP with cosine similarity."""
    y = l2(y)
    s = y @ y.T
    n = len(y)
    np.fill_diagonal(s, -np.inf)
    nn1 = float(np.mean(labels[np.argmax(s, axis=1)] == labels))
    aps = []
    for i in range(n):
        order = np.argsort(-s[i], kind="stable")[: n - 1]  # drops self (-inf is last)
        rel = labels[order] == labels[i]
        hits = np.cumsum(rel)
        ranks = np.arange(1, n)
        aps.append(float(np.sum((hits / ranks)[rel]) / max(rel.sum(), 1)))
    return nn1, float(np.mean(aps))


def probe(yf, lf, ye, le):
    clf = LogisticRegression(max_iter=2000, C=1.0)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(yf, lf)
    converged = not any(issubclass(x.category, ConvergenceWarning) for x in w)
    return float(np.mean(clf.predict(ye) == le)), converged


def evaluate(name, yf, ye, lf, le, **meta):
    nn1, m = retrieval(ye, le)
    acc, conv = probe(yf, lf, ye, le)
    return dict(desc=name, nn1=nn1, map=m, probe=acc, probe_converged=conv, **meta)


def run_model(npy, swap=False):
    t0 = time.time()
    x, labels, fit, ev, header = load(npy, swap)
    lf, le = labels[fit], labels[ev]
    res = []
    res.append(evaluate("raw", x[fit].astype(np.float64), x[ev].astype(np.float64), lf, le,
                        pre="none", k=None, alpha=None))
    for p in ("l2", "sqrt"):
        res.append(evaluate(f"raw-{p}", pre(x[fit], p), pre(x[ev], p), lf, le,
                            pre=p, k=None, alpha=None))
    spectra = {}
    for p in PRES:
        pf, pe = pre(x[fit], p), pre(x[ev], p)
        kmax = min(pf.shape) - 1
        pca = PCA(n_components=kmax, svd_solver="full").fit(pf)
        evals = pca.explained_variance_
        spectra[p] = {
            "explained_variance_ratio_cumsum_at": {
                str(k): float(np.sum(pca.explained_variance_ratio_[: min(k, kmax)])) for k in KS
            },
        }
        cf = (pf - pca.mean_) @ pca.components_.T
        ce = (pe - pca.mean_) @ pca.components_.T
        for k in KS:
            kk = min(k, kmax)
            label = str(k) if kk == k else f"{kk} (for {k})"
            for a in ALPHAS:
                sc = np.ones(kk) if a is None else 1.0 / np.sqrt(evals[:kk] + a * evals[:kk].mean())
                yf, ye = l2(cf[:, :kk] * sc), l2(ce[:, :kk] * sc)
                wname = "none" if a is None else f"a={a:g}"
                res.append(evaluate(f"pca pre={p} K={label} whiten={wname}", yf, ye, lf, le,
                                    pre=p, k=kk, k_label=label, alpha=a))
        print(f"  {os.path.basename(npy)} pre={p} done ({time.time() - t0:.0f}s)", file=sys.stderr)
    return {
        "npy": npy,
        "model": header.get("model"),
        "layer": header.get("layer"),
        "dim": int(x.shape[1]),
        "n_fit": int(len(fit)),
        "n_eval": int(len(ev)),
        "max_k": int(min(len(fit), x.shape[1]) - 1),
        "spectra": spectra,
        "results": res,
    }


def table(m):
    out = [f"### {m['model']} (D={m['dim']}, fit {m['n_fit']}, eval {m['n_eval']})", "",
           "| descriptor | 1-NN | mAP | probe |", "|---|---:|---:|---:|"]
    for r in m["results"]:
        flag = "" if r["probe_converged"] else " (nc)"
        out.append(f"| {r['desc']} | {100 * r['nn1']:.1f} | {100 * r['map']:.1f} | "
                   f"{100 * r['probe']:.1f}{flag} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("npy", nargs="+")
    ap.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "pca_quality.json"))
    ap.add_argument("--swap", action="store_true",
                    help="robustness check: odd indices fit, even indices evaluate")
    args = ap.parse_args()
    import sklearn
    models = [run_model(n, args.swap) for n in args.npy]
    doc = {
        "generator": "scripts/pca_quality.py",
        "split": "per class, paths sorted by bytes; " + (
            "SWAPPED: odd index -> fit, even -> eval" if args.swap else "even index -> fit, odd -> eval"),
        "metrics": "nn1/map: leave-one-out within eval, cosine; probe: LogisticRegression(max_iter=2000, C=1) fit on fit half, accuracy on eval",
        "whitening": "scale = 1/sqrt(ev + alpha*mean(ev[:K]))",
        "note_k": "K=256 is impossible with 250 fitting rows (rank <= 249): K=249 stands in for 256",
        "versions": {"numpy": np.__version__, "sklearn": sklearn.__version__},
        "models": models,
    }
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("\n\n".join(table(m) for m in models))
    print("\n(nc) = logistic regression hit max_iter without converging")


if __name__ == "__main__":
    main()
