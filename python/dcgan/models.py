"""Network descriptions: the layer lists the C++ core builds, made from a :class:`Config`.

Each builder returns ``(generator_layers, discriminator_layers)``; a layer is a dict such as
``{"type": "conv2d", "out": 64, "kernel": 5, "stride": 2, "padding": "same"}``. The core infers
every shape from these lists and rejects inconsistent ones with a message naming the layer.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, List, Tuple

if TYPE_CHECKING:  # pragma: no cover
    from .config import Config

Layer = Dict[str, object]
Builder = Callable[["Config"], Tuple[List[Layer], List[Layer]]]


def _init(cfg: "Config") -> Layer:
    return {"init": cfg.init, "init_std": cfg.init_std}


def _bn(cfg: "Config") -> Layer:
    return {"type": "batchnorm", "momentum": cfg.bn_momentum, "eps": cfg.bn_eps, **_init(cfg)}


def _out_act(cfg: "Config") -> Layer:
    return {"type": "tanh" if cfg.output == "tanh" else "sigmoid"}


def mnist(cfg: "Config") -> Tuple[List[Layer], List[Layer]]:
    """REFERENCE.md section 2: the TensorFlow DCGAN tutorial layout (seeds 001 and 003).

    G: z -> Dense(s*s*4w, no bias) -> BN -> LReLU(0.3) -> reshape (4w, s, s)
       -> ConvT(2w, k, s1) -> BN -> LReLU -> ConvT(w, k, s2) -> BN -> LReLU -> ConvT(C, k, s2) -> tanh
    D: Conv(w, k, s2) -> LReLU(0.3) -> Dropout -> Conv(2w, k, s2) -> LReLU -> Dropout
       -> Flatten -> Dense(1) (a logit)
    with w = ``g_width`` (64) / ``d_width`` (64), k = ``kernel`` (5), s = H / 4.
    """
    c, h, w = cfg.image_shape
    if h % 4 or w % 4:
        raise ValueError(f"the mnist layout upsamples twice by 2: image height and width must be "
                         f"divisible by 4, got {h}x{w}")
    gw, dw, k, a = cfg.g_width, cfg.d_width, cfg.kernel, cfg.slope
    i = _init(cfg)
    lrelu = {"type": "leaky_relu", "slope": a}
    g = [
        {"type": "dense", "out": (h // 4) * (w // 4) * 4 * gw, "bias": False, **i},
        _bn(cfg), lrelu,
        {"type": "reshape", "shape": [4 * gw, h // 4, w // 4]},
        {"type": "conv_transpose2d", "out": 2 * gw, "kernel": k, "stride": 1, "padding": "same", "bias": False, **i},
        _bn(cfg), lrelu,
        {"type": "conv_transpose2d", "out": gw, "kernel": k, "stride": 2, "padding": "same", "bias": False, **i},
        _bn(cfg), lrelu,
        {"type": "conv_transpose2d", "out": c, "kernel": k, "stride": 2, "padding": "same", "bias": False, **i},
        _out_act(cfg),
    ]
    drop = {"type": "dropout", "p": cfg.dropout}
    d = [
        {"type": "conv2d", "out": dw, "kernel": k, "stride": 2, "padding": "same", **i},
        lrelu, drop,
        {"type": "conv2d", "out": 2 * dw, "kernel": k, "stride": 2, "padding": "same", **i},
        lrelu, drop,
        {"type": "flatten"},
        {"type": "dense", "out": 1, **i},
    ]
    return g, d


ARCHITECTURES: Dict[str, Builder] = {"mnist": mnist}
