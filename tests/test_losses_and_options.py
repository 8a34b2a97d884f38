"""Losses, training options, initialisation and latent noise, without PyTorch.

(Each loss and option is also replayed step for step against PyTorch in
test_torch_reference.py; here: their plumbing from Config to the core, their values at the
start of training, the alternation counts, and the statistics of the initialisers and of the
noise on the presets' real layer sizes.)
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import dcgan

LN2 = math.log(2)


def small(**kw):
    base = dict(batch_size=16, g_width=4, d_width=4, z_dim=8, seed=0, dropout=0.0)
    base.update(kw)
    return dcgan.Config.mnist(**base)


def real_batch(cfg, seed=0):
    lo, hi = cfg.data_range
    rng = np.random.default_rng(seed)
    return rng.uniform(lo, hi, (cfg.batch_size,) + tuple(cfg.image_shape)).astype(np.float32)


# ------------------------------------------------------------------------------- Config -> core
def test_optimiser_fields_reach_the_core():
    cc = small(lr=1e-3, beta1=0.6, beta2=0.95, adam_eps=1e-6).core_config()
    assert (cc["lr_g"], cc["lr_d"]) == (1e-3, 1e-3)
    assert (cc["beta1_g"], cc["beta2_g"], cc["beta1_d"], cc["beta2_d"], cc["adam_eps"]) == (0.6, 0.95, 0.6, 0.95, 1e-6)
    cc = small(lr=1e-3, lr_g=2e-4, lr_d=4e-4, betas_g=(0.5, 0.999), betas_d=(0.0, 0.9)).core_config()
    assert (cc["lr_g"], cc["lr_d"]) == (2e-4, 4e-4)
    assert (cc["beta1_g"], cc["beta2_g"], cc["beta1_d"], cc["beta2_d"]) == (0.5, 0.999, 0.0, 0.9)


@pytest.mark.parametrize("kw", [
    dict(loss="hinge"), dict(loss="lsgan"), dict(loss="minimax"), dict(loss="saturating"), dict(label_smoothing=0.2),
    dict(n_critic=3), dict(g_steps=2), dict(joint=True), dict(noise="uniform"),
])
def test_training_options_reach_the_core(kw):
    cc = small(**kw).core_config()
    for k, v in kw.items():
        assert cc[k] == v


def test_bad_options_refused():
    with pytest.raises(ValueError, match="joint=True"):
        small(joint=True, g_steps=2)
    with pytest.raises(ValueError, match=r"betas_d\[1\] must be in \[0, 1\)"):
        small(betas_d=(0.5, 1.0))
    with pytest.raises(ValueError, match="betas_g must be a pair"):
        small(betas_g=(0.5,))
    with pytest.raises(ValueError, match="n_critic must be a positive integer"):
        small(n_critic=0)
    with pytest.raises(ValueError, match="unknown init 'he'"):
        small(init="he")
    with pytest.raises(ValueError, match="unknown output 'relu'"):
        small(output="relu")


# ------------------------------------------------------------------------------- losses
@pytest.mark.parametrize("loss, d0, g0", [
    # D's logits start near 0 (weights N(0, 0.02)): sigmoid = 1/2
    ("bce", 2 * LN2, LN2),          # BCE(1/2, 1) + BCE(1/2, 0); G: -log D(G(z))
    ("minimax", 2 * LN2, LN2),      # seed 004: G maximises log D(G(z))
    ("saturating", 2 * LN2, -LN2),  # G: log(1 - D(G(z)))
    ("lsgan", 0.5, 0.5),            # (x - 1)^2 / 2 + x^2 / 2; G: (x - 1)^2 / 2
    ("hinge", 2.0, 0.0),            # relu(1 - x) + relu(1 + x); G: -x
])
def test_losses_at_chance(loss, d0, g0, device):
    cfg = small(loss=loss, init="normal", init_std=0.02, device=device)
    tr = dcgan.Trainer(cfg)
    st = tr.step(real_batch(cfg))
    assert st["d_loss"] == pytest.approx(d0, abs=0.02)
    assert st["g_loss"] == pytest.approx(g0, abs=0.02)
    # d_real / d_fake: mean sigmoid for the BCE losses, mean logit for lsgan and hinge
    mid = 0.5 if loss in ("bce", "minimax", "saturating") else 0.0
    assert st["d_real"] == pytest.approx(mid, abs=0.02) and st["d_fake"] == pytest.approx(mid, abs=0.02)


def test_label_smoothing_shifts_the_real_term_by_s_times_the_logit(device):
    # BCE(x, 1 - s) = softplus(x) - (1 - s) x: smoothing adds s * mean(x) on the real batch.
    # D has no BN and no dropout here, so its inference logits are the training ones.
    cfg = small(init="normal", init_std=0.3, device=device)
    batch = real_batch(cfg)
    out = {}
    for s in (0.0, 0.25):
        tr = dcgan.Trainer(dcgan.Config.from_dict({**cfg.to_dict(), "label_smoothing": s}))
        logits = tr._core.discriminate(batch)
        out[s] = (tr.step(batch)["d_loss"], float(logits.astype(np.float64).mean()))
    assert abs(out[0.0][1]) > 0.05  # the check below is not vacuous
    assert out[0.25][0] - out[0.0][0] == pytest.approx(0.25 * out[0.0][1], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("loss", ["bce", "minimax", "saturating", "lsgan", "hinge"])
def test_each_loss_trains_finite_and_d_separates(loss, device):
    cfg = small(loss=loss, lr=1e-3, device=device)
    tr = dcgan.Trainer(cfg)
    x = np.random.default_rng(1).integers(0, 60, (64, 28, 28), np.uint8)  # dark images
    x[:, 10:18, 10:18] = 255                                                # a white square
    tr.fit(x, steps=30, progress=False)
    h = {k: np.asarray(v) for k, v in tr.history.items()}
    assert all(np.isfinite(h[k]).all() for k in ("d_loss", "g_loss", "d_real", "d_fake"))
    # D scores real data above fakes (probabilities for bce/minimax, logits otherwise)
    assert h["d_real"][-10:].mean() > h["d_fake"][-10:].mean()


# ------------------------------------------------------------------------------- alternation
@pytest.mark.parametrize("kw, per_step", [
    (dict(), (1, 1)), (dict(n_critic=2), (2, 1)), (dict(g_steps=2), (1, 2)),
    (dict(n_critic=3, g_steps=2), (3, 2)), (dict(joint=True), (1, 1)),
])
def test_adam_steps_per_training_step(kw, per_step, device):
    cfg = small(device=device, **kw)
    tr = dcgan.Trainer(cfg)
    for _ in range(3):
        tr.step(real_batch(cfg))
    st = tr._core.get_train_state()
    assert (st["adam_t_d"], st["adam_t_g"]) == (3 * per_step[0], 3 * per_step[1])
    assert st["step"] == 3 == tr.step_count


def test_joint_differs_from_alternating(device):
    # Same weights, batch and z: the joint update takes G's gradient through D before D's
    # update, the alternating one after it.
    cfg = small(device=device)
    a, b = dcgan.Trainer(cfg), dcgan.Trainer(dcgan.Config.from_dict({**cfg.to_dict(), "joint": True}))
    batch = real_batch(cfg)
    sa, sb = a.step(batch), b.step(batch)
    assert sa["d_loss"] == sb["d_loss"] and sa["d_real"] == sb["d_real"]
    assert sa["g_loss"] != sb["g_loss"]
    wa, wb = a.weights("discriminator"), b.weights("discriminator")
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)  # D's update is the same
    ga, gb = a.weights("generator"), b.weights("generator")
    assert not all(np.array_equal(ga[k], gb[k]) for k in ga)


def test_n_critic_draws_a_new_z_per_d_step(device):
    cfg = small(n_critic=2, device=device)
    core = dcgan.Trainer(cfg)._core
    z0, z1, z2 = core.noise(0, 0), core.noise(0, 1), core.noise(1, 0)
    assert z0.shape == (cfg.batch_size, cfg.z_dim)
    assert not np.array_equal(z0, z1) and not np.array_equal(z1, z2)
    np.testing.assert_array_equal(core.noise(0), z0)


# ------------------------------------------------------------------------------- latent noise
@pytest.fixture(scope="module")
def noise_samples():
    out = {}
    for kind in ("normal", "uniform"):
        core = dcgan.Trainer(small(noise=kind, batch_size=256, z_dim=100))._core
        out[kind] = np.concatenate([core.noise(s).ravel() for s in range(4)]).astype(np.float64)
    return out  # 102400 draws each


def test_normal_noise_statistics(noise_samples):
    z = noise_samples["normal"]
    n = z.size
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert z.std() == pytest.approx(1.0, abs=0.02)
    assert (np.abs(z) > 2).mean() == pytest.approx(0.0455, abs=0.005)
    assert ((z - z.mean()) ** 4).mean() / z.var() ** 2 == pytest.approx(3.0, abs=0.1)  # kurtosis


def test_uniform_noise_statistics(noise_samples):
    z = noise_samples["uniform"]
    n = z.size
    assert z.min() >= -1.0 and z.max() < 1.0
    assert abs(z.mean()) < 5 * math.sqrt(1 / 3 / n)
    assert z.var() == pytest.approx(1 / 3, abs=0.01)
    hist, _ = np.histogram(z, bins=10, range=(-1, 1))
    np.testing.assert_allclose(hist / n, 0.1, atol=0.006)


def test_generate_uses_the_configured_noise():
    # the same generator weights sampled with normal and with uniform latents give other images
    cfg = small(noise="uniform")
    a = dcgan.Trainer(cfg)
    b = dcgan.Trainer(dcgan.Config.from_dict({**cfg.to_dict(), "noise": "normal"}))
    assert not np.array_equal(a.generate(4, seed=3), b.generate(4, seed=3))
    np.testing.assert_array_equal(a.generate(4, seed=3), a.generate(4, seed=3))


# ------------------------------------------------------------------------------- data range
def test_data_range_follows_the_output_activation():
    tanh, sig = dcgan.Config.mnist(), dcgan.Config.mnist_seed000()
    assert tanh.data_range == (-1.0, 1.0) and sig.data_range == (0.0, 1.0)
    x = np.array([[[0, 255], [51, 102]]], np.uint8).repeat(4, 0)
    for cfg, want in ((tanh, [-1.0, 1.0, -0.6, -0.2]), (sig, [0.0, 1.0, 0.2, 0.4])):
        got = dcgan.prepare_images(x, (1, 2, 2), cfg.data_range)
        np.testing.assert_allclose(got[0].ravel(), want, atol=1e-6)
    # floats in [-1, 1] handed to a sigmoid generator are mapped onto [0, 1]
    f = np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 2, 2)
    got = dcgan.prepare_images(f, (1, 2, 2), sig.data_range)
    assert got.min() == 0.0 and got.max() == 1.0


def test_sigmoid_generator_trains_on_0_1_data():
    cfg = dcgan.Config.mnist_seed000(batch_size=8, g_width=4, d_width=4, z_dim=8)
    tr = dcgan.Trainer(cfg)
    out = tr.generate(16, seed=0)
    assert out.min() >= 0.0 and out.max() <= 1.0 and out.min() < 0.5 < out.max()
    with pytest.raises(ValueError, match=r"outside the data range \[0, 1\]"):
        tr.step(np.full((8, 1, 28, 28), -0.5, np.float32))
    x = np.random.default_rng(0).integers(0, 256, (32, 28, 28), np.uint8)
    tr.fit(x, steps=3, progress=False)
    assert np.isfinite(tr.history["d_loss"]).all()
    p = tr.discriminate(x[:4])
    assert p.shape == (4,) and ((p > 0) & (p < 1)).all()


# ------------------------------------------------------------------------------- initialisation
def fans(shape):
    """(fan_in, fan_out) as PyTorch and Keras count them: Dense (out, in) and Conv (out, in, k, k)
    give in*k*k and out*k*k; a ConvT weight is stored (in, out, k, k) and PyTorch reads it the
    same way (fan_in = out*k*k). Glorot's limits only use the sum, which is the same either way."""
    rf = int(np.prod(shape[2:])) if len(shape) == 4 else 1
    return shape[1] * rf, shape[0] * rf


