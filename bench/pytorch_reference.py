#!/usr/bin/env python3
"""PyTorch reference of cae's lecture models, for quality and speed comparisons.

Same layers, same data scaling, Adam(lr 1e-3, eps 1e-8), batch 64, BCE; threads = cores.

  python3 bench/pytorch_reference.py train-ae --data DIR [--epochs 5] [--seed 0]
  python3 bench/pytorch_reference.py throughput --data DIR [--batches 200] [--calls 1000]

`--data` (or CAE_DATA) is the folder that holds mnist/.
"""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    magic = int.from_bytes(raw[0:4], "big")
    dims = magic & 0xFF
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(root, split):
    stem = "train" if split == "train" else "t10k"
    d = os.path.join(root, "mnist")
    images = read_idx(os.path.join(d, f"{stem}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(d, f"{stem}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


class Encoder(nn.Module):
    def __init__(self, k=16, latent=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, k, 3, stride=2)
        self.conv2 = nn.Conv2d(k, 2 * k, 3, stride=2)
        self.conv3 = nn.Conv2d(2 * k, 4 * k, 3, stride=1)
        self.fc = nn.Linear(4 * k * 16, latent)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return F.relu(self.fc(x.flatten(1)))


class Decoder(nn.Module):
    def __init__(self, k=16, latent=10):
        super().__init__()
        self.k = k
        self.fc = nn.Linear(latent, 4 * k * 16)
        self.deconv1 = nn.ConvTranspose2d(4 * k, 2 * k, 3, stride=1)
        self.deconv2 = nn.ConvTranspose2d(2 * k, k, 3, stride=2)
        self.deconv3 = nn.ConvTranspose2d(k, 1, 3, stride=2, output_padding=1)

    def forward(self, z):
        x = F.relu(self.fc(z)).view(-1, 4 * self.k, 4, 4)
        x = F.relu(self.deconv1(x))
        x = F.relu(self.deconv2(x))
        return torch.sigmoid(self.deconv3(x))


class Head(nn.Module):
    """The lecture's CNN head on the 10-d latent."""

    def __init__(self, latent=10):
        super().__init__()
        self.fc1 = nn.Linear(latent, 1024)
        self.conv1 = nn.Conv2d(64, 128, 1)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(128, 256, 1)
        self.fc2 = nn.Linear(1024, 10)

    def forward(self, z):
        x = F.relu(self.fc1(z)).view(-1, 64, 4, 4)
        x = self.pool(F.relu(self.conv1(x)))
        x = F.relu(self.conv2(x))
        return self.fc2(x.flatten(1))


class AutoCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.head = Head()

    def forward(self, x):
        return self.head(self.encoder(x))


class Autoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.decoder = Decoder()

    def forward(self, x):
        return self.decoder(self.encoder(x))


def evaluate(model, x):
    model.eval()
    bce = mse = 0.0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            b = x[i:i + 1000]
            y = model(b)
            bce += F.binary_cross_entropy(y, b, reduction="sum").item()
            mse += F.mse_loss(y, b, reduction="sum").item()
    n = x.numel()
    model.train()
    return bce / n, mse / n


def train_ae(args):
    torch.manual_seed(args.seed)
    xtr, _ = load(args.data, "train")
    xte, _ = load(args.data, "test")
    model = Autoencoder()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(xtr))
        start = time.perf_counter()
        for i in range(0, len(xtr), args.batch_size):
            b = xtr[order[i:i + args.batch_size]]
            loss = F.binary_cross_entropy(model(b), b)
            opt.zero_grad()
            loss.backward()
            opt.step()
        secs = time.perf_counter() - start
        bce, mse = evaluate(model, xte)
        with torch.no_grad():
            z = torch.cat([model.encoder(xte[i:i + 1000]) for i in range(0, len(xte), 1000)])
        dead = int((z.max(0).values <= 0).sum())
        print(json.dumps({"epoch": epoch, "test_bce": bce, "test_mse": mse, "seconds": secs,
                          "samples_per_sec": len(xtr) / secs, "dead_units": dead}), flush=True)


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def throughput(args):
    """The figures of `cae bench`: autoencoder training images/s at batch 64 (forward + BCE +
    backward + Adam), AutoCNN training images/s at batch 50 (cross entropy, the whole model),
    AutoCNN single-image latency (median) and batch-1000 throughput."""
    torch.manual_seed(0)
    xtr, ytr = load(args.data, "train")
    xte, _ = load(args.data, "test")
    order = torch.randperm(len(xtr))

    def rate(net, batch, loss_of):
        """Images/s of `net`'s training steps at `batch`, after the warm-up steps."""
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-8)

        def step(i):
            idx = order[(i * batch) % (len(xtr) - batch):][:batch]
            loss = loss_of(net, xtr[idx], ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        for i in range(args.warmup):
            step(i)
        start = time.perf_counter()
        for i in range(args.batches):
            step(i)
        return args.batches * batch / (time.perf_counter() - start)

    train_rate = rate(Autoencoder(), 64, lambda net, x, _: F.binary_cross_entropy(net(x), x))
    classifier_rate = rate(AutoCNN(), 50, lambda net, x, y: F.cross_entropy(net(x), y))

    net = AutoCNN().eval()
    one, thousand = xte[:1], xte[:1000]

    def timed(x):
        t = time.perf_counter()
        with torch.no_grad():
            net(x)
        return time.perf_counter() - t

    for _ in range(min(args.calls, 50)):
        timed(one)
    single = [timed(one) for _ in range(args.calls)]
    timed(thousand)
    batch = [timed(thousand) for _ in range(5)]
    print(json.dumps({
        "ae_train_samples_per_sec": train_rate,
        "autocnn_train_samples_per_sec": classifier_rate,
        "autocnn_latency_us_median": median(single) * 1e6,
        "autocnn_batch1000_images_per_sec": 1000 / median(batch),
        "threads": torch.get_num_threads(),
    }))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["train-ae", "throughput"])
    p.add_argument("--data", default=os.environ.get("CAE_DATA", "data"))
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    {"train-ae": train_ae, "throughput": throughput}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
