"""The element-wise kernel arithmetic (core/elementwise.hpp, core/rng.hpp): the DCGAN_HD
functions the CUDA kernels run per thread, evaluated on the host (dcgan._core.kernels) and
checked against float64 references and against the CPU backend, so CPU-only CI tests the GPU's
arithmetic. Tolerances: bit-exact where the CPU backend runs the same function (losses, Adam,
dropout masks, noise, data scaling); 2 ulp-level (rtol 1e-6) against oneDNN's activations and
1e-5 against its BatchNorm, which use their own approximations and summation orders."""
from __future__ import annotations

import numpy as np
import pytest

import dcgan
from dcgan import _core

K = _core.kernels
LOSSES = ("bce", "minimax", "saturating", "lsgan", "hinge")


def softplus(x):
    return np.logaddexp(0.0, x)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def ref_d(loss, real, x, t):
    if loss == "lsgan":
        return 0.5 * (x - t) ** 2, x - t, x
    if loss == "hinge":
        if real:
            return np.maximum(0, 1 - x), np.where(x < 1, -1.0, 0.0), x
        return np.maximum(0, 1 + x), np.where(x > -1, 1.0, 0.0), x
    return softplus(x) - t * x, sigmoid(x) - t, sigmoid(x)


def ref_g(loss, x):
    if loss == "saturating":
        return -softplus(x), -sigmoid(x), sigmoid(x)
    if loss == "lsgan":
        return 0.5 * (x - 1) ** 2, x - 1, x
    if loss == "hinge":
        return -x, -np.ones_like(x), x
    return softplus(-x), sigmoid(x) - 1, sigmoid(x)


@pytest.mark.parametrize("loss", LOSSES)
def test_loss_terms_against_float64(loss):
    x = np.concatenate([np.linspace(-40, 40, 161), [-1.0, 1.0, 0.0, 1e-9, -1e-9]])
    for real, t in ((True, 1.0), (True, 0.9), (False, 0.0)):
        got = K.d_loss_terms(loss, real, x, t)
        for g, r in zip(got, ref_d(loss, real, x, t)):
            np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)
    for g, r in zip(K.g_loss_terms(loss, x), ref_g(loss, x)):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)


def test_loss_terms_are_the_cpu_backends():
    """The trainer's reported D loss is the mean of the kernels' terms on D's logits."""
    cfg = dcgan.Config.mnist(batch_size=8, z_dim=8, g_width=4, d_width=4, seed=2, dropout=0.0)
    tr = dcgan.Trainer(cfg)
    x = dcgan.prepare_images(np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8),
                             cfg.image_shape, cfg.data_range)
    logits = tr._core.discriminate(x).astype(np.float64)  # inference mode = training mode here (no BN, no dropout)
    real_loss = K.d_loss_terms("bce", True, logits, 1.0)[0].mean()
    fake = tr._core.discriminate(tr.generate(8, seed=5)).astype(np.float64)
    assert np.isfinite(real_loss) and np.isfinite(K.g_loss_terms("bce", fake)[0].mean())
    stats = tr.step(x)
    assert stats["d_real"] == pytest.approx(np.float32(K.d_loss_terms("bce", True, logits, 1.0)[2].mean()), rel=1e-6)


def test_adam_is_the_cpu_backends_bit_for_bit():
    cfg = dcgan.Config.mnist(batch_size=8, z_dim=8, g_width=4, d_width=4, seed=4, lr=3e-3, beta1=0.7,
                             beta2=0.95, adam_eps=1e-6)
    tr = dcgan.Trainer(cfg)
    x = dcgan.prepare_images(np.random.default_rng(1).integers(0, 256, (8, 28, 28), dtype=np.uint8),
                             cfg.image_shape, cfg.data_range)
    before = np.concatenate([w.ravel() for w in tr.weights("generator").values()])
    tr.step(x)
    g = np.concatenate([w.ravel() for w in tr._core.get_grads("generator", 0).values()])
    after = np.concatenate([w.ravel() for w in tr.weights("generator").values()])
    adam = tr._core.get_adam("generator")
    z = np.zeros_like(before)
    p, m, v = K.adam(before, z, z, g, 3e-3, 0.7, 0.95, 1e-6, 1)
    np.testing.assert_array_equal(m, adam["m"])
    np.testing.assert_array_equal(v, adam["v"])
    np.testing.assert_array_equal(p, after)


