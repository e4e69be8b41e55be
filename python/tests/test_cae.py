"""The Python package against the command line: the same results bit for bit, every function,
each error class, pickling, Ctrl-C, and a Dask cluster."""

import json
import os
import pathlib
import pickle
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import cae


# --- runs and their facts -------------------------------------------------------------------


def test_a_trained_run_says_what_it_is(ae, clf):
    assert (ae.kind, ae.origin, ae.image_shape, ae.latent_size) == ("autoencoder", "trained", (1, 28, 28), 10)
    assert ae.classes == [str(d) for d in range(10)]
    assert ae.config["task"] == "autoencoder" and ae.config["loss"] == "bce"
    assert [m["epoch"] for m in ae.metrics] == [1]
    assert {"train_loss", "test_bce", "test_mse"} <= set(ae.metrics[0])
    assert (clf.kind, clf.latent_size) == ("classifier", 10)
    assert "Run(" in repr(ae)


def test_open_reads_a_run_again_with_either_weights(ae, data):
    again = cae.open(ae.path, weights="best", data=data)
    assert again.weights == "best" and again.kind == "autoencoder"
    with pytest.raises(ValueError, match="weights"):
        cae.open(ae.path, weights="middle")


# --- results equal the command line's -------------------------------------------------------


def test_encode_equals_cae_encode_bit_for_bit(ae, digits, pngs, tmp_path, cae_cli, data):
    # The run's whole test split, as an array and through the command line.
    out = tmp_path / "z.npy"
    cae_cli("encode", ae.path, "--out", out, "--with-reconstruction-error", "--data", data)
    images, _ = digits
    z = ae.encode(images)
    assert z.dtype == np.float32 and z.shape == (10000, 10)
    assert np.array_equal(z, np.load(out))
    assert np.array_equal(ae.anomaly_scores(images), np.load(tmp_path / "z.errors.npy"))
    # Float input in [0, 1] is used as it is: the bytes / 255 give the same codes.
    assert np.array_equal(ae.encode(images[:50].astype(np.float32) / 255), z[:50])
    # Files are prepared as `cae predict` prepares them, in both.
    _, files = pngs
    cae_cli("encode", ae.path, *files, "--out", tmp_path / "f.npy")
    assert np.array_equal(ae.encode(files), np.load(tmp_path / "f.npy"))


def test_decode_reconstruct_and_scores_have_their_shapes(ae, digits):
    images, _ = digits
    z = ae.encode(images[:8])
    pixels = ae.decode(z)
    assert pixels.shape == (8, 1, 28, 28) and pixels.dtype == np.float32
    assert 0 <= pixels.min() and pixels.max() <= 1
    assert ae.decode(z[0]).shape == (1, 1, 28, 28)
    # Reconstructing is decoding the codes.
    assert np.array_equal(ae.reconstruct(images[:8]), pixels)
    # [N, 1, H, W] is [N, H, W].
    assert np.array_equal(ae.encode(images[:8, None]), z)
    scores = ae.anomaly_scores(images[:8])
    expected = ((pixels[:, 0] - images[:8] / 255.0) ** 2).mean(axis=(1, 2))
    assert scores.shape == (8,) and np.allclose(scores, expected, atol=1e-6)
    # Unsmoothed l2 maps are the per-pixel squared errors; their means are the scores.
    maps = ae.anomaly_maps(images[:8], smooth=0)
    assert maps.shape == (8, 28, 28) and maps.dtype == np.float32
    assert np.allclose(maps, (pixels[:, 0] - images[:8] / 255.0) ** 2, atol=1e-6)
    assert np.allclose(maps.mean(axis=(1, 2)), scores, atol=1e-6)
    ssim = ae.anomaly_maps(images[:8], map="ssim")
    assert ssim.shape == (8, 28, 28) and (ssim >= -1e-6).all()
    with pytest.raises(ValueError, match="map="):
        ae.anomaly_maps(images[:8], map="l3")
    with pytest.raises(ValueError, match="smooth"):
        ae.anomaly_maps(images[:8], smooth=-1)


def test_predict_answers_as_cae_predict(clf, digits, pngs, cae_cli):
    images, labels = digits
    predicted, probs = clf.predict(images[:200])
    assert predicted.dtype == np.int64 and probs.shape == (200, 10) and probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert np.array_equal(predicted, probs.argmax(axis=1))
    assert (predicted == labels[:200]).mean() > 0.5
    _, files = pngs
    lines = cae_cli("predict", clf.path, *files[:5]).stdout.splitlines()
    file_labels, _ = clf.predict(files[:5])
    assert [line.split("\t")[1] for line in lines] == [str(k) for k in file_labels]


