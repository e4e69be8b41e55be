"""Shared runs for the tests: a small autoencoder and an AutoCNN on its encoder, trained once on
real MNIST (CAE_DATA), and the `cae` command line to compare with (CAE_BIN, else the workspace's
target/debug/cae, which `cargo test` builds)."""

import os
import pathlib
import subprocess

import numpy as np
import pytest

import cae

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _required(path: pathlib.Path, what: str) -> pathlib.Path:
    if not path.exists():
        pytest.fail(f"{what} not found at {path}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def data() -> pathlib.Path:
    root = os.environ.get("CAE_DATA")
    if not root:
        pytest.fail("set CAE_DATA to the folder holding mnist/ (the real IDX files)", pytrace=False)
    return _required(pathlib.Path(root), "CAE_DATA")


@pytest.fixture(scope="session")
def cli() -> pathlib.Path:
    return _required(pathlib.Path(os.environ.get("CAE_BIN", ROOT / "target" / "debug" / "cae")), "the cae binary")


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def ae(runs, data) -> cae.Run:
    return cae.train_autoencoder(
        runs / "ae", epochs=1, train_limit=10000, test_limit=1000, seed=0, progress=False, data=data
    )


@pytest.fixture(scope="session")
def clf(runs, data, ae) -> cae.Run:
    return cae.train_classifier(
        runs / "cnn", encoder=ae, epochs=2, train_limit=10000, test_limit=1000, progress=False, data=data
    )


@pytest.fixture(scope="session")
def digits(data):
    images, labels = cae.load_dataset("mnist", split="test", data=data)
    return images, labels


@pytest.fixture(scope="session")
def pngs(tmp_path_factory, digits):
    """Thirty test digits as PNG files (a sub-folder per class), sorted as encode_folder sorts."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("pngs")
    images, labels = digits
    for i in range(30):
        (folder / str(labels[i])).mkdir(exist_ok=True)
        Image.fromarray(images[i]).save(folder / str(labels[i]) / f"{i:03}.png")
    return folder, sorted(str(p) for p in folder.rglob("*.png"))


def run_cli(cli, *args) -> subprocess.CompletedProcess:
    out = subprocess.run([str(cli), *map(str, args)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out


@pytest.fixture(scope="session")
def cae_cli(cli):
    return lambda *args: run_cli(cli, *args)


@pytest.fixture
def npy():
    return np.load
