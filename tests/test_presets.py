"""Every preset of REFERENCE.md layer for layer, its parameter counts worked out by hand from the
spec, its training options; the architecture families at other sizes, widths and kernels; and
configurations no layout can build, refused at construction with the reason."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import dcgan
from dcgan import models
from dcgan.config import PRESETS


def small_batch(cfg):
    # parameter counts and shapes do not depend on the batch; a small one builds faster
    return dataclasses.replace(cfg, batch_size=2)


def counts(cfg):
    tr = dcgan.Trainer(small_batch(cfg))
    return tr.num_params("generator"), tr.num_params("discriminator")


def layer_types(layers):
    return [L["type"] for L in layers]


def describe(cfg):
    """(generator, discriminator) layer tables of the core: type, in/out shapes, params."""
    core = dcgan.Trainer(small_batch(cfg))._core
    return core.describe("generator"), core.describe("discriminator")


# ------------------------------------------------------------------------------- registry
def test_every_reference_model_is_a_preset():
    assert set(PRESETS) == {"mlp", "mnist", "mnist_seed000", "cifar10", "dcgan64"}
    assert dcgan.Config.preset_names() == sorted(PRESETS)
    for name in PRESETS:
        a, b = dcgan.Config.preset(name), getattr(dcgan.Config, name)()
        assert a == b and a.preset_name == name == a.arch
        assert name in models.ARCHITECTURES


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_overrides_and_round_trip(name):
    cfg = dcgan.Config.preset(name, batch_size=4, seed=7, lr=3e-4)
    assert (cfg.batch_size, cfg.seed, cfg.lr) == (4, 7, 3e-4)
    assert dcgan.Config.from_dict(cfg.to_dict()) == cfg
    assert dcgan.Config.from_dict(cfg.to_dict()).core_config() == cfg.core_config()
    with pytest.raises(TypeError, match="unknown Config field"):
        dcgan.Config.preset(name, widht=3)


# ------------------------------------------------------------------------------- parameter counts
# Dense: in*out (+ out bias); Conv / ConvT: in*out*k*k (+ out bias); BN: 2*C (gamma and beta).

def test_mlp_parameter_counts():
    # G: Dense 100->128 (+bias), Dense 128->784 (+bias)
    g = (100 * 128 + 128) + (128 * 784 + 784)
    # D: Dense 784->128 (+bias), Dense 128->1 (+bias)
    d = (784 * 128 + 128) + (128 * 1 + 1)
    assert (g, d) == (114_064, 100_609)
    assert counts(dcgan.Config.mlp()) == (g, d)


def test_mnist_parameter_counts():
    # G: Dense 100->7*7*256 (no bias), BN(12544), ConvT 256->128 5x5, BN(128), ConvT 128->64 5x5,
    #    BN(64), ConvT 64->1 5x5 (no biases)
    g = (100 * 7 * 7 * 256) + 2 * 12544 + 256 * 128 * 25 + 2 * 128 + 128 * 64 * 25 + 2 * 64 + 64 * 1 * 25
    # D: Conv 1->64 5x5 (+bias), Conv 64->128 5x5 (+bias), Dense 7*7*128->1 (+bias)
    d = (1 * 64 * 25 + 64) + (64 * 128 * 25 + 128) + (7 * 7 * 128 + 1)
    assert (g, d) == (2_305_472, 212_865)
    assert counts(dcgan.Config.mnist()) == (g, d)


def test_mnist_seed000_parameter_counts():
    # G: Dense 100->7*7*256 (+bias), ConvT 256->64 4x4 (+bias), BN(64), ConvT 64->1 4x4 (+bias)
    g = (100 * 12544 + 12544) + (256 * 64 * 16 + 64) + 2 * 64 + (64 * 1 * 16 + 1)
    # D: Conv 1->64 4x4 (+bias), BN(64), Conv 64->128 4x4 (+bias), BN(128),
    #    Dense 7*7*128->256 (+bias), Dense 256->1 (+bias)
    d = (1 * 64 * 16 + 64) + 2 * 64 + (64 * 128 * 16 + 128) + 2 * 128 + (6272 * 256 + 256) + (256 + 1)
    assert (g, d) == (1_530_305, 1_738_817)
    assert counts(dcgan.Config.mnist_seed000()) == (g, d)


def test_cifar10_parameter_counts():
    # G: Dense 128->8*8*256 (no bias), BN(16384), ConvT 256->256, BN, ConvT 256->128, BN,
    #    ConvT 128->128, BN, ConvT 128->64, BN, ConvT 64->3; all 5x5 without bias
    g = (128 * 16384 + 2 * 16384 + 256 * 256 * 25 + 2 * 256 + 256 * 128 * 25 + 2 * 128
         + 128 * 128 * 25 + 2 * 128 + 128 * 64 * 25 + 2 * 64 + 64 * 3 * 25)
    # D: Conv 3->128, 128->256, 256->256, 256->128 (5x5, +bias), Dense 2*2*128->1 (+bias)
    d = ((3 * 128 * 25 + 128) + (128 * 256 * 25 + 256) + (256 * 256 * 25 + 256)
         + (256 * 128 * 25 + 128) + (2 * 2 * 128 + 1))
    assert (g, d) == (5_207_872, 3_287_681)
    assert counts(dcgan.Config.cifar10()) == (g, d)


@pytest.mark.parametrize("c", [3, 1])
def test_dcgan64_parameter_counts(c):
    # G: Dense 100->4*4*1024 (+bias), ConvT 1024->512, BN, ConvT 512->256, BN, ConvT 256->128, BN,
    #    ConvT 128->C; all 5x5 without bias
    g = ((100 * 16384 + 16384) + 1024 * 512 * 25 + 2 * 512 + 512 * 256 * 25 + 2 * 256
         + 256 * 128 * 25 + 2 * 128 + 128 * c * 25)
    # D: Conv C->64, Conv 64->128, BN, Conv 128->256, BN, Conv 256->512, BN (5x5, no bias),
    #    Dense 4*4*512->1 (+bias)
    d = (c * 64 * 25 + 64 * 128 * 25 + 2 * 128 + 128 * 256 * 25 + 2 * 256 + 256 * 512 * 25 + 2 * 512
         + 8192 + 1)
    assert (g, d) == {3: (18_869_376, 4_315_585), 1: (18_862_976, 4_312_385)}[c]
    cfg = dcgan.Config.dcgan64() if c == 3 else dcgan.Config.dcgan64(image_shape=(1, 64, 64))
    assert counts(cfg) == (g, d)


# ------------------------------------------------------------------------------- layer for layer
def test_mlp_layers():
    g, d = dcgan.Config.mlp().layers()
    assert layer_types(g) == ["dense", "leaky_relu", "dense", "tanh", "reshape"]
    assert layer_types(d) == ["flatten", "dense", "leaky_relu", "dense"]
    assert [L["out"] for L in g if L["type"] == "dense"] == [128, 784]
    assert [L["out"] for L in d if L["type"] == "dense"] == [128, 1]
    assert all(L["slope"] == 0.01 for L in g + d if L["type"] == "leaky_relu")
    assert all(L["bias"] for L in g + d if L["type"] == "dense")


def test_mnist_seed000_layers():
    cfg = dcgan.Config.mnist_seed000()
    g, d = cfg.layers()
    assert layer_types(g) == ["dense", "relu", "reshape", "conv_transpose2d", "batchnorm", "leaky_relu",
                              "dropout", "conv_transpose2d", "sigmoid"]
    assert layer_types(d) == ["conv2d", "batchnorm", "leaky_relu", "dropout", "conv2d", "batchnorm",
                              "leaky_relu", "flatten", "dense", "relu", "dense"]
    assert all(L["kernel"] == 4 and L["stride"] == 2 and L["padding"] == "same" and L["bias"]
               for L in g + d if "conv" in L["type"])
    assert all(L["p"] == 0.4 for L in g + d if L["type"] == "dropout")
    assert all(L["slope"] == 0.2 for L in g + d if L["type"] == "leaky_relu")
    gd, dd = describe(cfg)
    shapes = [(x["type"], x["out_shape"]) for x in gd]
    assert shapes[2] == ("reshape", (256, 7, 7)) and shapes[3] == ("conv_transpose2d", (64, 14, 14))
    assert shapes[-1] == ("sigmoid", (1, 28, 28))
    dshapes = [x["out_shape"] for x in dd]
    assert dshapes[0] == (64, 14, 14) and dshapes[4] == (128, 7, 7) and dshapes[8] == (256,)
    assert cfg.data_range == (0.0, 1.0)


def test_cifar10_layers():
    cfg = dcgan.Config.cifar10()
    g, d = describe(cfg)
    convt = [(x["out_shape"]) for x in g if x["type"] == "conv_transpose2d"]
    assert convt == [(256, 8, 8), (128, 8, 8), (128, 8, 8), (64, 16, 16), (3, 32, 32)]
    assert [x["type"] for x in g[:4]] == ["dense", "batchnorm", "leaky_relu", "reshape"]
    assert g[3]["out_shape"] == (256, 8, 8) and g[-1]["type"] == "tanh"
    assert [x["out_shape"] for x in d if x["type"] == "conv2d"] == [(128, 16, 16), (256, 8, 8), (256, 4, 4), (128, 2, 2)]
    assert [x["type"] for x in d].count("dropout") == 4
    assert d[-1]["in_shape"] == (512,) and d[-1]["out_shape"] == (1,)
    gl, dl = cfg.layers()
    assert not any(L.get("bias", True) for L in gl if L["type"] in ("dense", "conv_transpose2d"))
    assert all(L.get("bias", True) for L in dl if L["type"] in ("dense", "conv2d"))
    assert all(L["slope"] == 0.3 for L in gl + dl if L["type"] == "leaky_relu")


@pytest.mark.parametrize("c", [3, 1])
def test_dcgan64_layers(c):
    cfg = dcgan.Config.dcgan64(image_shape=(c, 64, 64))
    g, d = describe(cfg)
    assert [x["type"] for x in g[:3]] == ["dense", "relu", "reshape"] and g[2]["out_shape"] == (1024, 4, 4)
    assert [x["out_shape"] for x in g if x["type"] == "conv_transpose2d"] == [
        (512, 8, 8), (256, 16, 16), (128, 32, 32), (c, 64, 64)]
    assert [x["type"] for x in g].count("batchnorm") == 3 and g[-1]["type"] == "tanh"
    assert [x["out_shape"] for x in d if x["type"] == "conv2d"] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4)]
    assert [x["type"] for x in d[:3]] == ["conv2d", "leaky_relu", "conv2d"]  # no BN on the first
    assert [x["type"] for x in d].count("batchnorm") == 3
    assert d[-1]["in_shape"] == (4 * 4 * 512,)
    gl, dl = cfg.layers()
    assert all(L["kernel"] == 5 and not L["bias"] for L in gl + dl if "conv" in L["type"])
    assert all(L["bias"] for L in gl + dl if L["type"] == "dense")
    assert all(L["momentum"] == 0.1 and L["eps"] == 1e-5 for L in gl + dl if L["type"] == "batchnorm")
    assert all(L["init"] == "truncated_normal" and L["init_std"] == 0.02 for L in gl + dl if "init" in L)


# ------------------------------------------------------------------------------- training options
def test_preset_training_options():
    mlp = dcgan.Config.mlp()
    assert (mlp.noise, mlp.label_smoothing, mlp.loss, mlp.batch_size, mlp.epochs) == ("uniform", 0.1, "bce", 100, 100)
    assert (mlp.lr, mlp.beta1, mlp.beta2, mlp.init, mlp.output) == (1e-3, 0.9, 0.999, "xavier_uniform", "tanh")

    s0 = dcgan.Config.mnist_seed000()
    assert (s0.output, s0.noise, s0.init, s0.kernel, s0.dropout, s0.batch_size) == (
        "sigmoid", "uniform", "xavier_normal", 4, 0.4, 128)
    assert (s0.lr, s0.beta1) == (1e-3, 0.9)
    assert s0.epochs * (60000 // s0.batch_size) == pytest.approx(100_000, rel=0.01)  # 100k iterations

    c10 = dcgan.Config.cifar10()
    assert c10.joint and (c10.n_critic, c10.g_steps) == (1, 1)
    assert (c10.z_dim, c10.lr, c10.beta1, c10.batch_size, c10.image_shape) == (128, 1e-4, 0.9, 256, (3, 32, 32))
    assert c10.core_config()["joint"] is True

    d64 = dcgan.Config.dcgan64()
    assert (d64.lr, d64.beta1, d64.init, d64.init_std, d64.bn_momentum, d64.bn_eps) == (
        2e-4, 0.5, "truncated_normal", 0.02, 0.1, 1e-5)
    # seed 004: D maximises log D(x) + log(1 - D(G(z))), G maximises log D(G(z)): the BCE pair
    assert d64.loss == "minimax"  # REFERENCE §5: as written in seed 004
    assert dcgan.Config.dcgan64(loss="saturating").core_config()["loss"] == "saturating"

    mn = dcgan.Config.mnist()  # unchanged
    assert (mn.lr, mn.beta1, mn.batch_size, mn.loss, mn.noise, mn.bn_momentum, mn.bn_eps) == (
        2e-4, 0.5, 256, "bce", "normal", 0.01, 1e-3)


def test_carpedm20_two_g_steps_and_n_critic_through_config():
    cc = dcgan.Config.dcgan64(g_steps=2).core_config()
    assert (cc["g_steps"], cc["n_critic"]) == (2, 1)
    assert dcgan.Config.mnist(n_critic=5).core_config()["n_critic"] == 5


# ------------------------------------------------------------------------------- custom architectures
@pytest.mark.parametrize("side, stages", [(32, 3), (64, 4), (128, 5), (8, 1)])
def test_dcgan_family_stages_from_image_size(side, stages):
    cfg = dcgan.Config.dcgan64(image_shape=(3, side, side), batch_size=2, g_width=4, d_width=4, z_dim=8)
    gl, dl = cfg.layers()
    assert sum(L["type"] == "conv_transpose2d" for L in gl) == stages
    assert sum(L["type"] == "conv2d" for L in dl) == stages
    assert gl[2]["shape"] == [4 * 2 ** stages, 4, 4]
    tr = dcgan.Trainer(cfg)
    assert tr.generate(3, seed=0).shape == (3, 3, side, side)
    d = tr._core.describe("discriminator")
    assert [x for x in d if x["type"] == "conv2d"][-1]["out_shape"] == (4 * 2 ** (stages - 1), 4, 4)
    # G: dense + (stages - 1) ConvT+BN + the output ConvT; D: stages convs, BN on all but the first
    g_expected = (8 * 16 * 4 * 2 ** stages + 16 * 4 * 2 ** stages
                  + sum(4 * 2 ** (i + 1) * 4 * 2 ** i * 25 + 2 * 4 * 2 ** i for i in range(1, stages))
                  + 8 * 3 * 25)
    d_expected = (3 * 4 * 25 + sum(4 * 2 ** (i - 1) * 4 * 2 ** i * 25 + 2 * 4 * 2 ** i for i in range(1, stages))
                  + 16 * 4 * 2 ** (stages - 1) + 1)
    assert (tr.num_params("generator"), tr.num_params("discriminator")) == (g_expected, d_expected)


@pytest.mark.parametrize("arch, shape", [
    ("cifar10", (3, 64, 64)), ("cifar10", (1, 28, 28)), ("cifar10", (3, 32, 48)),
    ("mnist", (3, 32, 32)), ("mnist", (1, 64, 64)),
    ("mnist_seed000", (1, 32, 32)), ("mnist_seed000", (3, 28, 28)),
    ("mlp", (3, 32, 32)), ("mlp", (1, 20, 24)),
])
def test_families_at_other_sizes_and_channels(arch, shape):
    cfg = dcgan.Config.preset(arch, image_shape=shape, batch_size=2, g_width=4, d_width=4, z_dim=10)
    tr = dcgan.Trainer(cfg)
    out = tr.generate(2, seed=0)
    assert out.shape == (2, *shape)
    lo, hi = cfg.data_range
    assert out.min() >= lo and out.max() <= hi
    x = np.random.default_rng(0).integers(0, 256, (4, shape[1], shape[2], shape[0]), np.uint8)
    tr.fit(x, steps=1, progress=False)
    assert np.isfinite(tr.history["d_loss"][-1])


def test_widths_kernel_latent_from_config():
    cfg = dcgan.Config.dcgan64(g_width=8, d_width=16, kernel=4, z_dim=32, image_shape=(1, 32, 32))
    gl, dl = cfg.layers()
    assert [L["out"] for L in gl if L["type"] in ("dense", "conv_transpose2d")] == [4 * 4 * 64, 32, 16, 1]
    assert [L["out"] for L in dl if L["type"] in ("conv2d", "dense")] == [16, 32, 64, 1]
    assert all(L["kernel"] == 4 for L in gl + dl if "kernel" in L)
    tr = dcgan.Trainer(cfg)
    assert tr._core.describe("generator")[0]["in_shape"] == (32,)
    # cifar10 family: 4w, 2w, 2w, w in G; 2v, 4v, 4v, 2v in D
    gl, dl = dcgan.Config.cifar10(g_width=8, d_width=3).layers()
    assert [L["out"] for L in gl if L["type"] == "conv_transpose2d"] == [32, 16, 16, 8, 3]
    assert [L["out"] for L in dl if L["type"] == "conv2d"] == [6, 12, 12, 6]
    gl, dl = dcgan.Config.mnist_seed000(g_width=16, d_width=8, kernel=3).layers()
    assert gl[0]["out"] == 7 * 7 * 64 and gl[3]["out"] == 16 and dl[8]["out"] == 32
    assert dcgan.Trainer(dcgan.Config.mnist_seed000(g_width=16, d_width=8, kernel=3)).num_params("discriminator") > 0


# ------------------------------------------------------------------------------- bad configurations
@pytest.mark.parametrize("name, kw, match", [
    ("dcgan64", dict(image_shape=(3, 28, 28)), r"square with side 4\*2\*\*n .* got image_shape \(3, 28, 28\)"),
    ("dcgan64", dict(image_shape=(3, 48, 48)), r"side 4\*2\*\*n"),
    ("dcgan64", dict(image_shape=(3, 64, 32)), r"must be square"),
    ("dcgan64", dict(image_shape=(1, 4, 4)), r"side 4\*2\*\*n"),
    ("cifar10", dict(image_shape=(3, 30, 30)), r"'cifar10' upsamples twice by 2: .*divisible by 4"),
    ("mnist_seed000", dict(image_shape=(1, 26, 28)), r"divisible by 4"),
    ("mnist", dict(image_shape=(1, 30, 30)), r"divisible by 4"),
    ("dcgan64", dict(g_width=0), r"g_width must be a positive integer"),
    ("cifar10", dict(d_width=0), r"d_width must be a positive integer"),
    ("mlp", dict(g_width=-3), r"g_width must be a positive integer"),
    ("mnist", dict(kernel=0), r"kernel must be a positive integer"),
    ("dcgan64", dict(kernel=1), r"need kernel >= 2"),
    ("cifar10", dict(kernel=1), r"need kernel >= 2"),
    ("mnist_seed000", dict(z_dim=0), r"z_dim must be a positive integer"),
    ("dcgan64", dict(image_shape=(2, 64, 64)), r"channels must be 1 or 3"),
    ("mlp", dict(arch="resnet"), r"unknown arch 'resnet'"),
    ("mlp", dict(generator=[]), r"generator must be a non-empty list of layer dicts"),
])
def test_inconsistent_config_fails_at_construction(name, kw, match):
    with pytest.raises(ValueError, match=match):
        dcgan.Config.preset(name, **kw)


def test_inconsistent_config_mutated_later_fails_at_trainer():
    cfg = dcgan.Config.dcgan64(batch_size=2)
    cfg.image_shape = (3, 100, 100)
    with pytest.raises(ValueError, match=r"side 4\*2\*\*n"):
        dcgan.Trainer(cfg)
    cfg = dcgan.Config.cifar10(batch_size=2)
    cfg.g_width = 0
    with pytest.raises(ValueError, match="g_width must be a positive integer"):
        dcgan.Trainer(cfg)


def test_custom_layer_lists_checked_by_the_core():
    # a discriminator whose strides cannot reach a positive size: the core names the layer
    cfg = dcgan.Config.mlp(batch_size=2)
    cfg.discriminator = [{"type": "conv2d", "out": 4, "kernel": 5, "stride": 2, "padding": 0}] * 4 + [
        {"type": "flatten"}, {"type": "dense", "out": 1}]
    with pytest.raises(ValueError, match=r"discriminator layer 2 \(conv2d\): kernel 5 is larger than the padded input 4"):
        dcgan.Trainer(cfg)
