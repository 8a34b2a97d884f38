"""Every layer of the C++ core against a float64 NumPy reference, forward and backward.

For each case the core's `Network` runs forward (training mode) and backward with dy = R, a fixed
random array, so its input gradient and parameter gradients are those of the scalar loss
L = sum(y * R). The checks:

(a) forward: the core's float32 output against `ref_forward`, a float64 NumPy implementation
    written here from the layer definitions (TensorFlow "same" padding, PyTorch layouts);
(b) backward: dx and every parameter gradient against central finite differences of L computed
    in float64 with `ref_forward` (never with the float32 core, whose rounding would swamp the
    differences). Step h = 1e-6 in float64: truncation O(h^2) and rounding O(1e-16/h) are both
    far below the tolerances.

Tolerances (`assert_close`): |core - ref| <= ATOL * max|ref| + RTOL * |ref| elementwise, with
    forward:   RTOL = 1e-5, ATOL = 1e-5
    gradients: RTOL = 1e-4, ATOL = 1e-5  (BatchNorm: ATOL = 5e-5, its input gradient is a
               difference of sums of nearly equal terms, so float32 cancellation is larger)
i.e. errors are measured against the scale of the tensor, as float32 accumulation over a few
hundred terms gives errors of ~1e-6 of that scale.

Inputs to ReLU/LeakyReLU are kept away from the kink (|x| >= 1e-2 where it matters), so that
the finite differences never straddle it.
"""
import numpy as np
import pytest

from conftest import CoreOnDevice

# Every test here runs on each available backend (the `device` fixture, tests/conftest.py).
core = CoreOnDevice()


@pytest.fixture(autouse=True)
def _on_device(device):
    core.device = device


FWD_RTOL, FWD_ATOL = 1e-5, 1e-5
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-5
BN_GRAD_ATOL = 5e-5
FD_H = 1e-6


