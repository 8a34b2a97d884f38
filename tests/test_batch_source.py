"""The batch source (issue 7): the dataset is held as the user gave it (uint8 stays uint8, NCHW or
NHWC, in memory, memory-mapped or a .npy read per batch) and each batch is converted and scaled
by the backend, bit for bit as the old host-side float32 conversion did; each rank of a
data-parallel run gets its slice of every epoch's permutation."""
from __future__ import annotations

import numpy as np
import pytest

import dcgan
from dcgan import _core


def tiny(**kw) -> dcgan.Config:
    return dcgan.Config.mnist(batch_size=8, z_dim=8, g_width=4, d_width=4, seed=5, **kw)


def rgb(**kw) -> dcgan.Config:
    return dcgan.Config.cifar10(image_shape=(3, 16, 16), batch_size=4, z_dim=8, g_width=4, d_width=4,
                                seed=5, **kw)


def losses(cfg, x, steps=12, **fit):
    tr = dcgan.Trainer(cfg)
    tr.fit(x, steps=steps, progress=False, **fit)
    return tr.history


@pytest.fixture(scope="module")
def digits():
    return np.random.default_rng(1).integers(0, 256, (40, 28, 28), dtype=np.uint8)


@pytest.fixture(scope="module")
def photos():
    return np.random.default_rng(2).integers(0, 256, (20, 16, 16, 3), dtype=np.uint8)  # NHWC


def test_uint8_is_held_as_given_not_copied(digits):
    tr = dcgan.Trainer(tiny())
    tr.fit(digits, steps=1, progress=False)
    assert tr._data.array.dtype == np.uint8 and np.shares_memory(tr._data.array, digits)


def test_uint8_on_the_fly_equals_host_float32_bit_for_bit(digits, photos):
    """The backend's per-batch conversion gives exactly the losses of the float32 array that
    prepare_images makes (the path fit took before issue 7)."""
    cfg = tiny()
    assert losses(cfg, digits) == losses(cfg, dcgan.prepare_images(digits, cfg.image_shape, cfg.data_range))
    cfg = rgb()
    assert losses(cfg, photos) == losses(cfg, dcgan.prepare_images(photos, cfg.image_shape, cfg.data_range))
    nchw = np.ascontiguousarray(photos.transpose(0, 3, 1, 2))
    assert losses(cfg, photos) == losses(cfg, nchw)


def test_float_inputs_scaled_per_batch(digits):
    cfg = tiny()
    ref = losses(cfg, dcgan.prepare_images(digits, cfg.image_shape, cfg.data_range))
    unit = (digits / 255.0).astype(np.float32)
    assert losses(cfg, unit) == losses(cfg, dcgan.prepare_images(unit, cfg.image_shape, cfg.data_range))
    f64 = digits.astype(np.float64)  # read as 0..255, converted to float32 once
    assert losses(cfg, f64) == ref
    sig = tiny(output="sigmoid")
    assert losses(sig, digits) == losses(sig, dcgan.prepare_images(digits, sig.image_shape, sig.data_range))
    strided = np.zeros((40, 28, 56), np.uint8)
    strided[:, :, ::2] = digits
    assert losses(cfg, strided[:, :, ::2]) == ref  # non-contiguous: made contiguous once


def test_memmap_and_npy_path_train_like_the_array(tmp_path, digits, photos):
    cfg = tiny()
    ref = losses(cfg, digits)
    p = tmp_path / "digits.npy"
    np.save(p, digits)
    assert losses(cfg, np.load(p, mmap_mode="r")) == ref
    assert losses(cfg, p) == ref
    assert losses(cfg, str(p)) == ref
    f = tmp_path / "photos_f32.npy"
    np.save(f, (photos / 255.0).astype(np.float32))
    assert losses(rgb(), f) == losses(rgb(), (photos / 255.0).astype(np.float32))


