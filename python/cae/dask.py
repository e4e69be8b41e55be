"""A folder's codes or anomaly scores, or a category's inspection, computed on a Dask cluster
(``dask.distributed``).

    from dask.distributed import Client, LocalCluster
    import cae, cae.dask
    client = Client(LocalCluster(n_workers=2, processes=True))
    codes, files = cae.dask.encode_folder(cae.open("runs/ae"), "images/", client=client)
    scores, files = cae.dask.score_folder(cae.open("runs/inspector"), "parts/", client=client)
    metrics, scores = cae.dask.inspect_category(cae.open("runs/inspector"), "bottle/", client=client)

The folder's image files (``.png``, ``.jpg``, ``.jpeg`` below it, hidden ones left out; the
files of ``cae encode RUN --folder DIR``) are taken in sorted order and cut into one partition per worker; each partition is a task that
opens the run on its worker (once per worker process) and encodes its files as
``cae encode RUN FILE…`` does (or scores them as ``Run.anomaly_scores`` does). The results
come back in the files' order; a partition lost with its worker is run again by Dask. A
category's inspection sends back each part's tally (scores and counts of map values), not its
maps, so the client's memory does not grow with the number of images either.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from . import Run
from . import open as _open
from ._cae import image_files as _image_files

# Each worker process opens a run once and keeps it for the partitions that follow.
_RUNS: dict = {}


def image_files(folder: Union[str, "os.PathLike[str]"]) -> List[str]:
    """The image files below ``folder`` (hidden ones left out), sorted: the files of
    ``cae encode RUN --folder DIR``, in its order."""
    return _image_files(os.fspath(folder))


def _opened(path: str, weights: str) -> Run:
    run = _RUNS.get((path, weights))
    if run is None:
        run = _RUNS[(path, weights)] = _open(path, weights=weights)
    return run


def _encode_part(
    path: str, weights: str, files: List[str], scores: bool
) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    run = _opened(path, weights)
    codes = run.encode(files)
    return codes, (run.anomaly_scores(files) if scores else None)


def _score_part(path: str, weights: str, files: List[str]) -> np.ndarray:
    return _opened(path, weights).anomaly_scores(files)


def _over_parts(run: Run, folder: Any, client: Any, partitions: Optional[int], task: Any) -> Tuple[list, List[str]]:
    """``task(path, weights, files)`` on each partition of the folder's files, gathered in
    order, and the files."""
    from dask.distributed import get_client

    if client is None:
        client = get_client()
    files = image_files(folder)
    if not files:
        raise ValueError(f"{os.fspath(folder)}: no image files (.png, .jpg, .jpeg) below it")
    if partitions is None:
        partitions = max(1, len(client.scheduler_info()["workers"]))
    partitions = min(partitions, len(files))
    bounds = np.linspace(0, len(files), partitions + 1).astype(int)
    parts = [files[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    path = os.path.abspath(os.fspath(run.path))
    futures = [client.submit(task, path, run.weights, part, pure=False) for part in parts]
    return client.gather(futures), files


def encode_folder(
    run: Run,
    folder: Union[str, "os.PathLike[str]"],
    client: Any = None,
    *,
    scores: bool = False,
    partitions: Optional[int] = None,
) -> Any:
    """The codes (float32 [N, D]) of the image files below ``folder`` in sorted order, computed
    as tasks on the cluster of ``client`` (the current client when None), one partition per
    worker unless ``partitions`` says otherwise; returns ``(codes, files)``, or
    ``(codes, scores, files)`` with ``scores=True`` (each image's anomaly score)."""
    task = functools.partial(_encode_part, scores=scores)
    results, files = _over_parts(run, folder, client, partitions, task)
    codes = np.concatenate([r[0] for r in results])
    if scores:
        return codes, np.concatenate([r[1] for r in results]), files
    return codes, files


def score_folder(
    run: Run,
    folder: Union[str, "os.PathLike[str]"],
    client: Any = None,
    *,
    partitions: Optional[int] = None,
) -> Tuple[np.ndarray, List[str]]:
    """Each image file's anomaly score (float32 [N]) below ``folder``, in sorted order, as
    ``run.anomaly_scores`` gives it (an inspector's: its segmentation map's), computed on the
    cluster of ``client`` as :func:`encode_folder` computes codes; returns ``(scores, files)``."""
    results, files = _over_parts(run, folder, client, partitions, _score_part)
    return np.concatenate(results), files


def _inspect_part(path: str, weights: str, category: str, index: int, count: int, options: dict) -> str:
    return _opened(path, weights)._inspect_part(category, index, count, **options)


def inspect_category(
    run: Run,
    category: Union[str, "os.PathLike[str]"],
    client: Any = None,
    *,
    partitions: Optional[int] = None,
    map: Optional[str] = None,
    smooth: Optional[float] = None,
    stride: Optional[int] = None,
) -> Tuple[Dict[str, Any], np.ndarray]:
    """``run.inspect(category)`` computed on the cluster of ``client`` (the current client when
    None): each of ``partitions`` (one per worker unless given) equal, ordered parts of the
    category's test images is scored on a worker, which sends back only its tally (scores and
    per-value pixel counts, never the maps); merged in order they give ``(metrics, scores)``
    equal to one process's."""
    from dask.distributed import get_client

    if client is None:
        client = get_client()
    if partitions is None:
        partitions = max(1, len(client.scheduler_info()["workers"]))
    if partitions < 1:
        raise ValueError(f"partitions={partitions}: at least one part is needed")
    options = {"map": map, "smooth": smooth, "stride": stride}
    path = os.path.abspath(os.fspath(run.path))
    where = os.path.abspath(os.fspath(category))
    futures = [
        client.submit(_inspect_part, path, run.weights, where, i, partitions, options, pure=False)
        for i in range(partitions)
    ]
    return run._merge_inspections(client.gather(futures), **options)


__all__ = ["encode_folder", "image_files", "inspect_category", "score_folder"]
