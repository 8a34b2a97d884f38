"""Network descriptions: the layer lists the C++ core builds, made from a :class:`Config`.

Each builder returns ``(generator_layers, discriminator_layers)``; a layer is a dict such as
``{"type": "conv2d", "out": 64, "kernel": 5, "stride": 2, "padding": "same"}``, made by
:func:`layer`, which checks each kind's fields against the core's layer-kind table (the same
table the core's planner, parser and backends read). The core infers
every shape from these lists and rejects inconsistent ones with a message naming the layer.

Every architecture is a *family*: the source document's network is the preset's values of
``image_shape``, ``z_dim``, ``g_width``, ``d_width``, ``kernel``, ``slope``, ``dropout`` and the
BatchNorm settings; other values of these fields give the same layout at another size, width or
kernel without editing code (e.g. ``Config.dcgan64(image_shape=(3, 128, 128))`` adds a stride-2
stage to each network). A size the layout cannot reach raises ``ValueError`` naming the field.

All discriminators end in one logit: where a source applies a sigmoid to D's output and takes
the cross-entropy of the probability, the core takes the cross-entropy of the logit
(BCE-with-logits), which is the same function computed stably.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

if TYPE_CHECKING:  # pragma: no cover
    from .config import Config

Layer = Dict[str, object]
Builder = Callable[["Config"], Tuple[List[Layer], List[Layer]]]


def layer_kinds() -> Dict[str, Dict[str, Any]]:
    """The core's layer-kind table: for each kind (``"conv2d"``, ...) its ``fields`` (type,
    default, doc), whether it ``has_params``, and its ``shape_rule``."""
    global _KINDS
    if _KINDS is None:
        from ._loader import load_core
        _KINDS = load_core().layer_kinds()
    return _KINDS


_KINDS: Optional[Dict[str, Dict[str, Any]]] = None


def layer(kind: str, **fields: Any) -> Layer:
    """A layer dict for the core, checked against :func:`layer_kinds`: an unknown kind or a field
    the kind does not take raises ValueError naming what it does take."""
    kinds = layer_kinds()
    if kind not in kinds:
        raise ValueError(f"unknown layer type {kind!r}; expected one of: {', '.join(kinds)}")
    allowed = kinds[kind]["fields"]
    for name in fields:
        if name not in allowed:
            raise ValueError(f"layer {kind!r} has no field {name!r}; it takes "
                             f"{', '.join(allowed) or 'no fields'}")
    return {"type": kind, **fields}


def _init(cfg: "Config") -> Layer:
    return {"init": cfg.init, "init_std": cfg.init_std}


def _bn(cfg: "Config") -> Layer:
    return layer("batchnorm", momentum=cfg.bn_momentum, eps=cfg.bn_eps, **_init(cfg))


def _out_act(cfg: "Config") -> Layer:
    return layer("tanh" if cfg.output == "tanh" else "sigmoid")


def _lrelu(cfg: "Config") -> Layer:
    return layer("leaky_relu", slope=cfg.slope)


def _dense(out: int, cfg: "Config", bias: bool = True) -> Layer:
    return layer("dense", out=int(out), bias=bias, **_init(cfg))


def _conv(out: int, cfg: "Config", stride: int, bias: bool = True) -> Layer:
    return layer("conv2d", out=int(out), kernel=cfg.kernel, stride=stride,
            padding="same", bias=bias, **_init(cfg))


def _convt(out: int, cfg: "Config", stride: int, bias: bool = False) -> Layer:
    return layer("conv_transpose2d", out=int(out), kernel=cfg.kernel, stride=stride,
            padding="same", bias=bias, **_init(cfg))


def _need_divisible(cfg: "Config", by: int, arch: str, why: str) -> Tuple[int, int, int]:
    c, h, w = cfg.image_shape
    if h % by or w % by:
        raise ValueError(f"arch {arch!r} {why}: image height and width must be divisible by {by}, "
                         f"got image_shape {tuple(cfg.image_shape)}")
    return c, h, w


def _need_stride2_kernel(cfg: "Config", arch: str) -> None:
    # A "same" transposed convolution of stride 2 crops (k - 2) pixels: it needs k >= 2.
    if cfg.kernel < 2:
        raise ValueError(f"arch {arch!r} upsamples with stride-2 transposed convolutions, which "
                         f"need kernel >= 2; got kernel={cfg.kernel}")


def _dropout(cfg: "Config") -> Layer:
    return layer("dropout", p=cfg.dropout)


# --------------------------------------------------------------------------------------- mlp
def mlp(cfg: "Config") -> Tuple[List[Layer], List[Layer]]:
    """REFERENCE.md section 1: the vanilla GAN of seed 002 (mchablani/deep-learning, gan_mnist).

    G: z -> Dense(g_width) -> LReLU(slope) -> Dense(C*H*W) -> tanh -> reshape (C, H, W)
    D: flatten -> Dense(d_width) -> LReLU(slope) -> Dense(1) (a logit; the seed's sigmoid is
       folded into the loss)
    with g_width = d_width = 128, slope 0.01. Biases: every dense layer has one, as
    ``tf.layers.dense`` does by default in the seed's code; its default kernel initialiser is
    Glorot-uniform (``init="xavier_uniform"``). Works for any image shape.
    """
    c, h, w = cfg.image_shape
    g = [
        _dense(cfg.g_width, cfg), _lrelu(cfg),
        _dense(c * h * w, cfg), _out_act(cfg),
        layer("reshape", shape=[c, h, w]),
    ]
    d = [
        layer("flatten"),
        _dense(cfg.d_width, cfg), _lrelu(cfg),
        _dense(1, cfg),
    ]
    return g, d


# --------------------------------------------------------------------------------------- mnist
def mnist(cfg: "Config") -> Tuple[List[Layer], List[Layer]]:
    """REFERENCE.md section 2: the TensorFlow DCGAN tutorial layout (seeds 001 and 003).

    G: z -> Dense(s*s*4w, no bias) -> BN -> LReLU(0.3) -> reshape (4w, s, s)
       -> ConvT(2w, k, s1) -> BN -> LReLU -> ConvT(w, k, s2) -> BN -> LReLU -> ConvT(C, k, s2) -> tanh
    D: Conv(w, k, s2) -> LReLU(0.3) -> Dropout -> Conv(2w, k, s2) -> LReLU -> Dropout
       -> Flatten -> Dense(1) (a logit)
    with w = ``g_width`` (64) / ``d_width`` (64), k = ``kernel`` (5), s = H / 4.
    Biases as in the tutorial: none in G (``use_bias=False``), Keras' default ones in D.
    """
    c, h, w = cfg.image_shape
    if h % 4 or w % 4:
        raise ValueError(f"the mnist layout upsamples twice by 2: image height and width must be "
                         f"divisible by 4, got {h}x{w}")
    _need_stride2_kernel(cfg, "mnist")
    gw, dw, k, a = cfg.g_width, cfg.d_width, cfg.kernel, cfg.slope
    i = _init(cfg)
    lrelu = layer("leaky_relu", slope=a)
    g = [
        layer("dense", out=(h // 4) * (w // 4) * 4 * gw, bias=False, **i),
        _bn(cfg), lrelu,
        layer("reshape", shape=[4 * gw, h // 4, w // 4]),
        layer("conv_transpose2d", out=2 * gw, kernel=k, stride=1, padding="same", bias=False, **i),
        _bn(cfg), lrelu,
        layer("conv_transpose2d", out=gw, kernel=k, stride=2, padding="same", bias=False, **i),
        _bn(cfg), lrelu,
        layer("conv_transpose2d", out=c, kernel=k, stride=2, padding="same", bias=False, **i),
        _out_act(cfg),
    ]
    drop = layer("dropout", p=cfg.dropout)
    d = [
        layer("conv2d", out=dw, kernel=k, stride=2, padding="same", **i),
        lrelu, drop,
        layer("conv2d", out=2 * dw, kernel=k, stride=2, padding="same", **i),
        lrelu, drop,
        layer("flatten"),
        layer("dense", out=1, **i),
    ]
    return g, d


# --------------------------------------------------------------------------------------- seed 000
def mnist_seed000(cfg: "Config") -> Tuple[List[Layer], List[Layer]]:
    """REFERENCE.md section 3: the DCGAN of seed 000 (TengdaHan/GAN-TensorFlow, model_conv.py).

    G: z -> Dense(s*s*4w) -> ReLU -> reshape (4w, s, s) -> ConvT(w, k, s2) -> BN -> LReLU(slope)
       -> Dropout(p) -> ConvT(C, k, s2) -> sigmoid
    D: Conv(v, k, s2) -> BN -> LReLU(slope) -> Dropout(p) -> Conv(2v, k, s2) -> BN -> LReLU(slope)
       -> Flatten -> Dense(4v) -> ReLU -> Dense(1) (a logit; the seed's sigmoid is in the loss)
    with w = ``g_width`` (64: 256 channels at 7x7, 64 at 14x14), v = ``d_width`` (64: 64, 128,
    dense 256), k = ``kernel`` (4), slope 0.2, p = ``dropout`` (0.4), s = H / 4.

    Choices where seed and code differ: the seed says G's dense layer is followed by ReLU (the
    code uses LReLU 0.2; we follow the seed); the activation after G's BN is not named in the
    seed, the code's is LReLU(0.2); D's hidden dense layer uses ReLU as the seed and REFERENCE
    say. The seed's "40% dropout" is taken as p = 0.4 (the code's ``tf.nn.dropout(x, 0.4)`` is a
    TF1 *keep* probability, i.e. p = 0.6; override ``dropout`` for that). Biases: every
    convolution, transposed convolution and dense layer has one (the code's B1..B4 variables,
    initialised to zero), even where a BatchNorm follows and makes it redundant.
    """
    c, h, w = _need_divisible(cfg, 4, "mnist_seed000", "upsamples twice by 2")
    _need_stride2_kernel(cfg, "mnist_seed000")
    gw, dw = cfg.g_width, cfg.d_width
    g = [
        _dense((h // 4) * (w // 4) * 4 * gw, cfg), layer("relu"),
        layer("reshape", shape=[4 * gw, h // 4, w // 4]),
        _convt(gw, cfg, 2, bias=True), _bn(cfg), _lrelu(cfg), _dropout(cfg),
        _convt(c, cfg, 2, bias=True), _out_act(cfg),
    ]
    d = [
        _conv(dw, cfg, 2), _bn(cfg), _lrelu(cfg), _dropout(cfg),
        _conv(2 * dw, cfg, 2), _bn(cfg), _lrelu(cfg),
        layer("flatten"),
        _dense(4 * dw, cfg), layer("relu"),
        _dense(1, cfg),
    ]
    return g, d


# --------------------------------------------------------------------------------------- cifar10
def cifar10(cfg: "Config") -> Tuple[List[Layer], List[Layer]]:
    """REFERENCE.md section 4: the 32x32x3 DCGAN of seed 001 (rojagtap/DCGAN, cifar.ipynb).

    G: z -> Dense(s*s*4w, no bias) -> BN -> LReLU -> reshape (4w, s, s)
       -> ConvT(4w, k, s1) -> BN -> LReLU -> ConvT(2w, k, s1) -> BN -> LReLU
       -> ConvT(2w, k, s1) -> BN -> LReLU -> ConvT(w, k, s2) -> BN -> LReLU -> ConvT(C, k, s2) -> tanh
    D: [Conv(2v, k, s2) -> LReLU -> Dropout] -> [Conv(4v) ...] -> [Conv(4v) ...] -> [Conv(2v) ...]
       -> Flatten -> Dense(1) (a logit)
    with w = ``g_width`` (64: 256, 256, 128, 128, 64 channels), v = ``d_width`` (64: 128, 256,
    256, 128), k = ``kernel`` (5), LReLU slope 0.3 (Keras' default), s = H / 4 (8 for 32x32).
    D's four stride-2 "same" convolutions reach ceil(H / 16) x ceil(W / 16) (2x2 at 32x32).
    Biases as in the notebook: none in G (``use_bias=False`` everywhere), Keras' default ones in
    every layer of D.
    """
    c, h, w = _need_divisible(cfg, 4, "cifar10", "upsamples twice by 2")
    _need_stride2_kernel(cfg, "cifar10")
    gw, dw = cfg.g_width, cfg.d_width
    g = [_dense((h // 4) * (w // 4) * 4 * gw, cfg, bias=False), _bn(cfg), _lrelu(cfg),
         layer("reshape", shape=[4 * gw, h // 4, w // 4])]
    for out, stride in ((4 * gw, 1), (2 * gw, 1), (2 * gw, 1), (gw, 2)):
        g += [_convt(out, cfg, stride), _bn(cfg), _lrelu(cfg)]
    g += [_convt(c, cfg, 2), _out_act(cfg)]
    d: List[Layer] = []
    for out in (2 * dw, 4 * dw, 4 * dw, 2 * dw):
        d += [_conv(out, cfg, 2), _lrelu(cfg), _dropout(cfg)]
    d += [layer("flatten"), _dense(1, cfg)]
    return g, d


# --------------------------------------------------------------------------------------- dcgan64
def dcgan_stages(image_shape: Tuple[int, int, int]) -> int:
    """Number of stride-2 stages n of the DCGAN-paper family: side = 4 * 2**n, n >= 1."""
    _, h, w = image_shape
    n = int(round(math.log2(h / 4))) if h >= 8 else 0
    if h != w or n < 1 or 4 * 2 ** n != h:
        raise ValueError(f"arch 'dcgan64' grows a 4x4 map by stride-2 stages: the image must be "
                         f"square with side 4*2**n (8, 16, 32, 64, 128, ...), got image_shape "
                         f"{tuple(image_shape)}")
    return n


def dcgan64(cfg: "Config") -> Tuple[List[Layer], List[Layer]]:
    """REFERENCE.md section 5: the DCGAN paper's 64x64 model as seed 004 writes it.

    G: z -> Dense(4*4*w*2^n) -> ReLU -> reshape (w*2^n, 4, 4)
       -> [ConvT(w*2^(n-1), k, s2) -> BN -> ReLU] ... [ConvT(2w, k, s2) -> BN -> ReLU]
       -> ConvT(C, k, s2) -> tanh
    D: Conv(v, k, s2) -> LReLU(slope) -> [Conv(2v, k, s2) -> BN -> LReLU] ...
       -> [Conv(v*2^(n-1), k, s2) -> BN -> LReLU] -> Flatten (4*4*v*2^(n-1)) -> Dense(1)
    with n = log2(H / 4) stride-2 stages (4 at 64x64: G 1024, 512, 256, 128, C channels and D
    64, 128, 256, 512 for w = ``g_width`` = v = ``d_width`` = 64), k = ``kernel`` (5; the
    PyTorch example uses 4), slope 0.2. 32x32 gives n = 3, 128x128 gives n = 5.
    Biases as in the seed's code: its two dense layers have one (G_Fb1, D_Fb1); the
    convolutions and transposed convolutions have none. BatchNorm has a scale and a shift
    (the seed's ``tf.contrib.layers.batch_norm`` defaults to a shift only; we keep the paper's
    and PyTorch's learnt scale).
    """
    c = cfg.image_shape[0]
    n = dcgan_stages(cfg.image_shape)
    _need_stride2_kernel(cfg, "dcgan64")
    gw, dw = cfg.g_width, cfg.d_width
    relu = layer("relu")
    g = [_dense(4 * 4 * gw * 2 ** n, cfg), relu, layer("reshape", shape=[gw * 2 ** n, 4, 4])]
    for i in range(n - 1, 0, -1):
        g += [_convt(gw * 2 ** i, cfg, 2), _bn(cfg), relu]
    g += [_convt(c, cfg, 2), _out_act(cfg)]
    d = [_conv(dw, cfg, 2, bias=False), _lrelu(cfg)]
    for i in range(1, n):
        d += [_conv(dw * 2 ** i, cfg, 2, bias=False), _bn(cfg), _lrelu(cfg)]
    d += [layer("flatten"), _dense(1, cfg)]
    return g, d


ARCHITECTURES: Dict[str, Builder] = {
    "mlp": mlp,
    "mnist": mnist,
    "mnist_seed000": mnist_seed000,
    "cifar10": cifar10,
    "dcgan64": dcgan64,
}