def test_evaluate_gives_the_figures_of_cae_eval(ae, clf, cae_cli, data):
    figures = ae.evaluate()
    printed = dict(line.split()[:2] for line in cae_cli("eval", ae.path, "--data", data).stdout.splitlines()[1:5])
    for key in ("test_bce", "test_mse", "test_l1", "test_psnr"):
        assert f"{figures[key]:.5f}" == printed[key]
    assert isinstance(figures["dead_units"], list)
    accuracy = clf.evaluate()["test_accuracy"]
    assert f"{100 * accuracy:.2f}" in cae_cli("eval", clf.path, "--data", data).stdout


def test_the_gil_is_released_while_rust_computes(ae, digits):
    images, _ = digits
    ticks = []
    done = threading.Event()

    def count():
        while not done.is_set():
            ticks.append(1)
            time.sleep(0.001)

    thread = threading.Thread(target=count)
    thread.start()
    start = len(ticks)
    for _ in range(3):
        ae.encode(images)
    done.set()
    thread.join()
    assert len(ticks) - start > 20, "Python threads stood still while Rust encoded"


# --- weights ---------------------------------------------------------------------------------


def test_state_dict_has_the_lectures_names_and_layouts(ae):
    state = ae.state_dict()
    assert list(state)[:2] == ["encoder.encoder.0.weight", "encoder.encoder.0.bias"]
    assert state["encoder.encoder.0.weight"].shape == (16, 1, 3, 3)
    assert state["encoder.encoder.7.weight"].shape == (10, 1024)  # Linear(1024, 10): [out, in]
    assert state["decoder.decoder.3.weight"].shape == (64, 32, 3, 3)  # ConvTranspose2d: [in, out, k, k]
    assert all(v.dtype == np.float32 for v in state.values())


def test_state_dict_loads_into_the_lectures_pytorch_classes(ae, digits):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed here")
    from torch import nn

    k = 16
    encoder = nn.Sequential(
        nn.Conv2d(1, k, 3, 2), nn.ReLU(), nn.Conv2d(k, 2 * k, 3, 2), nn.ReLU(),
        nn.Conv2d(2 * k, 4 * k, 3, 1), nn.ReLU(), nn.Flatten(), nn.Linear(1024, 10), nn.ReLU(),
    )
    decoder = nn.Sequential(
        nn.Linear(10, 1024), nn.ReLU(), nn.Unflatten(1, (64, 4, 4)),
        nn.ConvTranspose2d(4 * k, 2 * k, 3, 1), nn.ReLU(), nn.ConvTranspose2d(2 * k, k, 3, 2), nn.ReLU(),
        nn.ConvTranspose2d(k, 1, 3, 2, output_padding=1), nn.Sigmoid(),
    )

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.decoder = decoder

    class Autoencoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = Encoder(), Decoder()

    model = Autoencoder()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in ae.state_dict().items()}, strict=True)
    images, _ = digits
    with torch.no_grad():
        z = model.encoder.encoder(torch.from_numpy(images[:16, None] / np.float32(255)))
    assert np.allclose(z.numpy(), ae.encode(images[:16]), atol=1e-4)


def test_export_and_import_weights_round_trip(ae, digits, tmp_path, data):
    for fmt, name in [("safetensors", "w.safetensors"), ("pytorch", "w.pt"), ("onnx", "m.onnx")]:
        ae.export(tmp_path / name, format=fmt)
        assert (tmp_path / name).stat().st_size > 1000
    ae.export(tmp_path / "enc.onnx", format="onnx", part="encoder")
    imported = cae.import_weights(tmp_path / "w.pt", model="autoencoder", out=tmp_path / "imported", data=data)
    assert (imported.kind, imported.origin) == ("autoencoder", "imported")
    images, _ = digits
    assert np.array_equal(imported.encode(images[:100]), ae.encode(images[:100]))
    with pytest.raises(ValueError, match="format"):
        ae.export(tmp_path / "x", format="zip")


def test_load_dataset(data):
    images, labels = cae.load_dataset("fashion-mnist", split="train", data=data)
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.max() == 9
    with pytest.raises(ValueError, match="name"):
        cae.load_dataset("cifar")
    with pytest.raises(FileNotFoundError, match="cae download"):
        cae.load_dataset("mnist", data="/nonexistent")