def test_adam_against_float64_over_steps():
    rng = np.random.default_rng(3)
    p = rng.standard_normal(1000).astype(np.float32)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    P, M, V = p.astype(np.float64), np.zeros(1000), np.zeros(1000)
    for t in range(1, 6):
        g = rng.standard_normal(1000).astype(np.float32)
        p, m, v = K.adam(p, m, v, g, 1e-2, 0.5, 0.999, 1e-8, t)
        M = 0.5 * M + 0.5 * g
        V = 0.999 * V + 0.001 * g.astype(np.float64) ** 2
        P -= 1e-2 / (1 - 0.5 ** t) * M / (np.sqrt(V) / np.sqrt(1 - 0.999 ** t) + 1e-8)
    np.testing.assert_allclose(p, P, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["relu", "leaky_relu", "tanh", "sigmoid"])
def test_activations_against_the_cpu_backend(kind):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32) * 3
    x[np.abs(x) < 1e-2] = 0.5
    layer = {"type": kind, **({"slope": 0.2} if kind == "leaky_relu" else {})}
    net = _core.Network([layer], [3, 5, 5], 4)
    y_cpu = net.forward(x)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx_cpu = net.backward(dy)
    y = K.activation(kind, x.ravel(), 0.2).reshape(x.shape)
    np.testing.assert_allclose(y, y_cpu, rtol=1e-6, atol=1e-7)
    dx = K.activation_grad(kind, y.ravel(), dy.ravel(), 0.2).reshape(x.shape)
    np.testing.assert_allclose(dx, dx_cpu, rtol=1e-5, atol=1e-6)


def test_dropout_masks_are_the_cpu_backends():
    n, p, seed, counter = 1000, 0.3, 9, 17
    net = _core.Network([{"type": "dropout", "p": p}], [n], 1, seed=seed)
    y = net.forward(np.ones((1, n), np.float32), counter=counter)
    np.testing.assert_array_equal(K.dropout_multipliers(seed, counter, 0, n, p), y[0])
    keep = (K.dropout_multipliers(seed, counter, 3, 100_000, p) > 0).mean()
    assert abs(keep - 0.7) < 0.01
    # Large enough for the parallel, 16-blocks-at-a-time path, with a tail of 3 elements.
    n = 3 * 4096 * 9 + 4 * 16 * 5 + 4 * 3 + 3
    net = _core.Network([{"type": "dropout", "p": p}], [n], 2, seed=seed)
    y = net.forward(np.ones((2, n), np.float32), counter=counter)
    np.testing.assert_array_equal(K.dropout_multipliers(seed, counter, 0, 2 * n, p), y.ravel())


