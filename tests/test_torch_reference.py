"""One whole DCGAN training step of the core against PyTorch (no torch needed here).

tests/fixtures/mnist_step.npz was written by tests/make_fixtures.py (torch 2.13.0, float64): the
`mnist` topology of REFERENCE.md section 2 at narrow widths, batch 8, one D step then one G step
with Adam(2e-4, 0.5, 0.999), label smoothing 0 and 0.1. The core starts from the same weights,
the same real batch and the same z (its own noise for step 0, which the fixture took from it).

Tolerances (the reference is float64, the core float32):
- losses, D(x), D(G(z)): rtol 1e-4;
- gradients: |core - torch| <= 1e-4 * max|torch| + 1e-3 * |torch| per tensor;
- updated parameters: atol 1e-5 (an Adam step moves each weight by about lr = 2e-4, so this is
  5% of a step) and rtol 1e-3; and the step itself, new - old, within 2e-6 (1% of lr) for
  every weight whose gradient is not tiny (|g| > 1e-3 * max|g| of its tensor: below that a
  float32 rounding of g could change m/sqrt(v) noticeably);
- BN running statistics: rtol 1e-5, atol 1e-6.

The second part replays tests/fixtures/step_<case>.npz (same script): every loss (minimax,
lsgan, hinge, with label smoothing), n_critic = 2 and 3, g_steps = 2, the joint update,
separate Adam lr/betas/eps for G and D, uniform noise, two consecutive steps, and one step of
every preset (mlp, mnist, mnist_seed000, cifar10, dcgan64 in colour and in grayscale with 4x4
kernels) at narrow widths. Each fixture names the Config it was made from; the test rebuilds
that Config and checks that its core config (layer lists included) is the fixture's, so a
change to a preset or to the Config -> core mapping shows up here. Same tolerances as above,
with the Adam-step tolerance scaled by the case's learning rate; for a network that took
several Adam steps only the parameter tolerance applies (the per-step check needs the
gradient of each step).
"""
import glob
import json
import os

import numpy as np
import pytest

import dcgan
from conftest import CoreOnDevice

# Every test here runs on each available backend (the `device` fixture, tests/conftest.py).
core = CoreOnDevice()


@pytest.fixture(autouse=True)
def _on_device(device):
    core.device = device

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mnist_step.npz")

LOSS_RTOL = 1e-4
GRAD_ATOL_REL, GRAD_RTOL = 1e-4, 1e-3
PARAM_ATOL, PARAM_RTOL = 1e-5, 1e-3
STEP_ATOL = 2e-6


@pytest.fixture(scope="module")
def fx():
    with np.load(FIXTURE, allow_pickle=False) as f:
        d = {k: f[k] for k in f.files}
    d["config"] = json.loads(str(d["config"]))
    return d


def group(fx, prefix):
    n = len(prefix) + 1
    return {k[n:]: v for k, v in fx.items() if k.startswith(prefix + ".")}


def make_trainer(fx, smoothing=0.0):
    cfg = dict(fx["config"], label_smoothing=smoothing)
    tr = core.Trainer(cfg)
    tr.set_params("generator", group(fx, "g_init"))
    tr.set_params("discriminator", group(fx, "d_init"))
    return tr


def assert_grad_close(actual, expected, what):
    scale = np.max(np.abs(expected))
    np.testing.assert_allclose(actual, expected, rtol=GRAD_RTOL, atol=GRAD_ATOL_REL * scale, err_msg=what)


def test_fixture_is_small_and_complete(fx):
    assert os.path.getsize(FIXTURE) < 2 * 1024 * 1024
    cfg = fx["config"]
    assert cfg["batch_size"] == fx["real"].shape[0] == fx["z"].shape[0]
    assert fx["z"].shape[1] == cfg["z_dim"]
    for v in ("plain", "smooth"):
        for k in ("d_loss", "g_loss", "d_real", "d_fake"):
            assert f"{v}.{k}" in fx


def test_noise_of_step_0_is_the_fixture_z(fx):
    tr = make_trainer(fx)
    z = tr.noise(0)
    assert z.shape == fx["z"].shape and z.dtype == np.float32
    np.testing.assert_array_equal(z, fx["z"])
    np.testing.assert_array_equal(tr.noise(0), z)  # a pure function of (seed, step)
    assert not np.array_equal(tr.noise(1), z)


def test_set_params_round_trip(fx):
    tr = make_trainer(fx)
    for net, prefix in (("generator", "g_init"), ("discriminator", "d_init")):
        got, want = tr.get_params(net), group(fx, prefix)
        assert set(got) == set(want)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{net} {k}")


