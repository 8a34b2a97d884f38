"""Training configuration: one dataclass, with the recipes of the source documents as presets."""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

from . import models

LOSSES = ("bce", "minimax", "saturating", "lsgan", "hinge")
NOISES = ("normal", "uniform")
OUTPUTS = ("tanh", "sigmoid")
# More CPU threads than any machine this runs on has cores: beyond it libgomp fails to create
# threads and aborts the whole process (no Python exception), so a config may not ask for it.
MAX_THREADS = 256
INITS = ("normal", "truncated_normal", "xavier_uniform", "xavier_normal")
BN_INFERENCE = ("precise", "running", "batch")
# As the core's kMaxPreciseBnSamples (cpp/src/core/gan_step.cpp).
MAX_PRECISE_BN_SAMPLES = 1 << 24


@dataclass
class Config:
    """Everything that defines a training run.

    Use a preset and override what you need, e.g.
    ``Config.mnist(batch_size=64, lr=2e-4, beta1=0.5, seed=0)``.

    Optimiser: Adam with ``lr``/``beta1``/``beta2`` for both networks; ``lr_g``, ``lr_d``,
    ``betas_g``, ``betas_d`` override per network. ``threads=0`` uses every core (or
    ``OMP_NUM_THREADS``). ``device`` picks the backend by name (``"cpu"`` by default; the
    names built in are listed by :func:`dcgan.backends`; ``"cuda"`` needs a CUDA build and a GPU,
    see :func:`dcgan.cuda_available`). ``tf32`` allows TF32 math on the GPU; ``cuda_graph`` replays
    each step as one CUDA graph. ``precision="bf16"`` trains in bfloat16 on CPUs with AVX512-BF16
    or AMX (activations, convolutions and their gradients in bf16; the weights, their gradients,
    BatchNorm statistics, the losses and Adam stay fp32; ``Trainer`` refuses it, naming the ISA,
    elsewhere): 1.5-1.7x the fp32 speed on a Zen 4 core, samples as good at equal steps
    (bench/RESULTS.md).

    ``bn_inference`` chooses the BatchNorm statistics G samples with (:meth:`Trainer.generate`,
    :meth:`Generator.generate`, the CLI's grids, the metrics): ``"precise"`` (default) pools the
    exact mean and variance of every BN layer's input over ``precise_bn_samples`` fresh noise
    samples in training mode, recomputed whenever the weights changed; ``"running"`` uses the
    exponential running averages (PyTorch's ``eval()``; with a small ``bn_momentum`` they lag
    hundreds of steps behind the weights); ``"batch"`` normalises each batch of ``batch_size``
    samples by its own statistics (PyTorch's ``train()``, as its DCGAN example samples). The
    running averages are trained and saved whichever is chosen. The data range follows the generator's output activation:
    ``tanh`` -> [-1, 1], ``sigmoid`` -> [0, 1]; :meth:`Trainer.fit` scales inputs to it.

    ``cfg.replace(batch_size=64)`` is a validated copy with changes (``preset_name`` carried
    over). ``repr(cfg)`` lists ``preset_name`` and then, one per line, the fields whose values
    differ from the dataclass defaults (the defaults are the ``mnist`` preset's), as Python that
    rebuilds an equal config; :meth:`to_dict` has every field.
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
    # Which BatchNorm statistics generate() uses: "precise", "running" or "batch".
    bn_inference: str = "precise"
    precise_bn_samples: int = 256
    seed: int = 0
    threads: int = 0
    # The backend that runs the step: "cpu", or another name from dcgan.backends().
    device: str = "cpu"
    # CUDA: allow TF32 tensor-core math in convolutions and GEMMs (faster, ~1e-3 relative
    # rounding instead of fp32's ~1e-7; off by default since it changes the numerics).
    tf32: bool = False
    # Arithmetic of the training step: "fp32", or "bf16" on CPUs with AVX512-BF16 or AMX
    # (activations, convolutions and their gradients in bfloat16; weights, weight gradients,
    # BatchNorm statistics and Adam in fp32). Refused, naming the ISA, on CPUs without it.
    precision: str = "fp32"
    # CUDA: replay the training step as a recorded CUDA graph (after one eager warm-up step).
    cuda_graph: bool = True
    # Data-parallel runs (several MPI ranks, see dcgan.distributed): "auto" trains as one job
    # when launched by mpiexec (or `dcgan train --nproc N`) with several ranks, "off" keeps each
    # process on its own. batch_size is per rank.
    distributed: str = "auto"
    # BatchNorm statistics of training steps over every rank's batch (all-gathered), so N ranks
    # with batch b train as one process with batch N * b; off: each rank normalises its own.
    sync_bn: bool = False
    # Debug: every N steps, check that every rank holds rank 0's parameters (a hash); 0: never.
    check_replicas_every: int = 0
    # Custom architectures: layer lists that replace the preset's networks.
    generator: Optional[List[Dict[str, Any]]] = None
    discriminator: Optional[List[Dict[str, Any]]] = None
    # Which preset this config came from ("custom" otherwise); informational only.
    preset_name: str = field(default="custom", compare=False)

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
                    dropout=0.3, bn_momentum=0.01, bn_eps=1e-3, preset_name="mnist")
        return cls._make(base, overrides)

    @classmethod
    def mlp(cls, **overrides: Any) -> "Config":
        """REFERENCE.md section 1: the vanilla GAN of seed 002 (mchablani/deep-learning).

        Dense 128 + LReLU(0.01) in each network (see :func:`dcgan.models.mlp`), uniform noise
        U(-1, 1), data in [-1, 1] (tanh), real labels smoothed to 0.9 (``smooth = 0.1``), the
        non-saturating G loss; TF's default ``AdamOptimizer()`` (lr 1e-3, betas 0.9/0.999, eps
        1e-8: the seed sets ``learning_rate = 0.002`` but never passes it to the optimiser) and
        default Glorot-uniform dense kernels with zero biases; batch 100, 100 epochs.
        The seed feeds the D step and the G step the same z: the core's G step reuses the D
        step's fakes, which is the same thing.
        """
        base = dict(arch="mlp", image_shape=(1, 28, 28), z_dim=100, batch_size=100, epochs=100,
                    lr=1e-3, beta1=0.9, beta2=0.999, adam_eps=1e-8, loss="bce",
                    label_smoothing=0.1, noise="uniform", output="tanh", init="xavier_uniform",
                    g_width=128, d_width=128, slope=0.01, dropout=0.0, preset_name="mlp")
        return cls._make(base, overrides)

    @classmethod
    def mnist_seed000(cls, **overrides: Any) -> "Config":
        """REFERENCE.md section 3: the DCGAN of seed 000 (TengdaHan/GAN-TensorFlow, model_conv).

        4x4 kernels, BatchNorm and dropout 0.4 in both networks, a sigmoid generator on data in
        [0, 1] (:meth:`Trainer.fit` scales to it), uniform noise U(-1, 1), Xavier initialisation
        (the seed defines a normal Xavier initialiser: ``init="xavier_normal"``, zero biases, BN
        scale 1), LReLU slope 0.2. Loss: BCE(D(x), 1) + BCE(D(G(z)), 0) for D and BCE(D(G(z)), 1)
        for G; D's final sigmoid is folded into the loss (BCE-with-logits, the same function).
        TF's default Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8); batch 128; the code's 100 000
        alternating D/G iterations are ``epochs=213`` on the 60 000 MNIST digits (468 steps an
        epoch, 99 684 steps). BN momentum 0.1 / eps 1e-5 (PyTorch's defaults; the code's
        ``variance_epsilon=1e-5``). See :func:`dcgan.models.mnist_seed000` for the layers.
        """
        base = dict(arch="mnist_seed000", image_shape=(1, 28, 28), z_dim=100, batch_size=128,
                    epochs=213, lr=1e-3, beta1=0.9, beta2=0.999, adam_eps=1e-8, loss="bce",
                    noise="uniform", output="sigmoid", init="xavier_normal", g_width=64,
                    d_width=64, kernel=4, slope=0.2, dropout=0.4, bn_momentum=0.1, bn_eps=1e-5,
                    preset_name="mnist_seed000")
        return cls._make(base, overrides)

    @classmethod
    def cifar10(cls, **overrides: Any) -> "Config":
        """REFERENCE.md section 4: the 32x32x3 DCGAN of seed 001 (rojagtap/DCGAN, cifar.ipynb).

        z(128) ~ N(0, 1); data in [-1, 1]; BCE on logits with the non-saturating G loss; G and D
        updated from one shared forward pass (``joint=True``: the notebook's two GradientTapes
        over one G and one D forward, both gradients taken before either optimiser steps).
        Keras defaults everywhere the notebook relies on them: Glorot-uniform kernels, zero
        biases, BN momentum 0.99 (0.01 here) and eps 1e-3, LeakyReLU slope 0.3, Adam betas
        0.9/0.999 and eps 1e-7; Adam lr 1e-4 (its ``decay=1e-8`` is negligible and not modelled);
        batch 256; 100 epochs (the article; the notebook runs 400).
        See :func:`dcgan.models.cifar10` for the layers.
        """
        base = dict(arch="cifar10", image_shape=(3, 32, 32), z_dim=128, batch_size=256, epochs=100,
                    lr=1e-4, beta1=0.9, beta2=0.999, adam_eps=1e-7, loss="bce", joint=True,
                    noise="normal", output="tanh", init="xavier_uniform", g_width=64, d_width=64,
                    kernel=5, slope=0.3, dropout=0.3, bn_momentum=0.01, bn_eps=1e-3,
                    preset_name="cifar10")
        return cls._make(base, overrides)

    @classmethod
    def dcgan64(cls, **overrides: Any) -> "Config":
        """REFERENCE.md section 5: the DCGAN paper's 64x64 model as seed 004 writes it.

        3 channels by default; ``image_shape=(1, 64, 64)`` for grayscale (MNIST resized to 64, as
        in the seed), ``(3, 32, 32)`` or ``(3, 128, 128)`` for one stride-2 stage fewer or more.
        5x5 kernels (``kernel=4`` for the PyTorch example's), weights from a normal truncated at
        two standard deviations with std 0.02 (``init="truncated_normal"``; BN scale ~ N(1,
        0.02), zero biases), BN momentum 0.9 in TensorFlow's terms = 0.1 here, eps 1e-5, LReLU
        slope 0.2 in D, ReLU in G; z(100) ~ N(0, 1); data in [-1, 1]; Adam lr 2e-4, beta1 0.5.

        Loss: ``loss="minimax"`` as written in the seed: D maximises log D(x) + log(1 - D(G(z))),
        G maximises log D(G(z)). (Gradient for gradient that is the non-saturating BCE pair;
        ``loss="saturating"`` is the GAN paper's literal game where G minimises
        log(1 - D(G(z))), which stalls early in training.) The seed's two dense layers are initialised N(0, 0.01); here every
        weight uses ``init``/``init_std``. Batch 64 and 25 epochs follow the PyTorch example (the
        seed gives neither). See :func:`dcgan.models.dcgan64` for the layers.
        """
        base = dict(arch="dcgan64", image_shape=(3, 64, 64), z_dim=100, batch_size=64, epochs=25,
                    lr=2e-4, beta1=0.5, beta2=0.999, adam_eps=1e-8, loss="minimax", noise="normal",
                    output="tanh", init="truncated_normal", init_std=0.02, g_width=64,
                    d_width=64, kernel=5, slope=0.2, dropout=0.0, bn_momentum=0.1, bn_eps=1e-5,
                    preset_name="dcgan64")
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
        cls._check_field_names(overrides)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def _check_field_names(cls, names: Iterable[str]) -> None:
        """TypeError naming every unknown field, with the close matches of each."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(names) - set(known))
        if unknown:
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.6)
                hints.append(f"{name!r} (did you mean {' or '.join(close)}?)" if close else repr(name))
            raise TypeError(f"unknown Config field(s): {', '.join(hints)}; "
                            f"known fields: {', '.join(sorted(known))}")

    def replace(self, **changes: Any) -> "Config":
        """A validated copy with ``changes`` applied, like :func:`dataclasses.replace`;
        ``preset_name`` is carried over. An unknown field name raises a TypeError that names it
        and its close matches (``cfg.replace(batchsize=64)``: did you mean batch_size?)."""
        self._check_field_names(changes)
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        """``Config(preset_name=..., field=value, ...)``, one field per line: the fields that
        differ from the dataclass defaults, so ``eval(repr(cfg)) == cfg``."""
        items = []
        if self.preset_name != "custom":
            items.append(("preset_name", self.preset_name))
        for f in dataclasses.fields(self):
            if f.name == "preset_name":
                continue
            v = getattr(self, f.name)
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            if type(v) is not type(default) or v != default:
                items.append((f.name, v))
        if not items:
            return f"{type(self).__name__}()"
        parts = []
        for name, v in items:
            if isinstance(v, list) and v and all(isinstance(e, dict) for e in v):
                text = "[\n" + "".join(f"        {e!r},\n" for e in v) + "    ]"  # a layer per line
            else:
                text = repr(v)
            parts.append(f"{name}={text}")
        return f"{type(self).__name__}(" + ",\n    ".join(parts) + ")"

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
            "device": self.device, "tf32": self.tf32, "precision": self.precision, "bn_inference": self.bn_inference,
            "precise_bn_samples": self.precise_bn_samples, "sync_bn": self.sync_bn,
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

        for name in ("batch_size", "z_dim", "epochs", "n_critic", "g_steps", "g_width", "d_width", "kernel",
                     "precise_bn_samples"):
            positive_int(name)
        if self.precise_bn_samples > MAX_PRECISE_BN_SAMPLES:
            raise ValueError(f"precise_bn_samples must be at most {MAX_PRECISE_BN_SAMPLES}, got {self.precise_bn_samples}")
        if self.bn_inference not in BN_INFERENCE:
            raise ValueError(f"unknown bn_inference {self.bn_inference!r}; expected one of {', '.join(BN_INFERENCE)}")
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
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or not 0 <= self.threads <= MAX_THREADS:
            raise ValueError(f"threads must be an integer in [0, {MAX_THREADS}] (0 = all cores; the OpenMP runtime "
                             f"ends the process when it cannot create the threads asked for), got {self.threads!r}")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device must be a backend name such as 'cpu' (see dcgan.backends()), got {self.device!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16' (bfloat16 activations and convolutions on CPUs "
                             f"with AVX512-BF16 or AMX), got {self.precision!r}")
        if self.distributed not in ("auto", "off"):
            raise ValueError(f"distributed must be 'auto' (one job across the MPI ranks this process was "
                             f"launched with) or 'off', got {self.distributed!r}")
        if isinstance(self.check_replicas_every, bool) or not isinstance(self.check_replicas_every, int) \
                or self.check_replicas_every < 0:
            raise ValueError(f"check_replicas_every must be an integer >= 0 (0: never), got {self.check_replicas_every!r}")
        for name in ("tf32", "cuda_graph", "sync_bn"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.joint and (self.n_critic != 1 or self.g_steps != 1):
            raise ValueError("joint=True (one forward pass feeds both updates) needs n_critic=1 and g_steps=1")
        for name in ("generator", "discriminator"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, list) or not v or not all(isinstance(l, dict) for l in v)):
                raise ValueError(f"{name} must be a non-empty list of layer dicts, got {v!r}")
        # Builds the preset family's layer lists: a size the layout cannot reach fails here.
        self.layers()

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_shape"] = list(self.image_shape)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Config":
        d = dict(d)
        if "preset" in d:  # config files name the preset they start from as "preset"
            name = d.pop("preset")
            d.setdefault("preset_name", name)
        for k in ("image_shape", "betas_g", "betas_d"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls._make({}, d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


# preset name -> classmethod name
PRESETS: Dict[str, str] = {
    "mlp": "mlp",
    "mnist": "mnist",
    "mnist_seed000": "mnist_seed000",
    "cifar10": "cifar10",
    "dcgan64": "dcgan64",
}