def test_npy_file_errors(tmp_path, digits):
    tr = dcgan.Trainer(tiny())
    p = tmp_path / "short.npy"
    np.save(p, digits)
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated"):
        tr.fit(p, steps=1, progress=False)
    q = tmp_path / "fortran.npy"
    np.save(q, np.asfortranarray(digits))
    with pytest.raises(ValueError, match="Fortran order"):
        tr.fit(q, steps=1, progress=False)
    r = tmp_path / "ints.npy"
    np.save(r, digits.astype(np.int16))
    with pytest.raises(TypeError, match="uint8 or floating point"):
        tr.fit(r, steps=1, progress=False)
    d = tmp_path / "f64.npy"
    np.save(d, digits.astype(np.float64))
    with pytest.raises(TypeError, match="must be uint8 or little-endian float32"):
        tr.fit(d, steps=1, progress=False)
    s = tmp_path / "shape.npy"
    np.save(s, digits[:, :27])
    with pytest.raises(ValueError, match=r"has shape \(40, 27, 28\); expected"):
        tr.fit(s, steps=1, progress=False)
    t = tmp_path / "data.txt"
    t.write_text("not images")
    with pytest.raises(ValueError, match="must be a .npy file"):
        tr.fit(t, steps=1, progress=False)
    nan = tmp_path / "nan.npy"
    bad = (digits / 255.0).astype(np.float32)
    bad[7, 3, 2] = np.nan
    np.save(nan, bad)
    with pytest.raises(ValueError, match=r"NaN or Inf \(first at index \(7, 3, 2\)\)"):
        tr.fit(nan, steps=1, progress=False)
    assert tr.step_count == 0


def test_core_checks_file_and_format_itself(tmp_path):
    core = _core.Trainer(tiny().core_config())
    with pytest.raises(ValueError, match="No such file"):
        core.set_data_file(str(tmp_path / "none.npy"), 128, 10, "uint8", "nchw", None)
    f = tmp_path / "raw.bin"
    f.write_bytes(bytes(784 * 9))
    with pytest.raises(ValueError, match="promises"):
        core.set_data_file(str(f), 0, 10, "uint8", "nchw", None)
    with pytest.raises(TypeError, match="uint8 or float32"):
        core.set_data_file(str(f), 0, 9, "int16", "nchw", None)
    with pytest.raises(ValueError, match="layout must be"):
        core.set_data_file(str(f), 0, 9, "uint8", "chwn", None)
    with pytest.raises(ValueError, match="need at least one batch"):
        core.set_data_file(str(f), 0, 7, "uint8", "nchw", None)
    with pytest.raises(ValueError, match="scale must be finite"):
        core.set_data(np.zeros((9, 28, 28, 1), np.uint8), "nhwc", (0.0, float("nan"), -1.0))
    core.set_data_file(str(f), 0, 9, "uint8", "nchw", (0.0, 2 / 255, -1.0))
    stats = core.run(2)
    assert stats.shape == (2, 4) and np.isfinite(stats).all()


# ----------------------------------------------------------------------------- sharding
def test_world_one_is_the_plain_shuffled_order():
    n, b = 50, 8
    got = _core.sample_indices(n, b, 7, 0, 1, steps=12)
    # 6 steps per epoch (the last 2 images of each epoch dropped), each epoch a permutation
    for e in range(2):
        ep = got[6 * e:6 * (e + 1)].reshape(-1)
        assert len(set(ep.tolist())) == 48 and ep.min() >= 0 and ep.max() < n
    assert not np.array_equal(got[:6], got[6:])


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_share_each_global_batch(world):
    n, b, seed, steps = 100, 4, 11, 20
    per_rank = [_core.sample_indices(n, b, seed, r, world, steps) for r in range(world)]
    whole = _core.sample_indices(n, b * world, seed, 0, 1, steps)
    # rank r's batch is slice r of the single-process batch of size b * world
    assert np.array_equal(np.concatenate(per_rank, axis=1), whole)
    spe = n // (b * world)
    first_epoch = np.concatenate([p[:spe].reshape(-1) for p in per_rank])
    assert len(set(first_epoch.tolist())) == spe * b * world  # no image twice in an epoch


def test_sampler_bad_arguments():
    with pytest.raises(ValueError, match="rank 2 is outside world size 2"):
        _core.sample_indices(10, 2, 0, 2, 2, 1)
    with pytest.raises(ValueError, match="on each of 4 ranks"):
        _core.sample_indices(10, 4, 0, 0, 4, 1)