@pytest.mark.parametrize("variant", ["plain", "smooth"])
def test_one_step_matches_torch(fx, variant):
    ref = group(fx, variant)
    tr = make_trainer(fx, float(ref["label_smoothing"]))
    # the step draws the same z as the fixture (checked again here: the step reads noise(0))
    np.testing.assert_array_equal(tr.noise(0), fx["z"])
    d_loss, g_loss, d_real, d_fake = tr.step(np.ascontiguousarray(fx["real"]))

    np.testing.assert_allclose(d_loss, ref["d_loss"], rtol=LOSS_RTOL, err_msg="d_loss")
    np.testing.assert_allclose(g_loss, ref["g_loss"], rtol=LOSS_RTOL, err_msg="g_loss")
    np.testing.assert_allclose(d_real, ref["d_real"], rtol=LOSS_RTOL, err_msg="d_real")
    np.testing.assert_allclose(d_fake, ref["d_fake"], rtol=LOSS_RTOL, err_msg="d_fake")

    # D's gradients: slot 0 from the real pass, slot 1 from the fake pass; Adam used the sum.
    d0, d1 = tr.get_grads("discriminator", 0), tr.get_grads("discriminator", 1)
    d_tot, d_r, d_f = group(ref, "d_grad"), group(ref, "d_grad_real"), group(ref, "d_grad_fake")
    assert set(d0) == set(d1) == set(d_tot)
    for k in d_tot:
        assert_grad_close(d0[k], d_r[k], f"D grad (real pass) {k}")
        assert_grad_close(d1[k], d_f[k], f"D grad (fake pass) {k}")
        assert_grad_close(d0[k] + d1[k], d_tot[k], f"D grad (total) {k}")

    g = tr.get_grads("generator", 0)
    g_ref = group(ref, "g_grad")
    assert set(g) == set(g_ref)
    for k in g_ref:
        assert_grad_close(g[k], g_ref[k], f"G grad {k}")

    for net, init, new, grads in (("generator", "g_init", "g_new", g_ref),
                                  ("discriminator", "d_init", "d_new", d_tot)):
        got, want, old = tr.get_params(net), group(ref, new), group(fx, init)
        assert set(got) == set(want)
        for k in want:
            np.testing.assert_allclose(got[k], want[k], rtol=PARAM_RTOL, atol=PARAM_ATOL,
                                       err_msg=f"{net} updated {k}")
            step_core = got[k].astype(np.float64) - old[k]
            step_ref = want[k].astype(np.float64) - old[k]
            big = np.abs(grads[k]) > 1e-3 * np.max(np.abs(grads[k]))
            assert big.mean() > 0.9, (net, k)
            np.testing.assert_allclose(step_core[big], step_ref[big], rtol=0, atol=STEP_ATOL,
                                       err_msg=f"{net} Adam step {k}")

    st, st_ref = tr.get_state("generator"), group(ref, "g_state")
    assert set(st) == set(st_ref) and st
    for k in st_ref:
        np.testing.assert_allclose(st[k], st_ref[k], rtol=1e-5, atol=1e-6, err_msg=f"G state {k}")
    assert tr.get_state("discriminator") == {}


