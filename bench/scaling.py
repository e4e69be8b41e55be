#!/usr/bin/env python3
"""How the inspector's scoring cost grows with the image side: seconds per image and peak
resident memory of cae (the Python package over the release build) and of the PyTorch
reference network (bench/draem_reference.py, the same layers, random weights), each side
and each framework in a fresh process, the same threads. Each computes the segmentation map
smoothed by a Gaussian of sigma 4 and its maximum, for one image at a time.

  PYTHONPATH=<staged cae package> bench/.venv/bin/python bench/scaling.py --run RUN \
      [--sides 64,128,256,512,1024] [--rounds 3] [--threads 2]

RUN is any inspector run (its networks are fully convolutional: any side that is a multiple
of 2^depth). Prints one JSON line per measurement, then a Markdown table. "baseline" is the
process after its imports, before any image: the memory the framework itself holds.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def measure(framework, run_dir, side, rounds, threads):
    import numpy as np

    images = max(1, (256 * 256 * 4) // (side * side)) if side else 0
    if framework == "cae":
        import cae

        run = cae.open(run_dir)
        channels = run.image_shape[0]

        def score(x):
            return run.anomaly_maps(x).max()

    else:
        import torch

        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from draem_reference import Draem, smooth

        torch.set_num_threads(threads)
        channels = json.load(open(os.path.join(run_dir, "config.json")))["model"]["channels"]
        model = Draem(channels).eval()

        def score(x):
            with torch.no_grad():
                _, logits = model(torch.from_numpy(x))
                return float(smooth(torch.sigmoid(logits)).amax())

    seconds = []
    if side:
        x = np.random.default_rng(0).random((1, channels, side, side), dtype=np.float32)
        score(x)  # warm
        for _ in range(rounds):
            t = time.perf_counter()
            for _ in range(images):
                score(x)
            seconds.append((time.perf_counter() - t) / images)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "framework": framework,
        "side": side,
        "images_per_round": images,
        "rounds": rounds,
        "seconds_per_image": statistics.median(seconds) if seconds else None,
        "peak_mb": round(peak_mb),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True)
    p.add_argument("--sides", default="64,128,256,512,1024")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--one", nargs=2, metavar=("FRAMEWORK", "SIDE"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print(json.dumps(measure(a.one[0], a.run, int(a.one[1]), a.rounds, a.threads)))
        return
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    rows = {}
    for side in [0] + [int(s) for s in a.sides.split(",")]:
        for framework in ("cae", "pytorch"):
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--run", a.run, "--rounds", str(a.rounds),
                 "--threads", str(a.threads), "--one", framework, str(side)],
                env=env, check=True, capture_output=True, text=True,
            ).stdout.strip().splitlines()[-1]
            print(out, flush=True)
            rows[(side, framework)] = json.loads(out)
    print("| side | cae s/image | PyTorch s/image | cae/PyTorch speed | cae peak MB | PyTorch peak MB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for side in [0] + [int(s) for s in a.sides.split(",")]:
        c, t = rows[(side, "cae")], rows[(side, "pytorch")]
        if side == 0:
            print(f"| baseline | | | | {c['peak_mb']} | {t['peak_mb']} |")
            continue
        cs, ts = c["seconds_per_image"], t["seconds_per_image"]
        print(f"| {side} | {cs:.4f} | {ts:.4f} | {ts / cs:.2f}× | {c['peak_mb']} | {t['peak_mb']} |")


if __name__ == "__main__":
    main()
