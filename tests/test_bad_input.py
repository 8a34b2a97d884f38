"""Bad input gets a clear ValueError/TypeError naming the problem and the expectation; odd but
valid arrays (non-contiguous, read-only, other layouts) are accepted and give the same result."""
from __future__ import annotations

import numpy as np
import pytest

import dcgan
from dcgan import _core


def small_cfg(**kw):
    base = dict(batch_size=8, g_width=4, d_width=4, z_dim=8, seed=0)
    base.update(kw)
    return dcgan.Config.mnist(**base)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, size=(32, 28, 28), dtype=np.uint8)


@pytest.fixture
def trainer():
    return dcgan.Trainer(small_cfg())


# ------------------------------------------------------------------------------- fit inputs
@pytest.mark.parametrize("shape, match", [
    ((32, 784), r"shape \(32, 784\); expected"),
    ((32, 1, 28, 28, 1), r"expected \(N, 1, 28, 28\)"),
    ((32, 32, 32), r"shape \(32, 32, 32\).*resize"),
    ((32, 3, 28, 28), r"expected \(N, 1, 28, 28\)"),
    ((28, 28), r"expected"),
])
def test_wrong_ndim_or_shape(trainer, shape, match):
    with pytest.raises(ValueError, match=match):
        trainer.fit(np.zeros(shape, np.uint8), steps=1, progress=False)


# Integer dtypes other than uint8 are accepted when they hold 0..255 (tests/test_api_edges.py).
@pytest.mark.parametrize("dtype", [np.bool_, np.complex64, object, np.str_])
def test_wrong_dtype(trainer, dtype):
    with pytest.raises(TypeError, match="uint8 or floating point"):
        trainer.fit(np.zeros((32, 28, 28), dtype=dtype), steps=1, progress=False)


def test_not_an_array(trainer):
    with pytest.raises(TypeError, match="NumPy array"):
        trainer.fit({"images": 1}, steps=1, progress=False)
    # A string is the path of a .npy file (issue 7): a missing one is named.
    with pytest.raises(FileNotFoundError, match="images.npy"):
        trainer.fit("images.npy", steps=1, progress=False)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf(trainer, bad):
    x = np.random.default_rng(0).random((32, 28, 28)).astype(np.float32)
    x[3, 4, 5] = bad
    with pytest.raises(ValueError, match=r"NaN or Inf \(first at index \(3, 4, 5\)\)"):
        trainer.fit(x, steps=1, progress=False)


def test_empty(trainer):
    with pytest.raises(ValueError, match="empty"):
        trainer.fit(np.zeros((0, 28, 28), np.uint8), steps=1, progress=False)


def test_fewer_samples_than_a_batch(trainer):
    with pytest.raises(ValueError, match=r"7 images, fewer than one batch \(batch_size=8\)"):
        trainer.fit(np.zeros((7, 28, 28), np.uint8), steps=1, progress=False)


def test_float_values_out_of_any_known_range(trainer):
    x = np.full((32, 28, 28), 300.0, np.float32)
    with pytest.raises(ValueError, match=r"expected \[0, 1\], \[-1, 1\] or \[0, 255\]"):
        trainer.fit(x, steps=1, progress=False)
    with pytest.raises(ValueError, match="outside the declared input_range"):
        trainer.fit(x, steps=1, progress=False, input_range=(0, 255))


@pytest.mark.parametrize("kw, match", [
    (dict(epochs=0), "epochs must be a positive integer"),
    (dict(steps=-3), "steps must be a positive integer"),
    (dict(steps=1.5), "steps must be a positive integer"),
    (dict(epochs=1, steps=1), "epochs or steps, not both"),
])
def test_bad_fit_arguments(trainer, images, kw, match):
    with pytest.raises(ValueError, match=match):
        trainer.fit(images, progress=False, **kw)


def test_non_contiguous_read_only_and_layouts_accepted(images):
    """Odd-but-valid arrays train exactly like their plain contiguous copy."""
    ref = dcgan.Trainer(small_cfg())
    ref.fit(images, steps=3, progress=False)

    wide = np.zeros((32, 28, 56), np.uint8)
    wide[:, :, ::2] = images
    strided = wide[:, :, ::2]
    assert not strided.flags.c_contiguous
    ro = images.copy()
    ro.setflags(write=False)
    nhwc = np.ascontiguousarray(images[..., None])
    as_float = images.astype(np.float64) / 255.0
    for x in (strided, ro, nhwc, images[:, None], as_float):
        t = dcgan.Trainer(small_cfg())
        t.fit(x, steps=3, progress=False)
        np.testing.assert_allclose(t.history["d_loss"], ref.history["d_loss"], rtol=1e-6)


# ------------------------------------------------------------------------------- step / generate
def test_step_checks(trainer):
    good = np.zeros((8, 1, 28, 28), np.float32)
    with pytest.raises(TypeError, match="float32"):
        trainer.step(good.astype(np.float64))
    with pytest.raises(ValueError, match=r"expected \(8, 1, 28, 28\)"):
        trainer.step(np.zeros((4, 1, 28, 28), np.float32))
    bad = good.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        trainer.step(bad)
    with pytest.raises(ValueError, match="outside the data range"):
        trainer.step(good + 5)
    assert trainer.step_count == 0  # nothing ran
    stats = trainer.step(good)
    assert set(stats) == {"d_loss", "g_loss", "d_real", "d_fake"} and trainer.step_count == 1


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_generate_bad_n(trainer, n):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        trainer.generate(n)


def test_generate_bad_seed(trainer):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        trainer.generate(4, seed=-1)


