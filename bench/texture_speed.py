#!/usr/bin/env python3
"""Scoring speed of the inspector's default map, the texture map: cae (the Python package over
the release build), ONNX Runtime running cae's own exported graph, and the same map in PyTorch
(bench/texture_map.py's descriptors with the run's own statistics, read from its texture.json
and texture.npy; the search as matrix multiplies over 4 096 pixels at a time), in interleaved
rounds on the same images, each with the same threads. Each computes the map, smoothed by a
Gaussian of sigma 2 (radius 8, mirrored edges), and the score (the mean of its 200 largest
values). The images are grey noise of the run's size: the map's cost does not depend on them.

  cae export RUN --format onnx --anomaly-outputs --out RUN.onnx
  PYTHONPATH=<staged cae package> bench/.venv/bin/python bench/texture_speed.py \
      --run RUN --onnx RUN.onnx [--images 2] [--rounds 5] [--threads 2]

Prints one JSON line per round (images/s) and the medians, with the largest differences of
the three's scores.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speed_rounds import arguments, interleaved, random_images, start  # noqa: E402
from texture_map import descriptors, uniform_kernels  # noqa: E402

TOP = 200


class TorchTexture:
    """The run's texture map in PyTorch: cae's features, search, upsampling and smoothing."""

    def __init__(self, run):
        stats = json.load(open(os.path.join(run, "texture.json")))
        config = stats["config"]
        assert stats["channels"] == 1, "grey runs only"
        self.mean, self.spread = stats["mean"][0], stats["spread"][0]
        self.filters = torch.tensor(stats["filters"]).view(8, 1, 5, 5)
        self.scales = config["scales"]
        self.uniform = ("min2", uniform_kernels(15, 24), 3.0) if config.get("lines") else None
        memory = torch.from_numpy(np.load(os.path.join(run, "texture.npy")))
        self.memory_t = memory.T.contiguous()
        self.norms = (memory * memory).sum(1)
        sigma, radius = 2.0, 8
        t = torch.arange(-radius, radius + 1, dtype=torch.float32)
        g = torch.exp(-t * t / (2 * sigma * sigma))
        self.taps, self.radius = g / g.sum(), radius

    def score(self, x):
        """[1, 1, H, W] -> the score."""
        d = descriptors(x, self.mean, self.spread, self.filters, self.scales, {}, self.uniform)[0]
        c, h, w = d.shape
        queries = d.reshape(c, -1).T.contiguous()
        nearest = torch.cat([
            ((q * q).sum(1, keepdim=True) - 2 * q @ self.memory_t + self.norms).amin(1)
            for q in queries.split(4096)
        ])
        nearest = nearest.clamp_min(0).sqrt().view(1, 1, h, w)
        up = F.interpolate(nearest, size=x.shape[2:], mode="bilinear", align_corners=False)
        r = self.radius
        m = F.conv2d(F.pad(up, (r, r, 0, 0), mode="reflect"), self.taps.view(1, 1, 1, -1))
        m = F.conv2d(F.pad(m, (0, 0, r, r), mode="reflect"), self.taps.view(1, 1, -1, 1))
        return m.flatten().topk(TOP).values.mean()


def main():
    a, run, session = start(arguments(images=2))
    c, h, w = run.image_shape
    x = random_images(a.images, (c, h, w))
    texture = TorchTexture(a.run)

    def with_cae():
        maps = run.anomaly_maps(x, map="texture").reshape(a.images, -1)
        return np.sort(maps, 1)[:, -TOP:].mean(1)

    def with_ort():
        return np.concatenate([session.run(["score"], {"input": x[i : i + 1]})[0] for i in range(a.images)])

    def with_torch():
        with torch.no_grad():
            return np.array([float(texture.score(torch.from_numpy(x[i : i + 1]))) for i in range(a.images)])

    scores = {"cae": with_cae(), "onnxruntime": with_ort(), "pytorch": with_torch()}
    interleaved(
        {"cae": with_cae, "onnxruntime": with_ort, "pytorch": with_torch}, a.images, a.rounds,
        image=[c, h, w], threads=a.threads,
        max_score_difference_cae_onnx=float(np.abs(scores["cae"] - scores["onnxruntime"]).max()),
        max_score_difference_cae_pytorch=float(np.abs(scores["cae"] - scores["pytorch"]).max()),
    )

if __name__ == "__main__":
    main()
