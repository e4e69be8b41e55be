#!/usr/bin/env python3
"""The inspector's exported texture map in ONNX Runtime against cae's own maps: every test
image of a category run through the ONNX file (`cae export RUN --format onnx
--anomaly-outputs`), its `map` compared with the `.npy` map `cae anomaly RUN --images CATEGORY
--maps DIR` wrote and its `score` with the map's mean of the top 200, and ONNX Runtime's time.

  cae export RUN --format onnx --anomaly-outputs --out RUN.onnx
  bench/.venv/bin/python bench/texture_onnx.py --onnx RUN.onnx --category DIR --maps DIR [--threads 2]

Prints one JSON line: the largest differences of map and score, the largest map value, and
seconds an image.
"""
import argparse
import glob
import json
import os
import time

import numpy as np
import onnxruntime as ort
from PIL import Image


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--onnx", required=True)
    p.add_argument("--category", required=True)
    p.add_argument("--maps", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top-k", type=int, default=200)
    a = p.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = a.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(a.onnx, options, providers=["CPUExecutionProvider"])
    worst_map = worst_score = largest = 0.0
    seconds, n = 0.0, 0
    for path in sorted(glob.glob(f"{a.category}/test/*/*.png")):
        kind, name = path.split(os.sep)[-2], os.path.basename(path)[:-4]
        x = np.asarray(Image.open(path).convert("L"), dtype=np.float32)[None, None] / 255.0
        start = time.perf_counter()
        _, onnx_map, onnx_score = session.run(None, {"input": x})
        seconds += time.perf_counter() - start
        n += 1
        cae_map = np.load(f"{a.maps}/{kind}/{name}.npy")
        worst_map = max(worst_map, float(np.abs(onnx_map[0, 0] - cae_map).max()))
        largest = max(largest, float(cae_map.max()))
        top = np.sort(cae_map.ravel())[-a.top_k:].mean()
        worst_score = max(worst_score, float(abs(onnx_score[0] - top)))
    print(json.dumps({"images": n, "max_map_difference": worst_map,
                      "max_score_difference": worst_score,
                      "largest_map_value": largest,
                      "onnx_runtime_seconds_an_image": round(seconds / n, 3)}))


if __name__ == "__main__":
    main()
