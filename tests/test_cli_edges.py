"""A new user's first hour with ``python -m dcgan``: errors in command-line terms, too few images,
files that are not checkpoints, three-channel presets on MNIST, totals on resume, plurals, finding
(or downloading) the data without --data, and run_notebook.py never overwriting its input.

Every run uses tiny networks (g_width and d_width 4) on a few dozen images, in-process; nothing
here opens a URL: dcgan.datasets.download._fetch, the only function that does, is replaced.
"""
from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TINY = {"preset": "mnist", "g_width": 4, "d_width": 4, "batch_size": 8, "threads": 1, "epochs": 1}


@pytest.fixture
def cli():
    from dcgan.cli import main

    return main


def write_config(path: Path, **fields) -> Path:
    path.write_text(json.dumps({**TINY, **fields}))
    return path


def write_fake_mnist(root: Path, n: int = 40) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for name, arr in (("train-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
                      ("train-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))):
        head = (0x0800 | arr.ndim).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        (root / name).write_bytes(gzip.compress(head + arr.tobytes()))
    return root


def usage_error(capsys, fn, *needles: str) -> str:
    with pytest.raises(SystemExit) as e:
        fn()
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert "usage:" in err and "Traceback" not in err
    for n in needles:
        assert n in err, (n, err)
    return err


def run_cli(*args: str, cwd: Path, env_extra=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "dcgan", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def tiny_checkpoint(cli, tmp_path_factory):
    """A full checkpoint after 5 steps (40 fake MNIST images, batch 8, 1 epoch) and its data."""
    tmp = tmp_path_factory.mktemp("ckpt")
    data = write_fake_mnist(tmp / "mnist", n=40)
    assert cli(["train", "--config", str(write_config(tmp / "c.json")), "--data", str(data),
                "--out", str(tmp / "run"), "--no-progress"]) == 0
    return tmp / "run" / "checkpoint.npz", data


# ============================================================================= 1. --skip-bad
def write_image_folder(folder: Path, good: int, bad: int) -> Path:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    for i in range(good):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"img{i:02d}.png")
    for i in range(bad):
        (folder / f"broken{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"truncated")
    return folder


def test_bad_png_error_names_the_skip_bad_option(cli, tmp_path, capsys):
    imgs = write_image_folder(tmp_path / "imgs", good=11, bad=1)
    cfg = write_config(tmp_path / "c.json")
    rc = cli(["train", "--config", str(cfg), "--dataset", "folder", "--data", str(imgs),
              "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "broken0.png" in err and "--skip-bad" in err, err
    assert "skip_bad=True" not in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_skip_bad_skips_with_a_count(cli, tmp_path, capsys):
    imgs = write_image_folder(tmp_path / "imgs", good=11, bad=2)
    cfg = write_config(tmp_path / "c.json")
    rc = cli(["train", "--config", str(cfg), "--dataset", "folder", "--data", str(imgs), "--skip-bad",
              "--out", str(tmp_path / "o"), "--no-progress"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "skipped 2 unreadable images" in cap.err and "broken0.png" in cap.err, cap.err
    assert "11 folder images" in cap.out
    assert len((tmp_path / "o" / "losses.csv").read_text().splitlines()) == 1 + 1  # 11 images, batch 8


# ============================================================================= 2. too few images
def test_fewer_images_than_one_batch_is_one_clear_error(cli, tmp_path, capsys):
    data = write_fake_mnist(tmp_path / "mnist", n=40)
    out = tmp_path / "o"
    rc = cli(["train", "--config", str(write_config(tmp_path / "c.json")), "--data", str(data),
              "--max-images", "12", "--batch-size", "64", "--out", str(out), "--no-progress"])
    cap = capsys.readouterr()
    assert rc != 0
    assert "12 images, fewer than one batch of 64" in cap.err and "--batch-size 12 or fewer" in cap.err, cap.err
    assert "training" not in cap.out and "0 steps" not in cap.out, cap.out
    assert cap.err.count("error:") == 1 and "Traceback" not in cap.err
    assert not out.exists()  # no stray config.json


def test_fewer_images_than_one_batch_on_resume(cli, tmp_path, capsys, tiny_checkpoint):
    ckpt, data = tiny_checkpoint
    capsys.readouterr()
    out = tmp_path / "res"
    rc = cli(["resume", "--checkpoint", str(ckpt), "--data", str(data), "--max-images", "5", "--epochs", "3",
              "--out", str(out), "--no-progress"])
    cap = capsys.readouterr()
    assert rc != 0 and "5 images, fewer than one batch of 8" in cap.err, cap.err
    assert "resuming" not in cap.out and not out.exists()


def test_fewer_images_message_with_several_ranks():
    from dcgan.cli import _too_few_images

    ns = argparse.Namespace(max_images=None)
    msg = _too_few_images(12, 8, 2, ns, resume=False)
    assert msg == ("12 images, fewer than one batch of 16 (8 per rank x 2 ranks); "
                   "use --batch-size 6 or fewer, or more images")
    assert _too_few_images(16, 8, 2, ns, resume=False) is None
    assert _too_few_images(1, 8, 1, ns, resume=False).startswith("1 image, fewer than one batch of 8")


# ============================================================================= 3. not a checkpoint
def _object_npz(path: Path) -> None:
    np.savez(path, **{"meta.json": np.array([{"format": "dcgan-checkpoint"}], dtype=object)})


@pytest.mark.parametrize("kind,needle", [
    ("npy", "NumPy array written by numpy.save"),
    ("text", "it is a text file"),
    ("truncated", "truncated or damaged"),
    ("pickled", "pickled Python objects"),
    ("plain-npz", "without the meta.json entry"),
])
def test_sample_on_a_file_that_is_not_a_checkpoint(cli, tmp_path, capsys, tiny_checkpoint, kind, needle):
    ckpt, _ = tiny_checkpoint
    f = tmp_path / {"npy": "a.npy", "text": "notes.txt", "truncated": "cut.npz", "pickled": "obj.npz",
                    "plain-npz": "arrays.npz"}[kind]
    if kind == "npy":
        np.save(f, np.zeros((3, 4), np.float32))
    elif kind == "text":
        f.write_text("this is not a checkpoint\n")
    elif kind == "truncated":
        f.write_bytes(ckpt.read_bytes()[:3000])
    elif kind == "pickled":
        _object_npz(f)
    else:
        np.savez(f, weights=np.zeros(3))
    capsys.readouterr()
    err = usage_error(capsys, lambda: cli(["sample", "--checkpoint", str(f), "--out", str(tmp_path / "g.png")]),
                      f"{f} is not a dcgan checkpoint (", needle)
    assert "allow_pickle" not in err and "zip file" not in err
    assert not (tmp_path / "g.png").exists()


# ============================================================================= 4. three-channel presets
def test_three_channel_preset_on_mnist_says_how_to_train_on_mnist(cli, tmp_path, capsys):
    write_fake_mnist(tmp_path / "data" / "mnist", n=16)
    cfg = write_config(tmp_path / "c.json", preset="dcgan64")
    err = usage_error(capsys, lambda: cli(["train", "--config", str(cfg), "--data", str(tmp_path / "data"),
                                           "--out", str(tmp_path / "o")]),
                      "three-channel presets default to the cifar10 dataset", "--dataset mnist --channels 1")
    # said up front, before the list of places where CIFAR-10 was looked for
    assert err.index("--channels 1") < err.index("CIFAR-10 (train split) files not found")
    # --dataset mnist alone: the channel mismatch names --channels 1 too
    usage_error(capsys, lambda: cli(["train", "--config", str(cfg), "--dataset", "mnist", "--data",
                                     str(tmp_path / "data"), "--out", str(tmp_path / "o")]), "--channels 1")
    assert not (tmp_path / "o").exists()


def test_channels_1_trains_dcgan64_on_mnist_at_64(cli, tmp_path, capsys):
    write_fake_mnist(tmp_path / "data" / "mnist", n=16)
    cfg = write_config(tmp_path / "c.json", preset="dcgan64")
    out = tmp_path / "o"
    assert cli(["train", "--config", str(cfg), "--channels", "1", "--data", str(tmp_path / "data"),
                "--steps", "1", "--max-images", "16", "--batch-size", "8", "--out", str(out), "--no-progress"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["dataset"] == "mnist" and saved["config"]["image_shape"] == [1, 64, 64]
    assert saved["preset"] == "dcgan64"
    with Image.open(out / "samples_epoch_000.png") as im:
        assert im.mode == "L" and im.size == (8 * 66 + 2, 8 * 66 + 2)
    # --image-shape sets the size too
    out2 = tmp_path / "o2"
    assert cli(["train", "--config", str(cfg), "--image-shape", "1,32,32", "--data", str(tmp_path / "data"),
                "--steps", "1", "--out", str(out2), "--no-progress"]) == 0
    assert json.loads((out2 / "config.json").read_text())["config"]["image_shape"] == [1, 32, 32]
    capsys.readouterr()
    usage_error(capsys, lambda: cli(["train", "--image-shape", "2,8,8", "--out", str(tmp_path / "x")]),
                "--image-shape")
    usage_error(capsys, lambda: cli(["train", "--channels", "2", "--out", str(tmp_path / "x")]), "--channels")


# ============================================================================= 5. resume: totals
def test_resume_help_says_epochs_and_steps_are_totals(tmp_path):
    r = run_cli("resume", "--help", cwd=tmp_path)
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "totals for the whole run, not additional" in text and "a total, not additional" in text


def test_resume_output_says_totals(cli, tmp_path, capsys, tiny_checkpoint):
    ckpt, data = tiny_checkpoint
    capsys.readouterr()
    assert cli(["resume", "--checkpoint", str(ckpt), "--data", str(data), "--epochs", "3",
                "--out", str(tmp_path / "res"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "at step 5 of 15" in out and "totals, not additional" in out, out
    assert "10 more steps" in out
    # nothing left: the message says the numbers are totals
    assert cli(["resume", "--checkpoint", str(ckpt), "--data", str(data), "--epochs", "1",
                "--out", str(tmp_path / "none"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "nothing to do" in out and "not additional" in out and "1 epoch of 5" in out, out
    assert not (tmp_path / "none").exists()


# ============================================================================= 6. plurals
def test_counts_are_pluralized(cli, tmp_path, capsys):
    data = write_fake_mnist(tmp_path / "mnist", n=8)
    out = tmp_path / "o"
    assert cli(["train", "--config", str(write_config(tmp_path / "c.json")), "--data", str(data),
                "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "8 mnist images" in text and ": 1 step (1 epoch of 1)" in text and "1 step; wrote" in text, text
    assert "1 epochs" not in text and "1 steps" not in text
    assert cli(["sample", "--checkpoint", str(out / "checkpoint.npz"), "-n", "1",
                "--out", str(tmp_path / "one.png")]) == 0
    text = capsys.readouterr().out
    assert "wrote 1 sample (" in text and "1 samples" not in text, text
    from dcgan.cli import _plural

    assert [_plural(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]


# ============================================================================= 7. data without --data
MNIST = Path(os.environ.get("DCGAN_DATA") or ROOT.parent / "shared" / "data") / "mnist"


@pytest.fixture
def no_data_env(monkeypatch, tmp_path):
    """No $DCGAN_DATA, the cache in tmp_path/cache, and a _fetch that fails the test if called."""
    from dcgan.datasets import download

    monkeypatch.delenv("DCGAN_DATA", raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("DCGAN_CACHE", str(cache))
    calls = []

    def no_network(url, dest, timeout=None):
        calls.append(url)
        raise AssertionError(f"network used: {url}")

    monkeypatch.setattr(download, "_fetch", no_network)
    return cache, calls


def test_no_data_finds_mnist_in_the_cache(cli, tmp_path, capsys, no_data_env):
    cache, calls = no_data_env
    write_fake_mnist(cache / "mnist", n=16)
    assert cli(["train", "--config", str(write_config(tmp_path / "c.json")), "--out", str(tmp_path / "o"),
                "--no-progress"]) == 0
    assert not calls
    assert "16 mnist images" in capsys.readouterr().out


def test_no_data_finds_mnist_under_dcgan_data(cli, tmp_path, capsys, no_data_env, monkeypatch):
    _, calls = no_data_env
    write_fake_mnist(tmp_path / "data" / "mnist", n=24)
    monkeypatch.setenv("DCGAN_DATA", str(tmp_path / "data"))
    assert cli(["train", "--config", str(write_config(tmp_path / "c.json")), "--out", str(tmp_path / "o"),
                "--no-progress"]) == 0
    assert not calls and "24 mnist images" in capsys.readouterr().out


def test_no_data_downloads_mnist_into_the_cache(cli, tmp_path, capsys, no_data_env, monkeypatch):
    if not (MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"real MNIST not found in {MNIST}; set DCGAN_DATA to the folder holding mnist/")
    from dcgan.datasets import download

    cache, _ = no_data_env
    fetched = []

    def local_mirror(url, dest, timeout=None):  # the real files, so the MD5 sums are checked for real
        fetched.append(url)
        shutil.copyfile(MNIST / url.rsplit("/", 1)[1], dest)

    monkeypatch.setattr(download, "_fetch", local_mirror)
    assert cli(["train", "--config", str(write_config(tmp_path / "c.json")), "--max-images", "16",
                "--steps", "1", "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    cap = capsys.readouterr()
    assert sorted(u.rsplit("/", 1)[1] for u in fetched) == ["train-images-idx3-ubyte.gz",
                                                            "train-labels-idx1-ubyte.gz"]
    assert (cache / "mnist" / "train-images-idx3-ubyte.gz").is_file()
    assert "downloading" in cap.err and str(cache / "mnist") in cap.err
    assert "16 mnist images" in cap.out
    # the next run finds it in the cache: no download
    fetched.clear()
    assert cli(["train", "--config", str(write_config(tmp_path / "c.json")), "--max-images", "16",
                "--steps", "1", "--out", str(tmp_path / "o2"), "--no-progress"]) == 0
    assert not fetched


def test_no_data_offline_says_where_it_looked(cli, tmp_path, capsys, no_data_env, monkeypatch):
    from dcgan.datasets import download

    cache, _ = no_data_env

    def offline(url, dest, timeout=None):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(download, "_fetch", offline)
    rc = cli(["train", "--config", str(write_config(tmp_path / "c.json")), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "MNIST not found on this machine" in err and str(cache / "mnist") in err
    assert "train-images-idx3-ubyte.gz" in err and "DCGAN_DATA" in err and "--data DIR" in err
    assert "Network is unreachable" in err and "Traceback" not in err
    assert "no data folder" not in err
    assert not (tmp_path / "o").exists()


def test_no_download_forbids_the_network(cli, tmp_path, capsys, no_data_env):
    cache, calls = no_data_env
    err = usage_error(capsys, lambda: cli(["train", "--config", str(write_config(tmp_path / "c.json")),
                                           "--no-download", "--out", str(tmp_path / "o")]),
                      "MNIST not found", str(cache / "mnist"), "DCGAN_DATA", "--no-download")
    assert not calls and "root=" not in err and "download=True" not in err
    usage_error(capsys, lambda: cli(["train", "--download", "--no-download", "--out", str(tmp_path / "o")]),
                "not allowed with")


# ============================================================================= 8. run_notebook.py
@pytest.fixture
def run_notebook(monkeypatch):
    spec = importlib.util.spec_from_file_location("run_notebook_under_test", ROOT / "notebooks" / "run_notebook.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ran = []

    def fake_run(path, out, timeout):  # no kernel: copy the notebook, as if executed
        ran.append((Path(path), Path(out)))
        Path(out).write_text(Path(path).read_text().replace("original", "executed"))
        return 0.0

    monkeypatch.setattr(mod, "run", fake_run)
    monkeypatch.delenv("DCGAN_NOTEBOOK_QUICK", raising=False)
    return mod, ran


@pytest.fixture
def notebook(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 'original'")])
    p = tmp_path / "nb" / "tiny.ipynb"
    p.parent.mkdir()
    nbformat.write(nb, p)
    return p


def test_run_notebook_never_overwrites_its_input_without_in_place(run_notebook, notebook, capsys, monkeypatch):
    mod, ran = run_notebook
    before = notebook.read_text()
    with pytest.raises(SystemExit) as e:
        mod.main([str(notebook)])
    assert e.value.code == 2 and "--out" in capsys.readouterr().err
    # --out naming the notebook's own folder would write over it too
    with pytest.raises(SystemExit) as e:
        mod.main([str(notebook), "--out", str(notebook.parent)])
    assert e.value.code == 2 and "would write over" in capsys.readouterr().err
    monkeypatch.setenv("DCGAN_NOTEBOOK_QUICK", "1")
    with pytest.raises(SystemExit) as e:
        mod.main([str(notebook), "--in-place"])
    assert e.value.code == 2 and "DCGAN_NOTEBOOK_QUICK" in capsys.readouterr().err
    assert not ran and notebook.read_text() == before


def test_run_notebook_out_and_in_place(run_notebook, notebook, tmp_path, monkeypatch):
    mod, ran = run_notebook
    before = notebook.read_text()
    monkeypatch.setenv("DCGAN_NOTEBOOK_QUICK", "1")
    assert mod.main([str(notebook), "--out", str(tmp_path / "copies")]) == 0
    assert ran == [(notebook, tmp_path / "copies" / "tiny.ipynb")]
    assert notebook.read_text() == before and "executed" in (tmp_path / "copies" / "tiny.ipynb").read_text()
    monkeypatch.delenv("DCGAN_NOTEBOOK_QUICK")
    assert mod.main([str(notebook), "--in-place"]) == 0
    assert ran[-1] == (notebook, notebook) and "executed" in notebook.read_text()


# ----------------------------------------------------------------------------- 7b. data-parallel runs
def test_nproc_fetches_missing_data_once_before_starting_the_ranks(cli, tmp_path, no_data_env, monkeypatch):
    """--nproc N downloads a missing dataset in the launching process, not once per rank."""
    from dcgan import distributed
    from dcgan.datasets import download

    if not (MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"real MNIST not found in {MNIST}")
    cache, _ = no_data_env
    fetched, launched = [], []
    monkeypatch.setattr(download, "_fetch", lambda url, dest, timeout=None: (
        fetched.append(url), shutil.copyfile(MNIST / url.rsplit("/", 1)[1], dest)))
    monkeypatch.setattr(distributed, "_load_mpi", lambda: None)
    monkeypatch.setattr(distributed, "launch", lambda n, argv: launched.append((n, list(argv))) or 0)
    argv = ["train", "--config", str(write_config(tmp_path / "c.json")), "--nproc", "2", "--steps", "1",
            "--out", str(tmp_path / "o"), "--no-progress"]
    assert cli(argv) == 0
    assert len(fetched) == 2 and (cache / "mnist" / "train-images-idx3-ubyte.gz").is_file()
    assert launched == [(2, [a for a in argv if a not in ("--nproc", "2")])]
    assert not (tmp_path / "o").exists()  # the ranks write it, not the launcher
    # found now: the launcher starts the ranks without fetching anything
    fetched.clear()
    assert cli(argv) == 0 and not fetched and len(launched) == 2


@pytest.mark.parametrize("rank", [0, 1])
def test_ranks_wait_for_rank_0_to_fetch_the_data(tmp_path, no_data_env, monkeypatch, rank):
    """Under mpiexec without --nproc: rank 0 finds or downloads the data first, the others wait."""
    from dcgan import cli as cli_mod
    from dcgan import distributed

    cache, _ = no_data_env
    monkeypatch.setattr(distributed, "launched_size", lambda: 2)
    monkeypatch.setattr(distributed, "world", lambda: distributed.World(rank=rank, size=2))
    order = []
    rank0_ok = [True]

    def bcast(obj, root=0):
        order.append(("bcast", obj))
        return obj if rank == 0 else rank0_ok[0]

    monkeypatch.setattr(distributed, "broadcast_object", bcast)
    real = cli_mod._load_named_here
    monkeypatch.setattr(cli_mod, "_load_named_here", lambda *a: order.append("load") or real(*a))
    import dcgan

    cfg = dcgan.Config.mnist(g_width=4, d_width=4, batch_size=8)
    args = argparse.Namespace(download=False, no_download=False, max_images=None, command="train")
    parser = argparse.ArgumentParser()
    write_fake_mnist(cache / "mnist", n=16)
    x = cli_mod._load_named(cfg, "mnist", True, None, args, parser)
    assert x.shape == (16, 28, 28)
    assert order == (["load", ("bcast", True)] if rank == 0 else [("bcast", None), "load"])
    if rank == 1:  # rank 0 failed: the others stop quietly (rank 0 says why)
        rank0_ok[0] = False
        order.clear()
        with pytest.raises(cli_mod._Exit) as e:
            cli_mod._load_named(cfg, "mnist", True, None, args, parser)
        assert e.value.status == 1 and order == [("bcast", None)]
    else:  # rank 0 fails: the others are told before the error goes on
        shutil.rmtree(cache / "mnist")
        order.clear()
        dl_args = argparse.Namespace(**{**vars(args), "download": True})
        monkeypatch.setattr("dcgan.datasets.download._fetch",
                            lambda url, dest, timeout=None: (_ for _ in ()).throw(OSError("offline")))
        with pytest.raises(cli_mod._Exit):
            cli_mod._load_named(cfg, "mnist", True, None, dl_args, parser)
        assert order == ["load", ("bcast", False)]
    # explicit --data without --download never downloads: no waiting, as before
    order.clear()
    data_args = argparse.Namespace(**{**vars(args), "download": False})
    cli_mod._load_named(cfg, "mnist", True, str(write_fake_mnist(tmp_path / "d", n=8)), data_args, parser)
    assert order == ["load"]


# ============================================================================= --precision
def test_precision_option(cli, tmp_path, capsys):
    import dcgan

    usage_error(capsys, lambda: cli(["train", "--precision", "fp16", "--out", str(tmp_path / "x")]),
                "--precision", "fp32", "bf16")
    isa = next(b["detail"] for b in dcgan.backends() if b["name"] == "cpu")
    if not isa.startswith(("avx512_core_bf16", "avx512_core_fp16", "avx512_core_amx")):
        pytest.skip(f"oneDNN dispatches to {isa}: no bf16")
    write_fake_mnist(tmp_path / "data" / "mnist", n=16)
    cfg = write_config(tmp_path / "c.json")
    out = tmp_path / "o"
    assert cli(["train", "--config", str(cfg), "--precision", "bf16", "--data", str(tmp_path / "data"),
                "--steps", "2", "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "config.json").read_text())["config"]["precision"] == "bf16"
