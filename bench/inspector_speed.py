#!/usr/bin/env python3
"""Scoring speed of the DRAEM inspector on whole images: cae (the Python package over the
release build), ONNX Runtime running cae's own exported graph, and the PyTorch reference
network (bench/draem_reference.py, same layers; its weights random, which does not change its
speed), in interleaved rounds on the same images, each with the same threads. Each computes
the segmentation map smoothed by a Gaussian of sigma 4 and the score (its maximum).

  cae export RUN --format onnx --anomaly-outputs --out RUN.onnx
  PYTHONPATH=<staged cae package> bench/.venv/bin/python bench/inspector_speed.py \
      --run RUN --onnx RUN.onnx [--images 4] [--rounds 5] [--threads 2]

Prints one JSON line per round and the medians (images/s).
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from draem_reference import Draem, smooth  # noqa: E402

import cae  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True)
    p.add_argument("--onnx", required=True)
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    run = cae.open(a.run)
    c, h, w = run.image_shape
    rng = np.random.default_rng(0)
    x = rng.random((a.images, c, h, w), dtype=np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = a.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(a.onnx, options, providers=["CPUExecutionProvider"])
    torch_model = Draem(c).eval()

    def with_cae():
        return run.anomaly_maps(x).reshape(a.images, -1).max(1)

    def with_ort():
        return np.concatenate([session.run(["score"], {"input": x[i : i + 1]})[0] for i in range(a.images)])

    def with_torch():
        with torch.no_grad():
            out = []
            for i in range(a.images):
                _, logits = torch_model(torch.from_numpy(x[i : i + 1]))
                out.append(smooth(torch.sigmoid(logits)).amax((1, 2, 3)).numpy())
            return np.concatenate(out)

    # The same scores from cae and from its exported graph.
    diff = float(np.abs(with_cae() - with_ort()).max())
    rates = {"cae": [], "onnxruntime": [], "pytorch": []}
    for r in range(a.rounds):
        for name, f in (("cae", with_cae), ("onnxruntime", with_ort), ("pytorch", with_torch)):
            t = time.perf_counter()
            f()
            rates[name].append(a.images / (time.perf_counter() - t))
        print(json.dumps({"round": r + 1, **{k: v[-1] for k, v in rates.items()}}))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(json.dumps({
        "image": [c, h, w],
        "images": a.images,
        "threads": a.threads,
        "rounds": a.rounds,
        "median_images_per_sec": med,
        "cae_over_onnxruntime": med["cae"] / med["onnxruntime"],
        "cae_over_pytorch": med["cae"] / med["pytorch"],
        "max_score_difference_cae_onnx": diff,
    }))


if __name__ == "__main__":
    main()
