#!/usr/bin/env python3
"""Image scores from the maps `cae anomaly RUN --images CATEGORY --maps DIR` wrote: the map's
maximum, the mean of its 200 largest values (the texture map's default), and the mean along
the best straight line of L pixels in 16 directions (a score meant for thin scratches;
docs/BENCHMARKS.md §24, not adopted).

  bench/.venv/bin/python bench/line_score.py DIR [DIR…]

Prints per folder the image ROC-AUC of each score: over all images, then per defect kind
(its images with the good ones).
"""
import glob
import json
import os
import sys

import numpy as np
from scipy.ndimage import rotate, uniform_filter1d
from sklearn.metrics import roc_auc_score

DIRECTIONS = 16
LENGTHS = (21, 41, 61, 81)


def line_score(m, length):
    """The largest mean of `m` along a straight segment of `length` pixels, in any of the
    directions; the rotated map's corners (outside the image) never count."""
    best = -np.inf
    for a in range(DIRECTIONS):
        r = rotate(m, 180.0 * a / DIRECTIONS, reshape=True, order=1, mode="constant", cval=np.nan)
        r = np.where(np.isnan(r), -1e3, r)
        best = max(best, uniform_filter1d(r, length, axis=1, mode="constant", cval=-1e3).max())
    return best


def main():
    for d in sys.argv[1:]:
        maps, kinds = [], []
        for kind in sorted(os.listdir(d)):
            for p in sorted(glob.glob(f"{d}/{kind}/*.npy")):
                maps.append(np.load(p))
                kinds.append(kind)
        y = np.array([k != "good" for k in kinds])
        scores = {"max": [m.max() for m in maps],
                  "top 200": [np.sort(m.ravel())[-200:].mean() for m in maps]}
        for length in LENGTHS:
            scores[f"line {length}"] = [line_score(m, length) for m in maps]
        out = {}
        for name, s in scores.items():
            s = np.array(s)
            row = {"all": round(roc_auc_score(y, s), 3)}
            for kind in sorted(set(kinds) - {"good"}):
                sel = [i for i, k in enumerate(kinds) if k in ("good", kind)]
                row[kind] = round(roc_auc_score(y[sel], s[sel]), 3)
            out[name] = row
        print(d, json.dumps(out))


if __name__ == "__main__":
    main()
