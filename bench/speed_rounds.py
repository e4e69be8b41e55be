"""What the side-by-side speed scripts share: their arguments, the run and its ONNX Runtime
session on a fixed number of threads, the random images they score, and interleaved rounds of
cae, ONNX Runtime and PyTorch with their medians."""
import argparse
import json
import statistics
import time

import numpy as np
import onnxruntime as ort
import torch

import cae


def arguments(images):
    """--run, --onnx, --images, --rounds 5, --threads 2: what every such script takes."""
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True)
    p.add_argument("--onnx", required=True)
    p.add_argument("--images", type=int, default=images)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    return p


def start(parser):
    """Parsed arguments; PyTorch on their threads; the run; its ONNX Runtime session."""
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    return a, cae.open(a.run), onnx_session(a.onnx, a.threads)


def random_images(count, shape):
    """`count` images of `shape` ([C, H, W]), uniform in [0, 1), the same every run."""
    return np.random.default_rng(0).random((count, *shape), dtype=np.float32)


def onnx_session(path, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def interleaved(runs, images, rounds, **report):
    """`runs`: {"cae": f, "onnxruntime": f, "pytorch": f}, each scoring `images` images.
    Prints one JSON line a round (images/s) and one with the medians, their ratios and
    `report`."""
    rates = {name: [] for name in runs}
    for r in range(rounds):
        for name, f in runs.items():
            t = time.perf_counter()
            f()
            rates[name].append(images / (time.perf_counter() - t))
        print(json.dumps({"round": r + 1, **{k: v[-1] for k, v in rates.items()}}), flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(json.dumps({
        **report,
        "images": images,
        "rounds": rounds,
        "median_images_per_sec": med,
        "cae_over_onnxruntime": med["cae"] / med["onnxruntime"],
        "cae_over_pytorch": med["cae"] / med["pytorch"],
    }))
