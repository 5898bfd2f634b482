#!/usr/bin/env python3
"""Independent numpy forward pass of the repo's tiny models (fixtures/tiny-*), for golden feature maps.

Usage: tiny_reference.py MODEL_DIR RAW_RGB_FILE HEIGHT WIDTH LOW HIGH
Reads 8-bit RGB HWC pixels, scales them to [LOW, HIGH] (x*(HIGH-LOW)/255+LOW), runs the network's
layers up to its feature map with plain numpy (TF 'SAME' padding rules), prints JSON {shape, data}.
"""
import json
import sys

import numpy as np


def load_weights(model_dir):
    spec = json.load(open(f"{model_dir}/model.json"))
    out, blobs = {}, b"".join(open(f"{model_dir}/{p}", "rb").read() for g in spec["weightsManifest"] for p in g["paths"])
    offset = 0
    for group in spec["weightsManifest"]:
        for w in group["weights"]:
            dtype = {"float32": np.float32, "int32": np.int32}[w["dtype"]]
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            out[w["name"]] = np.frombuffer(blobs, dtype=dtype, count=n, offset=offset).reshape(w["shape"])
            offset += n * 4
    return spec, out


def same_pad(x, k, s):
    """Pads H and W the way TensorFlow's SAME does (extra pixel at the bottom/right)."""
    h, w = x.shape[:2]
    pads = []
    for size in (h, w):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, (pads[0], pads[1], (0, 0)))


def conv2d(x, kernel, bias, stride):
    k = kernel.shape[0]
    xp = same_pad(x, k, stride)
    oh, ow = -(-x.shape[0] // stride), -(-x.shape[1] // stride)
    out = np.zeros((oh, ow, kernel.shape[3]), np.float64)
    for dy in range(k):
        for dx in range(k):
            patch = xp[dy : dy + stride * oh : stride, dx : dx + stride * ow : stride, :]
            out += patch @ kernel[dy, dx].astype(np.float64)
    return out + bias


def depthwise(x, kernel, bias, stride):
    k = kernel.shape[0]
    xp = same_pad(x, k, stride)
    oh, ow = -(-x.shape[0] // stride), -(-x.shape[1] // stride)
    out = np.zeros((oh, ow, x.shape[2]), np.float64)
    for dy in range(k):
        for dx in range(k):
            out += xp[dy : dy + stride * oh : stride, dx : dx + stride * ow : stride, :] * kernel[dy, dx, :, 0]
    return out + bias


def main():
    model_dir, raw, h, w, lo, hi = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
    pixels = np.frombuffer(open(raw, "rb").read(), np.uint8).reshape(h, w, 3)
    x = pixels.astype(np.float64) * ((hi - lo) / 255.0) + lo
    spec, W = load_weights(model_dir)
    if "node" in spec["modelTopology"]:  # tiny-graph: conv 3x3/2 + bias → relu6
        y = np.clip(conv2d(x, W["tiny/conv/weights"], W["tiny/conv/biases"], 2), 0, 6)
    else:  # tiny-layers: conv 3x3/2 relu → depthwise 3x3/2 relu → conv 1x1 relu
        y = np.maximum(conv2d(x, W["conv1/kernel"], W["conv1/bias"], 2), 0)
        y = np.maximum(depthwise(y, W["dw2/depthwise_kernel"], W["dw2/bias"], 2), 0)
        y = np.maximum(conv2d(y, W["pw3/kernel"], W["pw3/bias"], 1), 0)
    print(json.dumps({"shape": list(y.shape), "data": y.astype(np.float32).ravel().tolist()}))


main()
