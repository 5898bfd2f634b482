#!/usr/bin/env python3
"""Golden values for the learned projection (centre -> PCA, optionally whitened -> L2).

Regenerate (deterministic: fixed seeds, fixed formatting):

    python3 scripts/pca_golden.py > fixtures/pca-golden.json

Reference: scikit-learn PCA(n_components=K, svd_solver='full') fitted in float64 on pre(X),
where X is the stored float32 matrix. The projection of one raw row x is

    p = pre(x)           'none': x;  'l2': x/||x||;  'sqrt': s = sign(x)*sqrt(|x|), then s/||s||
    y = scale * (components @ (p - mean))
    y = y / ||y||

scale = 1 (unwhitened) or 1/sqrt(explained_variance + alpha*mean(explained_variance)), the mean
taken over the K kept eigenvalues (regularised whitening). Components are the top-K principal
axes (unit rows); each row is flipped so that its entry of largest absolute value is positive
(the first such entry on ties): scikit-learn's svd_flip(u_based_decision=False), which its
PCA uses for every solver. The script checks this and an independent numpy eigh of the
covariance against sklearn before writing anything (and asserts they agree).

X is stored as the shortest decimal strings that round-trip to float32: load them into a
Float32Array (or np.float32) to get exactly the values the golden was computed from.
Everything else is float64 (repr, round-trips exactly).
"""
import json
import sys

import numpy as np
import sklearn
from sklearn.decomposition import PCA

ALPHA = 0.1
N_PROJECTED = 5
FORMULA = (
    "p = pre(x) [none: x; l2: x/||x||; sqrt: s=sign(x)*sqrt(|x|), p=s/||s||]; "
    "y = scale * (components @ (p - mean)); y = y/||y||. "
    "scale = 1 (unwhitened) or 1/sqrt(explained_variance + alpha*mean(explained_variance)) "
    "with the mean over the K kept eigenvalues. explained_variance: eigenvalues of the sample "
    "covariance of pre(X) with N-1 denominator. components rows unit-norm, each flipped so that "
    "its entry of largest |value| is positive (first on ties). Fitted with sklearn "
    "PCA(n_components=K, svd_solver='full') in float64 on pre(X), X being the stored float32 values."
)


def pre(x, kind):
    x = np.asarray(x, dtype=np.float64)
    if kind == "none":
        return x
    if kind == "sqrt":
        x = np.sign(x) * np.sqrt(np.abs(x))
    elif kind != "l2":
        raise ValueError(kind)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / n


def flip(v):
    idx = np.argmax(np.abs(v), axis=1)
    return v * np.sign(v[np.arange(v.shape[0]), idx])[:, None]


def project(p, mean, comps, scale):
    y = (p - mean) @ comps.T * scale
    return y / np.linalg.norm(y, axis=-1, keepdims=True)


def f32(a):
    # Shortest decimal that round-trips to the float32 value.
    return [[float(str(np.float32(v))) for v in row] for row in a]


def f64(a):
    return np.asarray(a, dtype=np.float64).tolist()


def spectrum_matrix(rng, n, d, sv, noise, mean_scale):
    """Rows = mean + (Z * sv) @ W + noise, W random orthonormal (len(sv), d)."""
    r = len(sv)
    w, _ = np.linalg.qr(rng.standard_normal((d, r)))
    z = rng.standard_normal((n, r))
    x = (z * sv) @ w.T + noise * rng.standard_normal((n, d))
    x += mean_scale * rng.standard_normal(d)
    return x


def make_cases():
    cases = []
    rng = np.random.default_rng(20240601)
    # 1: plain Gaussian, decaying spectrum, N > D.
    d = 30
    sv = 3.0 * 0.8 ** np.arange(d)
    x = spectrum_matrix(rng, 50, d, sv, 0.0, 0.0)
    cases.append(("gauss-n50-d30-k5", x, "none", 5))
    # 2: D > N, low-rank-ish (rank 40 + small noise), decaying spectrum, non-zero mean.
    sv = 5.0 * 0.85 ** np.arange(40)
    x = spectrum_matrix(rng, 120, 300, sv, 0.02, 2.0)
    cases.append(("lowrank-n120-d300-k16-mean", x, "none", 16))
    # 3: non-negative, sparse (ReLU-like) activations with pre='sqrt'.
    sv = 2.0 * 0.75 ** np.arange(20)
    x = spectrum_matrix(rng, 80, 64, sv, 0.1, 0.5)
    x = np.maximum(x, 0.0)
    cases.append(("relu-n80-d64-k10-sqrt", x, "sqrt", 10))
    # 4: small pre='l2' case (rows of different norms).
    sv = 2.0 * 0.7 ** np.arange(24)
    x = spectrum_matrix(rng, 40, 24, sv, 0.0, 1.0)
    x *= rng.uniform(0.5, 3.0, size=(40, 1))
    cases.append(("gauss-n40-d24-k6-l2", x, "l2", 6))
    return cases


