#!/usr/bin/env python3
"""Load cae's exports into the lecture's own PyTorch classes (strict=True) and evaluate them.

Run by hand, not by the tests (it needs PyTorch and safetensors from PyPI):

  cae export runs/lecture/autoencoder --out ae.safetensors
  cae export runs/lecture/autocnn --out autocnn.safetensors
  python3 bench/pytorch_load_check.py --data $CAE_DATA ae.safetensors autocnn.safetensors

Files ending in .pt are read with torch.load(weights_only=True) and written with torch.save:

  cae export runs/lecture/autoencoder --format pytorch --out ae.pt
  cae export runs/lecture/autocnn --format pytorch --out autocnn.pt
  python3 bench/pytorch_load_check.py --data $CAE_DATA ae.pt autocnn.pt

Prints the autoencoder's test BCE and the AutoCNN's test accuracy as PyTorch computes them,
to compare with `cae eval` on the same runs.

The other way: train the lecture's AutoCNN in PyTorch (its own init, Adam 1e-3, batch 50),
save it as safetensors, and print its test accuracy, to compare with `cae import` + `cae eval`:

  python3 bench/pytorch_load_check.py --data $CAE_DATA --train-autocnn 1 torch-autocnn.safetensors
  cae import torch-autocnn.safetensors --model auto-cnn --out runs/torch-autocnn && cae eval runs/torch-autocnn
"""
import argparse
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(__file__))
from pytorch_reference import load  # noqa: E402  (the same IDX reader)


# The lecture's classes, with its layer order (nn.Sequential indices are the exported names).
class Encoder(nn.Module):
    def __init__(self, k=16):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, k, 3, stride=2), nn.ReLU(),
            nn.Conv2d(k, 2 * k, 3, stride=2), nn.ReLU(),
            nn.Conv2d(2 * k, 4 * k, 3, stride=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(1024, 10), nn.ReLU())

    def forward(self, x):
        return self.encoder(x)


class Decoder(nn.Module):
    def __init__(self, k=16):
        super().__init__()
        self.decoder = nn.Sequential(
            nn.Linear(10, 1024), nn.ReLU(), nn.Unflatten(1, (4 * k, 4, 4)),
            nn.ConvTranspose2d(4 * k, 2 * k, 3, stride=1), nn.ReLU(),
            nn.ConvTranspose2d(2 * k, k, 3, stride=2), nn.ReLU(),
            nn.ConvTranspose2d(k, 1, 3, stride=2, output_padding=1), nn.Sigmoid())

    def forward(self, z):
        return self.decoder(z)


class Autoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = Encoder(), Decoder()

    def forward(self, x):
        return self.decoder(self.encoder(x))


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Linear(10, 1024), nn.ReLU(), nn.Unflatten(1, (64, 4, 4)),
            nn.Conv2d(64, 128, 1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(128, 256, 1), nn.ReLU(), nn.Flatten(), nn.Linear(1024, 10))

    def forward(self, z):
        return self.cnn(z)


class AutoCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.cnn = Encoder(), CNN()

    def forward(self, x):
        return self.cnn(self.encoder(x))


def load_weights(path):
    if path.endswith(".pt"):
        return torch.load(path, weights_only=True)
    return load_file(path)


def save_weights(state, path):
    state = {k: v.contiguous() for k, v in state.items()}
    if path.endswith(".pt"):
        torch.save(state, path)
    else:
        save_file(state, path)


def train_autocnn(data, epochs, out):
    torch.manual_seed(0)
    x, y = load(data, "train")
    model = AutoCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), 50):
            idx = order[i:i + 50]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    save_weights(model.state_dict(), out)
    tx, ty = load(data, "test")
    with torch.no_grad():
        accuracy = (model.eval()(tx).argmax(1) == ty).float().mean().item()
    print(f"PyTorch-trained AutoCNN ({epochs} epochs): test accuracy {100 * accuracy:.2f} %, saved to {out}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=os.environ.get("CAE_DATA", "data"))
    p.add_argument("--train-autocnn", type=int, metavar="EPOCHS")
    p.add_argument("files", nargs="+")
    a = p.parse_args()
    if a.train_autocnn:
        train_autocnn(a.data, a.train_autocnn, a.files[0])
        return
    x, y = load(a.data, "test")
    ae = Autoencoder()
    ae.load_state_dict(load_weights(a.files[0]), strict=True)
    cnn = AutoCNN()
    cnn.load_state_dict(load_weights(a.files[1]), strict=True)
    with torch.no_grad():
        out = ae.eval()(x).clamp(1e-7, 1 - 1e-7)
        bce = F.binary_cross_entropy(out, x).item()
        accuracy = (cnn.eval()(x).argmax(1) == y).float().mean().item()
    print(f"strict load: ok; autoencoder test_bce {bce:.5f}; AutoCNN test accuracy {100 * accuracy:.2f} %")


if __name__ == "__main__":
    main()
