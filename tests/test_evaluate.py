"""Training-time evaluation: the Evaluate callback, its history in checkpoints, plot_metrics,
mode-collapse warnings and the command line's --eval-every."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import dcgan
from dcgan.callbacks import Evaluate
from conftest import bars
from dcgan.features import FeatureNet

DATA = Path(os.environ.get("DCGAN_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="module")
def net():
    x, y = bars(1024)
    n = FeatureNet((1, 28, 28), 4, threads=2, batch_size=64)
    n.fit(x, y, epochs=2)
    return n


class FakeTrainer:
    """What Evaluate uses of a trainer, generating images of chosen classes."""

    def __init__(self, classes=(0, 1, 2, 3), shape=(1, 28, 28)):
        self.cfg = dcgan.Config.mnist(image_shape=shape)
        self.classes, self.shape = classes, shape
        self.eval_history = {}
        self.step_count, self.epoch, self.saved = 0, 0, []

    def generate(self, n, seed=None):
        x, _ = bars(n, seed=seed or 0, classes=self.classes)
        img = x.astype(np.float32)[:, None] * np.float32(2 / 255) - 1
        if self.shape[1:] != (28, 28):
            from dcgan.datasets import resize_images

            img = resize_images(x, self.shape[1:]).astype(np.float32)[:, None] * np.float32(2 / 255) - 1
        return np.repeat(img, self.shape[0], axis=1)

    def save(self, path):
        self.saved.append((self.step_count, Path(path)))
        Path(path).write_bytes(b"x")
        return path


def test_evaluate_records_metrics_and_keeps_the_best(net, tmp_path):
    real, _ = bars(600, seed=9)
    ev = Evaluate(real, feature_net=net, n_samples=300, best_path=tmp_path / "best.npz", kid_subsets=5,
                  kid_subset_size=200, verbose=False)
    good, bad = FakeTrainer(), FakeTrainer(classes=(0,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row = ev.evaluate(good)  # balanced classes: no warning
    assert row["fid"] < 5 and abs(row["kid"]) < 0.05 and row["coverage"] > 0.7
    assert row["missing_classes"] == [] and row["kl_to_uniform"] < 0.05
    bad.step_count = 10
    with pytest.warns(RuntimeWarning, match=r"mode collapse at step 10: .*class 1, 2, 3"):
        row2 = ev.evaluate(bad)
    assert row2["fid"] > 10 * max(row["fid"], 0.1) and row2["coverage"] < row["coverage"]
    assert row2["missing_classes"] == [1, 2, 3]
    assert row2["kl_to_uniform"] > 1.0
    # best.npz: written for the first (best) evaluation only.
    assert [s for s, _ in good.saved] == [0] and bad.saved == []
    assert good.eval_history["fid"] == [row["fid"]] and bad.eval_history["missing_classes"] == [[1, 2, 3]]


def test_fit_with_evaluate_and_checkpoint_round_trip(net, tmp_path):
    x, _ = bars(256)
    tr = dcgan.Trainer(dcgan.Config.mnist(batch_size=32, g_width=8, d_width=8, threads=2, precise_bn_samples=64))
    ev = Evaluate(x, feature_net=net, n_samples=200, every_steps=4, kid_subsets=3, kid_subset_size=100,
                  best_path=tmp_path / "best.npz", verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an untrained G may well look collapsed
        tr.fit(x, steps=8, callbacks=[ev], progress=False)
    h = tr.eval_history
    assert h["step"] == [4, 8] and len(h["fid"]) == 2 and all(np.isfinite(h["fid"]))
    assert (tmp_path / "best.npz").is_file()
    back = dcgan.Trainer.load(tr.save(tmp_path / "run.npz"))
    assert back.eval_history == h
    fig = dcgan.plot.plot_metrics(tr, path=tmp_path / "metrics.png")
    assert (tmp_path / "metrics.png").stat().st_size > 1000 and len(fig.axes) >= 2


def test_callable_feature_net_and_resized_samples(net):
    pixels = lambda imgs: np.asarray(imgs, np.float64).reshape(len(imgs), -1)[:, ::16]
    real = FakeTrainer().generate(300, seed=3)
    ev = Evaluate(real, feature_net=pixels, n_samples=200, kid_subsets=3, kid_subset_size=100, verbose=False)
    row = ev.evaluate(FakeTrainer())
    assert np.isfinite(row["fid"]) and "kl_to_uniform" not in row  # no classifier, no histogram
    # A 64x64 generator measured by the 28x28 network: samples are resized first.
    ev64 = Evaluate(bars(300)[0], feature_net=net, n_samples=200, kid_subsets=3, kid_subset_size=100,
                    verbose=False)
    row = ev64.evaluate(FakeTrainer(shape=(1, 64, 64)))
    assert row["fid"] < 20 and row["missing_classes"] == []
    with pytest.raises(ValueError, match="channels"):
        Evaluate(bars(300)[0], feature_net=net, n_samples=200, verbose=False).evaluate(
            FakeTrainer(shape=(3, 28, 28)))


def test_evaluate_arguments_are_checked(net):
    with pytest.raises(ValueError, match="feature_net"):
        Evaluate(np.zeros((10, 28, 28), np.uint8))
    with pytest.raises(TypeError, match="feature_net"):
        Evaluate("mnist", feature_net=3)
    with pytest.raises(ValueError, match="n_samples"):
        Evaluate("mnist", feature_net=net, n_samples=3)
    with pytest.raises(ValueError, match="collapse_threshold"):
        Evaluate("mnist", feature_net=net, collapse_threshold=1.5)


def test_cli_eval_every_needs_a_labelled_dataset(tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(40):
        Image.fromarray(np.full((28, 28), i * 5, np.uint8)).save(folder / f"{i}.png")
    r = subprocess.run([sys.executable, "-m", "dcgan", "train", "--preset", "mlp", "--dataset", "folder",
                        "--data", str(folder), "--out", str(tmp_path / "run"), "--steps", "2", "--batch-size", "8",
                        "--eval-every", "1", "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 2 and "--eval-every needs a labelled dataset" in r.stderr


@pytest.mark.slow
def test_cli_eval_every_on_mnist(tmp_path):
    if not (DATA / "mnist").is_dir():
        pytest.skip(f"no MNIST under {DATA}")
    env = {**os.environ, "DCGAN_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "dcgan", "train", "--preset", "mlp", "--data", str(DATA),
                        "--dataset", "mnist", "--out", str(out), "--steps", "40", "--eval-every", "20",
                        "--threads", "2", "--no-progress"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = (out / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("step,epoch,fid,kid") and len(lines) == 3
    assert (out / "metrics.png").is_file() and (out / "best.npz").is_file()
    assert "eval at step 20: FID" in r.stderr
    assert list((tmp_path / "cache" / "featurenets").glob("mnist-*.npz"))
