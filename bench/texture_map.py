#!/usr/bin/env python3
"""A texture-statistics anomaly map, fitted from scratch on a category's good images: the
prototype of what docs/BENCHMARKS.md §23 measures beside cae's DRAEM inspector.

Every pixel is described by statistics of its neighbourhood at three scales (box windows of 5,
11 and 21 pixels): the local mean, and the logarithms of the local spread, of the energy of the
horizontal and vertical differences, and of the energy of 8 fixed random 5x5 filters (drawn from --seed, 0 by default).
Logarithms, because a flat hole has almost no energy and the log puts it far from every
textured neighbourhood, where a plain distance would find it close to the calmest parts of the
texture. Descriptors are taken at half resolution; 40 000 of the good training images' ones,
drawn at random, are the memory; a test pixel's score is its descriptor's distance to the
nearest one in the memory (upsampled, smoothed by a Gaussian of sigma 4; the image's score its
maximum, as cae scores its maps).

  bench/.venv/bin/python bench/texture_map.py --category DIR [--seed 0] [--scales 5,11,21] [--memory 40000] [--sweep] [--lines] [--threads 2]
      [--uniform avg|min2 --line-length 15 --line-angles 24 --line-weight 3] [--scratch-noise S]

--uniform adds the line uniformity that cae keeps (docs/BENCHMARKS.md §25): the log of the least
variance along straight lines through the pixel, halved by the 2x2 blocks' mean (avg) or least
(min2, cae's). --scratch-noise adds Gaussian noise of that deviation to the test images' scratch
pixels (a scratch that is not one grey).

Prints image and pixel ROC-AUC, per defect kind too (image, pixel), as JSON lines; --sweep
adds the image scores of other smoothings, of the mean of the 200 largest values, and of
either less the map's median.
"""
import argparse
import glob
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

MEMORY = 40_000


def read(path):
    return torch.from_numpy(np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0)[None, None]


def load(root):
    train = torch.cat([read(p) for p in sorted(glob.glob(f"{root}/train/good/*.png"))])
    tests = []
    for kind in sorted(os.listdir(f"{root}/test")):
        for path in sorted(glob.glob(f"{root}/test/{kind}/*.png")):
            name = os.path.basename(path)[:-4]
            image = read(path)
            if kind == "good":
                mask = np.zeros(image.shape[2:], bool)
            else:
                mask = np.asarray(Image.open(f"{root}/ground_truth/{kind}/{name}_mask.png")) > 0
            tests.append((kind, name, image, mask))
    return train, tests


