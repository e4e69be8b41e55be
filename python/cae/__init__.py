"""cae: convolutional autoencoders on MNIST and your own images, from Python.

A thin front over the Rust library: NumPy arrays in and out, the GIL released while Rust
computes, and the same results as the ``cae`` command line, bit for bit.

    import cae
    ae = cae.train_autoencoder("runs/ae", dataset="mnist", epochs=5, seed=0)
    images, labels = cae.load_dataset("mnist", split="test")
    z = ae.encode(images)            # float32 [N, 10]
    pixels = ae.decode(z[:8])        # float32 [8, 1, 28, 28]
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Dict, Optional, Union

from ._cae import CaeError, Run, __version__, import_weights, load_dataset, open
from ._cae import options as _options
from ._cae import train as _train

__all__ = [
    "CaeError",
    "Run",
    "open",
    "train_autoencoder",
    "train_classifier",
    "load_dataset",
    "import_weights",
    "__version__",
]

PathLike = Union[str, "os.PathLike[str]"]
Progress = Union[bool, Callable[[Dict[str, Any]], Any]]


def _text(value: Any) -> str:
    """A keyword's value as the command line's flag takes it: ``image_size=(64, 64)`` is
    ``64x64``, ``hidden=[256, 64]`` is ``256,64``, ``True`` is ``true``."""
    if value is True:
        return "true"
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


class _Report:
    """Training's events, shown as a tqdm bar per epoch (when tqdm is installed) and one line
    per epoch on stderr, and/or handed to the user's callable as each epoch's metrics."""

    def __init__(self, progress: Progress) -> None:
        self.callback = progress if callable(progress) else None
        self.show = progress is True
        self.bar = None
        self.tqdm = None
        if self.show:
            try:
                from tqdm.auto import tqdm

                self.tqdm = tqdm
            except ImportError:
                pass

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        if self.tqdm is not None:
            self.bar = self.tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", leave=False)

    def step(self, loss: float, images_per_sec: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{images_per_sec:.0f}", refresh=False)

    def epoch_end(self, record: Dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.show:
            fields = "  ".join(
                f"{k} {v:.4f}" for k, v in record.items() if k not in ("epoch", "seconds", "samples_per_sec")
            )
            print(
                f"epoch {record['epoch']}  {fields}  {record['seconds']:.1f} s, "
                f"{record['samples_per_sec']:.0f} img/s",
                file=sys.stderr,
            )
        if self.callback is not None:
            self.callback(dict(record))


def _run_training(
    command: str,
    out: PathLike,
    options: Dict[str, Any],
    resume: bool,
    force: bool,
    progress: Progress,
    data: Optional[PathLike],
) -> Run:
    known = _options(command)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(
            f"unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
            f"the options of cae {command} are {', '.join(sorted(known))}"
        )
    given = {name: value for name, value in options.items() if value is not None and value is not False}
    texts = [(name, _text(value)) for name, value in given.items()]
    observer = _Report(progress) if progress else None
    return _train(
        command,
        os.fspath(out),
        texts,
        resume=resume,
        force=force,
        observer=observer,
        data=os.fspath(data) if data is not None else None,
    )


def train_autoencoder(
    out: PathLike,
    *,
    resume: bool = False,
    force: bool = False,
    progress: Progress = True,
    data: Optional[PathLike] = None,
    **options: Any,
) -> Run:
    """Train an autoencoder into the run directory ``out``, as ``cae train-ae`` does, and return
    the run.

    ``options`` are the options of ``cae train-ae`` as keywords: ``dataset="mnist"``,
    ``images="DIR"``, ``image_size=(64, 64)``, ``channels=3``, ``loss="bce"``, ``latent=10``,
    ``noise="gaussian:0.3"``, ``variational=True``, ``normal_class=1``, ``epochs=5``,
    ``batch_size=64``, ``lr=1e-3``, ``seed=0``, ``train_limit=…``, ``test_limit=…``, …
    ``model="draem"`` trains the defect inspector instead (``patch=128``, ``depth=3``,
    ``width=16``, ``anomaly_source="DIR"``, ``augment_rotate=0``, ``augment_scale=0``; its run's ``anomaly_maps`` and ``anomaly_scores``
    are its segmentation map's). ``resume=True`` continues the run in ``out`` (only ``epochs`` may change); ``force=True``
    replaces an existing one. ``progress``: True shows a bar (tqdm, when installed) and a line
    per epoch; a callable receives each epoch's metrics as a dict; False is silent. ``data`` is
    the data root (else $CAE_DATA, else ./data). Ctrl-C raises KeyboardInterrupt within a
    step, leaving the run resumable.
    """
    return _run_training("train-ae", out, options, resume, force, progress, data)


def train_classifier(
    out: PathLike,
    *,
    encoder: Union[Run, PathLike, None] = None,
    resume: bool = False,
    force: bool = False,
    progress: Progress = True,
    data: Optional[PathLike] = None,
    **options: Any,
) -> Run:
    """Train a classifier into ``out``, as ``cae train-classifier`` does, and return the run.

    ``encoder`` is the autoencoder run (a Run or its directory) whose encoder the AutoCNN
    starts from; ``model="auto-cnn" | "plain-cnn"``, ``init_from=RUN`` and the other options
    of ``cae train-classifier`` are keywords (see :func:`train_autoencoder` for the rest).
    """
    if isinstance(encoder, Run):
        encoder = encoder.path
    if encoder is not None:
        options["encoder"] = encoder
    elif options.get("model", "auto-cnn") == "auto-cnn" and "init_from" not in options:
        raise ValueError("the AutoCNN needs encoder=RUN (an autoencoder run); or model=\"plain-cnn\"")
    return _run_training("train-classifier", out, options, resume, force, progress, data)