def test_weights_bad_net_and_values(trainer):
    with pytest.raises(ValueError, match="'generator' or 'discriminator'"):
        trainer.weights("critic")
    w = trainer.weights("generator")
    with pytest.raises(ValueError, match=r"parameter '0.weight': expected shape"):
        trainer.set_weights("generator", {"0.weight": np.zeros((3, 3), np.float32)})
    with pytest.raises(ValueError, match="unknown parameter 'conv.weight'"):
        trainer.set_weights("generator", {"conv.weight": w["0.weight"]})
    bad = w["0.weight"].copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        trainer.set_weights("generator", {"0.weight": bad})
    np.testing.assert_array_equal(trainer.weights("generator")["0.weight"], w["0.weight"])


# ------------------------------------------------------------------------------- config
@pytest.mark.parametrize("kw, match", [
    (dict(lr=0), "lr must be a finite number > 0"),
    (dict(lr=-1e-3), "lr must be a finite number > 0"),
    (dict(lr=float("nan")), "lr must be a finite number > 0"),
    (dict(lr_d=0.0), "lr_d must be a finite number > 0"),
    (dict(batch_size=0), "batch_size must be a positive integer"),
    (dict(batch_size=2.5), "batch_size must be a positive integer"),
    (dict(loss="wasserstein"), "unknown loss 'wasserstein'; expected one of bce, minimax, saturating, lsgan, hinge"),
    (dict(beta1=1.0), r"beta1 must be in \[0, 1\)"),
    (dict(label_smoothing=-0.1), r"label_smoothing must be in \[0, 1\)"),
    (dict(noise="gaussian"), "unknown noise"),
    (dict(z_dim=0), "z_dim must be a positive integer"),
    (dict(image_shape=(2, 28, 28)), "channels must be 1 or 3"),
    (dict(image_shape=(1, 30, 30)), "divisible by 4"),
    (dict(seed=-1), "seed must be a non-negative integer"),
    (dict(joint=True, n_critic=2), "joint=True"),
])
def test_invalid_config(kw, match):
    with pytest.raises(ValueError, match=match):
        dcgan.Trainer(small_cfg(**kw))


def test_config_mutated_after_creation_is_checked():
    cfg = small_cfg()
    cfg.lr = -1.0
    with pytest.raises(ValueError, match="lr must be"):
        dcgan.Trainer(cfg)


def test_unknown_config_field():
    with pytest.raises(TypeError, match="unknown Config field.*learning_rate"):
        dcgan.Config.mnist(learning_rate=1e-3)
    with pytest.raises(ValueError, match="unknown preset 'celeba'"):
        dcgan.Config.preset("celeba")


def test_trainer_needs_config():
    with pytest.raises(TypeError, match="dcgan.Config"):
        dcgan.Trainer({"batch_size": 8})


def test_inconsistent_custom_architecture():
    cfg = small_cfg()
    g, d = cfg.layers()
    # Dropping the last ConvT leaves a (4, 14, 14) output: rejected at construction, saying why.
    cfg.generator = g[:-2] + [g[-1]]
    with pytest.raises(ValueError, match=r"generator output \(4, 14, 14\) does not match the image shape \(1, 28, 28\)"):
        dcgan.Trainer(cfg)
    cfg = small_cfg()
    cfg.generator = [{"type": "dense", "out": 784}, {"type": "reshape", "shape": [1, 28, 27]}]
    with pytest.raises(ValueError, match=r"generator layer 1 \(reshape\): cannot reshape"):
        dcgan.Trainer(cfg)
    cfg = small_cfg()
    cfg.discriminator = [{"type": "conv2d", "out": 0, "kernel": 3}]
    with pytest.raises(ValueError, match="output channels must be positive"):
        dcgan.Trainer(cfg)
    cfg = small_cfg()
    cfg.discriminator = [{"type": "conv2d", "out": 4, "kernel": 40, "padding": 0}]
    with pytest.raises(ValueError, match="kernel 40 is larger than the padded input 28"):
        dcgan.Trainer(cfg)
    cfg = small_cfg()
    cfg.discriminator = [{"type": "convolution"}]
    with pytest.raises(ValueError, match="unknown layer type 'convolution'"):
        dcgan.Trainer(cfg)


# ------------------------------------------------------------------------------- the C++ boundary
def test_core_checks_its_inputs():
    core = _core.Trainer(small_cfg().core_config())
    with pytest.raises(TypeError, match="float32"):
        core.step(np.zeros((8, 1, 28, 28), np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        core.step(np.zeros((8, 1, 28, 56), np.float32)[..., ::2])
    with pytest.raises(ValueError, match=r"expected shape \(8, 1, 28, 28\)"):
        core.step(np.zeros((8, 28, 28), np.float32))
    with pytest.raises(ValueError, match="NaN or Inf"):
        core.set_data(np.full((8, 1, 28, 28), np.nan, np.float32))
    with pytest.raises(ValueError, match="no training data"):
        core.run(1)
    with pytest.raises(ValueError, match="need at least one batch"):
        core.set_data(np.zeros((3, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="n must be positive"):
        core.generate(0, 0)
    with pytest.raises(ValueError, match="unknown loss"):
        _core.Trainer({**small_cfg().core_config(), "loss": "l1"})
    with pytest.raises(ValueError, match="learning rate must be > 0"):
        _core.Trainer({**small_cfg().core_config(), "lr_g": 0.0})
    with pytest.raises(ValueError, match="batch_size must be positive"):
        _core.Trainer({**small_cfg().core_config(), "batch_size": 0})
    with pytest.raises(ValueError, match="wrong type"):
        _core.Trainer({**small_cfg().core_config(), "batch_size": "eight"})