def weights_by_kind(cfg):
    """{"weight"/"bias"/"bn_gamma"/"bn_beta": [(name, array, layer dict)]} of both networks."""
    tr = dcgan.Trainer(cfg)
    out = {"weight": [], "bias": [], "bn_gamma": [], "bn_beta": []}
    for net, layers in zip(("generator", "discriminator"), cfg.layers()):
        for name, w in tr.weights(net).items():
            i, kind = name.split(".")
            L = layers[int(i)]
            if L["type"] == "batchnorm":
                kind = "bn_gamma" if kind == "weight" else "bn_beta"
            out[kind].append((f"{net} {name}", w.astype(np.float64), L))
    return out


@pytest.fixture(scope="module")
def dcgan64_weights():
    return weights_by_kind(dcgan.Config.dcgan64(batch_size=2, seed=3))


TRUNC_STD = math.sqrt(1 - 2 * 2 * math.exp(-2) / math.sqrt(2 * math.pi) / math.erf(2 / math.sqrt(2)))


def test_truncated_normal_init(dcgan64_weights):
    assert TRUNC_STD == pytest.approx(0.8796, abs=1e-4)  # std of N(0,1) truncated to [-2, 2]
    for name, w, L in dcgan64_weights["weight"]:
        n = w.size
        assert L["init"] == "truncated_normal"
        assert np.abs(w).max() <= 0.04 * (1 + 1e-6), name  # redrawn beyond 2 std
        assert abs(w.mean()) < 5 * 0.02 * TRUNC_STD / math.sqrt(n), name
        assert w.std() == pytest.approx(0.02 * TRUNC_STD, rel=max(0.01, 6 / math.sqrt(n))), name
        if n > 100_000:
            assert np.abs(w).max() > 0.0399, name  # the bound is reached, not undershot
    for name, g, _ in dcgan64_weights["bn_gamma"]:  # gamma ~ N(1, 0.02) as in the DCGAN code
        assert abs(g.mean() - 1) < 5 * 0.02 / math.sqrt(g.size), name
        assert g.std() == pytest.approx(0.02, rel=6 / math.sqrt(g.size)), name
    for name, b, _ in dcgan64_weights["bias"] + dcgan64_weights["bn_beta"]:
        assert not b.any(), name


