"""dcgan.callbacks: SampleGrid, ModelCheckpoint, HistoryLogger, EarlyStop with the real Trainer
(tiny networks, a fraction of a second each) and with a stand-in for the chunked step protocol."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

import dcgan
from dcgan.callbacks import SAMPLE_SEED_OFFSET, EarlyStop, HistoryLogger, ModelCheckpoint, SampleGrid
from dcgan.plot import load_history_csv, load_history_json, sample_grid

N, BS = 80, 8  # 10 steps per epoch


def tiny_cfg(**kw):
    base = dict(g_width=4, d_width=4, batch_size=BS, threads=1, seed=3)
    base.update(kw)
    return dcgan.Config.mnist(**base)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).integers(0, 256, (N, 28, 28), dtype=np.uint8)


def names(folder):
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------- a stand-in trainer
class ChunkedStub:
    """Calls callbacks as Trainer.fit does: after each chunk of k steps, on_step for each of them."""

    def __init__(self):
        self.step_count = 0
        self.epoch = 0
        self.cfg = tiny_cfg()
        self.history = {"d_loss": [], "g_loss": [], "d_real": [], "d_fake": [], "epoch": []}
        self.stop_training = False
        self.generated_at = []
        self.saved = []

    def run(self, callbacks, chunks, stats=None):
        for k in chunks:
            if self.stop_training:
                break
            self.step_count += k
            for i in range(k):
                s = dict(stats or {"d_loss": 1.3, "g_loss": 0.7, "d_real": 0.5, "d_fake": 0.5})
                for key in ("d_loss", "g_loss", "d_real", "d_fake"):
                    self.history[key].append(s[key])
                self.history["epoch"].append(self.epoch)
                for cb in callbacks:
                    cb.on_step(self, self.step_count - k + i, s)

    def generate(self, n, seed=None):
        self.generated_at.append(self.step_count)
        return np.zeros((n, 1, 28, 28), np.float32)

    def save(self, path):
        self.saved.append((self.step_count, len(self.history["d_loss"])))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"ckpt")
        return path


def test_every_steps_acts_at_chunk_ends_with_the_true_step(tmp_path):
    stub = ChunkedStub()
    grid = SampleGrid(tmp_path / "s", every_steps=100)
    ckpt = ModelCheckpoint(tmp_path / "c" / "step_{step:06d}.npz", every_steps=100)
    # chunks as Trainer.fit makes them for 234 steps per epoch: 50, 50, 50, 50, 34, 50, ...
    stub.run([grid, ckpt], [50, 50, 50, 50, 34, 50, 50, 50])
    assert grid.every_steps == 100 and ckpt.every_steps == 100
    # 100 and 200 are chunk ends; 300 falls inside the chunk 284..334: the grid shows step 334
    assert stub.generated_at == [100, 200, 334]
    assert names(tmp_path / "s") == ["samples_step_000100.png", "samples_step_000200.png",
                                     "samples_step_000334.png"]
    # a checkpoint is only taken where the history is complete (history length == step count)
    assert stub.saved == [(100, 100), (200, 200), (334, 334)]
    assert [p.name for p in ckpt.files] == ["step_000100.npz", "step_000200.npz", "step_000334.npz"]


def test_every_steps_exact_when_chunks_align(tmp_path):
    stub = ChunkedStub()
    grid = SampleGrid(tmp_path, every_steps=5)
    stub.run([grid], [5] * 4)
    assert stub.generated_at == [5, 10, 15, 20]


@pytest.mark.parametrize("kw", [{"every_steps": 0}, {"every_steps": 2.5}, {"every_steps": True}, {"n": 0},
                                {"seed": -1}])
def test_sample_grid_bad_arguments(tmp_path, kw):
    with pytest.raises(ValueError):
        SampleGrid(tmp_path, **kw)


# ----------------------------------------------------------------------------- SampleGrid
def test_sample_grid_every_epoch_fixed_noise(tmp_path, x):
    tr = dcgan.Trainer(tiny_cfg())
    cb = SampleGrid(tmp_path / "samples")
    tr.fit(x, epochs=3, callbacks=[cb], progress=False)
    assert names(tmp_path / "samples") == ["samples_epoch_000.png", "samples_epoch_001.png",
                                           "samples_epoch_002.png"]
    assert cb.files == [tmp_path / "samples" / n for n in names(tmp_path / "samples")]
    assert cb.seed == tr.cfg.seed + SAMPLE_SEED_OFFSET
    with Image.open(cb.files[-1]) as im:
        assert im.size == (8 * 30 + 2, 8 * 30 + 2) and im.mode == "L"
        last = np.asarray(im)
    # the last grid is the trained generator on the fixed noise
    assert np.array_equal(last, sample_grid(tr.generate(64, seed=cb.seed), nrow=8))
    with Image.open(cb.files[0]) as im:
        assert not np.array_equal(np.asarray(im), last)  # the generator changed in between


def test_sample_grid_every_steps_real_trainer(tmp_path, x):
    tr = dcgan.Trainer(tiny_cfg())
    cb = SampleGrid(tmp_path, every_steps=10, n=16, seed=42, prefix="grid")
    tr.fit(x, steps=30, callbacks=[cb], progress=False)
    assert names(tmp_path) == ["grid_step_000010.png", "grid_step_000020.png", "grid_step_000030.png"]
    with Image.open(cb.files[-1]) as im:
        assert im.size == (4 * 30 + 2, 4 * 30 + 2)
        assert np.array_equal(np.asarray(im), sample_grid(tr.generate(16, seed=42), nrow=4))


# ----------------------------------------------------------------------------- ModelCheckpoint
def test_model_checkpoint_keep_last_and_exact_resume(tmp_path, x):
    tr = dcgan.Trainer(tiny_cfg())
    keep_all = ModelCheckpoint(tmp_path / "all" / "step_{step:06d}.npz", every_steps=10)
    keep_two = ModelCheckpoint(tmp_path / "two" / "step_{step:06d}.npz", every_steps=10, keep_last=2)
    tr.fit(x, steps=40, callbacks=[keep_all, keep_two], progress=False)
    assert names(tmp_path / "all") == [f"step_{s:06d}.npz" for s in (10, 20, 30, 40)]
    assert names(tmp_path / "two") == ["step_000030.npz", "step_000040.npz"]
    assert keep_two.files == [tmp_path / "two" / "step_000030.npz", tmp_path / "two" / "step_000040.npz"]
    assert keep_two.last == tmp_path / "two" / "step_000040.npz"
    # the checkpoint taken at step 20 resumes exactly: the same 20 following steps
    resumed = dcgan.Trainer.load(tmp_path / "all" / "step_000020.npz")
    assert resumed.step_count == 20 and len(resumed.history["d_loss"]) == 20
    resumed.fit(x, steps=20, progress=False)
    for k in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert resumed.history[k] == tr.history[k], k
    assert np.array_equal(resumed.generate(8, seed=1), tr.generate(8, seed=1))


def test_model_checkpoint_every_epoch_fixed_name_and_generator_only(tmp_path, x):
    tr = dcgan.Trainer(tiny_cfg())
    per_epoch = ModelCheckpoint(tmp_path / "epoch_{epoch:03d}.npz")
    latest = ModelCheckpoint(tmp_path / "latest.npz", every_epoch=True)
    gen = ModelCheckpoint(tmp_path / "gen.npz", every_steps=10, generator_only=True)
    tr.fit(x, epochs=2, callbacks=[per_epoch, latest, gen], progress=False)
    assert names(tmp_path) == ["epoch_000.npz", "epoch_001.npz", "gen.npz", "latest.npz"]
    assert latest.files == [tmp_path / "latest.npz"]
    assert dcgan.Trainer.load(tmp_path / "latest.npz").step_count == 20
    assert dcgan.Trainer.load(tmp_path / "epoch_000.npz").step_count == 10
    g = dcgan.Generator.load(tmp_path / "gen.npz")
    assert np.array_equal(g.generate(4, seed=0), tr.generate(4, seed=0))


def test_model_checkpoint_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="only use the fields"):
        ModelCheckpoint(tmp_path / "c_{loss}.npz")
    with pytest.raises(ValueError, match="keep_last"):
        ModelCheckpoint(tmp_path / "c.npz", keep_last=0)


# ----------------------------------------------------------------------------- HistoryLogger
def test_history_logger_each_epoch(tmp_path, x):
    tr = dcgan.Trainer(tiny_cfg())
    writes = []

    class Probe:
        def on_epoch_end(self, trainer, epoch):  # runs after the logger: the files are there
            writes.append(len(load_history_csv(tmp_path / "h.csv")["d_loss"]))

    log = HistoryLogger(csv_path=tmp_path / "h.csv", json_path=tmp_path / "h.json", plot_path=tmp_path / "h.png")
    tr.fit(x, epochs=2, callbacks=[log, Probe()], progress=False)
    assert log.writes == 2 and writes == [10, 20]
    csv = load_history_csv(tmp_path / "h.csv")
    assert csv["step"] == list(range(20)) and csv["epoch"] == [0] * 10 + [1] * 10
    np.testing.assert_allclose(csv["d_loss"], tr.history["d_loss"], rtol=1e-6)
    js = load_history_json(tmp_path / "h.json")
    assert js["d_loss"] == tr.history["d_loss"] and js["epoch"] == tr.history["epoch"]
    with open(tmp_path / "h.json") as f:
        assert set(json.load(f)) >= {"epoch", "d_loss", "g_loss", "d_real", "d_fake"}
    with Image.open(tmp_path / "h.png") as im:
        assert im.format == "PNG"


def test_history_logger_plot_only_writes_the_file_in_jupyter(tmp_path, x, monkeypatch):
    # In Jupyter (an interactive pyplot backend) plot_losses makes a pyplot figure, which the
    # inline backend would draw into the notebook at the end of the cell, once per epoch: the
    # logger must close it after saving.
    import matplotlib.pyplot as plt

    import dcgan.plot

    monkeypatch.setattr(dcgan.plot, "_interactive_pyplot", lambda: True)
    plt.close("all")
    tr = dcgan.Trainer(tiny_cfg())
    log = HistoryLogger(plot_path=tmp_path / "h.png")
    tr.fit(x, epochs=2, callbacks=[log], progress=False)
    assert log.writes == 2 and (tmp_path / "h.png").is_file()
    assert plt.get_fignums() == []
    # plot_losses itself still hands an interactive session a pyplot figure to show.
    fig = dcgan.plot.plot_losses(tr.history)
    assert plt.get_fignums() == [fig.number]
    plt.close("all")


def test_history_logger_every_steps(tmp_path, x):
    tr = dcgan.Trainer(tiny_cfg())
    log = HistoryLogger(json_path=tmp_path / "h.json", every_steps=10)
    tr.fit(x, steps=25, callbacks=[log], progress=False)
    assert log.writes == 2  # at 10 and 20; not at epoch ends
    assert len(load_history_json(tmp_path / "h.json")["d_loss"]) == 20
    with pytest.raises(ValueError):
        HistoryLogger()


# ----------------------------------------------------------------------------- EarlyStop
def test_early_stop_collapse_and_nan():
    stub = ChunkedStub()
    es = EarlyStop(monitor="d_loss", below=0.01, patience=3)
    stub.run([es], [2, 2], stats={"d_loss": 0.5, "g_loss": 1, "d_real": 0.5, "d_fake": 0.5})
    assert not stub.stop_training and es.wait == 0
    stub.run([es], [2, 2, 2], stats={"d_loss": 0.001, "g_loss": 9, "d_real": 1, "d_fake": 0})
    assert stub.stop_training and es.stopped_at == 6 and "d_loss < 0.01 for 3 steps" in es.reason
    assert stub.step_count == 8  # the chunk in which it fired still finished; no more after that
    stub2 = ChunkedStub()
    es2 = EarlyStop()
    stub2.run([es2], [3], stats={"d_loss": math.nan, "g_loss": 1, "d_real": 0.5, "d_fake": 0.5})
    assert stub2.stop_training and es2.stopped_at == 0 and "non-finite d_loss" in es2.reason
    with pytest.raises(ValueError):
        EarlyStop(patience=0)


def test_early_stop_real_trainer(x):
    tr = dcgan.Trainer(tiny_cfg())
    es = EarlyStop(monitor="d_loss", above=0.0, patience=3)  # fires at once
    tr.fit(x, steps=50, callbacks=[es], progress=False)
    assert es.stopped_at == 2 and tr.step_count < 50 and tr.step_count == len(tr.history["d_loss"])
