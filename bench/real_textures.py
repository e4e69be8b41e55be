#!/usr/bin/env python3
"""Inspection categories from real texture photographs cae has never seen: scikit-image's
`brick`, `grass` and `gravel` (512x512 grey photographs shipped with the package), in the
MVTec AD layout, with defects planted in the test images.

Per texture: 60 good training images, 256x256 crops of the photograph's upper part (top-left
corner in rows 0-64, any column); 20 good test images and 10 of each defect from its lower part
(rows 192-256), flipped at random (so no test crop is a training crop); defects:
  hole     an ellipse filled with a smooth ground of the crop's mean grey (soft edge)
  scratch  a one- or two-pixel line at the texture's own contrast (its 5th or 95th percentile)
  patch    an ellipse of another of the photographs, brought to this crop's mean and spread

  bench/.venv/bin/python bench/real_textures.py --out DIR [--seed 0]
"""
import argparse
import os

import numpy as np
from PIL import Image
from skimage import data as photos

NAMES = ["brick", "grass", "gravel"]


def crop(photo, rows, rng):
    y = rng.integers(rows[0], rows[1] + 1)
    x = rng.integers(0, photo.shape[1] - 256 + 1)
    c = photo[y : y + 256, x : x + 256].astype(np.float32) / 255.0
    if rng.random() < 0.5:
        c = c[:, ::-1]
    return c


def ellipse(rng, side=256):
    cy, cx = rng.uniform(0.2, 0.8, 2) * side
    ry, rx = rng.uniform(0.05, 0.11, 2) * side
    yy, xx = np.mgrid[0:side, 0:side]
    d = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
    return d <= 1.0, d


def plant(kind, img, others, rng):
    side = img.shape[0]
    if kind == "hole":
        mask, d = ellipse(rng)
        edge = np.clip((1.0 - d) * 4, 0, 1)  # soft inside its last quarter
        out = img * (1 - edge) + img.mean() * edge
        return out, mask
    if kind == "patch":
        mask, _ = ellipse(rng)
        other = crop(others[rng.integers(len(others))], (0, 256), rng)
        other = (other - other.mean()) / (other.std() + 1e-6) * img.std() + img.mean()
        return np.where(mask, np.clip(other, 0, 1), img), mask
    # scratch
    lo, hi = np.percentile(img, [5, 95])
    value = hi if rng.random() < 0.5 else lo
    angle = rng.uniform(0, np.pi)
    cy, cx = rng.uniform(0.25, 0.75, 2) * side
    half = rng.uniform(0.12, 0.3) * side
    width = rng.choice([0.6, 1.1])
    yy, xx = np.mgrid[0:side, 0:side] + 0.5
    along = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    across = np.abs(-(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle))
    mask = (np.abs(along) <= half) & (across <= width)
    return np.where(mask, value, img), mask


def save(a, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray((np.clip(a, 0, 1) * 255).round().astype(np.uint8)).save(path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    all_photos = {n: getattr(photos, n)() for n in NAMES}
    for n, photo in all_photos.items():
        rng = np.random.default_rng(a.seed + NAMES.index(n))
        others = [v for k, v in all_photos.items() if k != n]
        root = os.path.join(a.out, n)
        for i in range(60):
            save(crop(photo, (0, 64), rng), f"{root}/train/good/{i:03}.png")
        for i in range(20):
            save(crop(photo, (192, 256), rng), f"{root}/test/good/{i:03}.png")
        for kind in ["hole", "patch", "scratch"]:
            for i in range(10):
                img, mask = plant(kind, crop(photo, (192, 256), rng), others, rng)
                save(img, f"{root}/test/{kind}/{i:03}.png")
                save(mask.astype(np.float32), f"{root}/ground_truth/{kind}/{i:03}_mask.png")
        print(root)


if __name__ == "__main__":
    main()
