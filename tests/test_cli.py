"""python -m dcgan train | resume | sample: argument errors exit cleanly (status 2, no traceback);
outputs, checkpoints, exact resume, sampling, dataset choice, --config files.

The real-MNIST training run is marked ``slow``; ``test_train_with_stub_trainer`` checks the
command's plumbing with a stand-in Trainer; the other real runs use tiny networks (g_width and
d_width 4) on a few dozen synthetic images and take well under a second each, in-process.
"""
from __future__ import annotations

import gzip
import json
import os
import pickle
import subprocess
import urllib.error
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
    # Without --data the dataset is looked for in $DCGAN_DATA and the cache, then downloaded;
    # --no-download keeps this test off the network (tests/test_cli_edges.py covers the download).
    r = run_cli("train", "--no-download", "--out", str(tmp_path / "o"), cwd=tmp_path, drop_env=("DCGAN_DATA",),
                env_extra={"DCGAN_CACHE": str(tmp_path / "cache")})
    assert_usage_error(r, "--data", "DCGAN_DATA", str(tmp_path / "cache"))
    assert not (tmp_path / "o").exists()


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

    @property
    def step_count(self):
        return len(self.history["d_loss"])

    def save(self, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"stub checkpoint")
        return path

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
    from dcgan.cli import main

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
    assert names == ["checkpoint.npz", "config.json", "losses.csv", "losses.png",
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


# ============================================================================= tiny real runs, in-process
TINY = {"preset": "mnist", "g_width": 4, "d_width": 4, "batch_size": 8, "threads": 1, "epochs": 2}


@pytest.fixture
def cli():
    from dcgan.cli import main

    return main


def usage_error(capsys, fn, *needles):
    with pytest.raises(SystemExit) as e:
        fn()
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert "usage:" in err and "Traceback" not in err
    for n in needles:
        assert n in err, (n, err)
    return err


def write_config(path: Path, **fields) -> Path:
    path.write_text(json.dumps({**TINY, **fields}))
    return path


def write_fake_cifar(root: Path, n: int = 8, seed: int = 0) -> None:
    """Official python-format batches (5 x n train images, n test) with random pixels."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"labels": rng.integers(0, 10, n).tolist(),
             b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
        (folder / name).write_bytes(pickle.dumps(d, protocol=2))


def csv_rows(path: Path):
    return path.read_text().splitlines()[1:]


def test_config_json_checkpoints_and_step_grids(cli, tmp_path, capsys):
    write_fake_mnist(tmp_path / "mnist", n=40)  # 5 steps per epoch
    out = tmp_path / "run"
    rc = cli(["train", "--config", str(write_config(tmp_path / "tiny.json")), "--data", str(tmp_path),
              "--out", str(out), "--checkpoint-every", "2", "--keep-checkpoints", "2", "--sample-every", "5",
              "--no-progress"])
    assert rc == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["checkpoint.npz", "checkpoints", "config.json", "losses.csv", "losses.png",
                     "samples_epoch_000.png", "samples_epoch_001.png",
                     "samples_step_000005.png", "samples_step_000010.png"]
    # checkpoints every 2 steps (at chunk ends), only the newest 2 kept
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert len(kept) == 2 and kept[-1] == "step_000010.npz", kept
    import dcgan

    tr = dcgan.Trainer.load(out / "checkpoint.npz")
    assert tr.step_count == 10 and tr.cfg.g_width == 4 and tr.cfg.batch_size == 8
    assert len(csv_rows(out / "losses.csv")) == 10
    saved = json.loads((out / "config.json").read_text())
    assert saved["dataset"] == "mnist" and saved["config"]["d_width"] == 4
    # the step-5 grid and the epoch-0 grid show the same generator (step 5 = end of epoch 0)
    with Image.open(out / "samples_step_000005.png") as a, Image.open(out / "samples_epoch_000.png") as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    # config.json can be given back to --config
    out2 = tmp_path / "again"
    assert cli(["train", "--config", str(out / "config.json"), "--data", str(tmp_path), "--out", str(out2),
                "--no-progress"]) == 0
    assert (out2 / "losses.csv").read_text() == (out / "losses.csv").read_text()


def test_config_toml_and_overrides(cli, tmp_path):
    write_fake_mnist(tmp_path / "mnist", n=40)
    toml = tmp_path / "c.toml"
    toml.write_text('preset = "mnist"\ng_width = 4\nd_width = 4\nbatch_size = 8\nthreads = 1\n'
                    'epochs = 5\nlr = 0.001\nbetas_g = [0.5, 0.9]\n')
    out = tmp_path / "o"
    assert cli(["train", "--config", str(toml), "--data", str(tmp_path / "mnist"), "--epochs", "1",
                "--seed", "9", "--out", str(out), "--no-progress"]) == 0
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert cfg["epochs"] == 1 and cfg["seed"] == 9 and cfg["lr"] == 0.001 and cfg["betas_g"] == [0.5, 0.9]
    assert len(csv_rows(out / "losses.csv")) == 5


@pytest.mark.parametrize("content,suffix,needles", [
    ('{"preset": "mnist", "g_widht": 4}', ".json", ["g_widht", "unknown Config field"]),
    ('{"preset": "celeba-hd"}', ".json", ["celeba-hd", "mnist"]),
    ('{"g_width": 4', ".json", ["not valid JSON"]),
    ('[1, 2]', ".json", ["object"]),
    ('g_width = ', ".toml", ["not valid TOML"]),
    ('{"preset": "mnist", "batch_size": 0}', ".json", ["batch_size"]),
])
def test_config_file_errors(cli, tmp_path, capsys, content, suffix, needles):
    p = tmp_path / f"c{suffix}"
    p.write_text(content)
    usage_error(capsys, lambda: cli(["train", "--config", str(p), "--data", str(tmp_path),
                                     "--out", str(tmp_path / "o")]), *needles)
    assert not (tmp_path / "o").exists()


def test_config_file_missing(cli, tmp_path, capsys):
    usage_error(capsys, lambda: cli(["train", "--config", str(tmp_path / "nope.json"), "--data", str(tmp_path),
                                     "--out", str(tmp_path / "o")]), "--config", "nope.json")


def test_resume_continues_exactly(cli, tmp_path, capsys):
    write_fake_mnist(tmp_path / "mnist", n=40)
    cfg = write_config(tmp_path / "tiny.json", epochs=3)
    common = ["--data", str(tmp_path / "mnist"), "--no-progress"]
    assert cli(["train", "--config", str(cfg), "--out", str(tmp_path / "full"), *common]) == 0
    # the same run, stopped after one epoch and resumed in a fresh folder
    assert cli(["train", "--config", str(cfg), "--epochs", "1", "--out", str(tmp_path / "part"), *common]) == 0
    part = tmp_path / "part" / "checkpoint.npz"
    # --epochs is the run's total; the checkpoint says the run was to have 1 epoch, so 3 is asked for
    capsys.readouterr()
    assert cli(["resume", "--checkpoint", str(part), "--epochs", "3", "--out", str(tmp_path / "res"),
                *common]) == 0
    assert "resuming" in capsys.readouterr().out
    assert (tmp_path / "res" / "losses.csv").read_text() == (tmp_path / "full" / "losses.csv").read_text()
    assert sorted(p.name for p in (tmp_path / "res").glob("samples_epoch_*.png")) == [
        "samples_epoch_001.png", "samples_epoch_002.png"]
    with Image.open(tmp_path / "res" / "samples_epoch_002.png") as a, \
            Image.open(tmp_path / "full" / "samples_epoch_002.png") as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    # nothing left to do: exit 0 with a message
    capsys.readouterr()
    assert cli(["resume", "--checkpoint", str(tmp_path / "res" / "checkpoint.npz"), "--out",
                str(tmp_path / "res"), *common]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_resume_from_periodic_checkpoint_mid_epoch(cli, tmp_path):
    write_fake_mnist(tmp_path / "mnist", n=40)
    cfg = write_config(tmp_path / "tiny.json", epochs=2)
    common = ["--data", str(tmp_path / "mnist"), "--no-progress"]
    assert cli(["train", "--config", str(cfg), "--out", str(tmp_path / "a"), "--checkpoint-every", "1",
                "--keep-checkpoints", "100", *common]) == 0
    ckpts = sorted((tmp_path / "a" / "checkpoints").glob("step_*.npz"))
    mid = [p for p in ckpts if int(p.stem.split("_")[1]) % 5][0]  # not at an epoch end
    assert cli(["resume", "--checkpoint", str(mid), "--out", str(tmp_path / "b"), *common]) == 0
    assert (tmp_path / "b" / "losses.csv").read_text() == (tmp_path / "a" / "losses.csv").read_text()


def test_resume_errors(cli, tmp_path, capsys):
    write_fake_mnist(tmp_path / "mnist", n=40)
    data = ["--data", str(tmp_path / "mnist")]
    usage_error(capsys, lambda: cli(["resume", "--checkpoint", str(tmp_path / "none.npz"), "--out",
                                     str(tmp_path / "o"), *data]), "--checkpoint", "none.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    usage_error(capsys, lambda: cli(["resume", "--checkpoint", str(tmp_path / "bad.npz"), "--out",
                                     str(tmp_path / "o"), *data]), "is not a dcgan checkpoint")
    import dcgan

    tr = dcgan.Trainer(dcgan.Config.mnist(g_width=4, d_width=4, batch_size=8, threads=1))
    tr.save_generator(tmp_path / "gen.npz")
    usage_error(capsys, lambda: cli(["resume", "--checkpoint", str(tmp_path / "gen.npz"), "--out",
                                     str(tmp_path / "o"), *data]), "only a generator")
    assert not (tmp_path / "o").exists()
    r = run_cli("resume", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert_usage_error(r, "--checkpoint")


def test_sample_reproduces_training_grid(cli, tmp_path, capsys):
    write_fake_mnist(tmp_path / "mnist", n=40)
    out = tmp_path / "run"
    assert cli(["train", "--config", str(write_config(tmp_path / "t.json")), "--data", str(tmp_path / "mnist"),
                "--out", str(out), "--no-progress"]) == 0
    # default seed: the fixed noise of the training grids
    assert cli(["sample", "--checkpoint", str(out / "checkpoint.npz"), "--out", str(tmp_path / "g.png")]) == 0
    with Image.open(tmp_path / "g.png") as a, Image.open(out / "samples_epoch_001.png") as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert cli(["sample", "--checkpoint", str(out / "checkpoint.npz"), "-n", "6", "--nrow", "3", "--seed", "4",
                "--out", str(tmp_path / "s" / "six.png")]) == 0
    with Image.open(tmp_path / "s" / "six.png") as im:
        assert im.size == (3 * 30 + 2, 2 * 30 + 2)
    assert cli(["sample", "--checkpoint", str(out / "checkpoint.npz"), "-n", "5", "--out",
                str(tmp_path / "x.npy")]) == 0
    arr = np.load(tmp_path / "x.npy")
    assert arr.shape == (5, 1, 28, 28) and arr.dtype == np.float32 and -1 <= arr.min() and arr.max() <= 1
    import dcgan

    assert np.array_equal(arr, dcgan.Generator.load(out / "checkpoint.npz").generate(5, seed=0x5EED + 0))
    assert cli(["sample", "--checkpoint", str(out / "checkpoint.npz"), "-n", "5", "--bn-inference", "running",
                "--out", str(tmp_path / "r.npy")]) == 0
    ref = dcgan.Generator.load(out / "checkpoint.npz").generate(5, seed=0x5EED, bn_inference="running")
    assert np.array_equal(np.load(tmp_path / "r.npy"), ref)


def test_sample_errors(cli, tmp_path, capsys):
    usage_error(capsys, lambda: cli(["sample", "--checkpoint", str(tmp_path / "none.npz"), "--out",
                                     str(tmp_path / "g.png")]), "--checkpoint")
    (tmp_path / "c.npz").write_bytes(b"junk")
    usage_error(capsys, lambda: cli(["sample", "--checkpoint", str(tmp_path / "c.npz"), "--out",
                                     str(tmp_path / "g.gif")]), "--out", ".gif")
    usage_error(capsys, lambda: cli(["sample", "--checkpoint", str(tmp_path / "c.npz"), "--out",
                                     str(tmp_path / "g.png")]), "--checkpoint", "dcgan checkpoint")
    usage_error(capsys, lambda: cli(["sample", "--checkpoint", str(tmp_path / "c.npz"), "-n", "0", "--out",
                                     str(tmp_path / "g.png")]), "-n")


def test_sample_subprocess_help_and_version(tmp_path):
    r = run_cli("sample", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "--checkpoint" in r.stdout and "--seed" in r.stdout
    r = run_cli("resume", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "--epochs" in r.stdout
    r = run_cli("train", "--help", cwd=tmp_path)
    assert all(o in r.stdout for o in ("--config", "--dataset", "--checkpoint-every", "--sample-every"))


# ----------------------------------------------------------------------------- dataset choice
def test_cifar10_preset_trains_on_cifar(cli, tmp_path):
    write_fake_cifar(tmp_path / "cifar10", n=8)  # 40 training images: $DATA/cifar10/cifar-10-batches-py
    out = tmp_path / "o"
    cfg = write_config(tmp_path / "c.json", preset="cifar10", epochs=1)
    assert cli(["train", "--config", str(cfg), "--data", str(tmp_path), "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "config.json").read_text())["dataset"] == "cifar10"
    with Image.open(out / "samples_epoch_000.png") as im:
        assert im.mode == "RGB" and im.size == (8 * 34 + 2, 8 * 34 + 2)
    assert len(csv_rows(out / "losses.csv")) == 5


def test_dcgan64_resizes_cifar_or_mnist(cli, tmp_path):
    write_fake_cifar(tmp_path / "cifar10", n=2)
    write_fake_mnist(tmp_path / "mnist", n=10)
    cfg = write_config(tmp_path / "c.json", preset="dcgan64", epochs=1, batch_size=5)
    assert cli(["train", "--config", str(cfg), "--data", str(tmp_path), "--out", str(tmp_path / "rgb"),
                "--no-progress"]) == 0
    with Image.open(tmp_path / "rgb" / "samples_epoch_000.png") as im:
        assert im.mode == "RGB" and im.size == (8 * 66 + 2, 8 * 66 + 2)
    gray = write_config(tmp_path / "g.json", preset="dcgan64", epochs=1, batch_size=5, image_shape=[1, 64, 64])
    assert cli(["train", "--config", str(gray), "--data", str(tmp_path), "--out", str(tmp_path / "gray"),
                "--no-progress"]) == 0
    assert json.loads((tmp_path / "gray" / "config.json").read_text())["dataset"] == "mnist"
    with Image.open(tmp_path / "gray" / "samples_epoch_000.png") as im:
        assert im.mode == "L" and im.size == (8 * 66 + 2, 8 * 66 + 2)


def test_dataset_folder_fashion_and_max_images(cli, tmp_path, capsys):
    rng = np.random.default_rng(0)
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(tmp_path / "imgs" / "a" / f"{i}.png")
    cfg = write_config(tmp_path / "c.json", epochs=1)
    assert cli(["train", "--config", str(cfg), "--dataset", "folder", "--data", str(tmp_path / "imgs"),
                "--out", str(tmp_path / "f"), "--no-progress"]) == 0
    assert len(csv_rows(tmp_path / "f" / "losses.csv")) == 1  # 12 images, batch 8
    write_fake_mnist(tmp_path / "fashion-mnist", n=40)
    assert cli(["train", "--config", str(cfg), "--dataset", "fashion_mnist", "--data", str(tmp_path),
                "--max-images", "16", "--out", str(tmp_path / "fm"), "--no-progress"]) == 0
    assert len(csv_rows(tmp_path / "fm" / "losses.csv")) == 2
    assert json.loads((tmp_path / "fm" / "config.json").read_text())["dataset"] == "fashion-mnist"
    # a 3-channel model on a 1-channel dataset is a usage error
    write_fake_mnist(tmp_path / "mnist", n=16)
    c3 = write_config(tmp_path / "c3.json", preset="cifar10")
    usage_error(capsys, lambda: cli(["train", "--config", str(c3), "--dataset", "mnist", "--data",
                                     str(tmp_path), "--out", str(tmp_path / "x")]), "1-channel", "image_shape")
    usage_error(capsys, lambda: cli(["train", "--config", str(cfg), "--dataset", "folder", "--data",
                                     str(tmp_path / "mnist_none"), "--out", str(tmp_path / "x")]), "--data")
    usage_error(capsys, lambda: cli(["train", "--dataset", "imagenet", "--data", str(tmp_path),
                                     "--out", str(tmp_path / "x")]), "--dataset", "imagenet")
    assert not (tmp_path / "x").exists()


def test_download_offline_is_a_clean_error(cli, tmp_path, capsys, monkeypatch):
    from dcgan import datasets

    def offline(url, dest, timeout=None):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(datasets.download, "_fetch", offline)
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    rc = cli(["train", "--config", str(write_config(tmp_path / "c.json")), "--download", "--data",
              str(tmp_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1 and "train-images-idx3-ubyte.gz" in err and "Without a network" in err and str(tmp_path) in err
    assert "Traceback" not in err


def test_interrupted_run_saves_checkpoint_and_says_how_to_resume(cli, tmp_path, capsys, monkeypatch):
    """Trainer.fit returns early on Ctrl-C; the command notices, saves, and exits 130."""
    import dcgan

    real_fit = dcgan.Trainer.fit

    def fit_then_ctrl_c(self, x, epochs=None, steps=None, **kw):
        return real_fit(self, x, steps=3, **kw)  # as if Ctrl-C came after 3 steps

    monkeypatch.setattr(dcgan.Trainer, "fit", fit_then_ctrl_c)
    write_fake_mnist(tmp_path / "mnist", n=40)
    rc = cli(["train", "--config", str(write_config(tmp_path / "c.json")), "--data", str(tmp_path / "mnist"),
              "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 130 and "interrupted at step 3" in err and "resume --checkpoint" in err
    assert dcgan.Trainer.load(tmp_path / "o" / "checkpoint.npz").step_count == 3
