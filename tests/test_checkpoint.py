"""Checkpoints: full state, exact resume, generator-only sampling, atomic writes, bad files."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import dcgan
from dcgan import checkpoint


def small_cfg(**kw):
    base = dict(batch_size=8, g_width=4, d_width=4, z_dim=8, seed=3)
    base.update(kw)
    return dcgan.Config.mnist(**base)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=(60, 28, 28), dtype=np.uint8)  # 7 steps per epoch


def test_resume_is_bit_identical(tmp_path, images):
    # 17 steps cross two epoch boundaries (7 steps per epoch); the save happens mid-epoch.
    ref = dcgan.Trainer(small_cfg())
    ref.fit(images, steps=17, progress=False)

    a = dcgan.Trainer(small_cfg())
    a.fit(images, steps=5, progress=False)
    path = a.save(tmp_path / "ck.npz")
    b = dcgan.Trainer.load(path)
    assert b.step_count == 5
    b.fit(images, steps=12, progress=False)
    for k in ("d_loss", "g_loss", "d_real", "d_fake", "epoch"):
        assert b.history[k] == ref.history[k], k  # exact, not approximate
    for net in ("generator", "discriminator"):
        for name, w in ref.weights(net).items():
            np.testing.assert_array_equal(b.weights(net)[name], w)
        for name, v in ref.buffers(net).items():
            np.testing.assert_array_equal(b.buffers(net)[name], v)
    np.testing.assert_array_equal(b.generate(8, seed=5), ref.generate(8, seed=5))


def test_generator_only_checkpoint_samples(tmp_path, images):
    tr = dcgan.Trainer(small_cfg())
    tr.fit(images, steps=4, progress=False)
    full = tr.save(tmp_path / "full.npz")
    gen = tr.save_generator(tmp_path / "gen.npz")
    with np.load(gen, allow_pickle=False) as z:
        assert not any(k.startswith("discriminator") for k in z.files)
    want = tr.generate(10, seed=7)
    for p in (full, gen):
        g = dcgan.Generator.load(p)
        np.testing.assert_array_equal(g.generate(10, seed=7), want)
    with pytest.raises(ValueError, match="holds only a generator"):
        dcgan.Trainer.load(gen)


def test_format_is_plain_npz_with_json(tmp_path):
    tr = dcgan.Trainer(small_cfg())
    p = tr.save(tmp_path / "ck")  # suffix added
    assert p.name == "ck.npz"
    with np.load(p, allow_pickle=False) as z:
        meta = json.loads(z["meta.json"].tobytes())
        assert meta["format"] == "dcgan-checkpoint" and meta["version"] == 1
        assert "generator/0.weight" in z.files and "discriminator.adam/m" in z.files
        assert "generator/1.running_var" in z.files


def test_mismatched_config_is_rejected(tmp_path):
    p = dcgan.Trainer(small_cfg()).save(tmp_path / "ck.npz")
    with pytest.raises(ValueError, match="does not match this configuration"):
        dcgan.Trainer.load(p, cfg=small_cfg(g_width=8))
    # Same networks, other threads: fine.
    dcgan.Trainer.load(p, cfg=small_cfg(threads=1))


def test_damaged_files(tmp_path):
    p = dcgan.Trainer(small_cfg()).save(tmp_path / "ck.npz")
    data = p.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable dcgan checkpoint"):
        dcgan.Trainer.load(tmp_path / "trunc.npz")
    (tmp_path / "junk.npz").write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a readable dcgan checkpoint"):
        dcgan.Trainer.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="no meta.json"):
        dcgan.Trainer.load(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError):
        dcgan.Trainer.load(tmp_path / "missing.npz")
    # A pickled object inside is never executed: np.load(allow_pickle=False) refuses it.
    np.savez(tmp_path / "pickle.npz", **{"meta.json": np.array([{"x": 1}], dtype=object)})
    with pytest.raises(ValueError):
        dcgan.Trainer.load(tmp_path / "pickle.npz")


def test_npy_header_cut_inside_a_bracket(tmp_path):
    # Found by fuzzing: NumPy parses a .npy header as Python source, and one that ends inside a
    # bracket raised tokenize.TokenError out of checkpoint.read.
    import zipfile

    header = b"{'descr': '|u1', 'fortran_order': False, 'shape': (3,"
    header += b" " * (63 - len(header) % 64) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"abc"
    p = tmp_path / "ck.npz"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as z:
        z.writestr("meta.json.npy", npy)
    with pytest.raises(ValueError, match="not a readable dcgan checkpoint"):
        dcgan.checkpoint.read(p)


def test_entry_that_is_not_npy(tmp_path):
    # Found by fuzzing: np.load returns raw bytes for an entry without the .npy magic, and
    # checkpoint.read then failed with AttributeError ('bytes' has no 'dtype').
    import zipfile

    good = dcgan.Trainer(small_cfg()).save(tmp_path / "good.npz")
    for damaged in ("generator/0.weight.npy", "meta.json.npy"):
        p = tmp_path / "ck.npz"
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as dst:
            for info in src.infolist():
                data = src.read(info.filename)
                dst.writestr(info.filename, b"PK" + data[2:] if info.filename == damaged else data)
        with pytest.raises(ValueError, match=f"entry '{damaged[:-4]}' is not a NumPy array"):
            dcgan.checkpoint.read(p)


def test_save_is_atomic(tmp_path, monkeypatch):
    tr = dcgan.Trainer(small_cfg())
    p = tr.save(tmp_path / "ck.npz")
    before = p.read_bytes()
    tr.step(np.zeros((8, 1, 28, 28), np.float32))

    def crash(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        tr.save(p)
    assert p.read_bytes() == before  # the last good checkpoint is intact
    assert [f.name for f in tmp_path.iterdir()] == ["ck.npz"]  # no temp file left
    dcgan.Trainer.load(p)


def test_ctrl_c_stops_on_a_step_boundary_and_resumes_exactly(tmp_path, images):
    """SIGINT during fit (as Ctrl-C or Jupyter's interrupt sends it) stops at a step boundary;
    the trainer is intact, and continuing gives exactly the uninterrupted run."""
    import os
    import signal

    ref = dcgan.Trainer(small_cfg())
    ref.fit(images, steps=15, progress=False)

    class Interrupt(dcgan.Callback):
        def on_step(self, trainer, step, stats):
            if step == 4:
                os.kill(os.getpid(), signal.SIGINT)

    tr = dcgan.Trainer(small_cfg())
    tr.fit(images, steps=15, progress=False, callbacks=[Interrupt()])
    stopped = tr.step_count
    assert 5 <= stopped < 15
    assert len(tr.history["d_loss"]) == stopped  # history matches the steps done
    # The handler is removed again: a later SIGINT raises as usual.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    path = tr.save(tmp_path / "ck.npz")
    resumed = dcgan.Trainer.load(path)
    resumed.fit(images, steps=15 - stopped, progress=False)
    assert resumed.history["d_loss"] == ref.history["d_loss"]
    assert resumed.history["g_loss"] == ref.history["g_loss"]


def test_history_export(tmp_path, images):
    tr = dcgan.Trainer(small_cfg())
    tr.fit(images, steps=3, progress=False)
    j = json.loads(tr.history_to_json(tmp_path / "h.json").read_text())
    assert j["d_loss"] == tr.history["d_loss"] and len(j["epoch"]) == 3
    lines = tr.history_to_csv(tmp_path / "h.csv").read_text().splitlines()
    assert lines[0].split(",")[:3] == ["step", "epoch", "d_loss"] and len(lines) == 4


def test_custom_config_round_trips(tmp_path):
    """A Config built field by field (no preset) saves and loads like a preset's."""
    g, d = small_cfg().layers()
    cfg = dcgan.Config(batch_size=8, z_dim=8, generator=g, discriminator=d, seed=1)
    assert cfg.preset_name == "custom"
    assert dcgan.Config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    p = dcgan.Trainer(cfg).save(tmp_path / "custom.npz")
    assert dcgan.Trainer.load(p).cfg == cfg


def test_save_and_load_take_the_same_path(tmp_path, images):
    """save(p) and load(p) accept the same path, with or without .npz (issue 7)."""
    tr = dcgan.Trainer(small_cfg())
    tr.fit(images, steps=3, progress=False)
    written = tr.save(tmp_path / "run")
    assert written == tmp_path / "run.npz" and written.is_file()
    assert not (tmp_path / "run").exists()
    for p in (tmp_path / "run", str(tmp_path / "run"), tmp_path / "run.npz"):
        back = dcgan.Trainer.load(p)
        assert back.step_count == 3
        for name, w in tr.weights("generator").items():
            np.testing.assert_array_equal(back.weights("generator")[name], w)
    np.testing.assert_array_equal(dcgan.Generator.load(tmp_path / "run").generate(4, seed=1),
                                  tr.generate(4, seed=1))
    g = tr.save_generator(tmp_path / "gen.v2")
    assert g.name == "gen.v2.npz"
    np.testing.assert_array_equal(dcgan.Generator.load(tmp_path / "gen.v2").generate(4, seed=1),
                                  tr.generate(4, seed=1))
    with pytest.raises(FileNotFoundError, match=r"nope or .*nope\.npz"):
        dcgan.Trainer.load(tmp_path / "nope")
