#!/usr/bin/env python3
"""Scoring speed of a patch autoencoder on large images in tiles: cae (the Python package over
the release build: `Run.anomaly_maps`, tiles `stride` apart, their reconstructions averaged
into the whole image's, its squared-error map smoothed by a Gaussian of sigma 4, the maximum),
against the same pipeline around ONNX Runtime running cae's own exported autoencoder and
around the PyTorch network of the same shape (bench/ae_ssim_reference.py's, random weights,
which does not change its speed), in interleaved rounds, the same threads.

  cae export RUN --format onnx --out RUN.onnx
  PYTHONPATH=<staged cae package> bench/.venv/bin/python bench/tiles_speed.py \
      --run RUN --onnx RUN.onnx [--side 1024] [--stride 32] [--images 2] [--rounds 5]

Prints one JSON line per round and the medians (images/s).
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ae_ssim_reference import AE, starts  # noqa: E402
from draem_reference import smooth  # noqa: E402
from speed_rounds import arguments, interleaved, random_images, start  # noqa: E402

BATCH = 256


def score(image, tile, stride, reconstruct):
    """The pipeline around a reconstruction function of a batch of tiles."""
    c, h, w = image.shape
    corners = [(y, x) for y in starts(h, tile, stride) for x in starts(w, tile, stride)]
    total = np.zeros_like(image)
    count = np.zeros((1, h, w), np.float32)
    for i in range(0, len(corners), BATCH):
        group = corners[i : i + BATCH]
        tiles = np.stack([image[:, y : y + tile, x : x + tile] for y, x in group])
        for (y, x), r in zip(group, reconstruct(tiles)):
            total[:, y : y + tile, x : x + tile] += r
            count[:, y : y + tile, x : x + tile] += 1
    error = ((image - total / count) ** 2).mean(0, keepdims=True)
    return float(smooth(torch.from_numpy(error[None])).max())


def main():
    p = arguments(images=2)
    p.add_argument("--side", type=int, default=1024)
    p.add_argument("--stride", type=int, default=32)
    a, run, session = start(p)
    c, tile, _ = run.image_shape
    config = run.config
    x = random_images(a.images, (c, a.side, a.side))
    torch_model = AE(c, side=tile, latent=config["model"]["latent"]).eval()

    def with_cae():
        return run.anomaly_maps(x, stride=a.stride).reshape(a.images, -1).max(1)

    def with_ort():
        f = lambda t: session.run(["output"], {"input": t})[0]  # noqa: E731
        return np.array([score(im, tile, a.stride, f) for im in x])

    def with_torch():
        def f(t):
            with torch.no_grad():
                return torch_model(torch.from_numpy(t)).numpy()

        return np.array([score(im, tile, a.stride, f) for im in x])

    diff = float(np.abs(with_cae() - with_ort()).max())
    interleaved(
        {"cae": with_cae, "onnxruntime": with_ort, "pytorch": with_torch}, a.images, a.rounds,
        image=[c, a.side, a.side], tile=tile, stride=a.stride, threads=a.threads,
        max_score_difference_cae_onnx=diff,
    )

if __name__ == "__main__":
    main()
