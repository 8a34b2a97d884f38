"""dcgan.plot: sample grids, loss figures, history CSV and JSON, GIFs."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dcgan import plot
from dcgan.plot import load_history_csv, plot_losses, sample_grid, save_history_csv


def history(n=25, epochs=3, seed=0):
    rng = np.random.default_rng(seed)
    per = math.ceil(n / epochs)
    return {
        "d_loss": (1.3 + 0.1 * rng.standard_normal(n)).tolist(),
        "g_loss": (0.8 + 0.1 * rng.standard_normal(n)).tolist(),
        "d_real": rng.uniform(0.4, 0.9, n).tolist(),
        "d_fake": rng.uniform(0.1, 0.6, n).tolist(),
        "epoch": [i // per for i in range(n)],
    }


# ----------------------------------------------------------------------------- sample_grid
@pytest.mark.parametrize(
    "n,c,h,w,nrow,padding,expected",
    [
        (64, 1, 28, 28, None, 2, (8 * 30 + 2, 8 * 30 + 2)),
        (10, 3, 8, 8, 4, 2, (3 * 10 + 2, 4 * 10 + 2, 3)),  # 3 rows, last one partly empty
        (5, 1, 6, 4, None, 0, (2 * 6, 3 * 4)),  # nrow = ceil(sqrt(5)) = 3
        (3, 1, 5, 5, 10, 1, (1 * 6 + 1, 3 * 6 + 1)),  # nrow > n: one row of n
        (1, 1, 28, 28, None, 2, (32, 32)),
        (7, 1, 4, 4, 1, 3, (7 * 7 + 3, 1 * 7 + 3)),  # a column
    ],
)
def test_grid_shape(n, c, h, w, nrow, padding, expected):
    g = sample_grid(np.zeros((n, c, h, w), np.float32), nrow=nrow, padding=padding)
    assert g.shape == expected and g.dtype == np.uint8


def test_grid_placement_row_major():
    n, h, w, p = 6, 3, 5, 2
    imgs = np.stack([np.full((1, h, w), i, np.uint8) * 10 + 5 for i in range(n)])
    g = sample_grid(imgs, nrow=4, padding=p, pad_value=0)
    for i in range(n):
        r, c = divmod(i, 4)
        y0, x0 = p + r * (h + p), p + c * (w + p)
        assert (g[y0:y0 + h, x0:x0 + w] == i * 10 + 5).all()
    # padding and the two unused cells are pad_value
    mask = np.ones_like(g, bool)
    for i in range(n):
        r, c = divmod(i, 4)
        mask[p + r * (h + p):p + r * (h + p) + h, p + c * (w + p):p + c * (w + p) + w] = False
    assert (g[mask] == 0).all()


def test_pad_value():
    g = sample_grid(np.zeros((2, 1, 2, 2), np.float32) - 1, nrow=2, padding=1, pad_value=200)
    assert g[0, 0] == 200 and g[1, 1] == 0


def test_value_mapping_default_range():
    vals = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, -3.0, 3.0, np.nan], np.float32)
    g = sample_grid(vals.reshape(1, 1, 1, -1), padding=0)
    assert g.tolist() == [[0, 64, 128, 191, 255, 0, 255, 0]]


def test_value_mapping_custom_range_and_uint8():
    x = np.array([0.0, 0.25, 1.0], np.float64).reshape(1, 1, 1, 3)
    assert sample_grid(x, value_range=(0, 1), padding=0).tolist() == [[0, 64, 255]]
    u = np.array([0, 7, 255], np.uint8).reshape(1, 1, 1, 3)
    assert sample_grid(u, padding=0).tolist() == [[0, 7, 255]]  # uint8 taken as 0..255
    with pytest.raises(ValueError, match="value_range"):
        sample_grid(x, value_range=(1, 1))


def test_rgb_and_layouts():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (4, 3, 5, 6)).astype(np.float32)
    g = sample_grid(x, nrow=2, padding=1)
    assert g.shape == (2 * 6 + 1, 2 * 7 + 1, 3)
    assert np.array_equal(g, sample_grid(x.transpose(0, 2, 3, 1), nrow=2, padding=1))  # NHWC
    grey = x[:, :1]
    assert np.array_equal(sample_grid(grey), sample_grid(grey[:, 0]))  # (n, H, W)


@pytest.mark.parametrize("shape", [(3, 2, 4, 4), (0, 1, 4, 4), (4,), (1, 1, 1, 1, 1)])
def test_bad_shapes(shape):
    with pytest.raises(ValueError):
        sample_grid(np.zeros(shape, np.float32))


def test_bad_nrow_padding():
    with pytest.raises(ValueError, match="nrow"):
        sample_grid(np.zeros((2, 1, 2, 2)), nrow=0)
    with pytest.raises(ValueError, match="padding"):
        sample_grid(np.zeros((2, 1, 2, 2)), padding=-1)


@pytest.mark.parametrize("c,mode", [(1, "L"), (3, "RGB")])
def test_png_written_and_readable(tmp_path, c, mode):
    x = np.random.default_rng(2).uniform(-1, 1, (9, c, 7, 7)).astype(np.float32)
    path = tmp_path / "sub" / "dir" / "grid.png"  # parents are created
    g = sample_grid(x, path=path)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == mode
        assert np.array_equal(np.asarray(im), g)
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["grid.png"]  # no temp files left
    sample_grid(-x, path=path)  # overwrite in place
    with Image.open(path) as im:
        assert not np.array_equal(np.asarray(im), g)


def test_atomic_write_failure_keeps_old_file(tmp_path):
    path = tmp_path / "f.png"
    path.write_bytes(b"old")

    def boom(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        plot._atomic_write(path, boom)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]


# ----------------------------------------------------------------------------- plot_losses
def test_plot_losses_figure_and_png(tmp_path):
    from matplotlib.figure import Figure

    path = tmp_path / "losses.png"
    fig = plot_losses(history(), path=path, title="run")
    assert isinstance(fig, Figure)
    axes = fig.get_axes()
    assert len(axes) == 2
    labels = [t.get_text() for ax in axes for t in ax.get_legend().get_texts()]
    assert labels == ["D loss", "G loss", "D(x)", "D(G(z))"]
    # raw (faint) + smoothed line per series
    assert len(axes[0].get_lines()) >= 4 and len(axes[1].get_lines()) >= 4
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 200
    assert [p.name for p in tmp_path.iterdir()] == ["losses.png"]


@pytest.mark.parametrize("smooth", [None, 0, 0.5, 0.99, 1, 5, 1000])
def test_plot_losses_smoothing_options(smooth):
    fig = plot_losses(history(30), smooth=smooth)
    assert len(fig.get_axes()) == 2


@pytest.mark.parametrize("smooth", [1.0, -0.1, 1.5, -2, True])
def test_smooth_validation(smooth):
    with pytest.raises(ValueError, match="smooth"):
        plot_losses(history(5), smooth=smooth)


def test_smoothing_values():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert plot._smooth(y, 2).tolist() == [1.0, 1.5, 2.5, 3.5]  # trailing window
    ema = plot._smooth(y, 0.5)
    assert ema[0] == 1.0  # bias-corrected: starts at the first value
    assert ema[1] == pytest.approx((0.25 * 1 + 0.5 * 2) / 0.75)
    assert plot._smooth(y, None) is None
    nan = plot._smooth(np.array([1.0, np.nan, 3.0]), 3)
    assert nan.tolist() == [1.0, 1.0, 2.0]  # NaN skipped


def test_plot_losses_accepts_trainer_like_and_partial_history(tmp_path):
    class T:
        history = {"d_loss": [1.0, 0.9], "g_loss": [0.5, 0.6]}

    fig = plot_losses(T(), path=tmp_path / "l.png")
    assert len(fig.get_axes()) == 2
    plot_losses({"d_loss": [], "g_loss": []})  # empty history still draws
    with pytest.raises(ValueError, match="different lengths"):
        plot_losses({"d_loss": [1.0, 2.0], "g_loss": [1.0]})
    with pytest.raises(TypeError):
        plot_losses([1, 2, 3])


def test_plot_does_not_need_pyplot_or_display(tmp_path):
    """Headless: no DISPLAY, no pyplot import, Agg only."""
    code = (
        "import sys; from dcgan.plot import plot_losses;"
        f"plot_losses({{'d_loss':[1.,2.],'g_loss':[2.,1.]}}, path={str(tmp_path / 'x.png')!r});"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "x.png").is_file()


# ----------------------------------------------------------------------------- CSV
def test_history_csv_content(tmp_path):
    h = history(7, epochs=2)
    path = save_history_csv(h, tmp_path / "losses.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "step,epoch,d_loss,g_loss,d_real,d_fake"
    assert len(lines) == 8
    first = lines[1].split(",")
    assert first[0] == "0" and first[1] == "0"
    assert float(first[2]) == pytest.approx(h["d_loss"][0], rel=1e-8)
    assert lines[-1].split(",")[:2] == ["6", "1"]
    back = load_history_csv(path)
    assert back["step"] == list(range(7)) and back["epoch"] == h["epoch"]
    for k in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert np.allclose(back[k], h[k], rtol=1e-8)
    assert [p.name for p in tmp_path.iterdir()] == ["losses.csv"]


def test_history_csv_float32_exact_and_missing_columns(tmp_path):
    vals = np.float32([0.1, 1 / 3, 12345.678, 1e-7])
    h = {"d_loss": [float(v) for v in vals], "g_loss": vals, "step": [10, 11, 12, 13]}
    path = save_history_csv(h, tmp_path / "h.csv")
    rows = [r.split(",") for r in path.read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == ["10", "11", "12", "13"]
    assert all(r[1] == "" and r[4] == "" and r[5] == "" for r in rows)  # no epoch/d_real/d_fake
    back = load_history_csv(path)
    assert np.array_equal(np.float32(back["d_loss"]), vals)
    assert np.array_equal(np.float32(back["g_loss"]), vals)
    assert set(back) == {"step", "d_loss", "g_loss"}


def test_history_csv_empty_and_mismatch(tmp_path):
    path = save_history_csv({"d_loss": [], "g_loss": []}, tmp_path / "e.csv")
    assert path.read_text() == "step,epoch,d_loss,g_loss,d_real,d_fake\n"
    with pytest.raises(ValueError):
        save_history_csv({"d_loss": [1.0], "g_loss": [1.0, 2.0]}, tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists()


def test_figure_renders_itself_for_jupyter():
    fig = plot_losses(history(4))
    png = fig._repr_png_()  # what Jupyter calls to show a returned figure
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert type(fig) is plot.DisplayFigure


@pytest.mark.parametrize("backend,managed", [("Agg", False), ("module://matplotlib_inline.backend_inline", True)])
def test_pyplot_integration(tmp_path, backend, managed):
    """With an interactive backend (here Jupyter's inline one) the figure belongs to pyplot, so
    plt.show() / inline display work; with Agg it stays out of pyplot (no figure build-up)."""
    if backend.startswith("module://"):
        pytest.importorskip("matplotlib_inline")
    code = (
        "import matplotlib.pyplot as plt; from dcgan.plot import plot_losses;"
        "[plot_losses({'d_loss':[1.,2.],'g_loss':[2.,1.]}) for _ in range(3)];"
        "print(len(plt.get_fignums()))"
    )
    env = dict(os.environ, MPLBACKEND=backend, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("3" if managed else "0")


# ----------------------------------------------------------------------------- JSON history
def test_history_json_roundtrip_nan_and_steps(tmp_path):
    h = history(n=7)
    h["d_loss"][3] = float("nan")
    h["g_loss"][4] = float("inf")
    p = plot.save_history_json(h, tmp_path / "sub" / "h.json")
    text = p.read_text()
    assert "NaN" not in text and "Infinity" not in text and "null" in text  # strict JSON
    import json

    obj = json.loads(text)
    assert obj["step"] == list(range(7)) and obj["epoch"] == h["epoch"]
    back = plot.load_history_json(p)
    assert math.isnan(back["d_loss"][3]) and math.isnan(back["g_loss"][4])
    assert back["d_real"] == h["d_real"] and back["epoch"] == h["epoch"]
    # a history wrapped in an object (e.g. {"history": ...}) reads too
    (tmp_path / "w.json").write_text(json.dumps({"history": {"d_loss": [1.0, None]}, "other": 1}))
    assert math.isnan(plot.load_history_json(tmp_path / "w.json")["d_loss"][1])
    with pytest.raises(ValueError, match="different lengths"):
        plot.save_history_json({"d_loss": [1.0], "g_loss": [1.0, 2.0]}, tmp_path / "bad.json")


# ----------------------------------------------------------------------------- make_gif
def _gif_frames(path):
    frames = []
    with Image.open(path) as im:
        assert im.format == "GIF"
        info = {"loop": im.info.get("loop"), "n": im.n_frames}
        for i in range(im.n_frames):
            im.seek(i)
            frames.append((np.asarray(im.convert("RGB")).copy(), im.info.get("duration")))
    return info, frames


def test_make_gif_from_arrays(tmp_path):
    grey = [np.full((12, 10), v, np.uint8) for v in (0, 100, 200)]
    p = plot.make_gif(grey, tmp_path / "out" / "a.gif", fps=5, hold_last=0.5)
    assert p == tmp_path / "out" / "a.gif"
    info, frames = _gif_frames(p)
    assert info["n"] == 3 and info["loop"] == 0
    assert [f[0][0, 0, 0] for f in frames] == [0, 100, 200]
    assert frames[0][0].shape == (12, 10, 3)
    assert [f[1] for f in frames] == [200, 200, 700]


def test_make_gif_from_sample_grid_pngs_and_floats(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):  # RGB grids as the training callbacks save them
        imgs = rng.uniform(-1, 1, (4, 3, 8, 8)).astype(np.float32)
        paths.append(tmp_path / f"samples_step_{i:06d}.png")
        sample_grid(imgs, nrow=2, path=paths[-1])
    info, frames = _gif_frames(plot.make_gif(paths, tmp_path / "g.gif", fps=10, loop=2))
    assert info["n"] == 4 and info["loop"] == 2
    assert [dur for _, dur in frames] == [100, 100, 100, 1100]  # hold_last=1 s by default
    for (arr, _), src in zip(frames, paths):
        with Image.open(src) as im:
            ref = np.asarray(im.convert("RGB")).astype(int)
        assert arr.shape == ref.shape
        assert np.abs(arr.astype(int) - ref).mean() < 12  # GIF palettes are 256 colours
    # float (C, H, W) frames mapped from value_range; a str path mixes in
    f = plot.make_gif([np.zeros((1, 6, 6), np.float32), np.ones((6, 6), np.float32)], tmp_path / "f.gif")
    _, fr = _gif_frames(f)
    assert fr[0][0][0, 0, 0] == 128 and fr[1][0][0, 0, 0] == 255
    one = plot.make_gif([np.zeros((4, 4), np.uint8)], tmp_path / "one.gif")
    assert _gif_frames(one)[0]["n"] == 1


def test_make_gif_errors(tmp_path):
    with pytest.raises(ValueError, match="at least one frame"):
        plot.make_gif([], tmp_path / "a.gif")
    with pytest.raises(ValueError, match="frame 1 is 5x4 but frame 0 is 4x4"):
        plot.make_gif([np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8)], tmp_path / "a.gif")
    with pytest.raises(ValueError, match="fps"):
        plot.make_gif([np.zeros((4, 4), np.uint8)], tmp_path / "a.gif", fps=0)
    with pytest.raises(ValueError, match="frame 0"):
        plot.make_gif([np.zeros((4, 4, 2), np.uint8)], tmp_path / "a.gif")
    with pytest.raises(FileNotFoundError):
        plot.make_gif([tmp_path / "missing.png"], tmp_path / "a.gif")
    assert not (tmp_path / "a.gif").exists()
