#!/usr/bin/env python3
"""Images per second encoding a folder of 60 000 PNG files (MNIST's training digits, written out
once): `cae encode RUN --folder DIR`, `run.encode(files)` in one Python process, and
`cae.dask.encode_folder` on a two-worker LocalCluster; the three must give the same codes, bit
for bit. Rounds alternate the three; medians are printed as one JSON line.

    python bench/python_throughput.py --cae target/release/cae --run runs/lecture/autoencoder \
        --folder /tmp/mnist-png --data $CAE_DATA [--rounds 3]

Needs `pip install ./python dask[distributed] pillow`. The PyTorch reference (DataLoader over
the same files and the lecture's encoder) is bench/pytorch_folder.py, in an environment with
torch.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import cae
import cae.dask


def cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name"))
    except Exception:
        return platform.processor()


def write_folder(folder: str, data: str) -> None:
    from PIL import Image

    images, labels = cae.load_dataset("mnist", split="train", data=data)
    for i, (image, label) in enumerate(zip(images, labels)):
        d = os.path.join(folder, str(label))
        os.makedirs(d, exist_ok=True)
        Image.fromarray(image).save(os.path.join(d, f"{i:05}.png"))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cae", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--folder", required=True)
    p.add_argument("--data", default=os.environ.get("CAE_DATA"))
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    if not os.path.isdir(a.folder) or len(cae.dask.image_files(a.folder)) != 60000:
        write_folder(a.folder, a.data)
    n = len(cae.dask.image_files(a.folder))

    from dask.distributed import Client, LocalCluster

    # Cluster start-up (a few seconds) is outside the timing; each round's tasks open the run
    # on the workers again only on their first partition.
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
    client = Client(cluster)
    times = {"cli": [], "python": [], "dask": []}
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "z.npy")
        for _ in range(a.rounds):
            t = time.perf_counter()
            subprocess.run([a.cae, "encode", a.run, "--folder", a.folder, "--out", out], check=True, capture_output=True)
            times["cli"].append(time.perf_counter() - t)
            cli_codes = np.load(out)

            t = time.perf_counter()
            run = cae.open(a.run)
            codes = run.encode(cae.dask.image_files(a.folder))
            times["python"].append(time.perf_counter() - t)

            t = time.perf_counter()
            dask_codes, _ = cae.dask.encode_folder(run, a.folder, client=client)
            times["dask"].append(time.perf_counter() - t)

            assert np.array_equal(codes, cli_codes) and np.array_equal(dask_codes, cli_codes)
            reference = cli_codes if reference is None else reference
            assert np.array_equal(reference, cli_codes)
    client.close()
    cluster.close()
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(
        json.dumps(
            {
                "images": n,
                "rounds": a.rounds,
                "seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
                "images_per_sec_median": {k: round(n / m) for k, m in medians.items()},
                "python_overhead_vs_cli": round(medians["python"] / medians["cli"] - 1, 4),
                "cpu": cpu(),
                "cores": os.cpu_count(),
                "python": sys.version.split()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