def test_adam_moments_after_one_step(fx):
    # After step 1: m = (1 - b1) g and v = (1 - b2) g^2 of the gradient Adam used.
    tr = make_trainer(fx)
    tr.step(np.ascontiguousarray(fx["real"]))
    for net in ("generator", "discriminator"):
        if net == "generator":
            g = tr.get_grads(net, 0)
        else:
            g0, g1 = tr.get_grads(net, 0), tr.get_grads(net, 1)
            g = {k: g0[k] + g1[k] for k in g0}
        # flat order = parameter order (layer, then weight before bias), as get_params lists them
        flat = np.concatenate([g[k].ravel() for k in tr.get_params(net)])
        adam = tr.get_adam(net)
        assert adam["m"].shape == flat.shape == (tr.n_params(net),)
        np.testing.assert_allclose(adam["m"], 0.5 * flat, rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose(adam["v"], 0.001 * flat.astype(np.float64) ** 2, rtol=1e-4, atol=1e-20)


def test_same_seed_same_losses_over_three_steps(fx):
    real = np.ascontiguousarray(fx["real"])
    runs = []
    for _ in range(2):
        tr = make_trainer(fx)
        losses = [tr.step(real) for _ in range(3)]
        runs.append((np.array(losses), tr.get_params("generator"), tr.get_params("discriminator")))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    for i in (1, 2):
        for k in runs[0][i]:
            np.testing.assert_array_equal(runs[0][i][k], runs[1][i][k], err_msg=k)
    # the steps differ from one another (new z each step, weights moving)
    assert len({tuple(r) for r in runs[0][0]}) == 3


def test_another_seed_draws_other_noise(fx):
    cfg = dict(fx["config"])
    cfg["seed"] = cfg["seed"] + 1
    assert not np.array_equal(core.Trainer(cfg).noise(0), fx["z"])


# ---------------------------------------------------------------------------------------------
# every loss, option and preset (tests/fixtures/step_<case>.npz)
CASE_DIR = os.path.dirname(FIXTURE)
CASES = sorted(os.path.basename(p)[5:-4] for p in glob.glob(os.path.join(CASE_DIR, "step_*.npz")))
EXPECTED_CASES = {
    "loss_minimax", "loss_saturating", "loss_lsgan", "loss_lsgan_smooth", "loss_hinge", "n_critic2", "g_steps2",
    "n_critic3_g_steps2", "joint", "joint_lsgan_smooth", "joint_hinge", "adam_separate",
    "uniform_noise", "two_steps", "preset_mlp", "preset_mnist", "preset_mnist_seed000",
    "preset_cifar10", "preset_dcgan64", "preset_dcgan64_gray_k4",
}


def is_zero_in_net(expected, net_scale):
    return np.max(np.abs(expected)) < 1e-6 * net_scale


def assert_grad_close_in_net(actual, expected, net_scale, what):
    """assert_grad_close; a tensor whose reference gradient is zero up to float64 rounding
    (a bias feeding a BatchNorm) must be zero up to float32 rounding: |g| <= 1e-5 x the largest
    gradient of the network."""
    if is_zero_in_net(expected, net_scale):
        assert np.max(np.abs(actual)) <= 1e-5 * net_scale, what
    else:
        assert_grad_close(actual, expected, what)


def load_case(name):
    with np.load(os.path.join(CASE_DIR, f"step_{name}.npz"), allow_pickle=False) as f:
        d = {k: f[k] for k in f.files}
    d["config"] = json.loads(str(d["config"]))
    d["meta"] = json.loads(str(d["meta"]))
    return d


def case_config(fx):
    """The dcgan.Config the fixture was made from (JSON turned tuples into lists)."""
    meta = fx["meta"]
    ov = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["overrides"].items()}
    return dcgan.Config.preset(meta["preset"], seed=meta["seed"], **ov)


def test_every_case_has_a_fixture():
    assert set(CASES) == EXPECTED_CASES
    total = sum(os.path.getsize(os.path.join(CASE_DIR, f"step_{c}.npz")) for c in CASES)
    assert total < 4 * 1024 * 1024


@pytest.fixture(scope="module", params=CASES)
def case(request):
    return request.param, load_case(request.param)


def test_case_config_is_the_configs(case):
    name, fx = case
    cfg = case_config(fx)
    # The fixture describes the model and the step, not where or how they run (no device or
    # device option on either side) nor how samples are drawn afterwards (bn_inference).
    where = ("device", "tf32", "precision", "bn_inference", "precise_bn_samples", "distributed", "sync_bn",
             "check_replicas_every")
    got = {k: v for k, v in dict(cfg.core_config(), threads=0).items() if k not in where}
    want = {k: v for k, v in fx["config"].items() if k not in where}
    assert got == want, name
    if name.startswith("preset_"):
        assert cfg.preset_name == fx["meta"]["preset"] == name[7:].replace("_gray_k4", "")


def test_case_noise_is_the_cores(case):
    name, fx = case
    tr = core.Trainer(fx["config"])
    steps, draws = fx["z"].shape[:2]
    for s in range(steps):
        for i in range(draws):
            np.testing.assert_array_equal(tr.noise(s, i), fx["z"][s, i], err_msg=f"{name} z[{s},{i}]")
    # the draws of one step differ, and differ from the next step's
    assert not np.array_equal(tr.noise(0, 1), tr.noise(0, 0))
    assert not np.array_equal(tr.noise(1, 0), tr.noise(0, 1))
    with pytest.raises(ValueError, match="index must be in"):
        tr.noise(0, 64)
    if fx["config"]["noise"] == "uniform":
        z = fx["z"]
        assert z.min() >= -1 and z.max() < 1
    else:
        assert np.abs(fx["z"]).max() > 1  # normal draws leave [-1, 1]