def golden(name, x_raw, kind, k):
    x32 = np.asarray(x_raw, dtype=np.float32)
    rows32 = f32(x32)
    # The stored strings must load back to exactly these float32 values.
    assert np.array_equal(np.asarray(rows32, dtype=np.float32), x32)
    x = x32.astype(np.float64)
    p = pre(x, kind)
    n, d = p.shape
    pca = PCA(n_components=k, svd_solver="full").fit(p)
    comps = pca.components_
    ev = pca.explained_variance_

    # Independent reference: eigh of the N-1 covariance, sign rule applied here.
    mean = p.mean(axis=0)
    c = (p - mean).T @ (p - mean) / (n - 1)
    w, v = np.linalg.eigh(c)
    order = np.argsort(w)[::-1]
    w_all, v = w[order], v[:, order]
    ref = flip(v[:, :k].T)
    assert np.allclose(mean, pca.mean_, rtol=0, atol=1e-12)
    assert np.allclose(w_all[:k], ev, rtol=1e-9, atol=1e-14)
    comp_diff = float(np.max(np.abs(ref - comps)))
    assert comp_diff < 1e-8, (name, comp_diff)
    # The sign rule, checked on sklearn's own output.
    idx = np.argmax(np.abs(comps), axis=1)
    assert np.all(comps[np.arange(k), idx] > 0)
    # Randomized solver, for information only.
    rnd = PCA(n_components=k, svd_solver="randomized", random_state=0).fit(p)
    rnd_diff = float(np.max(np.abs(rnd.components_ - comps)))
    rnd_ev_rel = float(np.max(np.abs(rnd.explained_variance_ - ev) / ev))

    total_var = float(np.var(p, axis=0, ddof=1).sum())
    ev_next = float(w_all[k]) if k < len(w_all) else 0.0
    scale = 1.0 / np.sqrt(ev + ALPHA * ev.mean())
    head = p[:N_PROJECTED]
    return {
        "name": name,
        "n": int(n),
        "d": int(d),
        "k": int(k),
        "pre": kind,
        "x": rows32,
        "mean": f64(pca.mean_),
        "components": f64(comps),
        "explained_variance": f64(ev),
        "explained_variance_ratio": f64(pca.explained_variance_ratio_),
        "singular_values": f64(pca.singular_values_),
        "total_variance": total_var,
        "eigengap": {
            "ev_k_minus_1": float(ev[-1]),
            "ev_k": ev_next,
            "ratio": float(ev[-1] / ev_next) if ev_next > 0 else None,
            "min_ratio_within_k": float(np.min(ev[:-1] / ev[1:])) if k > 1 else None,
        },
        "alpha": ALPHA,
        "scale": f64(scale),
        "projected_rows": N_PROJECTED,
        "projected": f64(project(head, pca.mean_, comps, 1.0)),
        "projected_whitened": f64(project(head, pca.mean_, comps, scale)),
        "checks": {
            "max_abs_diff_components_vs_numpy_eigh": comp_diff,
            "max_abs_diff_components_randomized_solver": rnd_diff,
            "max_rel_diff_explained_variance_randomized_solver": rnd_ev_rel,
        },
    }


def main():
    out = {
        "generator": "scripts/pca_golden.py",
        "formula": FORMULA,
        "sign_convention": "each component row flipped so its largest-|value| entry (first on ties) is positive; sklearn svd_flip(u_based_decision=False)",
        "x_encoding": "x: shortest decimals that round-trip to float32 (load into Float32Array); all other numbers float64",
        "versions": {"numpy": np.__version__, "sklearn": sklearn.__version__},
        "cases": [golden(*c) for c in make_cases()],
    }
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
