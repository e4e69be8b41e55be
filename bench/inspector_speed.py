#!/usr/bin/env python3
"""Scoring speed of the DRAEM inspector on whole images: cae (the Python package over the
release build), ONNX Runtime running cae's own exported graph, and the PyTorch reference
network (bench/draem_reference.py, same layers; its weights random, which does not change its
speed), in interleaved rounds on the same images, each with the same threads. Each computes
the segmentation map smoothed by a Gaussian of sigma 4 and the score (its maximum).

  cae train-ae --model draem --images DIR --texture-memory 0 --out RUN   # no texture map: the
  cae export RUN --format onnx --anomaly-outputs --out RUN.onnx         # export's map is then the network's
  PYTHONPATH=<staged cae package> bench/.venv/bin/python bench/inspector_speed.py \
      --run RUN --onnx RUN.onnx [--images 4] [--rounds 5] [--threads 2]

Prints one JSON line per round and the medians (images/s).
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from draem_reference import Draem, smooth  # noqa: E402
from speed_rounds import arguments, interleaved, random_images, start  # noqa: E402


def main():
    a, run, session = start(arguments(images=4))
    c, h, w = run.image_shape
    x = random_images(a.images, (c, h, w))
    torch_model = Draem(c).eval()

    def with_cae():
        return run.anomaly_maps(x, map="segmentation", smooth=4.0).reshape(a.images, -1).max(1)

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
    interleaved(
        {"cae": with_cae, "onnxruntime": with_ort, "pytorch": with_torch}, a.images, a.rounds,
        image=[c, h, w], threads=a.threads, max_score_difference_cae_onnx=diff,
    )

if __name__ == "__main__":
    main()