def test_case_matches_torch(case):
    name, fx = case
    cfg = fx["config"]
    tr = core.Trainer(cfg)
    tr.set_params("generator", group(fx, "g_init"))
    tr.set_params("discriminator", group(fx, "d_init"))
    steps = fx["stats"].shape[0]
    assert fx["real"].shape[0] == steps
    for s in range(steps):
        got = np.array(tr.step(np.ascontiguousarray(fx["real"][s])), np.float64)
        np.testing.assert_allclose(got, fx["stats"][s], rtol=LOSS_RTOL, atol=1e-6,
                                   err_msg=f"{name} step {s}: d_loss, g_loss, d_real, d_fake")
    st = tr.get_train_state()
    assert (st["adam_t_d"], st["adam_t_g"]) == tuple(fx["adam_t"]), name
    assert st["step"] == steps

    # gradients of the last D step (slot 0: real pass, slot 1: fake pass) and the last G step
    d0, d1, g = tr.get_grads("discriminator", 0), tr.get_grads("discriminator", 1), tr.get_grads("generator", 0)
    d_r, d_f, g_ref = group(fx, "d_grad_real"), group(fx, "d_grad_fake"), group(fx, "g_grad")
    assert set(d0) == set(d_r) and set(g) == set(g_ref)
    d_scale = max(np.abs(v).max() for v in list(d_r.values()) + list(d_f.values()))
    g_scale = max(np.abs(v).max() for v in g_ref.values())
    for k in d_r:
        assert_grad_close_in_net(d0[k], d_r[k], d_scale, f"{name}: D grad (real pass) {k}")
        assert_grad_close_in_net(d1[k], d_f[k], d_scale, f"{name}: D grad (fake pass) {k}")
    for k in g_ref:
        assert_grad_close_in_net(g[k], g_ref[k], g_scale, f"{name}: G grad {k}")
    # A bias that feeds a BatchNorm (seed 000 keeps them) has a gradient that is exactly zero;
    # the float32 core gets rounding noise ~1e-6 of the network's gradients there, which Adam
    # (m / sqrt(v)) turns into a step of up to lr. Harmless (BN removes any bias), but no
    # float32 implementation can match the float64 reference's update of such a tensor.
    zero = {("discriminator", k) for k in d_r if is_zero_in_net(d_r[k] + d_f[k], d_scale)}
    zero |= {("generator", k) for k in g_ref if is_zero_in_net(g_ref[k], g_scale)}

    lr = {"generator": cfg["lr_g"], "discriminator": cfg["lr_d"]}
    t = {"generator": int(fx["adam_t"][1]), "discriminator": int(fx["adam_t"][0])}
    last_grad = {"generator": g_ref, "discriminator": {k: d_r[k] + d_f[k] for k in d_r}}
    for net, init, new in (("generator", "g_init", "g_new"), ("discriminator", "d_init", "d_new")):
        got, want, old = tr.get_params(net), group(fx, new), group(fx, init)
        assert set(got) == set(want)
        for k in want:
            if (net, k) in zero:
                continue
            np.testing.assert_allclose(got[k], want[k], rtol=PARAM_RTOL, atol=PARAM_ATOL * lr[net] / 2e-4,
                                       err_msg=f"{name}: {net} updated {k}")
            # (a hinge D with every logit inside (-1, 1) has a zero bias gradient: not every
            # tensor moves, but the reference says which ones do)
            assert np.array_equal(got[k], old[k]) == np.array_equal(want[k], old[k]), (name, net, k)
            if t[net] == 1:
                grads = last_grad[net][k]
                big = np.abs(grads) > 1e-3 * np.max(np.abs(grads))
                step_core = got[k].astype(np.float64) - old[k]
                step_ref = want[k].astype(np.float64) - old[k]
                np.testing.assert_allclose(step_core[big], step_ref[big], rtol=0,
                                           atol=STEP_ATOL * lr[net] / 2e-4,
                                           err_msg=f"{name}: {net} Adam step {k}")

    for net, prefix in (("generator", "g_state"), ("discriminator", "d_state")):
        got, want = tr.get_state(net), group(fx, prefix)
        params, init = tr.get_params(net), group(fx, "g_init" if net == "generator" else "d_init")
        assert set(got) == set(want), (name, net)
        for k in want:
            atol = 1e-6
            i = int(k.split(".")[0])
            if k.endswith("running_mean") and (net, f"{i - 1}.bias") in zero:
                # that bias moved by float32 noise (see above): the batch means after the
                # update shift by as much (times the momentum <= 1)
                atol += float(np.abs(params[f"{i - 1}.bias"] - init[f"{i - 1}.bias"]).max())
            np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=atol, err_msg=f"{name}: {net} state {k}")
