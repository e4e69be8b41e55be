#!/usr/bin/env python3
"""PyTorch reference for bench/python_throughput.py: the same folder of PNG files read by a
DataLoader (PIL decode, to a [0, 1] tensor, 2 worker processes, batches of 1 000) through the
lecture's encoder (bench/pytorch_reference.py's, random weights: the speed is the same); images
per second, median of the rounds, as one JSON line.

    python bench/pytorch_folder.py --folder /tmp/mnist-png [--rounds 3]
"""

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
from PIL import Image

from pytorch_reference import Encoder


class Files(torch.utils.data.Dataset):
    def __init__(self, folder):
        self.files = sorted(
            os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs if f.endswith(".png")
        )

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        image = np.asarray(Image.open(self.files[i]).convert("L"), dtype=np.float32) / 255.0
        return torch.from_numpy(image).unsqueeze(0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--folder", required=True)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(os.cpu_count())
    data = Files(a.folder)
    model = Encoder().eval()
    times = []
    for _ in range(a.rounds):
        loader = torch.utils.data.DataLoader(data, batch_size=1000, num_workers=2)
        t = time.perf_counter()
        with torch.no_grad():
            n = sum(model(x).shape[0] for x in loader)
        times.append(time.perf_counter() - t)
    print(
        json.dumps(
            {
                "images": n,
                "seconds": [round(x, 2) for x in times],
                "images_per_sec_median": round(n / statistics.median(times)),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