# ---------------------------------------------------------------------------------------------
# float64 NumPy reference
def same_pad(size, k, s):
    """TensorFlow 'same' for a convolution: (out, lo, hi)."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


def conv_pads(layer, h, w):
    """(top, bottom, left, right) of a conv2d, the way the spec defines them."""
    k, s, p = layer["kernel"], layer.get("stride", 1), layer.get("padding", 0)
    if p == "same":
        _, t, b = same_pad(h, k, s)
        _, l, r = same_pad(w, k, s)
        return t, b, l, r
    p = 0 if p == "valid" else p
    return p, p, p, p


def convt_crop(layer, h, w):
    """(out_h, out_w, top, left) crop of the full transposed-convolution output."""
    k, s, p = layer["kernel"], layer.get("stride", 1), layer.get("padding", 0)
    if p == "same":
        oh, ow = h * s, w * s
        th, tw = (h - 1) * s + k - oh, (w - 1) * s + k - ow
        return oh, ow, th // 2, tw // 2
    p = 0 if p == "valid" else p
    op = layer.get("output_padding", 0)
    return (h - 1) * s - 2 * p + k + op, (w - 1) * s - 2 * p + k + op, p, p


def ref_conv2d(x, W, b, layer):
    k, s = layer["kernel"], layer.get("stride", 1)
    t, bo, l, r = conv_pads(layer, x.shape[2], x.shape[3])
    xp = np.pad(x, ((0, 0), (0, 0), (t, bo), (l, r)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    y = np.einsum("nchwij,ocij->nohw", win, W)
    return y if b is None else y + b[None, :, None, None]


def ref_conv_transpose2d(x, W, b, layer):
    k, s = layer["kernel"], layer.get("stride", 1)
    n, c, h, w = x.shape
    oh, ow, top, left = convt_crop(layer, h, w)
    fh, fw = (h - 1) * s + k, (w - 1) * s + k
    # Full output, with room for PyTorch's output_padding beyond the full size.
    full = np.zeros((n, W.shape[1], max(fh, top + oh), max(fw, left + ow)))
    for i in range(k):
        for j in range(k):
            full[:, :, i:i + s * (h - 1) + 1:s, j:j + s * (w - 1) + 1:s] += np.einsum(
                "nchw,co->nohw", x, W[:, :, i, j])
    y = full[:, :, top:top + oh, left:left + ow]
    return y if b is None else y + b[None, :, None, None]


def bn_axes(x):
    return (0,) if x.ndim == 2 else (0, 2, 3)


def bn_bcast(v, x):
    return v if x.ndim == 2 else v[None, :, None, None]


def ref_batchnorm(x, gamma, beta, layer, training, state=None):
    """state: {"mean", "var"} running statistics (read in inference; returned updated in training)."""
    eps, m = layer.get("eps", 1e-5), layer.get("momentum", 0.1)
    ax = bn_axes(x)
    if training:
        mean, var = x.mean(axis=ax), x.var(axis=ax)
        cnt = x.size // x.shape[1]
        new_state = None
        if state is not None:
            new_state = {"mean": (1 - m) * state["mean"] + m * mean,
                         "var": (1 - m) * state["var"] + m * var * cnt / max(cnt - 1, 1)}
    else:
        mean, var, new_state = state["mean"], state["var"], state
    xh = (x - bn_bcast(mean, x)) / np.sqrt(bn_bcast(var, x) + eps)
    return bn_bcast(gamma, x) * xh + bn_bcast(beta, x), new_state


def ref_forward(layers, params, x, training=True, masks=None, states=None):
    """float64 forward of a layer list. params: {"i.weight": ..., "i.bias": ...};
    masks: {i: dropout multiplier array (already scaled by 1/(1-p))};
    states: {i: {"mean", "var"}} BN running stats, read in inference."""
    masks, states = masks or {}, states or {}
    for i, L in enumerate(layers):
        t = L["type"]
        W, b = params.get(f"{i}.weight"), params.get(f"{i}.bias")
        if t == "dense":
            x = x @ W.T + (0 if b is None else b)
        elif t == "conv2d":
            x = ref_conv2d(x, W, b, L)
        elif t == "conv_transpose2d":
            x = ref_conv_transpose2d(x, W, b, L)
        elif t == "batchnorm":
            x, _ = ref_batchnorm(x, W, b, L, training, states.get(i))
        elif t == "relu":
            x = np.maximum(x, 0)
        elif t == "leaky_relu":
            x = np.where(x > 0, x, L.get("slope", 0.01) * x)
        elif t == "tanh":
            x = np.tanh(x)
        elif t == "sigmoid":
            x = 1 / (1 + np.exp(-x))
        elif t == "dropout":
            if training and L.get("p", 0) > 0:
                x = x * masks[i]
        elif t == "reshape":
            x = x.reshape((x.shape[0],) + tuple(L["shape"]))
        elif t == "flatten":
            x = x.reshape(x.shape[0], -1)
        else:
            raise ValueError(t)
    return x


def finite_diff(f, arrays, R, h=FD_H):
    """Central differences of L = sum(f(arrays) * R) w.r.t. every element of every array."""
    grads = {}
    for name, a in arrays.items():
        g = np.zeros_like(a)
        flat, gflat = a.reshape(-1), g.reshape(-1)
        for j in range(flat.size):
            v = flat[j]
            flat[j] = v + h
            lp = np.sum(f(arrays) * R)
            flat[j] = v - h
            lm = np.sum(f(arrays) * R)
            flat[j] = v
            gflat[j] = (lp - lm) / (2 * h)
        grads[name] = g
    return grads


def assert_close(actual, expected, rtol, atol, what):
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(np.max(np.abs(expected)), 1e-30)
    err = np.abs(actual - expected)
    bad = err > atol * scale + rtol * np.abs(expected)
    if bad.any():
        j = np.unravel_index(np.argmax(err - rtol * np.abs(expected)), err.shape)
        raise AssertionError(
            f"{what}: {bad.sum()} of {bad.size} elements off; worst at {j}: core {actual[j]:.8g} "
            f"vs reference {expected[j]:.8g} (scale {scale:.3g}, rtol {rtol}, atol {atol}*scale)")


# ---------------------------------------------------------------------------------------------
# Harness
def random_params(net, rng):
    """Random float32 values for every parameter (biases and BN beta nonzero, gamma around 1)."""
    out = {}
    for name, a in net.get_params().items():
        if name.endswith(".weight") and a.ndim == 1:  # BN gamma
            v = 1 + 0.3 * rng.standard_normal(a.shape)
        elif a.ndim >= 2:
            fan_in = a[0].size if a.ndim == 2 else a.shape[1] * a.shape[2] * a.shape[3]
            v = rng.standard_normal(a.shape) / np.sqrt(fan_in)
        else:
            v = 0.3 * rng.standard_normal(a.shape)
        out[name] = v.astype(np.float32)
    return out


def away_from_zero(a, margin=1e-2):
    return np.where(np.abs(a) < margin, np.sign(a + 1e-12) * margin + a, a)


def check_layers(layers, in_shape, batch, seed=0, masks=None, grad_atol=GRAD_ATOL, x=None,
                 fd_params=True, counter=0):
    """Forward vs reference, then dx and parameter gradients vs finite differences."""
    rng = np.random.default_rng(seed)
    net = core.Network(layers, list(in_shape), batch, seed=seed)
    params = random_params(net, rng)
    net.set_params(params)
    if x is None:
        x = away_from_zero(rng.standard_normal((batch, *in_shape))).astype(np.float32)
    y = net.forward(x, training=True, counter=counter)
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    x64 = x.astype(np.float64)
    ref = ref_forward(layers, p64, x64, True, masks)
    assert_close(y, ref, FWD_RTOL, FWD_ATOL, "forward")

    R = rng.standard_normal(y.shape)
    dx = net.backward(R.astype(np.float32), need_d_input=True)
    grads = net.get_grads()
    arrays = {"x": x64.copy()}
    if fd_params:
        arrays.update({k: v.copy() for k, v in p64.items()})

    def f(a):
        return ref_forward(layers, {k: v for k, v in a.items() if k != "x"} or p64, a["x"], True, masks)

    fd = finite_diff(f, arrays, R)
    assert_close(dx, fd["x"], GRAD_RTOL, grad_atol, "d input")
    if fd_params:
        assert set(grads) == set(params), (sorted(grads), sorted(params))
        for k in params:
            assert_close(grads[k], fd[k], GRAD_RTOL, grad_atol, f"grad {k}")
    return net, y


# ---------------------------------------------------------------------------------------------
# Dense
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch", [1, 3])
def test_dense(bias, batch):
    check_layers([{"type": "dense", "out": 5, "bias": bias}], (7,), batch)


def test_dense_param_shapes():
    net = core.Network([{"type": "dense", "out": 5}], [7], 2)
    shapes = {k: v.shape for k, v in net.get_params().items()}
    assert shapes == {"0.weight": (5, 7), "0.bias": (5,)}


# ---------------------------------------------------------------------------------------------
# Conv2d: (in_shape, layer, expected (top, bottom, left, right) padding, expected out H, W)
CONV_CASES = [
    ((3, 7, 7), dict(out=4, kernel=3, stride=1, padding="same"), (1, 1, 1, 1), (7, 7)),
    ((2, 10, 10), dict(out=3, kernel=5, stride=2, padding="same"), (1, 2, 1, 2), (5, 5)),
    ((1, 28, 28), dict(out=2, kernel=5, stride=2, padding="same"), (1, 2, 1, 2), (14, 14)),
    ((2, 7, 7), dict(out=3, kernel=4, stride=2, padding="same"), (1, 2, 1, 2), (4, 4)),
    ((2, 8, 6), dict(out=3, kernel=3, stride=2, padding="same"), (0, 1, 0, 1), (4, 3)),
    ((2, 5, 5), dict(out=3, kernel=5, stride=1, padding="same"), (2, 2, 2, 2), (5, 5)),
    ((3, 7, 7), dict(out=2, kernel=3, stride=2, padding="valid"), (0, 0, 0, 0), (3, 3)),
    ((2, 5, 5), dict(out=3, kernel=3, stride=2, padding=1), (1, 1, 1, 1), (3, 3)),
    ((2, 7, 5), dict(out=2, kernel=3, stride=1, padding=2), (2, 2, 2, 2), (9, 7)),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv2d(case, bias):
    in_shape, spec, pads, hw = CONV_CASES[case]
    layer = {"type": "conv2d", "bias": bias, **spec}
    batch = 1 if case % 3 == 2 else 2
    net, y = check_layers([layer], in_shape, batch, seed=case)
    d = net.describe()[0]
    assert tuple(d["padding"]) == pads
    assert tuple(d["out_shape"]) == (spec["out"], *hw) == y.shape[1:]
    assert net.get_params()["0.weight"].shape == (spec["out"], in_shape[0], spec["kernel"], spec["kernel"])


# ---------------------------------------------------------------------------------------------
# ConvTranspose2d: (in_shape, layer, expected out H, W)
CONVT_CASES = [
    ((3, 7, 7), dict(out=2, kernel=5, stride=2, padding="same"), (14, 14)),  # crop (1, 2): TF, not torch p=2/op=1
    ((2, 7, 7), dict(out=3, kernel=5, stride=1, padding="same"), (7, 7)),
    ((2, 4, 5), dict(out=2, kernel=4, stride=2, padding="same"), (8, 10)),
    ((2, 5, 5), dict(out=2, kernel=3, stride=2, padding="same"), (10, 10)),
    ((2, 4, 4), dict(out=3, kernel=3, stride=2, padding=1, output_padding=1), (8, 8)),
    ((3, 5, 5), dict(out=2, kernel=5, stride=2, padding=2, output_padding=1), (10, 10)),
    ((2, 4, 4), dict(out=2, kernel=4, stride=2, padding=1), (8, 8)),
    ((2, 3, 5), dict(out=2, kernel=3, stride=2, padding="valid"), (7, 11)),
    ((2, 5, 4), dict(out=2, kernel=5, stride=3, padding=2, output_padding=2), (15, 12)),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", range(len(CONVT_CASES)))
def test_conv_transpose2d(case, bias):
    in_shape, spec, hw = CONVT_CASES[case]
    layer = {"type": "conv_transpose2d", "bias": bias, **spec}
    batch = 1 if case % 3 == 1 else 2
    net, y = check_layers([layer], in_shape, batch, seed=100 + case)
    assert tuple(net.describe()[0]["out_shape"]) == (spec["out"], *hw) == y.shape[1:]
    assert net.get_params()["0.weight"].shape == (in_shape[0], spec["out"], spec["kernel"], spec["kernel"])


def test_conv_transpose2d_output_padding_beyond_padding_is_refused():
    # PyTorch allows output_padding > padding (zeros past the full output); the core does not.
    with pytest.raises(ValueError, match="output_padding"):
        core.Network([{"type": "conv_transpose2d", "out": 2, "kernel": 3, "stride": 3,
                       "padding": 0, "output_padding": 2}], [2, 5, 5], 1)


def test_conv_transpose2d_same_is_tf_crop():
    # 5x5 stride-2 "same" from 7 to 14: the full output (17) is cropped [1:15] (TensorFlow),
    # which is PyTorch's padding=2/output_padding=1 shifted by one pixel.
    net = core.Network([{"type": "conv_transpose2d", "out": 1, "kernel": 5, "stride": 2,
                         "padding": "same", "bias": False}], [1, 7, 7], 1)
    assert tuple(net.describe()[0]["padding"]) == (1, 2, 1, 2)
    w = np.zeros((1, 1, 5, 5), np.float32)
    w[0, 0, 0, 0] = 1.0  # full[2h, 2w] = x[h, w]
    net.set_params({"0.weight": w})
    x = np.zeros((1, 1, 7, 7), np.float32)
    x[0, 0, 1, 1] = 1.0  # full position (2, 2) -> output (1, 1)
    y = net.forward(x)
    assert y[0, 0, 1, 1] == 1.0 and np.count_nonzero(y) == 1


# ---------------------------------------------------------------------------------------------
# BatchNorm
@pytest.mark.parametrize("in_shape,batch", [((3, 4, 5), 2), ((2, 3, 3), 1), ((6,), 4), ((5,), 2)])
def test_batchnorm_training(in_shape, batch):
    check_layers([{"type": "batchnorm", "momentum": 0.1, "eps": 1e-5}], in_shape, batch,
                 seed=7, grad_atol=BN_GRAD_ATOL)


@pytest.mark.parametrize("in_shape,batch", [((3, 4, 5), 2), ((6,), 4)])
def test_batchnorm_running_stats_and_inference(in_shape, batch):
    m, eps = 0.2, 1e-3
    layer = {"type": "batchnorm", "momentum": m, "eps": eps}
    rng = np.random.default_rng(3)
    net = core.Network([layer], list(in_shape), batch)
    params = random_params(net, rng)
    net.set_params(params)
    st = net.get_state()
    c = in_shape[0]
    np.testing.assert_array_equal(st["0.running_mean"], np.zeros(c, np.float32))
    np.testing.assert_array_equal(st["0.running_var"], np.ones(c, np.float32))

    x = (2 + 3 * rng.standard_normal((batch, *in_shape))).astype(np.float32)
    net.forward(x, training=True)
    x64 = x.astype(np.float64)
    ax = bn_axes(x64)
    mean, uvar = x64.mean(axis=ax), x64.var(axis=ax, ddof=1)
    st = net.get_state()
    assert_close(st["0.running_mean"], m * mean, 1e-5, 1e-6, "running mean")
    assert_close(st["0.running_var"], (1 - m) * 1 + m * uvar, 1e-5, 1e-6, "running var (unbiased)")

    # A second training forward: the stats move again, from where they are.
    x2 = rng.standard_normal((batch, *in_shape)).astype(np.float32)
    net.forward(x2, training=True)
    st2 = net.get_state()
    x2_64 = x2.astype(np.float64)
    assert_close(st2["0.running_mean"], (1 - m) * m * mean + m * x2_64.mean(axis=ax), 1e-5, 1e-6,
                 "running mean, 2nd update")
    assert_close(st2["0.running_var"], (1 - m) * ((1 - m) + m * uvar) + m * x2_64.var(axis=ax, ddof=1),
                 1e-5, 1e-6, "running var, 2nd update")

    # Inference uses the running statistics (and leaves them alone).
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    state = {"mean": st2["0.running_mean"].astype(np.float64), "var": st2["0.running_var"].astype(np.float64)}
    y = net.forward(x, training=False)
    ref, _ = ref_batchnorm(x64, p64["0.weight"], p64["0.bias"], layer, False, state)
    assert_close(y, ref, FWD_RTOL, FWD_ATOL, "inference forward")
    st3 = net.get_state()
    for k in st3:
        np.testing.assert_array_equal(st3[k], st2[k])
    # ... and differs from the batch-statistics output.
    assert not np.allclose(y, net.forward(x, training=True), atol=1e-3)

    # Running stats set by hand are what inference uses.
    rm = rng.standard_normal(c).astype(np.float32)
    rv = (0.5 + rng.random(c)).astype(np.float32)
    net.set_params({"0.running_mean": rm, "0.running_var": rv})
    y = net.forward(x, training=False)
    ref, _ = ref_batchnorm(x64, p64["0.weight"], p64["0.bias"], layer, False,
                           {"mean": rm.astype(np.float64), "var": rv.astype(np.float64)})
    assert_close(y, ref, FWD_RTOL, FWD_ATOL, "inference forward with set running stats")


def test_batchnorm_inside_stack_running_stats():
    # BN after a conv (blocked activations): running stats still per channel, in channel order.
    layers = [{"type": "conv2d", "out": 5, "kernel": 3, "padding": "same"},
              {"type": "batchnorm", "momentum": 0.1}]
    rng = np.random.default_rng(11)
    net = core.Network(layers, [3, 6, 6], 2)
    params = random_params(net, rng)
    net.set_params(params)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    net.forward(x, training=True)
    h = ref_conv2d(x.astype(np.float64), params["0.weight"].astype(np.float64),
                   params["0.bias"].astype(np.float64), layers[0])
    st = net.get_state()
    assert set(st) == {"1.running_mean", "1.running_var"}
    assert_close(st["1.running_mean"], 0.1 * h.mean(axis=(0, 2, 3)), 1e-5, 1e-6, "running mean")
    assert_close(st["1.running_var"], 0.9 + 0.1 * h.var(axis=(0, 2, 3), ddof=1), 1e-5, 1e-6, "running var")


# ---------------------------------------------------------------------------------------------
# Element-wise activations, alone (own output buffer) and after a conv (in place)
ACTS = [{"type": "relu"}, {"type": "leaky_relu", "slope": 0.3}, {"type": "leaky_relu"},
        {"type": "tanh"}, {"type": "sigmoid"}]


@pytest.mark.parametrize("act", range(len(ACTS)))
@pytest.mark.parametrize("in_shape,batch", [((2, 3, 4), 2), ((5,), 1)])
def test_activation(act, in_shape, batch):
    check_layers([ACTS[act]], in_shape, batch, seed=act)


@pytest.mark.parametrize("act", range(len(ACTS)))
def test_activation_after_conv_in_place(act):
    layers = [{"type": "conv2d", "out": 3, "kernel": 3, "padding": "same"}, ACTS[act]]
    check_layers(layers, (2, 5, 5), 2, seed=20 + act)


def test_activation_chain():
    # eltwise after eltwise (needs its own buffer: the first one's backward reads its output)
    layers = [{"type": "dense", "out": 6}, {"type": "leaky_relu", "slope": 0.2}, {"type": "tanh"},
              {"type": "sigmoid"}, {"type": "relu"}]
    check_layers(layers, (4,), 3, seed=5)


def test_leaky_relu_default_slope_is_0_01():
    net = core.Network([{"type": "leaky_relu"}], [2], 1)
    y = net.forward(np.array([[-1.0, 2.0]], np.float32))
    np.testing.assert_allclose(y, [[-0.01, 2.0]], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Dropout
def test_dropout_mask_statistics_and_determinism():
    p, batch, F = 0.3, 4, 2000
    net = core.Network([{"type": "dropout", "p": p}], [F], batch, seed=9)
    x = np.ones((batch, F), np.float32)
    y0 = net.forward(x, training=True, counter=0)
    vals = np.unique(y0)
    np.testing.assert_allclose(vals, [0.0, 1 / (1 - p)], rtol=1e-6)
    drop = np.mean(y0 == 0)
    sd = np.sqrt(p * (1 - p) / y0.size)
    assert abs(drop - p) < 5 * sd, drop
    # same counter -> same mask; another counter -> another mask
    np.testing.assert_array_equal(net.forward(x, training=True, counter=0), y0)
    y1 = net.forward(x, training=True, counter=1)
    assert not np.array_equal(y1, y0)
    assert abs(np.mean(y0 == y1) - (p * p + (1 - p) ** 2)) < 0.05
    # the same seed in another network gives the same mask; another seed another one
    np.testing.assert_array_equal(
        core.Network([{"type": "dropout", "p": p}], [F], batch, seed=9).forward(x, counter=0), y0)
    assert not np.array_equal(
        core.Network([{"type": "dropout", "p": p}], [F], batch, seed=10).forward(x, counter=0), y0)
    # inference: identity
    xr = np.random.default_rng(0).standard_normal((batch, F)).astype(np.float32)
    np.testing.assert_array_equal(net.forward(xr, training=False), xr)


def test_dropout_p0_is_identity():
    net = core.Network([{"type": "dropout", "p": 0.0}], [3, 4, 4], 2)
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(net.forward(x, training=True), x)
    dy = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(net.backward(dy), dy)


@pytest.mark.parametrize("in_shape,batch", [((7,), 3), ((2, 3, 5), 1)])
def test_dropout_gradients(in_shape, batch):
    p, ctr = 0.4, 17
    layer = {"type": "dropout", "p": p}
    # The mask at this counter, read off a forward of ones (the same seed and counter fix it).
    probe = core.Network([layer], list(in_shape), batch, seed=4)
    mask = probe.forward(np.ones((batch, *in_shape), np.float32), counter=ctr).astype(np.float64)
    assert 0 < np.count_nonzero(mask) < mask.size
    check_layers([layer], in_shape, batch, seed=4, masks={0: mask}, counter=ctr)


def test_dropout_in_stack_first_layer():
    # dropout as layer 0 of a stack: its mask is the probe network's (same seed, index, counter)
    p, ctr, batch = 0.25, 3, 3
    layers = [{"type": "dropout", "p": p}, {"type": "dense", "out": 4}, {"type": "tanh"}]
    probe = core.Network(layers[:1], [6], batch, seed=8)
    mask = probe.forward(np.ones((batch, 6), np.float32), counter=ctr).astype(np.float64)
    check_layers(layers, (6,), batch, seed=8, masks={0: mask}, counter=ctr)


def test_dropout_after_conv():
    # After a conv the activations may be channel-blocked; the mask is still one multiplier per
    # element, in {0, 1/(1-p)}, and backward applies the forward's mask.
    p, batch = 0.5, 2
    conv = {"type": "conv2d", "out": 3, "kernel": 3, "padding": "same"}
    layers = [conv, {"type": "dropout", "p": p}]
    rng = np.random.default_rng(12)
    net = core.Network(layers, [2, 5, 5], batch, seed=12)
    params = random_params(net, rng)
    net.set_params(params)
    x = rng.standard_normal((batch, 2, 5, 5)).astype(np.float32)
    y = net.forward(x, training=True, counter=5)
    h = ref_conv2d(x.astype(np.float64), params["0.weight"].astype(np.float64),
                   params["0.bias"].astype(np.float64), conv)
    kept = y != 0
    assert 0.3 < kept.mean() < 0.7
    np.testing.assert_allclose(y[kept], h[kept] / (1 - p), rtol=1e-5, atol=1e-5)
    mask = kept / (1 - p)
    np.testing.assert_array_equal(net.forward(x, training=True, counter=5), y)
    check_layers(layers, (2, 5, 5), batch, seed=12, masks={1: mask}, x=x, counter=5)


# ---------------------------------------------------------------------------------------------
# Reshape / flatten
def test_reshape_and_flatten():
    layers = [{"type": "reshape", "shape": [2, 3, 4]}, {"type": "flatten"}]
    net = core.Network(layers, [24], 2)
    x = np.arange(48, dtype=np.float32).reshape(2, 24)
    np.testing.assert_array_equal(net.forward(x), x)
    d = net.describe()
    assert tuple(d[0]["out_shape"]) == (2, 3, 4) and tuple(d[1]["out_shape"]) == (24,)
    check_layers([{"type": "reshape", "shape": [2, 3, 4]}, {"type": "tanh"}], (24,), 2, seed=2)
    check_layers([{"type": "flatten"}, {"type": "sigmoid"}], (2, 3, 2), 1, seed=3)


def test_reshape_after_conv_and_flatten_after_conv():
    # a reshape that must reorder out of a blocked layout, in both directions
    layers = [{"type": "conv2d", "out": 4, "kernel": 3, "padding": "same"}, {"type": "flatten"},
              {"type": "dense", "out": 3}]
    check_layers(layers, (2, 4, 4), 2, seed=30)
    layers = [{"type": "conv2d", "out": 4, "kernel": 3, "stride": 2, "padding": "same"},
              {"type": "reshape", "shape": [1, 8, 8]}, {"type": "conv2d", "out": 2, "kernel": 3}]
    check_layers(layers, (3, 8, 8), 2, seed=31)


# ---------------------------------------------------------------------------------------------
# Small stacks shaped like the project's G and D
def test_generator_like_stack():
    layers = [
        {"type": "dense", "out": 4 * 3 * 3, "bias": False},
        {"type": "batchnorm"},
        {"type": "leaky_relu", "slope": 0.3},
        {"type": "reshape", "shape": [4, 3, 3]},
        {"type": "conv_transpose2d", "out": 3, "kernel": 5, "stride": 1, "padding": "same", "bias": False},
        {"type": "batchnorm"},
        {"type": "leaky_relu", "slope": 0.3},
        {"type": "conv_transpose2d", "out": 2, "kernel": 5, "stride": 2, "padding": "same", "bias": False},
        {"type": "batchnorm"},
        {"type": "relu"},
        {"type": "conv_transpose2d", "out": 1, "kernel": 5, "stride": 2, "padding": "same", "bias": False},
        {"type": "tanh"},
    ]
    net, y = check_layers(layers, (5,), 4, seed=40, grad_atol=BN_GRAD_ATOL)
    assert y.shape == (4, 1, 12, 12)


def test_discriminator_like_stack():
    layers = [
        {"type": "conv2d", "out": 3, "kernel": 5, "stride": 2, "padding": "same"},
        {"type": "leaky_relu", "slope": 0.3},
        {"type": "dropout", "p": 0.0},
        {"type": "conv2d", "out": 4, "kernel": 5, "stride": 2, "padding": "same", "bias": False},
        {"type": "batchnorm"},
        {"type": "leaky_relu", "slope": 0.2},
        {"type": "flatten"},
        {"type": "dense", "out": 1},
        {"type": "sigmoid"},
    ]
    net, y = check_layers(layers, (1, 9, 9), 3, seed=41, grad_atol=BN_GRAD_ATOL)
    assert y.shape == (3, 1)
