"""Hostile files and failing runs (issue 9): no input crashes the process, divergence is never
silent, a checkpoint is one consistent snapshot, nothing poisoned loads, work is bounded by the
input's size, and 16-bit images have the right pixels. Each test failed before its fix."""
from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import pickle
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dcgan
from dcgan import _core, checkpoint
from dcgan.datasets import load_image_folder, read_cifar_batch, read_idx
from dcgan.datasets.cifar import UnsafePickleError


def tiny(**kw) -> dcgan.Config:
    return dcgan.Config.mnist(batch_size=8, z_dim=8, g_width=4, d_width=4, seed=3, **kw)


def images(n: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def rewrite(path: Path, meta_edit=None, arrays_edit=None, extra=None) -> Path:
    """A copy of checkpoint `path` with its meta.json and arrays edited."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("meta.json").tobytes())
    if meta_edit:
        meta_edit(meta)
    if arrays_edit:
        arrays_edit(arrays)
    out = path.with_name("edited.npz")
    arrays["meta.json"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(out, **arrays)
    if extra:
        with zipfile.ZipFile(out, "a") as zf:
            for name, data in extra.items():
                zf.writestr(name, data)
    return out


@pytest.fixture
def saved(tmp_path) -> Path:
    tr = dcgan.Trainer(tiny())
    tr.fit(images(), steps=3, progress=False)
    return tr.save(tmp_path / "run")


# ----------------------------------------------------------------------------- 1. no crash
@pytest.mark.parametrize("field", ["cursor", "step", "adam_t_d", "adam_t_g", "epoch"])
def test_huge_counters_in_a_checkpoint_are_refused(saved, field):
    bad = rewrite(saved, meta_edit=lambda m: m["train_state"].__setitem__(field, 2**63 - 5))
    with pytest.raises(ValueError, match=rf"train_state.{field}.*\[0, 2\^48\]"):
        dcgan.Trainer.load(bad)


@pytest.mark.parametrize("field", ["cursor", "step", "adam_t_d", "epoch"])
def test_the_core_range_checks_counters_too(field):
    tr = _core.Trainer(tiny().core_config())
    with pytest.raises(ValueError, match=rf"'{field}' = .* is outside \[0, 2\^48\]"):
        tr.set_train_state({field: 2**62})
    with pytest.raises(ValueError, match="wrong type"):
        tr.set_train_state({field: 2**64})


def test_a_cursor_past_the_data_starts_the_next_epoch():
    tr = dcgan.Trainer(tiny())
    tr._core.set_train_state({"cursor": 2**48, "epoch": 3})
    tr.fit(images(), steps=2, progress=False)
    st = tr._core.get_train_state()
    assert st["epoch"] == 4 and st["cursor"] == 16


def test_a_reshape_whose_size_overflows_is_refused_at_planning():
    layers = [{"type": "dense", "out": 4}, {"type": "reshape", "shape": [2**31, 2**31, 2**31]}]
    with pytest.raises(ValueError, match="more values than an int64"):
        _core.Network(layers, [3], 1)
    with pytest.raises(ValueError, match="2\\^34"):
        _core.Network([{"type": "dense", "out": 2**35}], [3], 1)


def nested_tuple_pickle(depth: int) -> bytes:
    # EMPTY_TUPLE, then TUPLE1 `depth` times: a tuple nested `depth` deep.
    return b"\x80\x02)" + b"\x85" * depth + b"."


def test_deeply_nested_cifar_pickle_is_refused_before_unpickling(tmp_path):
    p = tmp_path / "data_batch_1"
    p.write_bytes(nested_tuple_pickle(150_000))
    code = f"from dcgan.datasets import read_cifar_batch\ntry:\n read_cifar_batch({str(p)!r})\nexcept Exception as e:\n print(type(e).__name__, e)\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]  # no crash of the interpreter
    assert "UnsafePickleError" in r.stdout and "nests containers more than 32 deep" in r.stdout
    p.write_bytes(nested_tuple_pickle(40))
    with pytest.raises(UnsafePickleError, match="nests containers"):
        read_cifar_batch(p)


class _NdarrayCall:
    """Pickles as numpy.ndarray((10**9,), uint8, buffer, 0, (0,)): a zero-stride view."""

    def __reduce__(self):
        return (np.ndarray, ((640, 480, 3), np.dtype("u1"), b"\x00" * 16, 0, (0, 0, 0)))


def test_cifar_pickle_may_not_call_ndarray(tmp_path):
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": _NdarrayCall(), b"labels": [0]}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"numpy.ndarray\(...\)"):
        read_cifar_batch(p)


class _LyingArray:
    """Pickles as NumPy does (_reconstruct, then BUILD), with a shape of 20,000 rows over a
    buffer of 2."""

    def __reduce__(self):
        try:
            from numpy._core.multiarray import _reconstruct
        except ImportError:  # NumPy 1.x
            from numpy.core.multiarray import _reconstruct
        state = (1, (20_000, 3072), np.dtype("u1"), False, b"\x00" * (2 * 3072))
        return (_reconstruct, (np.ndarray, (0,), b"b"), state)


def test_cifar_array_buffer_must_match_its_shape(tmp_path):
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]}, protocol=2))
    x, y = read_cifar_batch(p)
    assert x.shape == (2, 32, 32, 3) and y.tolist() == [1, 2]
    p.write_bytes(pickle.dumps({b"data": _LyingArray(), b"labels": [1, 2]}, protocol=2))
    with pytest.raises(ValueError, match="buffer size does not match|not a readable CIFAR"):
        read_cifar_batch(p)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_in_an_image_folder_is_skipped(tmp_path):
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(tmp_path / "a.png")
    os.mkfifo(tmp_path / "b.png")
    with pytest.warns(UserWarning, match="b.png: not a regular file"):
        x, _, _ = load_image_folder(tmp_path, size=8)
    assert x.shape[0] == 1


def test_threads_are_bounded():
    with pytest.raises(ValueError, match=r"threads must be an integer in \[0, 256\].*OpenMP"):
        tiny(threads=1000).validate()
    with pytest.raises(ValueError, match=r"threads must be in \[0, 256\]"):
        _core.Trainer({**tiny().core_config(), "threads": 1000})


def test_a_batch_too_large_for_memory_is_refused_with_the_numbers():
    with pytest.raises(ValueError, match=r"batch_size 100000 needs at least [\d.]+ GB .* but [\d.]+ GB are available "
                                         r"to the cpu backend"):
        dcgan.Trainer(dcgan.Config.preset("dcgan64", batch_size=100_000))


# ----------------------------------------------------------------------------- 2. divergence
def test_divergence_stops_training_and_never_reaches_a_checkpoint(tmp_path):
    tr = dcgan.Trainer(tiny(lr=1e6))
    good = tr.save(tmp_path / "good")
    before = good.read_bytes()
    with pytest.raises(FloatingPointError, match=r"training diverged at step (\d+).*learning rate"):
        tr.fit(images(), steps=50, progress=False)
    step = tr._diverged_at
    assert step is not None and 1 <= step <= tr.step_count
    assert len(tr.history["d_loss"]) == tr.step_count  # the history still matches the core
    with pytest.raises(ValueError, match="refusing to save.*diverged"):
        tr.save(tmp_path / "good")
    assert good.read_bytes() == before
    with pytest.raises(FloatingPointError, match="diverged at step"):
        tr.fit(images(), steps=1, progress=False)


def test_save_checks_every_array_itself(tmp_path):
    # The second line of defence: even a trainer not marked diverged never writes NaN or Inf.
    tr = dcgan.Trainer(tiny(lr=1e6))
    with pytest.raises(FloatingPointError):
        tr.fit(images(), steps=50, progress=False)
    tr._diverged_at = None
    with pytest.raises(ValueError, match=r"refusing to save.*holds NaN or Inf"):
        tr.save(tmp_path / "x")
    assert not (tmp_path / "x.npz").exists()


def test_cli_divergence_keeps_the_last_good_checkpoints(tmp_path):
    from dcgan.cli import main

    data = tmp_path / "mnist"
    data.mkdir()
    x = images(64)
    for name, arr, magic in (("train-images-idx3-ubyte.gz", x, 0x0803),
                             ("train-labels-idx1-ubyte.gz", np.zeros(64, np.uint8), 0x0801)):
        head = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
        (data / name).write_bytes(gzip.compress(head + arr.tobytes()))
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"preset": "mnist", "g_width": 4, "d_width": 4, "batch_size": 8, "threads": 1,
                               "lr": 1e6, "epochs": 50}))
    out = tmp_path / "o"
    rc = main(["train", "--config", str(cfg), "--data", str(data), "--out", str(out),
               "--checkpoint-every", "1", "--keep-checkpoints", "3", "--no-progress"])
    assert rc == 3
    kept = sorted((out / "checkpoints").glob("*.npz"))
    assert not (out / "checkpoint.npz").exists() or dcgan.Trainer.load(out / "checkpoint.npz")
    for p in kept:  # every kept checkpoint is finite and loads
        dcgan.Trainer.load(p)


# ----------------------------------------------------------------------------- 3. snapshots
def test_save_while_fit_runs_in_another_thread_is_one_step_boundary(tmp_path):
    tr = dcgan.Trainer(tiny())
    x = images(256)
    stop = threading.Event()

    def train():
        while not stop.is_set():
            tr.fit(x, steps=8, progress=False)

    t = threading.Thread(target=train)
    t.start()
    try:
        paths = [tr.save(tmp_path / f"s{i}") for i in range(12)]
    finally:
        stop.set()
        t.join()
    for p in paths:
        back = dcgan.Trainer.load(p)
        st = back._core.get_train_state()
        # Consistent: the history has exactly the saved step count, and Adam's counts agree.
        assert len(back.history["d_loss"]) == st["step"] == st["adam_t_d"] == st["adam_t_g"]
        # Re-running from scratch to that step gives the saved parameters.
        ref = dcgan.Trainer(tiny())
        if st["step"]:
            ref.fit(x, steps=st["step"], progress=False)
        for net in ("generator", "discriminator"):
            for k, v in ref.weights(net).items():
                np.testing.assert_array_equal(back.weights(net)[k], v, err_msg=f"{p} {net} {k}")


# ----------------------------------------------------------------------------- 4. poisoned files
def _set_adam_v(value):
    def edit(a):
        a["generator.adam/v"] = np.full_like(a["generator.adam/v"], value)
    return edit


@pytest.mark.parametrize("edit, match", [
    (dict(arrays_edit=_set_adam_v(np.nan)), r"generator.adam/v holds NaN"),
    (dict(arrays_edit=_set_adam_v(-1.0)), r"generator.adam/v has negative values"),
    (dict(arrays_edit=lambda a: a.__setitem__("generator/1.running_var", -np.ones_like(a["generator/1.running_var"]))),
     r"generator/1.running_var has negative values"),
    (dict(meta_edit=lambda m: m["history"].__setitem__("d_loss", m["history"]["d_loss"][:-1])),
     r"'history' series differ in length"),
    (dict(meta_edit=lambda m: m["history"].update({k: v[:-1] for k, v in m["history"].items()})),
     r"'history' has 2 steps but 'train_state.step' is 3"),
    (dict(meta_edit=lambda m: m["history"].__setitem__("g_loss", ["a", "b", "c"])), r"'history.g_loss' must be a list of numbers"),
    (dict(meta_edit=lambda m: m.__setitem__("kind", "everything")), r"'kind' is 'everything'"),
    (dict(meta_edit=lambda m: m.__setitem__("train_state", 5)), r"'train_state' must be an object"),
    (dict(meta_edit=lambda m: m["train_state"].__setitem__("step", "3")), r"'train_state.step' = '3'"),
    (dict(meta_edit=lambda m: m.__setitem__("history", [1, 2])), r"'history' must be an object"),
    (dict(meta_edit=lambda m: m.__setitem__("config", [1])), r"'config' must be an object"),
])
def test_poisoned_checkpoints_are_refused_naming_the_field(saved, edit, match):
    bad = rewrite(saved, **edit)
    with pytest.raises(ValueError, match=match) as e:
        dcgan.Trainer.load(bad)
    assert str(bad) in str(e.value)


def test_generator_load_checks_too(saved):
    bad = rewrite(saved, arrays_edit=lambda a: a.__setitem__("generator/0.weight", a["generator/0.weight"] * np.inf))
    with pytest.raises(ValueError, match="generator/0.weight holds NaN or Inf"):
        dcgan.Generator.load(bad)


# ----------------------------------------------------------------------------- 5. bounded work
def test_gzip_idx_bomb_is_refused_without_decompressing_it(tmp_path):
    header = (0x0803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (10, 28, 28))
    p = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(p, "wb") as f:  # declares 7,840 bytes, expands to 1 GB
        f.write(header)
        chunk = b"\x00" * (1 << 20)
        for _ in range(1024):
            f.write(chunk)
    assert p.stat().st_size < 2 << 20
    import time

    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="trailing data"):
        read_idx(p)
    assert time.perf_counter() - t0 < 2.0
    big = tmp_path / "big-idx3-ubyte.gz"
    big.write_bytes(gzip.compress((0x0803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (100_000, 300, 300))))
    with pytest.raises(ValueError, match="declares shape .* more than the"):
        read_idx(big)


def test_checkpoint_with_an_unknown_member_is_refused_unread(saved):
    bad = rewrite(saved, extra={"junk.npy": b"x" * 1000})
    with pytest.raises(ValueError, match="unexpected entry 'junk.npy'"):
        checkpoint.read(bad)


def test_checkpoint_member_declaring_more_than_the_file_is_refused(saved, tmp_path):
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(saved) as zin, zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    with pytest.raises(ValueError, match="stored entries only"):
        checkpoint.read(bad)


def test_stale_temp_files_of_killed_saves_are_removed(tmp_path):
    tr = dcgan.Trainer(tiny())
    code = ("import os, dcgan\n"
            "from dcgan import checkpoint\n"
            "tr = dcgan.Trainer(dcgan.Config.mnist(batch_size=8, z_dim=8, g_width=4, d_width=4))\n"
            f"checkpoint.np.savez = lambda f, **k: (f.write(b'x' * 1000), os._exit(9))\n"
            f"tr.save({str(tmp_path / 'run')!r})\n")
    for _ in range(3):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert r.returncode == 9, r.stderr[-1000:]
    # Each killed save removed its dead predecessor's file: one is left.
    stale = list(tmp_path.glob(".run.npz.*.tmp"))
    assert len(stale) == 1
    tr.save(tmp_path / "run")
    assert list(tmp_path.glob(".run.npz.*.tmp")) == []
    dcgan.Trainer.load(tmp_path / "run.npz")


# ----------------------------------------------------------------------------- 6. pixels
def test_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    a = np.array([[0, 32768], [65535, 1000]], np.uint16).repeat(4, 0).repeat(4, 1)
    Image.fromarray(a).save(tmp_path / "g.png")
    x, _, _ = load_image_folder(tmp_path, size=8, channels=1)
    vals = sorted(set(x.reshape(-1).tolist()))
    assert vals == [0, 4, 128, 255], vals


def test_checkpoint_with_an_unsupported_zip_version_is_a_value_error(saved, tmp_path):
    # Found by the fuzzer: zipfile raises NotImplementedError for a version it cannot extract.
    data = bytearray(saved.read_bytes())
    cd = data.find(b"PK\x01\x02")  # the first central-directory entry
    data[cd + 6:cd + 8] = (213).to_bytes(2, "little")  # "version needed to extract" 21.3
    bad = tmp_path / "v.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not a readable dcgan checkpoint"):
        checkpoint.read(bad)


def test_deeply_nested_json_is_a_clear_error(saved, tmp_path, capsys):
    from dcgan.cli import main

    deep = "[" * 100_000 + "]" * 100_000
    bad = rewrite(saved)
    with zipfile.ZipFile(saved) as zin:
        names = zin.namelist()
    arrays = dict(np.load(saved, allow_pickle=False))
    arrays["meta.json"] = np.frombuffer(deep.encode(), np.uint8)
    np.savez(bad, **{k[:-4] if k.endswith(".npy") else k: v for k, v in arrays.items()})
    assert "meta.json.npy" in names
    with pytest.raises(ValueError, match="meta.json is damaged"):
        checkpoint.read(bad)
    cfg = tmp_path / "deep.json"
    cfg.write_text(deep)
    with pytest.raises(SystemExit) as e:
        main(["train", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "not valid JSON" in capsys.readouterr().err
