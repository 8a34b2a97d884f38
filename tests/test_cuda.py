"""The CUDA backend (issue 8).

What runs everywhere: a CUDA build without a GPU imports, lists "cuda" as unavailable with the
reason, and refuses device="cuda" with a clear error; Config's GPU options are validated; a
checkpoint saved on a device this machine lacks resumes on another one. The element-wise kernel
arithmetic is tested on the host in test_elementwise.py; every layer-gradient and
PyTorch-reference test runs on every usable backend through conftest's `device` fixture.

What needs a GPU (skipped with the reason otherwise), CUDA against the CPU backend:
- precise BatchNorm statistics (rtol 1e-3) and samples in every bn_inference mode; the
  classifier of dcgan.FeatureNet over 5 training steps (losses rtol 1e-4) and its logits and features;
- one step of every preset at narrow width, same weights, batch and noise: losses and D outputs
  rtol 1e-4; every gradient |cuda - cpu| <= 1e-4 max|cpu| + 1e-3 |cpu| per tensor (cuDNN and
  oneDNN sum in different orders); updated parameters atol 1e-5 / rtol 1e-3, and the Adam step
  itself within 2e-6 wherever the gradient is not tiny (as test_torch_reference.py);
- 200 steps of `mnist` on real MNIST: the 20-step running means of both losses within 0.15 of
  the CPU's at every step (fp32 round-off grows through a GAN's training, so the curves are
  compared as curves, not bit for bit);
- the same seed twice on the GPU: identical losses; a replayed CUDA graph and the eager step:
  identical losses; uint8 and float32 data: identical losses;
- checkpoints move between the GPU and the CPU and continue within the one-step tolerances.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import dcgan
from dcgan import _core

CUDA = next((b for b in dcgan.backends() if b["name"] == "cuda"), None)
GPU = bool(CUDA and CUDA["available"])
needs_gpu = pytest.mark.skipif(
    not GPU, reason="no usable CUDA GPU here: " + (CUDA["unavailable_reason"] if CUDA else "CUDA backend not built"))


def tiny(**kw) -> dcgan.Config:
    return dcgan.Config.mnist(batch_size=8, z_dim=8, g_width=4, d_width=4, seed=3, **kw)


def images(n: int, shape=(1, 28, 28), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


# ----------------------------------------------------------------------------- everywhere
def test_cuda_available_agrees_with_backends():
    assert dcgan.cuda_available() == GPU
    if CUDA is not None:
        assert CUDA["library"].startswith("cuDNN 9."), CUDA
        assert "cuBLAS" in CUDA["library"] and "CUDA runtime" in CUDA["library"]
        assert CUDA["available"] or CUDA["unavailable_reason"]


def test_cuda_build_without_a_gpu_refuses_cuda_clearly():
    if CUDA is None:
        pytest.skip("this build has no CUDA backend (test_backends checks the build hint)")
    if GPU:
        pytest.skip("a GPU is usable here")
    with pytest.raises(ValueError, match=r"device 'cuda' is built into this dcgan but cannot be used here: .+available: cpu"):
        dcgan.Trainer(tiny(device="cuda"))
    with pytest.raises(ValueError, match="cannot be used here"):
        _core.Network([{"type": "relu"}], [3], 1, device="cuda")


def test_gpu_options_are_validated():
    for name in ("tf32", "cuda_graph"):
        with pytest.raises(ValueError, match=f"{name} must be True or False"):
            tiny(**{name: 1}).validate()
    assert tiny().tf32 is False and tiny().cuda_graph is True
    cfg = dcgan.Config.from_dict(tiny(tf32=True).to_dict())
    assert cfg.tf32 is True


def test_cpu_runs_eagerly():
    tr = dcgan.Trainer(tiny())
    tr.fit(images(32), steps=3, progress=False)
    assert tr.graph_status == "the cpu backend runs operations as they are issued"


def test_checkpoint_from_another_device_resumes_here(tmp_path):
    x = images(64)
    tr = dcgan.Trainer(tiny())
    tr.fit(x, steps=3, progress=False)
    # Saved as if from the GPU: the arrays are plain float32 whatever the device.
    tr.cfg = dataclasses.replace(tr.cfg, device="cuda")
    path = tr.save(tmp_path / "gpu_run")
    tr.cfg = dataclasses.replace(tr.cfg, device="cpu")
    if not GPU:
        with pytest.raises(ValueError, match=r"saved on device 'cuda'.*pass device='cpu'"):
            dcgan.Trainer.load(path)
        with pytest.raises(ValueError, match=r"saved on device 'cuda'.*pass device='cpu'"):
            dcgan.Generator.load(path)
    back = dcgan.Trainer.load(path, device="cpu")
    assert back.cfg.device == "cpu" and back.step_count == 3
    want = tr.fit(x, steps=6, progress=False)
    got = back.fit(x, steps=6, progress=False)
    assert got["d_loss"] == want["d_loss"] and got["g_loss"] == want["g_loss"]
    g = dcgan.Generator.load(path, device="cpu")
    np.testing.assert_array_equal(g.generate(4, seed=1), dcgan.Trainer.load(path, device="cpu").generate(4, seed=1))


# ----------------------------------------------------------------------------- on a GPU
PRESETS = dcgan.Config.preset_names()
LOSS_RTOL, GRAD_ATOL_REL, GRAD_RTOL = 1e-4, 1e-4, 1e-3
PARAM_ATOL, PARAM_RTOL, STEP_ATOL = 1e-5, 1e-3, 2e-6


def narrow(name: str, **kw) -> dcgan.Config:
    return dcgan.Config.preset(name, batch_size=8, g_width=8, d_width=8, seed=1, **kw)


def pair(cfg: dcgan.Config):
    core = cfg.core_config()
    return _core.Trainer({**core, "device": "cpu"}), _core.Trainer({**core, "device": "cuda"})


def real_batch(cfg: dcgan.Config, seed: int = 0) -> np.ndarray:
    lo, hi = cfg.data_range
    x = np.random.default_rng(seed).uniform(lo, hi, (cfg.batch_size, *cfg.image_shape))
    return x.astype(np.float32)


def assert_grads_close(a, b, what):
    for k in a:
        scale = float(np.abs(a[k]).max()) if a[k].size else 0.0
        np.testing.assert_allclose(b[k], a[k], rtol=GRAD_RTOL, atol=GRAD_ATOL_REL * scale + 1e-12,
                                   err_msg=f"{what} {k}")


@needs_gpu
@pytest.mark.parametrize("name", PRESETS)
def test_one_step_of_each_preset_matches_the_cpu(name):
    cfg = narrow(name)
    cpu, gpu = pair(cfg)
    before = {net: cpu.get_params(net) for net in ("generator", "discriminator")}
    for net in before:  # same weights (they already agree: both initialise from the seed)
        np.testing.assert_array_equal(gpu.get_params(net)[next(iter(before[net]))], before[net][next(iter(before[net]))])
    np.testing.assert_array_equal(gpu.noise(0), cpu.noise(0))
    x = real_batch(cfg)
    sc, sg = cpu.step(x), gpu.step(x)
    for k in ("d_loss", "g_loss", "d_real", "d_fake"):
        np.testing.assert_allclose(sg[k], sc[k], rtol=LOSS_RTOL, atol=1e-6, err_msg=k)
    for net, slots in (("generator", (0,)), ("discriminator", (0, 1))):
        for slot in slots:
            assert_grads_close(cpu.get_grads(net, slot), gpu.get_grads(net, slot), f"{net} grad slot {slot}")
        pc, pg = cpu.get_params(net), gpu.get_params(net)
        grads = [cpu.get_grads(net, s) for s in slots]
        for k in pc:
            np.testing.assert_allclose(pg[k], pc[k], rtol=PARAM_RTOL, atol=PARAM_ATOL, err_msg=f"{net} {k}")
            g = sum(gr[k].astype(np.float64) for gr in grads)
            big = np.abs(g) > 1e-3 * np.abs(g).max()
            np.testing.assert_allclose((pg[k] - before[net][k])[big], (pc[k] - before[net][k])[big],
                                       rtol=0, atol=STEP_ATOL, err_msg=f"{net} {k} Adam step")
        sc_, sg_ = cpu.get_state(net), gpu.get_state(net)
        for k in sc_:
            np.testing.assert_allclose(sg_[k], sc_[k], rtol=1e-5, atol=1e-6, err_msg=f"{net} state {k}")


@needs_gpu
@pytest.mark.slow
def test_200_steps_of_mnist_follow_the_cpu(mnist_dir):
    from dcgan.datasets import load_mnist

    x, _ = load_mnist(mnist_dir, split="train")
    x = x[:20000]
    hist = {}
    for device in ("cpu", "cuda"):
        tr = dcgan.Trainer(dcgan.Config.mnist(batch_size=64, seed=0, device=device))
        hist[device] = tr.fit(x, steps=200, progress=False)
        if device == "cuda":
            assert tr.graph_status == "recorded", tr.graph_status
    w = np.ones(20) / 20
    for k in ("d_loss", "g_loss"):
        a = np.convolve(hist["cpu"][k], w, mode="valid")
        b = np.convolve(hist["cuda"][k], w, mode="valid")
        assert np.abs(a - b).max() < 0.15, (k, np.abs(a - b).max())


@needs_gpu
def test_same_seed_same_losses_twice_and_graph_equals_eager():
    x = images(256)
    runs = []
    for graph in (True, True, False):
        tr = dcgan.Trainer(tiny(device="cuda", cuda_graph=graph))
        runs.append(tr.fit(x, steps=12, progress=False))
        assert tr.graph_status == ("recorded" if graph else "eager"), tr.graph_status
    for k in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert runs[0][k] == runs[1][k] == runs[2][k], k


@needs_gpu
def test_uint8_and_float_data_give_the_same_losses_on_the_gpu():
    x = images(128)
    a = dcgan.Trainer(tiny(device="cuda")).fit(x, steps=5, progress=False)
    b = dcgan.Trainer(tiny(device="cuda")).fit(x.astype(np.float32), steps=5, progress=False)
    assert a["d_loss"] == b["d_loss"] and a["g_loss"] == b["g_loss"]


@needs_gpu
def test_checkpoints_move_between_gpu_and_cpu(tmp_path):
    x = images(256)
    gpu = dcgan.Trainer(tiny(device="cuda"))
    gpu.fit(x, steps=4, progress=False)
    path = gpu.save(tmp_path / "gpu")
    cpu = dcgan.Trainer.load(path, device="cpu")
    assert cpu.step_count == 4
    for net in ("generator", "discriminator"):
        for k, v in gpu.weights(net).items():
            np.testing.assert_array_equal(cpu.weights(net)[k], v)
    a = gpu.fit(x, steps=5, progress=False)
    b = cpu.fit(x, steps=5, progress=False)
    np.testing.assert_allclose(b["d_loss"][-1], a["d_loss"][-1], rtol=1e-3)
    back = dcgan.Trainer.load(cpu.save(tmp_path / "cpu"), device="cuda")
    assert back.cfg.device == "cuda" and back.step_count == 5


@needs_gpu
def test_generate_and_discriminate_match_the_cpu():
    cfg = narrow("dcgan64")
    cpu, gpu = pair(cfg)
    x = real_batch(cfg)
    for _ in range(2):
        cpu.step(x), gpu.step(x)
    np.testing.assert_allclose(gpu.generate(10, 7), cpu.generate(10, 7), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(gpu.discriminate(x), cpu.discriminate(x), rtol=1e-3, atol=1e-4)


@needs_gpu
def test_tf32_is_close_to_fp32():
    cfg = narrow("cifar10")
    x = real_batch(cfg)
    a = _core.Trainer({**cfg.core_config(), "device": "cuda"}).step(x)
    b = _core.Trainer({**cfg.core_config(), "device": "cuda", "tf32": True}).step(x)
    for k in ("d_loss", "g_loss"):
        np.testing.assert_allclose(b[k], a[k], rtol=1e-2)


@needs_gpu
def test_precise_bn_statistics_and_every_sampling_mode_match_the_cpu():
    cfg = narrow("dcgan64")
    cpu, gpu = pair(cfg)
    x = real_batch(cfg)
    for _ in range(2):
        cpu.step(x), gpu.step(x)
    a, b = cpu.precise_bn_state(), gpu.precise_bn_state()
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-3, atol=1e-5, err_msg=k)
    for mode in ("running", "batch", "precise"):
        cpu.set_bn_inference(mode), gpu.set_bn_inference(mode)
        np.testing.assert_allclose(gpu.generate(10, 7), cpu.generate(10, 7), rtol=1e-3, atol=1e-4, err_msg=mode)


@needs_gpu
def test_classifier_training_matches_the_cpu():
    from dcgan.features import default_layers

    layers, f = default_layers((1, 28, 28), 10, width=8)
    cfg = dict(image=[1, 28, 28], layers=layers, feature_layer=f, batch_size=32, lr=1e-3, seed=5)
    cpu, gpu = _core.Classifier({**cfg, "device": "cpu"}), _core.Classifier({**cfg, "device": "cuda"})
    x = images(256)
    y = np.random.default_rng(1).integers(0, 10, 256)
    for c in (cpu, gpu):
        c.set_data(x, "nchw", (0.0, float(np.float32(2 / 255)), -1.0), y)
    ra, rb = cpu.run(5), gpu.run(5)
    np.testing.assert_allclose(rb[:, 0], ra[:, 0], rtol=1e-4)
    np.testing.assert_allclose(rb[:, 1], ra[:, 1], atol=1 / 32 + 1e-6)  # a near-tie may flip one
    xf = x[:40].astype(np.float32) * np.float32(2 / 255) - 1
    np.testing.assert_allclose(gpu.logits(xf), cpu.logits(xf), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(gpu.features(xf), cpu.features(xf), rtol=1e-3, atol=1e-4)


# ----------------------------------------------------------------------------- NCCL (issue 11)
def test_cuda_builds_carry_nccl_and_check_its_unique_id():
    if CUDA is None:
        assert _core.has_nccl is False
        pytest.skip("this build has no CUDA backend")
    assert _core.has_nccl, "a CUDA build finds NCCL (the nvidia-nccl-cu13 wheel is a build requirement)"
    assert _core.nccl_version().count(".") == 2
    with pytest.raises(ValueError, match="NCCL unique id has 128 bytes"):
        _core.nccl_communicator(b"short", 0, 2)
    with pytest.raises(ValueError, match="rank 2 is outside a world of 2"):
        _core.nccl_communicator(bytes(128), 2, 2)


def test_sync_bn_alone_on_the_gpu_is_accepted():
    # sync_bn needs several ranks to matter (the cuda backend refuses it then, at construction).
    if not GPU:
        pytest.skip("no usable CUDA GPU here")
    # One rank: sync_bn is accepted and does nothing (there is no other batch to share).
    dcgan.Trainer(tiny(device="cuda", sync_bn=True))
