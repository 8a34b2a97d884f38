"""Feature networks for evaluation, trained by the engine itself: no download.

Every common FID tool downloads Inception weights at run time, which fails on a machine without
internet. :class:`FeatureNet` is a small convolutional classifier that the C++ core trains on a
labelled dataset (softmax cross-entropy and Adam on the same layers and backends as the GAN);
its penultimate layer gives the feature vectors that :mod:`dcgan.metrics` compares, and its
class probabilities give the class histogram of samples (mode collapse) and an inception-style
score.

>>> net = dcgan.FeatureNet.train("mnist")          # ~1 minute on two cores, then cached
>>> ref = net.reference_stats("mnist")             # cached beside the network
>>> fid = dcgan.metrics.fid_from_stats(*ref.mean_cov, *dcgan.metrics.feature_stats(net(samples)))

Any callable mapping images (N, C, H, W) to a feature array (N, D), for example a user's own
Inception network, can stand in for a FeatureNet in :class:`dcgan.callbacks.Evaluate`.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._io import atomic_write
from .config import MAX_THREADS
from .trainer import _core, data_source, prepare_images

__all__ = ["FeatureNet", "ReferenceStats", "default_layers", "featurenet_dir"]

PathLike = Union[str, "os.PathLike[str]"]
FORMAT = "dcgan-featurenet"
STATS_FORMAT = "dcgan-featurestats"
VERSION = 1
# The range images are scaled to before the network sees them (as a tanh generator's output).
INPUT_RANGE = (-1.0, 1.0)
# Epochs FeatureNet.train gives each known dataset by default.
DEFAULT_EPOCHS = {"mnist": 3, "fashion-mnist": 6, "cifar10": 30}
# Features kept in a ReferenceStats for KID and precision/recall/coverage (FID uses all).
REFERENCE_FEATURES = 5000
MAX_FILE_BYTES = 1 << 30
# Training images the BatchNorm statistics are recomputed over after fit().
PRECISE_BN_IMAGES = 8192


def featurenet_dir() -> Path:
    """Where trained feature networks and their reference statistics are cached:
    ``$DCGAN_CACHE/featurenets`` or ``~/.cache/dcgan/featurenets``."""
    from .datasets._paths import cache_dir

    return cache_dir() / "featurenets"


def default_layers(image_shape: Sequence[int], n_classes: int, width: int = 32) -> Tuple[List[Dict[str, Any]], int]:
    """The default classifier for ``image_shape``, and the index of its feature layer.

    Stages of stride-2 convolutions (5x5, "same") with BatchNorm and ReLU, doubling the width,
    until the maps are at most 8x8 (two stages for 28x28 and 32x32); colour images get a 3x3
    stride-1 convolution before each downsampling one. Then a 128-wide dense layer with BN and
    ReLU (the features) and the class logits.
    """
    c, h, w = (int(v) for v in image_shape)
    # No bias before BatchNorm (it would cancel it).
    conv = lambda out, k, s: dict(type="conv2d", out=out, kernel=k, stride=s, padding="same", bias=False,
                                  init="xavier_uniform")
    bn_relu = [dict(type="batchnorm"), dict(type="relu")]
    layers: List[Dict[str, Any]] = []
    ch = width
    while True:
        if c == 3:
            layers += [conv(ch, 3, 1)] + [dict(l) for l in bn_relu]
        layers += [conv(ch, 5, 2)] + [dict(l) for l in bn_relu]
        h, w = (h + 1) // 2, (w + 1) // 2
        ch *= 2
        if max(h, w) <= 8:
            break
    layers += [dict(type="flatten"), dict(type="dense", out=128, bias=False, init="xavier_uniform")]
    layers += [dict(l) for l in bn_relu]
    feature_layer = len(layers) - 1
    if c == 3:
        layers.append(dict(type="dropout", p=0.3))
    layers.append(dict(type="dense", out=int(n_classes), init="xavier_uniform"))
    return layers, feature_layer


@dataclass
class ReferenceStats:
    """A dataset as a feature network sees it: feature mean and covariance (float64, over all
    ``n`` images), up to :data:`REFERENCE_FEATURES` feature rows for KID and
    precision/recall/coverage, and the class histogram of the network's predictions."""

    mean: np.ndarray
    cov: np.ndarray
    features: np.ndarray
    histogram: np.ndarray
    n: int
    name: str = ""

    @property
    def mean_cov(self) -> Tuple[np.ndarray, np.ndarray]:
        return self.mean, self.cov

    def save(self, path: PathLike) -> Path:
        meta = {"format": STATS_FORMAT, "version": VERSION, "n": int(self.n), "name": self.name}
        arrays = {"mean": self.mean.astype(np.float64), "cov": self.cov.astype(np.float64),
                  "features": self.features.astype(np.float32), "histogram": self.histogram.astype(np.float64),
                  "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)}
        return atomic_write(Path(path), lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: PathLike) -> "ReferenceStats":
        meta, a = _read_npz(Path(path), STATS_FORMAT, {"mean", "cov", "features", "histogram"})
        d = a["mean"].shape[0] if a["mean"].ndim == 1 else -1
        if d < 1 or a["cov"].shape != (d, d) or a["features"].ndim != 2 or a["features"].shape[1] != d:
            raise ValueError(f"{path}: reference statistics of inconsistent shapes")
        n = meta.get("n")
        if not isinstance(n, int) or isinstance(n, bool) or n < 2:
            raise ValueError(f"{path}: meta 'n' must be an integer >= 2, got {n!r}")
        return cls(a["mean"], a["cov"], a["features"], a["histogram"], n, str(meta.get("name", "")))


def _read_npz(path: Path, fmt: str, names: set) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """A file this module wrote: exactly ``names`` plus meta, no pickles, nothing non-finite."""
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{path} is larger than {MAX_FILE_BYTES} bytes; not a {fmt} file")
    try:
        # Declared sizes first: a compressed entry could expand far beyond the file.
        with zipfile.ZipFile(path) as zf:
            declared = sum(info.file_size for info in zf.infolist())
        if declared > MAX_FILE_BYTES:
            raise ValueError(f"its entries declare {declared} bytes, more than {MAX_FILE_BYTES}")
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except Exception as e:  # zip, npy, json and key errors alike: the file is not ours
        raise ValueError(f"{path} is not a readable {fmt} file: {type(e).__name__}: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != fmt or meta.get("version") != VERSION:
        raise ValueError(f"{path} is not a {fmt} file of version {VERSION}")
    missing = names - set(arrays)
    if missing:
        raise ValueError(f"{path}: missing entries {sorted(missing)}")
    for k, a in arrays.items():
        if a.dtype.kind != "f" or not np.isfinite(a).all():
            raise ValueError(f"{path}: entry {k!r} must be finite floating-point values")
    return meta, arrays


class FeatureNet:
    """An image classifier trained by the engine: features for FID/KID/coverage, class
    probabilities for the class histogram and the inception-style score.

    ``image_shape`` (C, H, W) and ``n_classes`` fix the default architecture
    (:func:`default_layers`); ``layers`` and ``feature_layer`` (the index of the layer whose
    output is the feature vector) replace it. Images are given as :func:`dcgan.prepare_images`
    takes them (uint8 0..255, or floats in [-1, 1], [0, 1] or 0..255, NCHW / NHWC / (N, H, W));
    ``input_range`` says which when a float array is ambiguous.

    Training augments each image: ``flip`` (a horizontal flip with probability 1/2) and
    ``shift`` (a shift by up to that many pixels, edges replicated); by default both for colour
    images (flip, 2 pixels) and neither for grayscale ones (digits must not be mirrored).
    """

    def __init__(self, image_shape: Sequence[int] = (1, 28, 28), n_classes: int = 10,
                 layers: Optional[List[Dict[str, Any]]] = None, feature_layer: Optional[int] = None,
                 batch_size: int = 128, lr: float = 1e-3, seed: int = 0, device: str = "cpu",
                 threads: int = 0, name: str = "custom", flip: Optional[bool] = None,
                 shift: Optional[int] = None) -> None:
        self.image_shape = tuple(int(v) for v in image_shape)
        if len(self.image_shape) != 3 or min(self.image_shape) <= 0:
            raise ValueError(f"image_shape must be (C, H, W) with positive sizes, got {tuple(image_shape)!r}")
        if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
            raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
        if isinstance(threads, bool) or not isinstance(threads, int) or not 0 <= threads <= MAX_THREADS:
            raise ValueError(f"threads must be an integer in [0, {MAX_THREADS}], got {threads!r}")
        if layers is None:
            layers, default_feature = default_layers(self.image_shape, int(n_classes))
            feature_layer = default_feature if feature_layer is None else feature_layer
        elif feature_layer is None:
            raise ValueError("give feature_layer (the index of the layer whose output is the feature vector) "
                             "with custom layers")
        self.layers, self.feature_layer = layers, int(feature_layer)
        self.n_classes, self.batch_size, self.lr, self.seed = int(n_classes), int(batch_size), float(lr), int(seed)
        self.device, self.threads, self.name = device, threads, name
        colour = self.image_shape[0] == 3
        self.flip = colour if flip is None else bool(flip)
        self.shift = (2 if colour else 0) if shift is None else int(shift)
        self._core = _core.Classifier(dict(image=list(self.image_shape), layers=layers,
                                           feature_layer=self.feature_layer, batch_size=self.batch_size,
                                           lr=self.lr, seed=self.seed, device=device, threads=threads,
                                           flip=self.flip, shift=self.shift))
        if self._core.n_classes != self.n_classes:
            raise ValueError(f"the last layer has {self._core.n_classes} outputs, n_classes is {self.n_classes}")
        self.history: Dict[str, List[float]] = {"loss": [], "accuracy": []}
        self.test_accuracy: Optional[float] = None
        self.epochs_trained = 0

    # ------------------------------------------------------------------ training
    def fit(self, x: Any, y: Any, epochs: int = 3, decay_last: float = 1 / 3, decay: float = 0.3,
            input_range: Optional[Tuple[float, float]] = None, verbose: bool = False) -> Dict[str, List[float]]:
        """Trains on images ``x`` with integer labels ``y`` in [0, n_classes) for ``epochs``
        epochs (shuffled, the last incomplete batch of each dropped); the learning rate drops by
        ``decay`` for the last ``decay_last`` of the epochs. Afterwards the BatchNorm statistics
        inference uses are recomputed exactly over the first 8192 training images (precise BN).
        Per-epoch mean loss and training accuracy are appended to ``history`` and returned."""
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs <= 0:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        src = data_source(x, self.image_shape, INPUT_RANGE, input_range)
        labels = np.asarray(y)
        if labels.ndim != 1 or labels.shape[0] != src.n:
            raise ValueError(f"y must hold one label per image: expected shape ({src.n},), got {labels.shape}")
        if labels.dtype.kind not in "iu":
            raise ValueError(f"y must be integer class labels, got dtype {labels.dtype}")
        if labels.size and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise ValueError(f"y holds labels outside [0, {self.n_classes}): min {labels.min()}, max {labels.max()}")
        array = src.array if src.array is not None else np.load(src.path, mmap_mode="r")
        self._core.set_data(array, src.layout, src.scale, labels.astype(np.int32))
        spe = self._core.steps_per_epoch
        first_decayed = epochs - int(round(epochs * decay_last)) if decay_last > 0 else epochs
        for e in range(int(epochs)):
            self._core.set_lr(self.lr * (decay if e >= first_decayed else 1.0))
            t = time.time()
            r = self._core.run(spe)
            self.history["loss"].append(float(r[:, 0].mean()))
            self.history["accuracy"].append(float(r[:, 1].mean()))
            self.epochs_trained += 1
            if verbose:
                print(f"{self.name} epoch {e + 1}/{epochs}: loss {self.history['loss'][-1]:.4f} "
                      f"train accuracy {self.history['accuracy'][-1]:.4f} ({time.time() - t:.0f} s)",
                      file=sys.stderr, flush=True)
        self._core.set_lr(self.lr)
        # Inference statistics of the final weights (the running averages lag behind them).
        self._core.recompute_bn_stats(max(1, PRECISE_BN_IMAGES // self.batch_size))
        return self.history

    @classmethod
    def train(cls, dataset: str = "mnist", root: Optional[PathLike] = None, epochs: Optional[int] = None,
              cache: bool = True, device: str = "cpu", threads: int = 0, seed: int = 0,
              download: bool = False, verbose: bool = True) -> "FeatureNet":
        """The feature network of a known dataset (``"mnist"``, ``"fashion-mnist"``,
        ``"cifar10"``): loaded from :func:`featurenet_dir` when trained before with the same
        settings, otherwise trained on the dataset's training split, scored on its test split
        (``test_accuracy``) and cached. The data is found as :func:`dcgan.datasets.load` finds it."""
        from . import datasets

        key = datasets._canonical(dataset)
        epochs = DEFAULT_EPOCHS.get(key, 10) if epochs is None else epochs
        x, y = datasets.load(key, root=root, split="train", download=download)
        shape = _image_shape_of(x)
        n_classes = int(y.max()) + 1
        net = cls(shape, max(n_classes, 2), seed=seed, device=device, threads=threads, name=key)
        path = featurenet_dir() / f"{key}-{net._fingerprint(epochs, len(x))}.npz"
        if cache and path.is_file():
            try:
                return cls.load(path, device=device, threads=threads)
            except ValueError:
                pass  # a damaged cache entry is retrained and replaced
        net.fit(x, y, epochs=epochs, verbose=verbose)
        xt, yt = datasets.load(key, root=root, split="test", download=download)
        net.test_accuracy = net.accuracy(xt, yt)
        if verbose:
            print(f"{key} feature network: test accuracy {net.test_accuracy:.4f}", file=sys.stderr, flush=True)
        if cache:
            net.save(path)
        net.path = path
        return net

    def _fingerprint(self, epochs: int, n: int) -> str:
        spec = json.dumps([self.layers, self.feature_layer, list(self.image_shape), self.n_classes,
                           self.batch_size, self.lr, self.seed, self.flip, self.shift, int(epochs), int(n)],
                          sort_keys=True)
        return hashlib.sha256(spec.encode()).hexdigest()[:12]

    # ------------------------------------------------------------------ inference
    def _images(self, x: Any, input_range: Optional[Tuple[float, float]]) -> np.ndarray:
        return prepare_images(x, self.image_shape, INPUT_RANGE, input_range, name="images")

    def logits(self, x: Any, input_range: Optional[Tuple[float, float]] = None) -> np.ndarray:
        """Class logits, float32 (N, n_classes)."""
        return self._core.logits(self._images(x, input_range))

    def predict_proba(self, x: Any, input_range: Optional[Tuple[float, float]] = None) -> np.ndarray:
        """Class probabilities (softmax of the logits), float64 (N, n_classes)."""
        z = self.logits(x, input_range).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, x: Any, input_range: Optional[Tuple[float, float]] = None) -> np.ndarray:
        """The most probable class of each image, int64 (N,)."""
        return self.logits(x, input_range).argmax(axis=1)

    def accuracy(self, x: Any, y: Any, input_range: Optional[Tuple[float, float]] = None) -> float:
        """Fraction of images whose predicted class is the label."""
        y = np.asarray(y).reshape(-1)
        pred = self.predict(x, input_range)
        if y.shape != pred.shape:
            raise ValueError(f"y must hold one label per image: expected shape {pred.shape}, got {y.shape}")
        return float((pred == y).mean())

    def features(self, x: Any, input_range: Optional[Tuple[float, float]] = None) -> np.ndarray:
        """Feature vectors (the output of layer ``feature_layer``), float32 (N, D)."""
        f = self._core.features(self._images(x, input_range))
        return f.reshape(f.shape[0], -1)

    __call__ = features

    @property
    def feature_dim(self) -> int:
        return int(np.prod(self._core.feature_shape))

    def reference_stats(self, data: Any = "mnist", split: str = "train", max_images: Optional[int] = None,
                        root: Optional[PathLike] = None, cache: bool = True) -> ReferenceStats:
        """Feature statistics of real images: ``data`` is a dataset name (loaded as
        :meth:`train` loads it; cached beside this network when it was cached) or an image array."""
        path = None
        if isinstance(data, str):
            from . import datasets

            key = datasets._canonical(data)
            own = getattr(self, "path", None)
            if cache and own is not None:
                tag = f"{key}-{split}-{max_images or 'all'}"
                path = Path(own).with_name(Path(own).stem + f".ref-{tag}.npz")
                if path.is_file():
                    try:
                        return ReferenceStats.load(path)
                    except ValueError:
                        pass
            x, _ = datasets.load(key, root=root, split=split)
            name = f"{key}/{split}"
        else:
            x, name = data, "array"
        if max_images is not None:
            x = x[:max_images]
        from . import metrics

        feats = self.features(x)
        probs = self.predict_proba(x)
        mean, cov = metrics.feature_stats(feats)
        rng = np.random.default_rng(0)
        keep = rng.choice(len(feats), size=min(len(feats), REFERENCE_FEATURES), replace=False)
        ref = ReferenceStats(mean, cov, feats[np.sort(keep)], metrics.class_histogram(probs, self.n_classes),
                             len(feats), name)
        if path is not None:
            ref.save(path)
        return ref

    # ------------------------------------------------------------------ persistence
    def save(self, path: PathLike) -> Path:
        """Atomically writes the network (architecture, weights, BN statistics, test accuracy)."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        meta = {"format": FORMAT, "version": VERSION, "image_shape": list(self.image_shape),
                "n_classes": self.n_classes, "layers": self.layers, "feature_layer": self.feature_layer,
                "batch_size": self.batch_size, "lr": self.lr, "seed": self.seed, "name": self.name,
                "flip": self.flip, "shift": self.shift,
                "test_accuracy": self.test_accuracy, "epochs_trained": self.epochs_trained,
                "history": self.history}
        arrays = {f"p/{k}": v for k, v in self._core.get_params().items()}
        arrays.update({f"s/{k}": v for k, v in self._core.get_state().items()})
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
        out = atomic_write(path, lambda f: np.savez(f, **arrays))
        self.path = out
        return out

    @classmethod
    def load(cls, path: PathLike, device: str = "cpu", threads: int = 0) -> "FeatureNet":
        """A network written by :meth:`save` (or cached by :meth:`train`), on ``device``."""
        path = Path(path)
        meta, arrays = _read_npz(path, FORMAT, set())
        try:
            net = cls(meta["image_shape"], meta["n_classes"], layers=meta["layers"],
                      feature_layer=meta["feature_layer"], batch_size=meta["batch_size"], lr=meta["lr"],
                      seed=meta["seed"], device=device, threads=threads, name=str(meta.get("name", "custom")),
                      flip=bool(meta.get("flip", False)), shift=int(meta.get("shift", 0)))
            params = {k[2:]: v.astype(np.float32) for k, v in arrays.items() if k.startswith("p/")}
            state = {k[2:]: v.astype(np.float32) for k, v in arrays.items() if k.startswith("s/")}
            net._core.set_params({**params, **state}, strict=True)
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a complete {FORMAT} file ({type(e).__name__}: {e})") from e
        net.test_accuracy = meta.get("test_accuracy")
        net.epochs_trained = int(meta.get("epochs_trained", 0))
        hist = meta.get("history")
        if isinstance(hist, dict):
            net.history = {k: list(v) for k, v in hist.items() if isinstance(v, list)}
        net.path = path
        return net

    def __repr__(self) -> str:
        acc = "" if self.test_accuracy is None else f", test_accuracy={self.test_accuracy:.4f}"
        return (f"FeatureNet({self.name!r}, image_shape={self.image_shape}, n_classes={self.n_classes}, "
                f"feature_dim={self.feature_dim}{acc})")


def _image_shape_of(x: np.ndarray) -> Tuple[int, int, int]:
    """(C, H, W) of a loader's images: (N, H, W) grayscale or (N, H, W, C)."""
    if x.ndim == 3:
        return (1, int(x.shape[1]), int(x.shape[2]))
    if x.ndim == 4 and x.shape[3] in (1, 3):
        return (int(x.shape[3]), int(x.shape[1]), int(x.shape[2]))
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return (int(x.shape[1]), int(x.shape[2]), int(x.shape[3]))
    raise ValueError(f"cannot tell the image shape of an array of shape {x.shape}")
