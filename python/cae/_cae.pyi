"""Types of cae's native module (re-exported by ``cae``)."""

import os
import pathlib
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

PathLike = Union[str, "os.PathLike[str]"]
Images = Union[npt.NDArray[np.uint8], npt.NDArray[np.float32], Sequence[PathLike]]

__version__: str

class CaeError(Exception):
    """An error of cae's that is neither a bad argument nor a missing file."""

class Run:
    """A finished run (trained, imported or int8), opened once. Pickles as its directory."""

    @property
    def path(self) -> "pathlib.Path": ...
    @property
    def weights(self) -> Literal["last", "best"]: ...
    @property
    def kind(self) -> Literal["autoencoder", "classifier"]: ...
    @property
    def origin(self) -> Literal["trained", "imported", "int8"]: ...
    @property
    def image_shape(self) -> Tuple[int, int, int]:
        """(C, H, W) of the images the model takes."""
    @property
    def latent_size(self) -> Optional[int]: ...
    @property
    def classes(self) -> List[str]: ...
    @property
    def config(self) -> Dict[str, Any]:
        """config.json as a dict."""
    @property
    def metrics(self) -> List[Dict[str, Any]]:
        """One dict per finished epoch (metrics.jsonl)."""
    def encode(self, x: Images) -> npt.NDArray[np.float32]:
        """Latent codes, float32 [N, D]. ``x``: uint8 (0-255) or float32 (0-1) [N, H, W] or
        [N, C, H, W], or image file paths (prepared as ``cae predict`` does)."""
    def decode(self, z: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Images from codes [N, D]: float32 [N, C, H, W] in [0, 1]."""
    def reconstruct(self, x: Images) -> npt.NDArray[np.float32]:
        """Reconstructions, float32 [N, C, H, W] in [0, 1]."""
    def anomaly_scores(self, x: Images) -> npt.NDArray[np.float32]:
        """Each image's score, float32 [N]: an autoencoder's mean squared reconstruction error;
        an inspector's (``model="draem"``) its default map's score (the texture map's mean of
        its 200 largest values)."""
    def anomaly_maps(
        self,
        x: Images,
        map: Optional[str] = None,
        smooth: Optional[float] = None,
        stride: Optional[int] = None,
    ) -> npt.NDArray[np.float32]:
        """Each image's anomaly map, float32 [N, H, W], as ``cae anomaly --images`` makes it:
        ``map`` "texture" or "segmentation" (an inspector's, texture its default), "l2" (an
        autoencoder's default) or "ssim", smoothed with a Gaussian of ``smooth`` pixels (2 for
        the texture map, else 4); images larger than a
        patch-trained model are scored in tiles ``stride`` apart."""
    def inspect(
        self,
        category: Union[str, "os.PathLike[str]"],
        map: Optional[str] = None,
        smooth: Optional[float] = None,
        stride: Optional[int] = None,
    ) -> Tuple[Dict[str, Any], npt.NDArray[np.float32]]:
        """An MVTec AD category's test images scored against its masks, as ``cae anomaly RUN
        --images CATEGORY`` does: the metrics ``anomaly.json`` holds (image and pixel ROC-AUC,
        PRO, the F1-optimal threshold, per defect kind) and each test image's score, float32
        [N] (by kind, then by file). Memory does not grow with the number of images."""
    def _inspect_part(
        self,
        category: Union[str, "os.PathLike[str]"],
        index: int,
        count: int,
        map: Optional[str] = None,
        smooth: Optional[float] = None,
        stride: Optional[int] = None,
    ) -> str: ...
    def _merge_inspections(
        self,
        parts: Sequence[str],
        map: Optional[str] = None,
        smooth: Optional[float] = None,
        stride: Optional[int] = None,
    ) -> Tuple[Dict[str, Any], npt.NDArray[np.float32]]: ...
    def predict(self, x: Images) -> Tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Labels int64 [N] and probabilities float32 [N, K]."""
    def evaluate(self) -> Dict[str, Any]:
        """The figures of ``cae eval`` on the run's test images."""
    def state_dict(self) -> Dict[str, npt.NDArray[np.float32]]:
        """The weights under the lecture's PyTorch names and layouts."""
    def export(
        self,
        path: PathLike,
        format: Literal["safetensors", "pytorch", "onnx"] = "safetensors",
        part: Literal["autoencoder", "encoder", "decoder"] = "autoencoder",
    ) -> None: ...

def open(path: PathLike, weights: Literal["last", "best"] = "last", data: Optional[PathLike] = None) -> Run:
    """Open a run directory (trained, imported or int8)."""

def load_dataset(
    name: Literal["mnist", "fashion-mnist"] = "mnist",
    split: Literal["train", "test"] = "test",
    data: Optional[PathLike] = None,
) -> Tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Images uint8 [N, 28, 28] and labels uint8 [N] (data root: ``data``, else $CAE_DATA,
    else ./data)."""

def import_weights(
    file: PathLike,
    model: Literal["autoencoder", "auto-cnn", "plain-cnn"] = "autoencoder",
    out: Optional[PathLike] = None,
    *,
    dataset: Literal["mnist", "fashion-mnist"] = "mnist",
    encoder_only: bool = False,
    force: bool = False,
    data: Optional[PathLike] = None,
) -> Run:
    """A run made from a PyTorch or safetensors state dict of the lecture's model."""

def image_files(folder: PathLike) -> List[str]:
    """Every image file below ``folder`` (hidden ones left out), sorted."""

def options(command: str) -> List[str]: ...
def train(
    command: str,
    out: str,
    options: List[Tuple[str, str]],
    resume: bool = False,
    force: bool = False,
    observer: Any = None,
    data: Optional[str] = None,
) -> Run: ...
