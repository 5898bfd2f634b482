/**
 * bench:pca's quality metrics, as scripts/pca_quality.py computes them with numpy and scikit-learn:
 * leave-one-out 1-NN accuracy and mAP by cosine similarity, and a linear probe, a multinomial
 * logistic regression minimising  Σ_i cross-entropy_i + ½‖W‖²  (scikit-learn's
 * LogisticRegression(C=1): softmax over all classes, intercept unpenalised) by L-BFGS. All float64.
 */
import { symmetricEigen } from '../../src/pca/linalg.js';

/** Rows as float64, each divided by its L2 norm (a zero row stays zero). */
export function unitRows(rows: readonly ArrayLike<number>[]): Float64Array[] {
  return rows.map((r) => {
    let s = 0;
    for (let i = 0; i < r.length; i++) s += r[i]! * r[i]!;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    return Float64Array.from(r as ArrayLike<number>, (v) => v * inv);
  });
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/**
 * Leave-one-out within `rows`: 1-NN accuracy (the first of equal maxima, as numpy's argmax) and
 * mean average precision (each row queries the others, ranked by cosine, ties by position; relevant =
 * same label).
 */
export function retrieval(rows: readonly ArrayLike<number>[], labels: readonly string[]): { nn1: number; map: number } {
  const y = unitRows(rows);
  const n = y.length;
  const sim: Float64Array[] = y.map(() => new Float64Array(n));
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      const s = dot(y[i]!, y[j]!);
      sim[i]![j] = s;
      sim[j]![i] = s;
    }
  }
  let hits1 = 0;
  let apSum = 0;
  for (let i = 0; i < n; i++) {
    const order = [...Array(n).keys()].filter((j) => j !== i).sort((a, b) => sim[i]![b]! - sim[i]![a]! || a - b);
    if (labels[order[0]!] === labels[i]) hits1++;
    let hits = 0;
    let ap = 0;
    order.forEach((j, rank) => {
      if (labels[j] === labels[i]) {
        hits++;
        ap += hits / (rank + 1);
      }
    });
    apSum += ap / Math.max(hits, 1);
  }
  return { nn1: hits1 / n, map: apSum / n };
}

/**
 * Features for the probe with at most n columns. When the rows have more columns (D) than there are
 * training rows (n), the optimal W lies in the span of the training rows (the penalty only grows
 * outside it), so the problem is solved exactly in an orthonormal basis Q of that span: training
 * rows become U·S^½ (from XXᵀ = U S Uᵀ) and any other row x becomes Qᵀx = S^-½ Uᵀ X x. Same minimum,
 * same predictions, in n instead of D dimensions.
 */
export function probeFeatures(train: readonly ArrayLike<number>[], test: readonly ArrayLike<number>[]): { train: Float64Array[]; test: Float64Array[] } {
  const n = train.length;
  const d = train[0]!.length;
  const x = train.map((r) => Float64Array.from(r as ArrayLike<number>));
  const t = test.map((r) => Float64Array.from(r as ArrayLike<number>));
  if (d <= n) return { train: x, test: t };
  const g = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) g[i * n + j] = g[j * n + i] = dot(x[i]!, x[j]!);
  const e = symmetricEigen(g, n);
  const kept = [...e.values.keys()].filter((c) => e.values[c]! > 1e-12 * e.values[0]!);
  const toTrain = x.map((_, i) => Float64Array.from(kept, (c) => e.vectors[i * n + c]! * Math.sqrt(e.values[c]!)));
  const toTest = t.map((row) => {
    const xr = x.map((xi) => dot(xi, row)); // X x
    return Float64Array.from(kept, (c) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += e.vectors[i * n + c]! * xr[i]!;
      return s / Math.sqrt(e.values[c]!);
    });
  });
  return { train: toTrain, test: toTest };
}

export interface ProbeModel {
  classes: string[];
  /** C×d weights then C intercepts. */
  theta: Float64Array;
  dim: number;
  objective: number;
  iterations: number;
  gradMax: number;
  converged: boolean;
}

/** Objective and gradient at theta: Σ cross-entropy + ½‖W‖² (intercepts unpenalised). */
function lossGrad(theta: Float64Array, x: Float64Array[], y: Int32Array, c: number, d: number, grad: Float64Array): number {
  grad.fill(0);
  let loss = 0;
  const logits = new Float64Array(c);
  for (let i = 0; i < x.length; i++) {
    const xi = x[i]!;
    let max = -Infinity;
    for (let k = 0; k < c; k++) {
      let s = theta[c * d + k]!;
      const w = k * d;
      for (let j = 0; j < d; j++) s += theta[w + j]! * xi[j]!;
      logits[k] = s;
      if (s > max) max = s;
    }
    let z = 0;
    for (let k = 0; k < c; k++) z += Math.exp(logits[k]! - max);
    const lse = max + Math.log(z);
    loss += lse - logits[y[i]!]!;
    for (let k = 0; k < c; k++) {
      const r = Math.exp(logits[k]! - lse) - (k === y[i] ? 1 : 0);
      const w = k * d;
      for (let j = 0; j < d; j++) grad[w + j] += r * xi[j]!;
      grad[c * d + k] += r;
    }
  }
  for (let p = 0; p < c * d; p++) {
    loss += 0.5 * theta[p]! * theta[p]!;
    grad[p] += theta[p]!;
  }
  return loss;
}

