"""Rough edges of the public API a new user meets first: Trainer.summary() in a notebook, integer
images, Config's repr and replace(), and what a channel or size mismatch says."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import dcgan


def tiny(**kw) -> dcgan.Config:
    return dcgan.Config.mnist(batch_size=8, z_dim=8, g_width=4, d_width=4, seed=3, **kw)


def tiny_rgb(**kw) -> dcgan.Config:
    return dcgan.Config.cifar10(batch_size=8, z_dim=8, g_width=4, d_width=4, seed=3, **kw)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (16, 28, 28), dtype=np.uint8)


def history(x, steps=2, **fit):
    tr = dcgan.Trainer(tiny())
    tr.fit(x, steps=steps, progress=False, **fit)
    return tr.history


# ------------------------------------------------------------------------------- 1. summary()
def test_summary_displays_as_a_multiline_table(capsys):
    tr = dcgan.Trainer(tiny())
    s = tr.summary()
    text = str(s)
    # Still a str: existing callers (print, `in`, str methods) keep working.
    assert isinstance(s, str) and type(text) is str and text == s
    assert text.startswith("generator  (") and "\ndiscriminator  (" in text and "conv2d" in s
    # A bare `tr.summary()` at the prompt shows the table, not an escaped one-line string.
    assert repr(s) == text and "\\n" not in repr(s) and not repr(s).startswith("'")
    html = s._repr_html_()
    assert html.startswith("<pre>") and html.endswith("</pre>") and "generator  (" in html
    assert "->" not in html and "-&gt;" in html  # escaped
    print(tr.summary())
    assert capsys.readouterr().out == text + "\n"


def test_summary_in_ipython_and_jupyter():
    pytest.importorskip("IPython")
    from IPython.core.formatters import DisplayFormatter
    from IPython.lib.pretty import pretty

    s = dcgan.Trainer(tiny()).summary()
    assert pretty(s) == str(s)
    data, _ = DisplayFormatter().format(s)
    assert data["text/plain"] == str(s)
    assert data["text/html"].startswith("<pre>generator  (")


# ------------------------------------------------------------------------------- 2. integer images
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16, np.uint16, np.uint32, "list"])
def test_fit_accepts_integer_images_in_0_255(digits, dtype):
    x = digits.tolist() if dtype == "list" else digits.astype(dtype)
    assert history(x) == history(digits)


def test_integer_images_out_of_range_say_what_was_found(digits):
    x = digits.astype(np.int64)
    x[0, 0, 0], x[3, 4, 5] = -3, 300
    tr = dcgan.Trainer(tiny())
    with pytest.raises(ValueError, match=r"x holds integers in \[-3, 300\]; integer images must hold 0\.\.255 "
                                         r"pixel values \(or pass floats with input_range="):
        tr.fit(x, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"\[-3, 300\]"):
        tr.discriminate(x)
    assert tr.step_count == 0


def test_bool_images_get_a_clear_error(digits):
    tr = dcgan.Trainer(tiny())
    with pytest.raises(TypeError, match=r"x is a boolean array; images must be uint8 or floating point.*astype"):
        tr.fit(digits > 127, steps=1, progress=False)
    with pytest.raises(TypeError, match="boolean"):
        dcgan.prepare_images(digits > 127, (1, 28, 28), (-1.0, 1.0))


def test_prepare_images_and_discriminate_accept_integers(digits):
    cfg = tiny()
    want = dcgan.prepare_images(digits, cfg.image_shape, cfg.data_range)
    for x in (digits.astype(np.int64), digits.astype(np.int32), digits.tolist(), digits[..., None].astype(np.int64)):
        got = dcgan.prepare_images(x, cfg.image_shape, cfg.data_range)
        assert got.dtype == np.float32 and np.array_equal(got, want)
    tr = dcgan.Trainer(cfg)
    np.testing.assert_array_equal(tr.discriminate(digits.astype(np.int64)), tr.discriminate(digits))
    np.testing.assert_array_equal(tr.discriminate(digits[:3].tolist()), tr.discriminate(digits[:3]))


def test_integer_memmap_is_converted_and_uint8_memmap_is_not_copied(tmp_path, digits):
    np.save(tmp_path / "ints.npy", digits.astype(np.int16))
    ints = np.load(tmp_path / "ints.npy", mmap_mode="r")
    assert history(ints) == history(digits)
    np.save(tmp_path / "u8.npy", digits)
    u8 = np.load(tmp_path / "u8.npy", mmap_mode="r")
    tr = dcgan.Trainer(tiny())
    tr.fit(u8, steps=1, progress=False)
    assert np.shares_memory(tr._data.array, u8)
    # A .npy path is read a batch at a time: integer files other than uint8 are refused, saying how to convert.
    with pytest.raises(TypeError, match=r"holds int16 images; a \.npy file read per batch.*astype\(np\.uint8\)"):
        tr.fit(tmp_path / "ints.npy", steps=1, progress=False)


# ------------------------------------------------------------------------------- 3. Config repr / replace
def test_config_repr_is_multiline_and_rebuilds_the_config():
    assert repr(dcgan.Config.mnist(batch_size=64)) == "Config(preset_name='mnist',\n    batch_size=64)"
    assert repr(dcgan.Config()) == "Config()"
    cfg = dcgan.Config.cifar10(batch_size=8, betas_g=(0.5, 0.9))
    r = repr(cfg)
    lines = r.splitlines()
    assert lines[0] == "Config(preset_name='cifar10',"
    assert "    image_shape=(3, 32, 32)," in lines and "    batch_size=8," in lines and lines[-1].endswith(")")
    assert all(line.startswith("    ") and line.count("=") == 1 for line in lines[1:])
    assert "dropout" not in r  # only what differs from the defaults
    back = eval(r, {"Config": dcgan.Config})
    assert back == cfg and back.preset_name == "cifar10"
    g, _ = tiny().layers()
    custom = tiny(generator=g)
    assert eval(repr(custom), {"Config": dcgan.Config}) == custom and repr(custom).count("{'type'") == len(g)


def test_config_replace_returns_a_validated_copy():
    cfg = dcgan.Config.cifar10(batch_size=16)
    new = cfg.replace(batch_size=8, lr=1e-3)
    assert (new.batch_size, new.lr, new.preset_name) == (8, 1e-3, "cifar10")
    assert (cfg.batch_size, cfg.lr) == (16, 1e-4)  # the original is untouched
    assert new == dataclasses.replace(cfg, batch_size=8, lr=1e-3)
    assert cfg.replace(image_shape=[3, 64, 64]).image_shape == (3, 64, 64)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        cfg.replace(lr=-1.0)
    with pytest.raises(TypeError, match=r"unknown Config field\(s\): 'batchsize' \(did you mean batch_size\?\)"):
        cfg.replace(batchsize=8)
    with pytest.raises(TypeError, match=r"'learning_rate'.*'zzz'"):
        cfg.replace(learning_rate=1e-3, zzz=1)
    # The preset constructors name close matches too.
    with pytest.raises(TypeError, match=r"'g_widht' \(did you mean g_width"):
        dcgan.Config.mnist(g_widht=4)


# ------------------------------------------------------------------------------- 4. channels vs size
def test_three_channel_model_given_one_channel_data_says_channels():
    tr = dcgan.Trainer(tiny_rgb())
    mnist_like = np.zeros((16, 28, 28), np.uint8)
    with pytest.raises(ValueError) as e:
        tr.fit(mnist_like, steps=1, progress=False)
    msg = str(e.value)
    assert "channel count differs: the model expects 3 channels, the data has 1" in msg
    assert "np.repeat(x[:, None], 3, axis=1)" in msg and "1-channel config" in msg
    assert "image_shape=(1, 28, 28)" in msg
    # The size differs too here: that is said as well.
    assert "the data is 28x28, the model expects 32x32" in msg and "resize_images(x, (32, 32))" in msg
    # Only the channels differ: no advice to resize.
    for x, hint in ((np.zeros((16, 32, 32), np.uint8), "np.repeat(x[:, None], 3, axis=1)"),
                    (np.zeros((16, 32, 32, 1), np.uint8), "np.repeat(x, 3, axis=-1)"),
                    (np.zeros((16, 1, 32, 32), np.float32), "np.repeat(x, 3, axis=1)")):
        with pytest.raises(ValueError, match="the model expects 3 channels, the data has 1") as e:
            tr.fit(x, steps=1, progress=False)
        assert hint in str(e.value) and "resize" not in str(e.value).lower()
    with pytest.raises(ValueError, match=r"the data has 4.*alpha channel \(x\[\.\.\., :3\]\)"):
        tr.discriminate(np.zeros((2, 32, 32, 4), np.uint8))


def test_one_channel_model_given_rgb_data_says_channels():
    tr = dcgan.Trainer(tiny())
    with pytest.raises(ValueError, match=r"the model expects 1 channel, the data has 3.*grayscale") as e:
        tr.fit(np.zeros((16, 28, 28, 3), np.uint8), steps=1, progress=False)
    assert "resize" not in str(e.value).lower() and "image_shape=(3, 28, 28)" in str(e.value)


def test_size_mismatch_says_resize():
    tr = dcgan.Trainer(tiny())
    for x in (np.zeros((16, 32, 32), np.uint8), np.zeros((16, 1, 32, 32), np.uint8), np.zeros((16, 32, 32, 1), np.uint8)):
        with pytest.raises(ValueError, match=r"the data is 32x32, the model expects 28x28\. Resize the images "
                                             r"\(dcgan\.datasets\.resize_images\(x, \(28, 28\)\)") as e:
            tr.fit(x, steps=1, progress=False)
        assert "channel" not in str(e.value)
    # One image without its batch axis is recognised.
    rgb = dcgan.Trainer(tiny_rgb())
    with pytest.raises(ValueError, match=r"single image: add the batch axis \(x\[None\]\)"):
        rgb.discriminate(np.zeros((32, 32, 3), np.uint8))