# --- errors ----------------------------------------------------------------------------------


def test_bad_arguments_are_value_errors_that_say_what_was_expected(ae, clf, digits):
    images, _ = digits
    with pytest.raises(ValueError, match=r"\[N, 28, 28\] or \[N, 1, 28, 28\]"):
        ae.encode(images[:4, :20])
    with pytest.raises(ValueError, match="uint8 .* or float32"):
        ae.encode(images[:4].astype(np.int64))
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        ae.encode(np.full((2, 28, 28), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        ae.encode(images[:2].astype(np.float32))  # 0-255 as floats
    with pytest.raises(ValueError, match="list of image paths"):
        ae.encode("digit.png")
    with pytest.raises(ValueError, match=r"\[N, 10\]"):
        ae.decode(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="needs an autoencoder"):
        clf.decode(np.zeros((1, 10)))
    with pytest.raises(ValueError, match="needs a classifier"):
        ae.predict(images[:2])
    with pytest.raises(TypeError, match="'epochz'"):
        cae.train_autoencoder("never", epochz=3)
    with pytest.raises(ValueError, match="already exists"):
        cae.train_autoencoder(ae.path, epochs=1, progress=False)


def test_other_dtypes_and_layouts_are_converted(ae, digits):
    images, _ = digits
    z = ae.encode(images[:20])
    assert np.array_equal(ae.encode(images[:20].astype(np.float64) / 255), ae.encode(images[:20].astype(np.float32) / 255))
    strided = np.repeat(images[:20], 2, axis=2)[:, :, ::2]  # not contiguous
    assert not strided.flags["C_CONTIGUOUS"]
    assert np.array_equal(ae.encode(strided), z)


def test_missing_files_and_damaged_runs(ae, tmp_path):
    with pytest.raises(FileNotFoundError):
        cae.open(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="digit.png"):
        ae.encode([str(tmp_path / "digit.png")])
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(cae.CaeError, match="empty.png"):
        ae.encode([str(tmp_path / "empty.png")])
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("config.json", "checkpoint.json", "classes.json"):
        (damaged / name).write_bytes((pathlib.Path(ae.path) / name).read_bytes())
    (damaged / "model.bpk").write_bytes(b"not a burnpack")
    with pytest.raises(cae.CaeError):
        cae.open(damaged)


# --- pickling, progress, Ctrl-C --------------------------------------------------------------


def test_a_rust_panic_is_a_cae_error_with_its_message():
    # A panic is a bug, but it must reach Python as an Exception a notebook catches, not as
    # PyO3's PanicException (a BaseException).
    from cae import _cae

    with pytest.raises(cae.CaeError, match="internal error, a bug in cae.*the message"):
        _cae._panic("the message")
    try:
        _cae._panic("again")
    except Exception as e:  # noqa: BLE001 - what a notebook writes
        assert type(e) is cae.CaeError
    # And the module still works after it.
    assert "train-ae" not in cae._cae.options("train-ae")


def test_a_run_pickles_as_its_directory(ae, digits):
    images, _ = digits
    again = pickle.loads(pickle.dumps(ae))
    assert again.path == ae.path and again.weights == ae.weights
    assert np.array_equal(again.encode(images[:10]), ae.encode(images[:10]))


def test_progress_callable_gets_each_epochs_metrics(tmp_path, data):
    seen = []
    run = cae.train_autoencoder(
        tmp_path / "r", epochs=2, train_limit=500, test_limit=200, progress=seen.append, data=data
    )
    assert [r["epoch"] for r in seen] == [1, 2]
    assert seen[1]["test_bce"] == run.metrics[1]["test_bce"]


def test_options_are_typed_and_a_resume_refuses_conflicts_by_name(tmp_path, data):
    out = tmp_path / "r"
    run = cae.train_autoencoder(
        out, epochs=1, train_limit=300, test_limit=100, latent=12, lr=2e-3, progress=False, data=data
    )
    assert run.latent_size == 12
    # A resumed run keeps its config: options equal to it are fine, others are named.
    with pytest.raises(ValueError, match=r"--latent 16 \(the run has 12\)"):
        cae.train_autoencoder(out, resume=True, latent=16, epochs=2, progress=False, data=data)
    with pytest.raises(ValueError, match=r"--hidden \(does not apply to this run\)"):
        cae.train_autoencoder(out, resume=True, hidden=[128], epochs=2, progress=False, data=data)
    resumed = cae.train_autoencoder(out, resume=True, latent=12, lr=2e-3, epochs=2, progress=False, data=data)
    assert [m["epoch"] for m in resumed.metrics] == [1, 2]
    # A value that does not parse names the keyword and what was expected.
    with pytest.raises(ValueError, match=r"loss=.l3.*expected one of"):
        cae.train_autoencoder(tmp_path / "bad", loss="l3", progress=False, data=data)


def test_a_patch_run_takes_full_size_arrays_as_it_takes_files(tmp_path, data, digits):
    """A run trained on 16-pixel patches of 28-pixel digits scores whole digits in tiles,
    whether they come as files or as an array (the size check is the run's alone)."""
    from PIL import Image

    images, labels = digits
    folder = tmp_path / "digits"
    for i in range(40):
        (folder / str(labels[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(folder / str(labels[i]) / f"{i:03}.png")
    run = cae.train_autoencoder(
        tmp_path / "patches", images=folder, patch=16, patches_per_image=2, epochs=1, loss="l2",
        progress=False, data=data,
    )
    assert run.image_shape == (1, 16, 16)
    files = sorted(str(p) for p in folder.rglob("*.png"))[:4]
    pixels = np.stack([np.asarray(Image.open(f)) for f in files])
    from_files = run.anomaly_maps(files, smooth=0)
    from_array = run.anomaly_maps(pixels, smooth=0)
    assert from_array.shape == (4, 28, 28)
    assert np.array_equal(from_array, from_files)
    # What the model cannot tile is refused by the run, naming what it takes.
    with pytest.raises(ValueError, match=r"takes 1x16x16 images"):
        run.anomaly_maps(pixels[:, :10, :10])


CTRL_C = r"""
import os, signal, sys, cae
def progress(record):
    print("epoch", record["epoch"], flush=True)
    if record["epoch"] == 1:
        os.kill(os.getpid(), signal.SIGINT)   # Ctrl-C during epoch 2
try:
    cae.train_autoencoder(sys.argv[1], epochs=3, train_limit=3000, test_limit=200, progress=progress, data=sys.argv[2])
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(3)
"""


def test_ctrl_c_raises_keyboard_interrupt_and_the_run_resumes(tmp_path, data):
    out = tmp_path / "r"
    done = subprocess.run([sys.executable, "-c", CTRL_C, str(out), str(data)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout.split() == ["epoch", "1", "interrupted"]
    assert [m["epoch"] for m in cae.open(out).metrics] == [1]
    resumed = cae.train_autoencoder(out, resume=True, progress=False, data=data)
    assert [m["epoch"] for m in resumed.metrics] == [1, 2, 3]


# --- Dask ------------------------------------------------------------------------------------


def test_a_dask_cluster_encodes_a_folder_as_cae_encode_does(ae, pngs, tmp_path, cae_cli):
    import dask.distributed as distributed

    import cae.dask

    folder, files = pngs
    cae_cli("encode", ae.path, "--folder", folder, "--out", tmp_path / "z.npy", "--with-reconstruction-error")
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    )
    with cluster, distributed.Client(cluster) as client:
        codes, scores, listed = cae.dask.encode_folder(ae, folder, client=client, scores=True)
        workers = client.run(os.getpid)
    assert listed == files
    assert len(set(workers.values())) == 2
    assert np.array_equal(codes, np.load(tmp_path / "z.npy"))
    assert np.array_equal(scores, np.load(tmp_path / "z.errors.npy"))


@pytest.mark.parametrize("helper", ["encode_folder", "score_folder"])
def test_a_killed_worker_loses_nothing(ae, digits, tmp_path, helper):
    """A worker SIGKILLed while it holds partitions: Dask reschedules them on the others (and
    the nanny's new worker), and the codes (or, for score_folder, the scores) come back whole,
    in order, equal to one process's."""
    import signal
    import threading

    import dask.distributed as distributed
    from PIL import Image

    import cae.dask

    images, _ = digits
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(1500):
        Image.fromarray(images[i]).save(folder / f"{i:04}.png")
    files = cae.dask.image_files(folder)
    expected = ae.encode(files) if helper == "encode_folder" else ae.anomaly_scores(files)
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    )
    with cluster, distributed.Client(cluster) as client:
        pids = client.run(os.getpid)
        out = {}

        def encode():
            out["result"] = getattr(cae.dask, helper)(ae, folder, client=client, partitions=30)

        worker = threading.Thread(target=encode)
        worker.start()
        victim, deadline = None, time.time() + 120
        while victim is None and time.time() < deadline:
            busy = [w for w, keys in client.processing().items() if keys and w in pids]
            if busy:
                victim = busy[0]
            else:
                time.sleep(0.005)
        assert victim is not None, "no worker took a partition"
        os.kill(pids[victim], signal.SIGKILL)
        worker.join(300)
        assert not worker.is_alive(), f"{helper} did not finish after the kill"
        survivors = client.run(os.getpid)
    assert pids[victim] not in survivors.values(), "the worker was not killed"
    codes, listed = out["result"]
    assert listed == files
    assert codes.shape == expected.shape
    assert np.array_equal(codes, expected)


# --- the defect inspector ----------------------------------------------------------------------


def test_an_inspector_trains_and_scores_as_the_cli_does_in_one_process_and_on_dask(tmp_path, cae_cli):
    """`model="draem"` trains the inspector; its maps and scores from arrays equal those of its
    files, `cae anomaly RUN FILE…`'s scores and, over a two-worker cluster, in order, the same."""
    import dask.distributed as distributed
    from PIL import Image

    import cae.dask

    cae_cli("benchmark", "defects", "--generate-only", "--categories", "grass", "--side", "32",
            "--train", "6", "--test-good", "3", "--test-defect", "2", "--out", tmp_path / "bench")
    category = tmp_path / "bench" / "data" / "grass"
    run = cae.train_autoencoder(
        tmp_path / "inspector", model="draem", images=category, patch=16, depth=2, width=4,
        patches_per_image=2, batch_size=4, epochs=1, progress=False,
    )
    assert run.kind == "inspector"
    files = cae.dask.image_files(category / "test")
    assert len(files) == 3 + 3 * 2
    scores = run.anomaly_scores(files)
    maps = run.anomaly_maps(files)
    assert scores.shape == (len(files),) and maps.shape == (len(files), 32, 32)
    # The texture map by default: distances, scored by the mean of the 200 largest.
    assert np.all(maps >= 0)
    arrays = np.stack([np.asarray(Image.open(f)) for f in files])
    assert np.array_equal(run.anomaly_maps(arrays), maps)
    top = np.sort(maps.reshape(len(files), -1), axis=1)[:, -200:]
    assert np.allclose(top.mean(1), scores, atol=1e-6)
    segmentation = run.anomaly_maps(files, map="segmentation")
    assert np.all((segmentation >= 0) & (segmentation <= 1))
    out = cae_cli("anomaly", run.path, *files).stdout.splitlines()[1:]
    cli_scores = np.array([float(line.split("\t")[1]) for line in out])
    assert np.allclose(cli_scores, scores, atol=1e-6)
    # The category's figures, as `cae anomaly RUN --images CATEGORY` writes them.
    metrics, category_scores = run.inspect(category)
    assert np.array_equal(category_scores, scores)
    cae_cli("anomaly", run.path, "--images", category)
    assert metrics == json.loads((run.path / "anomaly.json").read_text())
    assert metrics["images"] == len(files) and 0 <= metrics["pixel_roc_auc"] <= 1
    with pytest.raises(cae.CaeError, match="not an MVTec AD category"):
        run.inspect(tmp_path / "bench")
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    )
    with cluster, distributed.Client(cluster) as client:
        dask_scores, listed = cae.dask.score_folder(run, category / "test", client=client, partitions=4)
        dask_metrics, dask_category_scores = cae.dask.inspect_category(run, category, client=client, partitions=3)
    assert listed == files
    assert np.array_equal(dask_scores, scores)
    # The parts' tallies merged give one process's figures (PRO's sums in another order).
    assert np.array_equal(dask_category_scores, category_scores)
    assert dask_metrics.keys() == metrics.keys() and dask_metrics["images"] == metrics["images"]
    for key in ("image_roc_auc", "pixel_roc_auc", "pro_auc", "threshold", "f1"):
        assert dask_metrics[key] == pytest.approx(metrics[key], rel=1e-9, abs=1e-12), key
    with pytest.raises(cae.CaeError, match="does not hold together|a part's tally"):
        run._merge_inspections(['{"kinds": []}'])
    # The other kind's options are refused by name.
    with pytest.raises(ValueError, match="latent_activation.*does not apply to the inspector"):
        cae.train_autoencoder(tmp_path / "no", model="draem", images=category, latent_activation="none")
    with pytest.raises(ValueError, match="defect inspector"):
        run.encode(files)