/** L-BFGS (10 pairs, backtracking Armijo line search) until the largest gradient entry is below gtol. */
export function fitProbe(x: Float64Array[], labels: readonly string[], o: { gtol?: number; maxIter?: number } = {}): ProbeModel {
  const classes = [...new Set(labels)].sort();
  const c = classes.length;
  const d = x[0]!.length;
  const y = Int32Array.from(labels, (l) => classes.indexOf(l));
  const p = c * d + c;
  const gtol = o.gtol ?? 1e-6;
  const maxIter = o.maxIter ?? 20000;
  let theta = new Float64Array(p);
  let grad = new Float64Array(p);
  let f = lossGrad(theta, x, y, c, d, grad);
  const mem = 10;
  const ss: Float64Array[] = [];
  const ys: Float64Array[] = [];
  const rhos: number[] = [];
  const gmax = (g: Float64Array) => g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  let iter = 0;
  for (; iter < maxIter && gmax(grad) > gtol; iter++) {
    // Two-loop recursion: direction = −H·grad.
    const q = Float64Array.from(grad);
    const alphas: number[] = [];
    for (let m = ss.length - 1; m >= 0; m--) {
      const a = rhos[m]! * dotN(ss[m]!, q);
      alphas[m] = a;
      for (let i = 0; i < p; i++) q[i] -= a * ys[m]![i]!;
    }
    const gamma = ss.length > 0 ? dotN(ss.at(-1)!, ys.at(-1)!) / dotN(ys.at(-1)!, ys.at(-1)!) : 1 / Math.max(1, Math.sqrt(dotN(grad, grad)));
    for (let i = 0; i < p; i++) q[i] *= gamma;
    for (let m = 0; m < ss.length; m++) {
      const b = rhos[m]! * dotN(ys[m]!, q);
      for (let i = 0; i < p; i++) q[i] += ss[m]![i]! * (alphas[m]! - b);
    }
    let slope = -dotN(grad, q);
    if (!(slope < 0)) {
      // Not a descent direction: restart from steepest descent.
      ss.length = ys.length = rhos.length = 0;
      for (let i = 0; i < p; i++) q[i] = grad[i]! / Math.max(1, Math.sqrt(dotN(grad, grad)));
      slope = -dotN(grad, q);
    }
    let step = 1;
    const next = new Float64Array(p);
    const nextGrad = new Float64Array(p);
    let fNext = Infinity;
    for (let tries = 0; tries < 60; tries++) {
      for (let i = 0; i < p; i++) next[i] = theta[i]! - step * q[i]!;
      fNext = lossGrad(next, x, y, c, d, nextGrad);
      if (fNext <= f + 1e-4 * step * slope) break;
      step /= 2;
    }
    if (!(fNext < f) && !(fNext <= f)) break; // no progress possible at float64 precision
    const s = new Float64Array(p);
    const yy = new Float64Array(p);
    for (let i = 0; i < p; i++) {
      s[i] = next[i]! - theta[i]!;
      yy[i] = nextGrad[i]! - grad[i]!;
    }
    const sy = dotN(s, yy);
    if (sy > 1e-12 * Math.sqrt(dotN(s, s) * dotN(yy, yy))) {
      ss.push(s);
      ys.push(yy);
      rhos.push(1 / sy);
      if (ss.length > mem) {
        ss.shift();
        ys.shift();
        rhos.shift();
      }
    }
    const stalled = f - fNext <= 1e-15 * Math.abs(f);
    theta = next;
    grad = nextGrad;
    f = fNext;
    if (stalled && ss.length === 0) break;
  }
  const gm = gmax(grad);
  return { classes, theta, dim: d, objective: f, iterations: iter, gradMax: gm, converged: gm <= gtol };
}

function dotN(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Class probabilities of each row (softmax of W x + b). */
export function probeProba(m: ProbeModel, x: readonly Float64Array[]): Float64Array[] {
  const c = m.classes.length;
  const d = m.dim;
  return x.map((xi) => {
    const l = new Float64Array(c);
    for (let k = 0; k < c; k++) {
      let s = m.theta[c * d + k]!;
      for (let j = 0; j < d; j++) s += m.theta[k * d + j]! * xi[j]!;
      l[k] = s;
    }
    const max = Math.max(...l);
    let z = 0;
    for (let k = 0; k < c; k++) z += (l[k] = Math.exp(l[k]! - max));
    return l.map((v) => v / z);
  });
}

export function probeAccuracy(m: ProbeModel, x: readonly Float64Array[], labels: readonly string[]): number {
  const proba = probeProba(m, x);
  let ok = 0;
  proba.forEach((p, i) => {
    let best = 0;
    for (let k = 1; k < p.length; k++) if (p[k]! > p[best]!) best = k;
    if (m.classes[best] === labels[i]) ok++;
  });
  return ok / x.length;
}
