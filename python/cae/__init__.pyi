import os
from typing import Any, Callable, Dict, Optional, Union

from ._cae import CaeError as CaeError
from ._cae import Run as Run
from ._cae import __version__ as __version__
from ._cae import import_weights as import_weights
from ._cae import load_dataset as load_dataset
from ._cae import open as open

PathLike = Union[str, "os.PathLike[str]"]
Progress = Union[bool, Callable[[Dict[str, Any]], Any]]

def train_autoencoder(
    out: PathLike,
    *,
    resume: bool = False,
    force: bool = False,
    progress: Progress = True,
    data: Optional[PathLike] = None,
    **options: Any,
) -> Run: ...
def train_classifier(
    out: PathLike,
    *,
    encoder: Union[Run, PathLike, None] = None,
    resume: bool = False,
    force: bool = False,
    progress: Progress = True,
    data: Optional[PathLike] = None,
    **options: Any,
) -> Run: ...