def descriptors(x, mean, spread, filters, scales, lines, uniform=None):
    """[N, 1, H, W] -> [N, D, H/2, W/2]; `lines`: {k: line_kernels(k)}, empty for none;
    `uniform`: (mode, kernels, weight) or None."""
    x = (x - mean) / spread
    gx = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1, 0, 0))
    gy = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    responses = F.conv2d(x, filters, padding=2)
    box = lambda t, k: F.avg_pool2d(t, k, 1, k // 2, count_include_pad=False)
    log_energy = lambda t, k: 0.5 * torch.log(box(t * t, k) + 1e-3)
    parts = []
    for k in scales:
        m = box(x, k)
        parts += [m, 0.5 * torch.log((box(x * x, k) - m * m).clamp_min(0) + 1e-3)]
        parts += [log_energy(gx, k), log_energy(gy, k), log_energy(responses, k)]
    for k, kernels in lines.items():
        m = box(x, k)
        spread = (box(x * x, k) - m * m).clamp_min(0).sqrt()
        strongest = (F.conv2d(x, kernels, padding=k // 2) - m).abs().amax(1, keepdim=True)
        parts += [torch.log(strongest / (spread + 0.05) + 1e-3)]
    halved = F.avg_pool2d(torch.cat(parts, 1), 2)
    if uniform is None:
        return halved
    mode, kernels, weight = uniform
    r = kernels.shape[-1] // 2
    m, q = F.conv2d(x, kernels, padding=r), F.conv2d(x * x, kernels, padding=r)
    u = weight * 0.5 * torch.log((q - m * m).clamp_min(0).amin(1, keepdim=True) + 1e-3)
    u = -F.max_pool2d(-u, 2) if mode == "min2" else F.avg_pool2d(u, 2)
    return torch.cat([halved, u], 1)


def uniform_kernels(length, angles):
    """[angles, 1, length, length]: the mean over the pixels nearest to a straight line of
    `length` through the centre (each once), as cae's `line_taps`."""
    h = length // 2
    out = torch.zeros(angles, 1, length, length)
    for a in range(angles):
        t = math.pi * a / angles
        for s in range(-h, h + 1):
            out[a, 0, h + round(s * math.sin(t)), h + round(s * math.cos(t))] = 1.0
        out[a] /= out[a].sum()
    return out


def line_kernels(k, angles=12):
    """[angles, 1, k, k]: the mean along a straight line of k pixels through the centre."""
    out = torch.zeros(angles, 1, k, k)
    c = k // 2
    for a in range(angles):
        t = math.pi * a / angles
        for s in np.linspace(-c, c, 4 * k):
            y, x = c + s * math.sin(t), c + s * math.cos(t)
            y0, x0 = int(math.floor(y)), int(math.floor(x))
            for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
                for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
                    if 0 <= yy < k and 0 <= xx < k:
                        out[a, 0, yy, xx] += wy * wx
        out[a] /= out[a].sum()
    return out



def gaussian_smooth(m, sigma=4.0):
    r = int(math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    g = torch.exp(-t * t / (2 * sigma * sigma))
    g = g / g.sum()
    m = F.conv2d(F.pad(m, (r, r, 0, 0), mode="reflect"), g.view(1, 1, 1, -1))
    return F.conv2d(F.pad(m, (0, 0, r, r), mode="reflect"), g.view(1, 1, -1, 1))


class TextureMap:
    def __init__(self, train, seed=0, memory=MEMORY, scales=(5, 11, 21), lines=False, uniform=None):
        g = torch.Generator().manual_seed(seed)
        self.scales = scales
        self.uniform = uniform
        self.lines = {k: line_kernels(k) for k in (15, 31)} if lines else {}
        self.mean, self.spread = train.mean(), train.std()
        self.filters = torch.randn(8, 1, 5, 5, generator=g) / 5.0
        d = self.describe(train)
        flat = d.permute(0, 2, 3, 1).reshape(-1, d.shape[1])
        self.memory = flat[torch.randperm(flat.shape[0], generator=g)[:memory]]

    def describe(self, x):
        return descriptors(x, self.mean, self.spread, self.filters, self.scales, self.lines, self.uniform)

    def distances(self, image):
        """[1, 1, H, W] -> [H, W] distances to the memory, upsampled."""
        d = self.describe(image)[0]
        c, h, w = d.shape
        nearest = torch.cdist(d.reshape(c, -1).T, self.memory).min(1).values.view(1, 1, h, w)
        up = F.interpolate(nearest, size=image.shape[2:], mode="bilinear", align_corners=False)
        return up[0, 0].numpy()


def roc_auc(scores, truth):
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, scores))


def figures(name, maps, tests, top=1, centred=False):
    y = np.array([k != "good" for k, *_ in tests])
    s = np.array([np.sort(m.ravel())[-top:].mean() - (np.median(m) if centred else 0) for m in maps])
    out = {"map": name, "image_roc_auc": roc_auc(s, y),
           "pixel_roc_auc": roc_auc(np.concatenate([m.ravel() for m in maps]),
                                    np.concatenate([t[3].ravel() for t in tests]))}
    for kind in sorted({k for k, *_ in tests} - {"good"}):
        sel = [i for i, t in enumerate(tests) if t[0] in ("good", kind)]
        out[kind] = [round(roc_auc(s[sel], y[sel]), 4),
                     round(roc_auc(np.concatenate([maps[i].ravel() for i in sel]),
                                   np.concatenate([tests[i][3].ravel() for i in sel])), 4)]
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--category", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="draws the filters and the memory")
    p.add_argument("--scales", default="5,11,21", help="box windows' sides")
    p.add_argument("--memory", type=int, default=MEMORY, help="descriptors kept")
    p.add_argument("--sweep", action="store_true",
                   help="also the image scores of sigma 0, 2, 4 and the maximum or the top 200's mean")
    p.add_argument("--lines", action="store_true", help="add straight-line statistics")
    p.add_argument("--uniform", choices=["avg", "min2"], help="add the line uniformity, halved so")
    p.add_argument("--line-length", type=int, default=15)
    p.add_argument("--line-angles", type=int, default=24)
    p.add_argument("--line-weight", type=float, default=3.0)
    p.add_argument("--scratch-noise", type=float, default=0.0,
                   help="Gaussian noise of this deviation on the test scratches' pixels")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    train, tests = load(a.category)
    if a.scratch_noise:
        g = torch.Generator().manual_seed(7)
        tests = [(k, n, (x + a.scratch_noise * torch.randn(x.shape, generator=g) * torch.from_numpy(m)).clamp(0, 1)
                  if k == "scratch" else x, m) for k, n, x, m in tests]
    uniform = None
    if a.uniform:
        uniform = (a.uniform, uniform_kernels(a.line_length, a.line_angles), a.line_weight)
    category = os.path.basename(os.path.normpath(a.category))
    with torch.no_grad():
        start = time.perf_counter()
        scales = tuple(int(k) for k in a.scales.split(","))
        texture = TextureMap(train, a.seed, a.memory, scales, a.lines, uniform)
        fitted = time.perf_counter()
        raw = [texture.distances(t[2]) for t in tests]
        smooth = lambda m, sigma: gaussian_smooth(torch.from_numpy(m)[None, None], sigma)[0, 0].numpy()
        maps = [smooth(m, 4) for m in raw]
        scored = time.perf_counter()
        print(json.dumps({"category": category, "seed": a.seed, "memory": a.memory,
                          **figures("texture", maps, tests),
                          "fit_seconds": round(fitted - start, 2),
                          "seconds_an_image": round((scored - fitted) / len(tests), 3)}))
        if a.sweep:
            for sigma in (0, 2, 4):
                smoothed = [smooth(m, sigma) if sigma else m for m in raw]
                for top in (1, 200):
                    for centred in (False, True):
                        name = f"texture, sigma {sigma}, top {top}" + (" less the median" if centred else "")
                        f = figures(name, smoothed, tests, top, centred)
                        print(json.dumps({"category": category, "seed": a.seed, **f}))


if __name__ == "__main__":
    main()
