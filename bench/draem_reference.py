#!/usr/bin/env python3
"""PyTorch reference of cae's DRAEM inspector (`cae train-ae --model draem`), for quality and
speed comparisons on the same CPU.

The same two networks (see src/model/draem.rs: width 16, depth 3, padded 3x3 convolutions,
He's initialisation, 2x2 max pooling, 2x2 stride-2 transposed convolutions, a U-Net's skips
in the discriminative one), the same recipe (random crops of 128, batch 8, Adam 5e-4 with
eps 1e-8, L2 + 1 - SSIM on the reconstruction, focal loss with gamma 2 on the map, half the
samples left clean) and anomalies made the same way in NumPy (Perlin masks of lattice scales 2^0..2^5 rotated up to
90 degrees, thresholded at 0.5 of their range; fills of fractal noise or of a good image
zoomed, turned and re-toned; beta uniform in [0, 0.8]). The generator is NumPy's, not cae's:
the samples differ. cae also draws thin strokes and flat fills among its anomalies and turns
and zooms half of its clean crops (src/data/synthetic.rs); the reference does not.

  python3 bench/draem_reference.py train --category DIR [--minutes 8] [--threads 2]
  python3 bench/draem_reference.py steps --category DIR [--steps 20] [--threads 2]

`train` trains for the steps cae's defaults take (25 epochs of 4 crops an image, batch 8) or
until --minutes, then scores test/ whole and prints image and pixel ROC-AUC (maps smoothed by
a Gaussian of sigma 4, score their maximum, as cae's defaults) and the seconds. `steps` times
training steps alone (images/s).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image


def read(path, channels):
    img = Image.open(path).convert("L" if channels == 1 else "RGB")
    a = np.asarray(img, dtype=np.float32) / 255.0
    return a[None] if channels == 1 else a.transpose(2, 0, 1)


def files(d):
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.lower().endswith((".png", ".jpg")))


def load_category(root):
    good = files(os.path.join(root, "train", "good"))
    channels = 3 if Image.open(good[0]).mode == "RGB" else 1
    train = np.stack([read(p, channels) for p in good])
    test, masks, labels = [], [], []
    for kind in sorted(os.listdir(os.path.join(root, "test"))):
        for p in files(os.path.join(root, "test", kind)):
            x = read(p, channels)
            test.append(x)
            if kind == "good":
                masks.append(np.zeros(x.shape[1:], np.float32))
            else:
                stem = os.path.splitext(os.path.basename(p))[0]
                m = read(os.path.join(root, "ground_truth", kind, stem + "_mask.png"), 1)[0]
                masks.append((m > 0.5).astype(np.float32))
            labels.append(kind != "good")
    return train, np.stack(test), np.stack(masks), np.array(labels)


# --- the networks -------------------------------------------------------------------------


def he(layer, fan_in):
    # cae's draw (src/model/draem.rs): He's normal for a layer a ReLU follows, zero biases.
    nn.init.normal_(layer.weight, 0.0, (2.0 / fan_in) ** 0.5)
    nn.init.zeros_(layer.bias)
    return layer


class Double(nn.Sequential):
    def __init__(self, i, o):
        super().__init__(
            he(nn.Conv2d(i, o, 3, padding=1), 9 * i), nn.ReLU(),
            he(nn.Conv2d(o, o, 3, padding=1), 9 * o), nn.ReLU(),
        )


class Net(nn.Module):
    def __init__(self, c_in, c_out, width, depth, skips, out_kernel):
        super().__init__()
        lv = [width << i for i in range(depth + 1)]
        self.encoder = nn.ModuleList([Double(c_in if i == 0 else lv[i - 1], lv[i]) for i in range(depth + 1)])
        self.ups = nn.ModuleList([he(nn.ConvTranspose2d(lv[i + 1], lv[i], 2, stride=2), lv[i + 1])
                                  for i in reversed(range(depth))])
        self.blocks = nn.ModuleList([Double(2 * lv[i] if skips else lv[i], lv[i]) for i in reversed(range(depth))])
        self.out = nn.Conv2d(width, c_out, out_kernel, padding=out_kernel // 2)
        self.skips = skips

    def forward(self, x):
        levels = []
        for i, block in enumerate(self.encoder):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            levels.append(x)
        levels.pop()
        for up, block in zip(self.ups, self.blocks):
            x = F.relu(up(x))
            skip = levels.pop()
            if self.skips:
                x = torch.cat([x, skip], 1)
            x = block(x)
        return self.out(x)


class Draem(nn.Module):
    def __init__(self, channels, width=16, depth=3):
        super().__init__()
        self.rec = Net(channels, channels, width, depth, False, 3)
        self.disc = Net(2 * channels, 1, width, depth, True, 1)

    def forward(self, x):
        r = torch.sigmoid(self.rec(x))
        return r, self.disc(torch.cat([x, r], 1))


# --- losses -------------------------------------------------------------------------------


def gaussian(sigma, radius):
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-t * t / (2 * sigma * sigma))
    return g / g.sum()


def ssim_windows(x, y, pad=False):
    """SSIM of each 11x11 Gaussian window (sigma 1.5), per channel: inside the images, or with
    the edges reflected (`pad`) so that every pixel has one ([N, C, H, W] both)."""
    c = x.shape[1]
    g = gaussian(1.5, 5)
    planes = torch.cat([x, y, x * x, y * y, x * y], 1)
    if pad:
        planes = F.pad(planes, (5, 5, 5, 5), mode="reflect")
    k = 5 * c
    planes = F.conv2d(planes, g.view(1, 1, 11, 1).repeat(k, 1, 1, 1), groups=k)
    planes = F.conv2d(planes, g.view(1, 1, 1, 11).repeat(k, 1, 1, 1), groups=k)
    mx, my, xx, yy, xy = planes.chunk(5, 1)
    vx, vy, cov = xx - mx * mx, yy - my * my, xy - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def ssim(x, y):
    return ssim_windows(x, y).mean()


def focal(logits, mask):
    s = logits * (2 * mask - 1)
    return (-(1 - torch.sigmoid(s)) ** 2 * F.logsigmoid(s)).mean()


# --- synthetic anomalies ------------------------------------------------------------------


def perlin(shape, res, rng):
    """DRAEM's rand_perlin_2d_np: gradient noise of res[0] x res[1] cells over shape."""
    delta = (res[0] / shape[0], res[1] / shape[1])
    d = (shape[0] // res[0], shape[1] // res[1])
    grid = np.mgrid[0 : res[0] : delta[0], 0 : res[1] : delta[1]].transpose(1, 2, 0) % 1
    angles = 2 * math.pi * rng.random((res[0] + 1, res[1] + 1))
    gradients = np.stack((np.cos(angles), np.sin(angles)), axis=-1)
    tile = lambda s1, s2: np.repeat(np.repeat(gradients[s1[0] : s1[1], s2[0] : s2[1]], d[0], 0), d[1], 1)  # noqa: E731
    dot = lambda g, sx, sy: (np.stack((grid[: shape[0], : shape[1], 0] + sx, grid[: shape[0], : shape[1], 1] + sy), -1) * g[: shape[0], : shape[1]]).sum(-1)  # noqa: E731
    n00 = dot(tile([0, -1], [0, -1]), 0, 0)
    n10 = dot(tile([1, None], [0, -1]), -1, 0)
    n01 = dot(tile([0, -1], [1, None]), 0, -1)
    n11 = dot(tile([1, None], [1, None]), -1, -1)
    t = grid[: shape[0], : shape[1]]
    t = 6 * t ** 5 - 15 * t ** 4 + 10 * t ** 3
    lerp = lambda a, b, w: (b - a) * w + a  # noqa: E731
    return math.sqrt(2) * lerp(lerp(n00, n10, t[..., 0]), lerp(n01, n11, t[..., 0]), t[..., 1])


def rotate(a, angle):
    s = a.shape[0]
    c = (s - 1) / 2
    yy, xx = np.mgrid[0:s, 0:s] - c
    sy = np.clip(np.round(np.sin(angle) * xx + np.cos(angle) * yy + c), 0, s - 1).astype(int)
    sx = np.clip(np.round(np.cos(angle) * xx - np.sin(angle) * yy + c), 0, s - 1).astype(int)
    return a[sy, sx]


def fill(train, channels, side, rng):
    if rng.random() < 0.5:
        img = train[rng.integers(len(train))]
        zoom = 2 ** rng.uniform(-1, 1)
        angle = rng.uniform(-math.pi, math.pi)
        h, w = img.shape[1:]
        yy, xx = np.mgrid[0:side, 0:side] / zoom
        sy = (np.sin(angle) * xx + np.cos(angle) * yy + rng.integers(h)).astype(int) % h
        sx = (np.cos(angle) * xx - np.sin(angle) * yy + rng.integers(w)).astype(int) % w
        out = img[:, sy, sx]
    else:
        base = 2 ** rng.integers(1, 6)
        n = sum(0.5 ** o * perlin((side, side), (min(base << o, side), min(base << o, side)), rng) * 0.7 for o in range(3))
        out = np.repeat((0.5 + n)[None], channels, 0)
    gamma, contrast, bright = 2 ** rng.uniform(-1, 1), rng.uniform(0.5, 1.5), rng.uniform(-0.3, 0.3)
    if rng.random() < 0.25:
        out = 1 - out
    return np.clip((np.clip(out, 0, 1) ** gamma - 0.5) * contrast + 0.5 + bright, 0, 1).astype(np.float32)


def synthesize(clean, train, rng):
    c, side, _ = clean.shape
    zero = np.zeros((1, side, side), np.float32)
    if rng.random() < 0.5:
        return clean, zero
    res = (2 ** rng.integers(0, 6), 2 ** rng.integers(0, 6))
    mask = (rotate(perlin((side, side), res, rng), rng.uniform(-math.pi / 2, math.pi / 2)) > 0.5).astype(np.float32)[None]
    if mask.sum() == 0:
        return clean, zero
    beta = rng.uniform(0, 0.8)
    f = fill(train, c, side, rng)
    image = clean * (1 - mask) + mask * (beta * clean + (1 - beta) * f)
    return image.astype(np.float32), mask


def batch(train, crop, size, rng):
    n, c, h, w = train.shape
    imgs, cleans, masks = [], [], []
    for _ in range(size):
        x = train[rng.integers(n)]
        y0, x0 = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
        clean = x[:, y0 : y0 + crop, x0 : x0 + crop]
        img, m = synthesize(clean, train, rng)
        imgs.append(img), cleans.append(clean), masks.append(m)
    return tuple(torch.from_numpy(np.stack(a)) for a in (imgs, cleans, masks))


def step(model, opt, data):
    x, clean, mask = data
    r, logits = model(x)
    loss = F.mse_loss(r, clean) + (1 - ssim(r, clean)) + focal(logits, mask)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


# --- scoring ------------------------------------------------------------------------------


def smooth(maps, sigma=4.0):
    radius = int(math.ceil(4 * sigma))
    g = gaussian(sigma, radius)
    x = F.pad(maps, (radius,) * 4, mode="reflect")
    x = F.conv2d(x, g.view(1, 1, -1, 1))
    return F.conv2d(x, g.view(1, 1, 1, -1))


def roc_auc(scores, truth):
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    # Ties share their mean rank.
    s = np.asarray(scores)[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j + 2) / 2
        i = j + 1
    pos = truth.sum()
    neg = len(truth) - pos
    return (ranks[truth].sum() - pos * (pos + 1) / 2) / (pos * neg)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["train", "steps"])
    p.add_argument("--category", required=True)
    p.add_argument("--minutes", type=float, default=1e9)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crop", type=int, default=128, help="crop side (at most the images')")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    train, test, masks, labels = load_category(a.category)
    model = Draem(train.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=5e-4, eps=1e-8)
    crop, size = min(a.crop, train.shape[2]), 8
    if a.command == "steps":
        step(model, opt, batch(train, crop, size, rng))  # warm-up
        t = time.perf_counter()
        for _ in range(a.steps):
            step(model, opt, batch(train, crop, size, rng))
        s = time.perf_counter() - t
        print(json.dumps({"steps": a.steps, "seconds": s, "images_per_sec": a.steps * size / s}))
        return
    steps = 25 * len(train) * 4 // size
    start = time.perf_counter()
    done = 0
    for done in range(1, steps + 1):
        loss = step(model, opt, batch(train, crop, size, rng))
        if done % 50 == 0:
            print(f"step {done}/{steps} loss {loss:.4f} {time.perf_counter() - start:.0f} s", file=sys.stderr)
        if time.perf_counter() - start > 60 * a.minutes:
            break
    training = time.perf_counter() - start
    start = time.perf_counter()
    model.eval()
    with torch.no_grad():
        maps = torch.cat([torch.sigmoid(model(torch.from_numpy(test[i : i + 4]))[1]) for i in range(0, len(test), 4)])
        maps = smooth(maps)[:, 0].numpy()
    scoring = time.perf_counter() - start
    scores = maps.reshape(len(maps), -1).max(1)
    print(json.dumps({
        "category": os.path.basename(os.path.normpath(a.category)),
        "steps": done,
        "image_roc_auc": roc_auc(scores, labels),
        "pixel_roc_auc": roc_auc(maps.ravel(), masks.ravel() > 0.5),
        "training_seconds": training,
        "scoring_seconds": scoring,
    }))


if __name__ == "__main__":
    main()
