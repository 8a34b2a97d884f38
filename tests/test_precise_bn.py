"""Precise BatchNorm statistics for sampling (Config.bn_inference).

"precise" recomputes G's BN statistics for the current weights: the pooled mean and variance of
each BN layer's input over fresh noise batches in training mode. Checked here against a direct
computation over the same noise (truncated copies of G run in training mode, statistics pooled
in float64), for caching, for leaving the running averages alone, and for giving samples
distributed like training-mode samples where the running averages lag behind.
"""
from __future__ import annotations

import numpy as np
import pytest

import dcgan
from dcgan import _core


def _mnist_like(n: int = 512, seed: int = 0) -> np.ndarray:
    """Blurry random strokes in [0, 255]: enough structure for a few training steps."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), np.float32)
    for i in range(n):
        r, c = rng.integers(6, 22, size=2)
        x[i, r - 4:r + 4, c - 2:c + 2] = 255.0
    return x.astype(np.uint8)


def _trained(steps: int = 6, **kw) -> dcgan.Trainer:
    cfg = dcgan.Config.mnist(batch_size=32, g_width=8, d_width=8, threads=2, seed=3, **kw)
    tr = dcgan.Trainer(cfg)
    tr.fit(_mnist_like(), steps=steps, progress=False)
    return tr


def _direct_stats(tr: dcgan.Trainer, batches: int):
    """Per BN layer of G: pooled mean and variance (float64) of its input over the precise noise
    batches, each batch through a truncated copy of G in training mode."""
    g_layers, _ = tr.cfg.layers()
    weights = tr.weights("generator")
    out = {}
    for i, layer in enumerate(g_layers):
        if layer["type"] != "batchnorm":
            continue
        net = _core.Network(g_layers[:i], [tr.cfg.z_dim], tr.cfg.batch_size, seed=0, threads=2)
        net.set_params({k: v for k, v in weights.items() if int(k.split(".")[0]) < i})
        acts = []
        for k in range(batches):
            a = net.forward(tr._core.precise_bn_noise(k), training=True).astype(np.float64)
            acts.append(a.reshape(a.shape[0], a.shape[1], -1).transpose(1, 0, 2).reshape(a.shape[1], -1))
        pooled = np.concatenate(acts, axis=1)
        out[i] = (pooled.mean(axis=1), pooled.var(axis=1))
    return out


def test_precise_statistics_equal_a_direct_computation_over_the_same_noise():
    tr = _trained(precise_bn_samples=96)  # 3 batches of 32
    precise = tr.bn_statistics("precise")
    direct = _direct_stats(tr, batches=3)
    assert len(direct) == 3
    for i, (mean, var) in direct.items():
        np.testing.assert_allclose(precise[f"{i}.running_mean"], mean, rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(precise[f"{i}.running_var"], var, rtol=1e-4, atol=2e-5)
    # ...and they are not the running averages (momentum 0.01 after 6 steps).
    running = tr.bn_statistics("running")
    assert not np.allclose(running["1.running_var"], precise["1.running_var"], rtol=0.1)


def test_samples_not_a_multiple_of_the_batch_round_up():
    tr = _trained(precise_bn_samples=40)  # 2 batches of 32
    precise = tr.bn_statistics("precise")
    mean, var = _direct_stats(tr, batches=2)[1]
    np.testing.assert_allclose(precise["1.running_mean"], mean, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(precise["1.running_var"], var, rtol=1e-4, atol=2e-5)


def test_precise_statistics_are_cached_until_the_weights_change():
    tr = _trained(precise_bn_samples=64)
    running = {k: v.copy() for k, v in tr.bn_statistics("running").items()}
    a = tr.bn_statistics("precise")
    b = tr.bn_statistics("precise")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    # Computing them leaves the running averages (what checkpoints keep) untouched.
    for k, v in tr.bn_statistics("running").items():
        np.testing.assert_array_equal(v, running[k])
    s1 = tr.generate(8, seed=1)
    tr.fit(_mnist_like(), steps=1, progress=False)
    c = tr.bn_statistics("precise")
    assert any(not np.array_equal(a[k], c[k]) for k in a)
    assert not np.array_equal(s1, tr.generate(8, seed=1))
    # Weights written from outside (a load) also invalidate the cache.
    w = tr.weights("generator")
    w["0.weight"] = w["0.weight"] * 1.5
    tr.set_weights("generator", w)
    d = tr.bn_statistics("precise")
    assert not np.allclose(c["1.running_var"], d["1.running_var"])


def test_generate_modes_and_their_distribution():
    tr = _trained(steps=10, precise_bn_samples=1024)
    n = 1024
    precise = tr.generate(n, seed=5)
    batch = tr.generate(n, seed=5, bn_inference="batch")
    running = tr.generate(n, seed=5, bn_inference="running")
    # Precise statistics give samples distributed like training-mode ones: per-pixel means and
    # the overall spread agree, while the lagging running averages give something else.
    d_precise = np.abs(precise.mean(0) - batch.mean(0)).mean()
    d_running = np.abs(running.mean(0) - batch.mean(0)).mean()
    assert d_precise < 0.05, d_precise
    assert d_running > 4 * d_precise, (d_precise, d_running)
    assert abs(precise.std() - batch.std()) < 0.05 * batch.std()
    # Sample i does not depend on n, in every mode.
    for mode in ("precise", "running", "batch"):
        np.testing.assert_array_equal(tr.generate(5, seed=5, bn_inference=mode),
                                      tr.generate(40, seed=5, bn_inference=mode)[:5])
    # The default mode is the config's.
    np.testing.assert_array_equal(tr.generate(16, seed=5), precise[:16])
    cfg_running = dcgan.Config.mnist(batch_size=32, g_width=8, d_width=8, threads=2, seed=3, bn_inference="running")
    tr2 = dcgan.Trainer(cfg_running)
    tr2.set_weights("generator", tr.weights("generator"))
    assert tr2.cfg.bn_inference == "running"


def test_generator_load_samples_with_precise_statistics(tmp_path):
    tr = _trained(precise_bn_samples=64)
    ref = tr.generate(16, seed=2)
    path = tr.save_generator(tmp_path / "g.npz")
    g = dcgan.Generator.load(path)
    np.testing.assert_array_equal(g.generate(16, seed=2), ref)
    np.testing.assert_array_equal(g.generate(16, seed=2, bn_inference="running"),
                                  tr.generate(16, seed=2, bn_inference="running"))
    # The checkpoint holds the running averages, not the precise statistics.
    full = tr.save(tmp_path / "full.npz")
    back = dcgan.Trainer.load(full)
    for k, v in tr.bn_statistics("running").items():
        np.testing.assert_array_equal(back.bn_statistics("running")[k], v)


def test_bn_inference_is_validated():
    with pytest.raises(ValueError, match="bn_inference"):
        dcgan.Config.mnist(bn_inference="eval")
    with pytest.raises(ValueError, match="precise_bn_samples"):
        dcgan.Config.mnist(precise_bn_samples=0)
    with pytest.raises(ValueError, match="precise_bn_samples"):
        dcgan.Config.mnist(precise_bn_samples=1 << 30)
    tr = dcgan.Trainer(dcgan.Config.mlp(batch_size=8, threads=1))
    with pytest.raises(ValueError, match="bn_inference"):
        tr.generate(4, seed=0, bn_inference="train")
    with pytest.raises(ValueError, match="kind"):
        tr.bn_statistics("exact")
    # A network without BatchNorm: every mode gives the same samples.
    a = tr.generate(4, seed=0)
    np.testing.assert_array_equal(a, tr.generate(4, seed=0, bn_inference="batch"))
    assert len(tr.bn_statistics("precise")) == 0


def test_bn_accumulate_kernel_arithmetic():
    means = np.array([0.5, -1.0, 2.0], np.float32)
    var = np.array([1.0, 0.25, 4.0], np.float32)
    s, v, q = _core.kernels.bn_accumulate(means, var)
    assert s == pytest.approx(float(means.sum()))
    assert v == pytest.approx(float(var.sum()))
    assert q == pytest.approx(float((means.astype(np.float64) ** 2).sum()))