def test_normal_init():
    big = [w for _, w, L in weights_by_kind(dcgan.Config.dcgan64(batch_size=2, image_shape=(1, 32, 32),
                                                                  init="normal", init_std=0.05))["weight"]]
    w = np.concatenate([a.ravel() for a in big])
    assert abs(w.mean()) < 5 * 0.05 / math.sqrt(w.size)
    assert w.std() == pytest.approx(0.05, rel=0.01)
    assert (np.abs(w) > 0.1).mean() == pytest.approx(0.0455, abs=0.003)  # untruncated tails


@pytest.mark.parametrize("preset, kind", [("mnist", "xavier_uniform"), ("cifar10", "xavier_uniform"),
                                          ("mlp", "xavier_uniform"), ("mnist_seed000", "xavier_normal")])
def test_xavier_init_from_fans(preset, kind):
    ws = weights_by_kind(dcgan.Config.preset(preset, batch_size=2, seed=1))
    assert ws["weight"]
    for name, w, L in ws["weight"]:
        assert L["init"] == kind
        fin, fout = fans(w.shape)
        n = w.size
        if kind == "xavier_uniform":
            limit = math.sqrt(6 / (fin + fout))
            assert np.abs(w).max() <= limit * (1 + 1e-6), name
            if n >= 1000:
                assert np.abs(w).max() > limit * 0.99, name
            sd = limit / math.sqrt(3)
        else:
            sd = math.sqrt(2 / (fin + fout))
        assert abs(w.mean()) < 5 * sd / math.sqrt(n) + 1e-12, name
        assert w.std() == pytest.approx(sd, rel=max(0.01, 6 / math.sqrt(n))), name
    for name, g, _ in ws["bn_gamma"]:  # Keras' and Glorot's BN: gamma = 1, beta = 0
        assert (g == 1).all(), name
    for name, b, _ in ws["bias"] + ws["bn_beta"]:
        assert not b.any(), name


def test_xavier_fans_of_a_real_layer():
    # mnist D's first conv: (64, 1, 5, 5): fan_in 25, fan_out 1600 -> limit sqrt(6 / 1625)
    ws = weights_by_kind(dcgan.Config.mnist(batch_size=2))
    name, w, L = next(x for x in ws["weight"] if x[0] == "discriminator 0.weight")
    assert w.shape == (64, 1, 5, 5)
    assert np.abs(w).max() == pytest.approx(math.sqrt(6 / 1625), rel=0.01)


def test_init_depends_on_seed_and_layer():
    a = dcgan.Trainer(small(seed=1)).weights("discriminator")
    b = dcgan.Trainer(small(seed=1)).weights("discriminator")
    c = dcgan.Trainer(small(seed=2)).weights("discriminator")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        if k.endswith("weight"):
            assert not np.array_equal(a[k], c[k])
    # no two weight tensors of G and D share their draws
    firsts = [w.ravel()[:4].tobytes() for _, w, _ in weights_by_kind(small(seed=1))["weight"]]
    assert len(firsts) == 7 and len(set(firsts)) == len(firsts)