@pytest.mark.parametrize("shape", [(6, 3, 4, 4), (8, 5)])
def test_batchnorm_against_the_cpu_backend(shape):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    C = shape[1]
    net = _core.Network([{"type": "batchnorm", "eps": 1e-3, "momentum": 0.2}], list(shape[1:]), shape[0])
    gamma, beta = (1 + 0.1 * rng.standard_normal(C)).astype(np.float32), (0.1 * rng.standard_normal(C)).astype(np.float32)
    net.set_params({"0.weight": gamma, "0.bias": beta})
    y_cpu = net.forward(x)
    axes = (0,) + tuple(range(2, len(shape)))
    bshape = (1, C) + (1,) * (len(shape) - 2)
    mean = x.astype(np.float64).mean(axis=axes)
    var = x.astype(np.float64).var(axis=axes)
    inv_std = 1 / np.sqrt(var + 1e-3)
    bc = lambda v: np.broadcast_to(np.asarray(v, np.float32).reshape(bshape), shape).ravel()
    y = K.bn_normalize(x.ravel(), bc(mean), bc(inv_std), bc(gamma), bc(beta)).reshape(shape)
    np.testing.assert_allclose(y, y_cpu, rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(shape).astype(np.float32)
    dx_cpu = net.backward(dy)
    xhat = (x - mean.reshape(bshape)) * inv_std.reshape(bshape)
    mdy, mdyx = dy.mean(axis=axes), (dy * xhat).mean(axis=axes)
    dx = K.bn_input_grad(dy.ravel(), xhat.astype(np.float32).ravel(), bc(gamma), bc(inv_std), bc(mdy),
                         bc(mdyx)).reshape(shape)
    np.testing.assert_allclose(dx, dx_cpu, rtol=1e-4, atol=1e-5)
    m = x.size // C
    rm, rv = K.bn_running_update(np.zeros(C, np.float32), np.ones(C, np.float32), mean.astype(np.float32),
                                 var.astype(np.float32), 0.2, m)
    st = net.get_state()
    np.testing.assert_allclose(rm, st["0.running_mean"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(rv, st["0.running_var"], rtol=1e-5)


@pytest.mark.parametrize("kind", ["normal", "uniform"])
def test_noise_is_the_cpu_backends(kind):
    cfg = dcgan.Config.mnist(batch_size=4, z_dim=8, g_width=4, d_width=4, seed=11, noise=kind)
    tr = dcgan.Trainer(cfg)
    for step in (0, 3):
        want = tr._core.noise(step)
        # stream 2 (noise), counter = step * 64 (64 draws per step)
        got = K.noise(kind, 11, 2, step * 64, want.size)
        np.testing.assert_array_equal(got, want.ravel())


def test_data_scaling_is_prepare_images():
    cfg = dcgan.Config.mnist()
    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    x = np.resize(x, (1, 28, 28))
    want = dcgan.prepare_images(x, cfg.image_shape, cfg.data_range).ravel()
    mul = float(np.float32(2 / 255))
    np.testing.assert_array_equal(K.scale_values(x.astype(np.float32).ravel(), False, 0.0, mul, -1.0), want)
    np.testing.assert_array_equal(K.scale_values(want, True, 0.0, 1.0, 0.0), want)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown loss"):
        K.d_loss_terms("l1", True, np.zeros(2), 1.0)
    with pytest.raises(ValueError, match="activation must be"):
        K.activation("gelu", np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="t must be >= 1"):
        z = np.zeros(2, np.float32)
        K.adam(z, z, z, z, 1e-3, 0.9, 0.999, 1e-8, 0)


@pytest.mark.parametrize("pads", [(1, 2, 1, 2), (2, 1, 0, 3), (0, 0, 0, 0), (3, 0, 2, 2)])
def test_pad_and_crop_indexing_is_numpys(pads):
    # The CUDA backend's explicit padding for asymmetric convolution padding (TensorFlow's
    # "same" with an odd total, PyTorch's output_padding): pad2d is np.pad with zeros, crop2d
    # its inverse.
    lo_h, hi_h, lo_w, hi_w = pads
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype(np.float32)
    xp = K.pad2d(x, lo_h, hi_h, lo_w, hi_w)
    np.testing.assert_array_equal(xp, np.pad(x, ((0, 0), (0, 0), (lo_h, hi_h), (lo_w, hi_w))))
    np.testing.assert_array_equal(K.crop2d(xp, lo_h, hi_h, lo_w, hi_w), x)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        K.pad2d(x, -1, 0, 0, 0)
    with pytest.raises(ValueError, match="bad crop"):
        K.crop2d(x, 5, 5, 0, 0)


@pytest.mark.parametrize("layout", ["any", "nhwc"])
def test_dropout_masks_follow_the_logical_index_after_a_convolution(layout, monkeypatch):
    # After a convolution oneDNN stores the activations channel-blocked ("any") or channels-last
    # ("nhwc"); the CPU backend keys each element's mask by its logical (N, C, H, W) index, as
    # the CUDA backend does on its plain arrays, forward and backward. 4 x 16 x 24 x 24 elements:
    # the parallel paths.
    monkeypatch.setenv("DCGAN_CPU_ACT_FORMAT", layout)
    n, p, seed, counter = 4, 0.4, 5, 11
    conv = {"type": "conv2d", "out": 16, "kernel": 3, "stride": 1, "padding": 1}
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, 3, 24, 24)).astype(np.float32)
    a = _core.Network([conv], [3, 24, 24], n, seed=seed)
    b = _core.Network([conv, {"type": "dropout", "p": p}], [3, 24, 24], n, seed=seed)
    ya = a.forward(x, counter=counter)
    yb = b.forward(x, counter=counter)
    mask = K.dropout_multipliers(seed, counter, 1, ya.size, p).reshape(ya.shape)
    np.testing.assert_array_equal(yb, ya * mask)
    # Backward: the gradient reaching the convolution is dy * mask.
    dy = rng.standard_normal(ya.shape).astype(np.float32)
    a.backward(dy * mask, need_d_input=True)
    b.backward(dy, need_d_input=True)
    ga, gb = a.get_grads(), b.get_grads()
    assert ga.keys() == gb.keys() and len(ga) > 0
    for k in ga:
        np.testing.assert_array_equal(np.asarray(gb[k]), np.asarray(ga[k]), err_msg=k)
