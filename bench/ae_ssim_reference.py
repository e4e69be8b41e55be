#!/usr/bin/env python3
"""PyTorch reference of cae's AE-SSIM recipe on patches, to find where cae's differs:

  cae train-ae --images CAT --loss ssim --patch 64 --patches-per-image 16 --latent 100 --epochs 15
  cae anomaly RUN --images CAT --map ssim --stride 32

The same network (the lecture's conv autoencoder on 64x64 patches: convolutions of 16, 32, 64
channels, strides 2, 2, 1, a ReLU latent of 100, the mirrored decoder, a sigmoid), PyTorch's
default initialisation (cae starts the latent biases at 0.5: --bias 0.5 does so here too),
Adam 1e-3 (eps 1e-8), batch 64, 16 random patches per image per epoch, loss 1 - SSIM over the
11x11 windows inside the patch. Scoring: tiles 64 px, 32 apart, reconstructed; --stitch recon
averages the tiles' reconstructions into the whole image's and takes its SSIM map whole (as
cae does now), --stitch maps takes each tile's map and averages those (as cae did before);
maps smoothed by a Gaussian of sigma 4, edges reflected; an image's score its map's maximum.

  bench/.venv/bin/python bench/ae_ssim_reference.py --category DIR [--stitch recon|maps] [--bias B]
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from draem_reference import load_category, roc_auc, smooth, ssim, ssim_windows  # noqa: E402


class AE(nn.Module):
    def __init__(self, c, side=64, k=16, latent=100, bias=None):
        super().__init__()
        s1 = (side - 3) // 2 + 1
        s2 = (s1 - 3) // 2 + 1
        s3 = s2 - 2
        self.enc = nn.Sequential(
            nn.Conv2d(c, k, 3, 2), nn.ReLU(), nn.Conv2d(k, 2 * k, 3, 2), nn.ReLU(), nn.Conv2d(2 * k, 4 * k, 3, 1), nn.ReLU()
        )
        self.fc = nn.Linear(4 * k * s3 * s3, latent)
        if bias is not None:
            nn.init.constant_(self.fc.bias, bias)
        self.dfc = nn.Linear(latent, 4 * k * s3 * s3)
        self.shape = (4 * k, s3, s3)
        p2 = s1 - ((s2 - 1) * 2 + 3)
        p1 = side - ((s1 - 1) * 2 + 3)
        self.dec = nn.Sequential(
            nn.ConvTranspose2d(4 * k, 2 * k, 3, 1), nn.ReLU(),
            nn.ConvTranspose2d(2 * k, k, 3, 2, output_padding=p2), nn.ReLU(),
            nn.ConvTranspose2d(k, c, 3, 2, output_padding=p1),
        )

    def forward(self, x):
        z = F.relu(self.fc(self.enc(x).flatten(1)))
        h = F.relu(self.dfc(z)).view(-1, *self.shape)
        return torch.sigmoid(self.dec(h))


def ssim_map(x, y):
    """1 - SSIM per pixel, 11x11 Gaussian windows, edges reflected ([N, C, H, W] -> [N, 1, H, W])."""
    return (1 - ssim_windows(x, y, pad=True)).mean(1, keepdim=True)


def starts(n, tile, stride):
    s = list(range(0, n - tile + 1, stride))
    if s[-1] != n - tile:
        s.append(n - tile)
    return s


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--category", required=True)
    p.add_argument("--stitch", choices=["recon", "maps"], default="recon")
    p.add_argument("--bias", type=float, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    train, test, masks, labels = load_category(a.category)
    n, c, h, w = train.shape
    model = AE(c, bias=a.bias)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    start = time.perf_counter()
    for epoch in range(15):
        order = rng.permutation(n * 16)
        for b in range(0, len(order), 64):
            idx = order[b : b + 64] % n
            ys, xs = rng.integers(0, h - 64 + 1, len(idx)), rng.integers(0, w - 64 + 1, len(idx))
            x = torch.from_numpy(np.stack([train[i, :, y : y + 64, xx : xx + 64] for i, y, xx in zip(idx, ys, xs)]))
            loss = 1 - ssim(model(x), x)
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch + 1} loss {loss.item():.4f}", file=sys.stderr)
    training = time.perf_counter() - start
    model.eval()
    maps = []
    with torch.no_grad():
        for img in test:
            x = torch.from_numpy(img)[None]
            corners = [(y, xx) for y in starts(h, 64, 32) for xx in starts(w, 64, 32)]
            tiles = torch.stack([x[0, :, y : y + 64, xx : xx + 64] for y, xx in corners])
            recon = model(tiles)
            total = torch.zeros(1, c, h, w) if a.stitch == "recon" else torch.zeros(1, 1, h, w)
            count = torch.zeros(1, 1, h, w)
            if a.stitch == "maps":
                tile_maps = ssim_map(tiles, recon)
            for i, (y, xx) in enumerate(corners):
                part = recon[i] if a.stitch == "recon" else tile_maps[i]
                total[0, :, y : y + 64, xx : xx + 64] += part
                count[0, :, y : y + 64, xx : xx + 64] += 1
            avg = total / count
            m = ssim_map(x, avg) if a.stitch == "recon" else avg
            maps.append(smooth(m)[0, 0].numpy())
    maps = np.stack(maps)
    scores = maps.reshape(len(maps), -1).max(1)
    print(json.dumps({
        "category": os.path.basename(os.path.normpath(a.category)),
        "stitch": a.stitch,
        "bias": a.bias,
        "image_roc_auc": roc_auc(scores, labels),
        "pixel_roc_auc": roc_auc(maps.ravel(), masks.ravel() > 0.5),
        "training_seconds": training,
    }))


if __name__ == "__main__":
    main()
