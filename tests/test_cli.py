"""python -m dcgan: argument errors exit cleanly (status 2, no traceback); the train command's outputs.

The real training run is marked ``slow``; ``test_train_with_stub_trainer`` checks the command's
plumbing (files, callbacks, epochs/steps) in-process with a stand-in Trainer, in well under a second.
"""
from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def run_cli(*args: str, cwd: Path, env_extra=None, drop_env=(), timeout=120):
    env = {k: v for k, v in os.environ.items() if k not in drop_env}
    # The child sees the same import path as this process (source tree, build dir or install).
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "dcgan", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_usage_error(r, *needles: str):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    assert "usage:" in r.stderr
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


def write_fake_mnist(root: Path, n: int = 40) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for name, arr in (("train-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
                      ("train-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))):
        head = (0x0800 | arr.ndim).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        (root / name).write_bytes(gzip.compress(head + arr.tobytes()))


# ----------------------------------------------------------------------------- argument errors
def test_no_command(tmp_path):
    assert_usage_error(run_cli(cwd=tmp_path), "COMMAND")


def test_unknown_command(tmp_path):
    assert_usage_error(run_cli("fly", cwd=tmp_path), "invalid choice")


def test_help(tmp_path):
    r = run_cli("train", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "--preset" in r.stdout and "--steps" in r.stdout


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--epochs", "0"], "--epochs"),
        (["--epochs", "two"], "--epochs"),
        (["--batch-size", "-4"], "--batch-size"),
        (["--lr", "abc"], "--lr"),
        (["--lr", "0"], "--lr"),
        (["--steps", "1.5"], "--steps"),
        (["--threads", "0"], "--threads"),
        (["--seed", "-1"], "--seed"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_values(tmp_path, extra, needle):
    r = run_cli("train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), *extra, cwd=tmp_path)
    assert_usage_error(r, needle)
    assert not (tmp_path / "o").exists()


def test_missing_out(tmp_path):
    assert_usage_error(run_cli("train", "--data", str(tmp_path), cwd=tmp_path), "--out")


def test_missing_data_dir(tmp_path):
    missing = tmp_path / "no_such_dir"
    r = run_cli("train", "--data", str(missing), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert_usage_error(r, "--data", str(missing))
    assert not (tmp_path / "o").exists()


def test_no_data_given(tmp_path):
    r = run_cli("train", "--out", str(tmp_path / "o"), cwd=tmp_path, drop_env=("DCGAN_DATA",))
    assert_usage_error(r, "--data", "DCGAN_DATA")


def test_data_dir_without_mnist_files(tmp_path):
    (tmp_path / "empty").mkdir()
    r = run_cli("train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert_usage_error(r, "--data", "train-images-idx3-ubyte")
    assert not (tmp_path / "o").exists()


def test_unknown_preset(tmp_path):
    r = run_cli("train", "--preset", "celeba-hd", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                cwd=tmp_path)
    assert_usage_error(r, "celeba-hd", "mnist")


# ----------------------------------------------------------------------------- plumbing, stub Trainer
class StubTrainer:
    """Implements the parts of dcgan.Trainer the CLI uses; no C++ core."""

    instances: list = []

    def __init__(self, cfg):
        self.cfg = cfg
        self.history = {"d_loss": [], "g_loss": [], "d_real": [], "d_fake": [], "epoch": []}
        self.fit_kwargs = None
        self.generate_calls = []
        StubTrainer.instances.append(self)

    def fit(self, x, epochs=None, steps=None, callbacks=None, progress=True):
        assert not (epochs is not None and steps is not None), "Trainer.fit takes epochs or steps"
        assert x.dtype == np.uint8 and x.shape[1:] == (28, 28)
        self.fit_kwargs = dict(epochs=epochs, steps=steps, progress=progress)
        spe = x.shape[0] // self.cfg.batch_size
        total = steps if steps is not None else spe * (epochs if epochs is not None else self.cfg.epochs)
        for i in range(total):
            epoch = i // spe
            for k, v in (("d_loss", 1.3), ("g_loss", 0.7), ("d_real", 0.6), ("d_fake", 0.4)):
                self.history[k].append(v + 0.001 * i)
            self.history["epoch"].append(epoch)
            if (i + 1) % spe == 0:
                for cb in callbacks or []:
                    cb.on_epoch_end(self, epoch)
        return self.history

    def generate(self, n, seed=None):
        self.generate_calls.append((n, seed))
        rng = np.random.default_rng(seed)
        c, h, w = self.cfg.image_shape
        return rng.uniform(-1, 1, (n, c, h, w)).astype(np.float32)


@pytest.fixture
def stub_cli(monkeypatch):
    dcgan = pytest.importorskip("dcgan")
    if not hasattr(dcgan, "Config"):
        pytest.skip("dcgan.Config not available yet")
    monkeypatch.setattr(dcgan, "Trainer", StubTrainer, raising=False)
    StubTrainer.instances.clear()
    from dcgan.__main__ import main

    return main


def test_train_with_stub_trainer(stub_cli, tmp_path, capsys):
    data = tmp_path / "data"
    write_fake_mnist(data / "mnist", n=40)  # folder containing mnist/
    out = tmp_path / "out"
    rc = stub_cli(["train", "--preset", "mnist", "--data", str(data), "--epochs", "3", "--batch-size", "8",
                   "--seed", "7", "--out", str(out), "--no-progress"])
    assert rc == 0
    (tr,) = StubTrainer.instances
    assert tr.cfg.batch_size == 8 and tr.cfg.seed == 7 and tr.cfg.epochs == 3
    assert tr.fit_kwargs == {"epochs": 3, "steps": None, "progress": False}
    names = sorted(p.name for p in out.iterdir())
    assert names == ["config.json", "losses.csv", "losses.png",
                     "samples_epoch_000.png", "samples_epoch_001.png", "samples_epoch_002.png"]
    # fixed noise: every grid from the same seed, 64 images
    assert len(tr.generate_calls) == 3 and len(set(tr.generate_calls)) == 1
    assert tr.generate_calls[0][0] == 64
    with Image.open(out / "samples_epoch_000.png") as im:
        assert im.size == (8 * 30 + 2, 8 * 30 + 2)
    lines = (out / "losses.csv").read_text().splitlines()
    assert lines[0] == "step,epoch,d_loss,g_loss,d_real,d_fake" and len(lines) == 1 + 15
    stdout = capsys.readouterr().out
    epoch_lines = [l for l in stdout.splitlines() if l.startswith("epoch ")]
    assert len(epoch_lines) == 3 and "d_loss" in epoch_lines[0] and "samples_epoch_000.png" in epoch_lines[0]


def test_train_steps_cap_partial_epoch(stub_cli, tmp_path):
    write_fake_mnist(tmp_path / "mnist", n=40)
    out = tmp_path / "out"
    # 5 steps per epoch; --steps 7 stops inside epoch 1, whose grid is still written
    rc = stub_cli(["train", "--data", str(tmp_path / "mnist"), "--epochs", "4", "--steps", "7",
                   "--batch-size", "8", "--threads", "1", "--out", str(out), "--no-progress"])
    assert rc == 0
    (tr,) = StubTrainer.instances
    assert tr.fit_kwargs["steps"] == 7 and tr.fit_kwargs["epochs"] is None
    assert tr.cfg.threads == 1
    assert (out / "samples_epoch_000.png").is_file() and (out / "samples_epoch_001.png").is_file()
    assert len((out / "losses.csv").read_text().splitlines()) == 1 + 7
    # --epochs caps --steps as well
    StubTrainer.instances.clear()
    stub_cli(["train", "--data", str(tmp_path), "--epochs", "1", "--steps", "100", "--batch-size", "8",
              "--out", str(tmp_path / "o2"), "--no-progress"])
    assert StubTrainer.instances[0].fit_kwargs["steps"] == 5


def test_main_returns_usage_error_in_process(stub_cli, tmp_path):
    with pytest.raises(SystemExit) as e:
        stub_cli(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert e.value.code == 2


# ----------------------------------------------------------------------------- real run
@pytest.mark.slow
def test_real_short_training_run(mnist_dir, tmp_path):
    """Needs the lead's Trainer and real MNIST (mnist_dir fixture, tests/conftest.py)."""
    out = tmp_path / "run"
    r = run_cli("train", "--preset", "mnist", "--data", str(mnist_dir), "--epochs", "1", "--steps", "30",
                "--batch-size", "32", "--out", str(out), cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    pngs = sorted(out.glob("samples_epoch_*.png"))
    assert pngs, list(out.iterdir())
    with Image.open(pngs[0]) as im:
        assert im.size == (242, 242)
    lines = (out / "losses.csv").read_text().splitlines()
    assert lines[0] == "step,epoch,d_loss,g_loss,d_real,d_fake" and len(lines) == 31
    assert all(np.isfinite(float(v)) for l in lines[1:] for v in l.split(",")[2:])
    with Image.open(out / "losses.png") as im:
        assert im.format == "PNG"
    assert "epoch" in r.stdout
