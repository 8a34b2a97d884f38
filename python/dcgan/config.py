"""Training configuration: one dataclass, with the recipes of the source documents as presets."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from . import models

LOSSES = ("bce", "minimax", "lsgan", "hinge")
NOISES = ("normal", "uniform")
OUTPUTS = ("tanh", "sigmoid")
INITS = ("normal", "truncated_normal", "xavier_uniform", "xavier_normal")


@dataclass
class Config:
    """Everything that defines a training run.

    Use a preset and override what you need, e.g.
    ``Config.mnist(batch_size=64, lr=2e-4, beta1=0.5, seed=0)``.

    Optimiser: Adam with ``lr``/``beta1``/``beta2`` for both networks; ``lr_g``, ``lr_d``,
    ``betas_g``, ``betas_d`` override per network. ``threads=0`` uses every core (or
    ``OMP_NUM_THREADS``). The data range follows the generator's output activation:
    ``tanh`` -> [-1, 1], ``sigmoid`` -> [0, 1]; :meth:`Trainer.fit` scales inputs to it.
    """

    arch: str = "mnist"
    image_shape: Tuple[int, int, int] = (1, 28, 28)
    z_dim: int = 100
    batch_size: int = 256
    epochs: int = 50
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_g: Optional[float] = None
    lr_d: Optional[float] = None
    betas_g: Optional[Tuple[float, float]] = None
    betas_d: Optional[Tuple[float, float]] = None
    adam_eps: float = 1e-8
    loss: str = "bce"
    label_smoothing: float = 0.0
    n_critic: int = 1
    g_steps: int = 1
    joint: bool = False
    noise: str = "normal"
    output: str = "tanh"
    init: str = "xavier_uniform"
    init_std: float = 0.02
    g_width: int = 64
    d_width: int = 64
    kernel: int = 5
    slope: float = 0.3
    dropout: float = 0.3
    bn_momentum: float = 0.01
    bn_eps: float = 1e-3
    seed: int = 0
    threads: int = 0
    # Custom architectures: layer lists that replace the preset's networks.
    generator: Optional[List[Dict[str, Any]]] = None
    discriminator: Optional[List[Dict[str, Any]]] = None
    preset: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        self.image_shape = tuple(int(v) for v in self.image_shape)  # type: ignore[assignment]
        self.validate()

    # ------------------------------------------------------------------ presets
    @classmethod
    def mnist(cls, **overrides: Any) -> "Config":
        """REFERENCE.md section 2: the TensorFlow-tutorial DCGAN for 28x28x1 (seeds 001, 003).

        Architecture, Glorot-uniform init and BatchNorm settings (momentum 0.99 in Keras terms,
        i.e. 0.01 here, eps 1e-3) follow the tutorial; batch 256 and 50 epochs too. The
        optimiser default is the DCGAN paper's Adam(2e-4, beta1 0.5) rather than the tutorial's
        Adam(1e-4, beta1 0.9): it is the usual alternative the reference names and learns
        visibly faster in the first epochs. Pass ``lr=1e-4, beta1=0.9`` for the tutorial's.
        """
        base = dict(arch="mnist", image_shape=(1, 28, 28), z_dim=100, batch_size=256, epochs=50,
                    lr=2e-4, beta1=0.5, beta2=0.999, loss="bce", noise="normal", output="tanh",
                    init="xavier_uniform", g_width=64, d_width=64, kernel=5, slope=0.3,
                    dropout=0.3, bn_momentum=0.01, bn_eps=1e-3, preset="mnist")
        return cls._make(base, overrides)

    @classmethod
    def preset_names(cls) -> List[str]:
        return sorted(PRESETS)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "Config":
        """The preset called ``name`` with keyword overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; available: {', '.join(sorted(PRESETS))}")
        return getattr(cls, PRESETS[name])(**overrides)

    @classmethod
    def _make(cls, base: Dict[str, Any], overrides: Dict[str, Any]) -> "Config":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown Config field(s): {', '.join(unknown)}; "
                            f"known fields: {', '.join(sorted(known))}")
        base.update(overrides)
        return cls(**base)

    # ------------------------------------------------------------------ derived values
    @property
    def data_range(self) -> Tuple[float, float]:
        """Range of the generator's output and of the scaled training data."""
        return (-1.0, 1.0) if self.output == "tanh" else (0.0, 1.0)

    @property
    def effective_lr_g(self) -> float:
        return self.lr if self.lr_g is None else self.lr_g

    @property
    def effective_lr_d(self) -> float:
        return self.lr if self.lr_d is None else self.lr_d

    def layers(self) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
        """The generator and discriminator layer lists the core builds."""
        g, d = (None, None)
        if self.generator is None or self.discriminator is None:
            if self.arch not in models.ARCHITECTURES:
                raise ValueError(f"unknown arch {self.arch!r}; available: "
                                 f"{', '.join(sorted(models.ARCHITECTURES))}")
            g, d = models.ARCHITECTURES[self.arch](self)
        return (self.generator if self.generator is not None else g,
                self.discriminator if self.discriminator is not None else d)

    def core_config(self) -> Dict[str, Any]:
        """The dict handed to the C++ core."""
        g, d = self.layers()
        bg = self.betas_g or (self.beta1, self.beta2)
        bd = self.betas_d or (self.beta1, self.beta2)
        return {
            "z_dim": self.z_dim, "image": list(self.image_shape), "generator": g, "discriminator": d,
            "batch_size": self.batch_size, "loss": self.loss, "label_smoothing": self.label_smoothing,
            "n_critic": self.n_critic, "g_steps": self.g_steps, "joint": self.joint,
            "lr_g": self.effective_lr_g, "lr_d": self.effective_lr_d,
            "beta1_g": bg[0], "beta2_g": bg[1], "beta1_d": bd[0], "beta2_d": bd[1],
            "adam_eps": self.adam_eps, "noise": self.noise, "seed": self.seed, "threads": self.threads,
        }

    # ------------------------------------------------------------------ checks and (de)serialisation
    def validate(self) -> None:
        """Raises ValueError naming the bad field and what was expected."""
        def positive_int(name: str) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")

        def positive_float(name: str, v: Any) -> None:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")

        def unit(name: str, v: Any, closed_hi: bool = False) -> None:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v and (v <= 1 if closed_hi else v < 1)
            if not ok:
                raise ValueError(f"{name} must be in [0, 1{']' if closed_hi else ')'}, got {v!r}")

        for name in ("batch_size", "z_dim", "epochs", "n_critic", "g_steps", "g_width", "d_width", "kernel"):
            positive_int(name)
        if len(self.image_shape) != 3 or any(v <= 0 for v in self.image_shape):
            raise ValueError(f"image_shape must be (C, H, W) with positive sizes, got {self.image_shape!r}")
        if self.image_shape[0] not in (1, 3):
            raise ValueError(f"image_shape channels must be 1 or 3, got {self.image_shape[0]}")
        positive_float("lr", self.lr)
        for name in ("lr_g", "lr_d"):
            if getattr(self, name) is not None:
                positive_float(name, getattr(self, name))
        positive_float("adam_eps", self.adam_eps)
        unit("beta1", self.beta1)
        unit("beta2", self.beta2)
        for name in ("betas_g", "betas_d"):
            b = getattr(self, name)
            if b is not None:
                if len(b) != 2:
                    raise ValueError(f"{name} must be a pair (beta1, beta2), got {b!r}")
                unit(f"{name}[0]", b[0])
                unit(f"{name}[1]", b[1])
        unit("label_smoothing", self.label_smoothing)
        unit("dropout", self.dropout)
        unit("bn_momentum", self.bn_momentum, closed_hi=True)
        positive_float("bn_eps", self.bn_eps)
        positive_float("init_std", self.init_std)
        if not (0 <= self.slope < 1):
            raise ValueError(f"slope must be in [0, 1), got {self.slope!r}")
        for name, allowed in (("loss", LOSSES), ("noise", NOISES), ("output", OUTPUTS), ("init", INITS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; expected one of {', '.join(allowed)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"threads must be an integer >= 0 (0 = all cores), got {self.threads!r}")
        if self.joint and (self.n_critic != 1 or self.g_steps != 1):
            raise ValueError("joint=True (one forward pass feeds both updates) needs n_critic=1 and g_steps=1")

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_shape"] = list(self.image_shape)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Config":
        d = dict(d)
        for k in ("image_shape", "betas_g", "betas_d"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls._make({}, d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


# preset name -> classmethod name
PRESETS: Dict[str, str] = {"mnist": "mnist"}
