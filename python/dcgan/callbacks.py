"""Keras-style training callbacks: sample grids, checkpoints, history files, early stopping.

Pass them to :meth:`dcgan.Trainer.fit`::

    from dcgan.callbacks import SampleGrid, ModelCheckpoint, HistoryLogger
    trainer.fit(x, epochs=20, callbacks=[
        SampleGrid("run/samples", every_steps=500),          # run/samples/samples_step_000500.png, ...
        ModelCheckpoint("run/ckpt/step_{step:06d}.npz", every_steps=2000, keep_last=3),
        HistoryLogger(csv_path="run/losses.csv", plot_path="run/losses.png"),
    ])

Every callback uses the trainer's protocol (:class:`dcgan.Callback`):
``on_step(trainer, step, stats)`` after each step (``step`` counts from 0) and
``on_epoch_end(trainer, epoch)``.

When "every N steps" fires
--------------------------
The trainer runs steps in chunks inside the C++ core and calls ``on_step`` for
each step of a chunk once the chunk is done, so the networks can only be looked
at (sampled, saved) at the end of a chunk. A callback with ``every_steps=N``
therefore acts at the end of the chunk in which a multiple of N was reached,
and names its file after the step the networks are really at
(``trainer.step_count``): the file always matches its content. Each callback
exposes ``every_steps``, so a trainer that ends its chunks on those multiples
makes the numbers exact. Epoch ends always coincide with a chunk end.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

if TYPE_CHECKING:  # only for annotations: trainer.py imports this module
    from .trainer import Trainer

__all__ = ["Callback", "SampleGrid", "ModelCheckpoint", "HistoryLogger", "EarlyStop", "Evaluate", "SAMPLE_SEED_OFFSET"]

PathLike = Union[str, "os.PathLike[str]"]

#: Default seed of the fixed sample noise: ``cfg.seed + SAMPLE_SEED_OFFSET`` (as the command line).
SAMPLE_SEED_OFFSET = 0x5EED
#: Default seed of Evaluate's samples: ``cfg.seed + EVAL_SEED_OFFSET``.
EVAL_SEED_OFFSET = 0xE7A1


class Callback:
    """Base class for training callbacks (Keras-style); override what you need."""

    def on_step(self, trainer: "Trainer", step: int, stats: Dict[str, float]) -> None:
        pass

    def on_epoch_end(self, trainer: "Trainer", epoch: int) -> None:
        pass


CallbackLike = Union[Callback, Callable[["Trainer", int], None], Any]


def _call(cb: CallbackLike, method: str, *args: Any) -> None:
    fn = getattr(cb, method, None)
    if fn is not None:
        fn(*args)
    elif method == "on_epoch_end" and callable(cb) and not hasattr(cb, "on_step"):
        cb(*args)  # a plain function is an on_epoch_end callback


def _check_every(every_steps: Optional[int], every_epoch: Optional[bool], default_epoch: bool = True
                 ) -> Tuple[Optional[int], bool]:
    if every_steps is not None:
        if isinstance(every_steps, bool) or not isinstance(every_steps, int) or every_steps < 1:
            raise ValueError(f"every_steps must be a positive integer or None, got {every_steps!r}")
    if every_epoch is None:
        every_epoch = default_epoch and every_steps is None
    return every_steps, bool(every_epoch)


class _Periodic(Callback):
    """Fires ``_act(trainer, kind, number)`` every N steps (at a chunk end) and/or every epoch.
    In a data-parallel run only rank 0 acts (every rank holds the same state; rank 0 writes)."""

    def __init__(self, every_steps: Optional[int], every_epoch: Optional[bool], default_epoch: bool = True):
        self.every_steps, self.every_epoch = _check_every(every_steps, every_epoch, default_epoch)
        self._pending = False
        self._last_step_acted: Optional[int] = None

    def on_step(self, trainer: Any, step: int, stats: Dict[str, float]) -> None:
        if self.every_steps is None:
            return
        done = int(step) + 1
        if done % self.every_steps == 0:
            self._pending = True
        if self._pending and done == _step_count(trainer, done):
            self._pending = False
            self._last_step_acted = done
            if getattr(trainer, "rank", 0) == 0:
                self._act(trainer, "step", done)

    def on_epoch_end(self, trainer: Any, epoch: int) -> None:
        if self.every_epoch and getattr(trainer, "rank", 0) == 0:
            self._act(trainer, "epoch", int(epoch))

    def _act(self, trainer: Any, kind: str, number: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def _step_count(trainer: Any, default: int) -> int:
    v = getattr(trainer, "step_count", None)
    return int(v) if v is not None else default


class SampleGrid(_Periodic):
    """Saves a grid of samples from fixed noise as PNG during training.

    Parameters
    ----------
    out_dir:
        Folder for the PNGs (created when needed).
    every_steps:
        Save every this many steps: ``samples_step_000500.png`` (named after
        the step the generator is at; see the module's notes).
    every_epoch:
        Save at the end of each epoch: ``samples_epoch_003.png`` (epochs as the
        trainer numbers them, from 0). Default: True unless ``every_steps`` is given.
    n, nrow:
        Images per grid (64) and per row (default ``ceil(sqrt(n))``, i.e. 8x8).
    seed:
        Seed of the fixed latent vectors; the same seed gives the same noise in
        every grid, so the files show the generator's progress. Default:
        ``trainer.cfg.seed + SAMPLE_SEED_OFFSET`` (what the command line uses).
    prefix:
        File name prefix.

    ``files`` lists the PNGs written, in order; pass it to
    :func:`dcgan.plot.make_gif` for an animation.
    """

    def __init__(self, out_dir: PathLike, every_steps: Optional[int] = None, every_epoch: Optional[bool] = None,
                 n: int = 64, seed: Optional[int] = None, nrow: Optional[int] = None, prefix: str = "samples"):
        super().__init__(every_steps, every_epoch)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.out_dir = Path(out_dir)
        self.n = n
        self.seed = seed
        self.nrow = nrow
        self.prefix = prefix
        self.files: List[Path] = []

    def _seed(self, trainer: Any) -> int:
        if self.seed is None:
            cfg = getattr(trainer, "cfg", None)
            self.seed = int(getattr(cfg, "seed", 0) or 0) + SAMPLE_SEED_OFFSET
        return self.seed

    def _act(self, trainer: Any, kind: str, number: int) -> None:
        self.save(trainer, kind, number)

    def save(self, trainer: Any, kind: str = "step", number: Optional[int] = None) -> Path:
        """Write one grid now (``kind`` "step" or "epoch"; number default: the current step)."""
        from .plot import sample_grid

        if number is None:
            number = _step_count(trainer, 0)
        name = f"{self.prefix}_step_{number:06d}.png" if kind == "step" else f"{self.prefix}_epoch_{number:03d}.png"
        cfg = getattr(trainer, "cfg", None)
        value_range = tuple(getattr(cfg, "data_range", (-1.0, 1.0)))
        imgs = trainer.generate(self.n, seed=self._seed(trainer))
        path = self.out_dir / name
        sample_grid(imgs, nrow=self.nrow or int(math.ceil(math.sqrt(self.n))), path=path, value_range=value_range)
        self.files.append(path)
        return path


class ModelCheckpoint(_Periodic):
    """Saves the full training state with ``trainer.save`` every N steps and/or every epoch.

    Parameters
    ----------
    path:
        File name pattern, formatted with ``step`` (steps done) and ``epoch``
        (the finished epoch for epoch-end saves, else epochs completed), e.g.
        ``"run/ckpt/step_{step:06d}.npz"`` or ``"run/ckpt/epoch_{epoch:03d}.npz"``.
        A fixed name (no fields) is simply overwritten each time; every write
        is atomic, so a crash never leaves a half-written checkpoint.
    every_steps, every_epoch:
        When to save; default every epoch unless ``every_steps`` is given.
    keep_last:
        Keep only the newest ``k`` files written by this callback (older ones
        are deleted); None keeps all.
    generator_only:
        Save with ``trainer.save_generator`` (small; for sampling, not resuming).

    ``files`` lists the checkpoints currently kept, oldest first; ``last`` is the newest.
    Resume with ``dcgan.Trainer.load(path)`` or ``python -m dcgan resume --checkpoint PATH``.
    """

    def __init__(self, path: PathLike, every_steps: Optional[int] = None, every_epoch: Optional[bool] = None,
                 keep_last: Optional[int] = None, generator_only: bool = False):
        super().__init__(every_steps, every_epoch)
        if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1):
            raise ValueError(f"keep_last must be a positive integer or None, got {keep_last!r}")
        self.pattern = os.fspath(path)
        try:
            self.pattern.format(step=0, epoch=0)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"path pattern {self.pattern!r} may only use the fields {{step}} and {{epoch}}: "
                             f"{e}") from None
        self.keep_last = keep_last
        self.generator_only = generator_only
        self.files: List[Path] = []
        self.last: Optional[Path] = None

    def _act(self, trainer: Any, kind: str, number: int) -> None:
        epoch = number if kind == "epoch" else int(getattr(trainer, "epoch", 0) or 0)
        self.save(trainer, step=_step_count(trainer, number), epoch=epoch)

    def save(self, trainer: Any, step: Optional[int] = None, epoch: Optional[int] = None) -> Path:
        """Write one checkpoint now."""
        step = _step_count(trainer, 0) if step is None else step
        epoch = int(getattr(trainer, "epoch", 0) or 0) if epoch is None else epoch
        target = Path(self.pattern.format(step=step, epoch=epoch))
        saver = trainer.save_generator if self.generator_only else trainer.save
        written = Path(saver(target) or target)
        if written in self.files:
            self.files.remove(written)
        self.files.append(written)
        self.last = written
        if self.keep_last is not None:
            while len(self.files) > self.keep_last:
                old = self.files.pop(0)
                try:
                    old.unlink()
                except FileNotFoundError:
                    pass
        return written


def _close_pyplot_figure(fig: Any) -> None:
    """Closes ``fig`` if pyplot manages it (an interactive backend made it through pyplot)."""
    if getattr(fig, "number", None) is None or "matplotlib.pyplot" not in sys.modules:
        return
    import matplotlib.pyplot as plt

    if plt.fignum_exists(fig.number):
        plt.close(fig)


class HistoryLogger(_Periodic):
    """Writes the loss history (CSV and/or JSON, optionally a loss plot) during training.

    Parameters
    ----------
    csv_path:
        CSV file (``step,epoch,d_loss,g_loss,d_real,d_fake``), rewritten atomically.
    json_path:
        JSON file (one list per column, NaN as null).
    plot_path:
        Optional PNG of :func:`dcgan.plot.plot_losses`.
    every_steps, every_epoch:
        When to write; default at the end of every epoch.

    The whole history is written each time (so a file is always complete and
    readable, even if training is killed), using ``trainer.history_to_csv`` /
    ``history_to_json`` when the trainer has them and :mod:`dcgan.plot`'s
    writers otherwise.
    """

    def __init__(self, csv_path: Optional[PathLike] = None, json_path: Optional[PathLike] = None,
                 every_steps: Optional[int] = None, every_epoch: Optional[bool] = None,
                 plot_path: Optional[PathLike] = None):
        super().__init__(every_steps, every_epoch)
        if csv_path is None and json_path is None and plot_path is None:
            raise ValueError("HistoryLogger needs csv_path, json_path or plot_path")
        self.csv_path = Path(csv_path) if csv_path is not None else None
        self.json_path = Path(json_path) if json_path is not None else None
        self.plot_path = Path(plot_path) if plot_path is not None else None
        self.writes = 0

    def _act(self, trainer: Any, kind: str, number: int) -> None:
        self.write(trainer)

    def write(self, trainer: Any) -> None:
        """Write the files now."""
        from . import plot

        h = trainer.history
        if self.csv_path is not None:
            fn = getattr(trainer, "history_to_csv", None)
            fn(self.csv_path) if callable(fn) else plot.save_history_csv(h, self.csv_path)
        if self.json_path is not None:
            fn = getattr(trainer, "history_to_json", None)
            fn(self.json_path) if callable(fn) else plot.save_history_json(h, self.json_path)
        if self.plot_path is not None and len(h.get("d_loss", ())) > 0:
            # Only the file: in Jupyter a figure left open in pyplot would be drawn into the
            # notebook at the end of the cell, once per write.
            _close_pyplot_figure(plot.plot_losses(h, path=self.plot_path))
        self.writes += 1


class EarlyStop(Callback):
    """Stops training when it has failed: non-finite losses, or a statistic stuck past a limit.

    Parameters
    ----------
    monitor:
        History key to watch: ``"d_loss"``, ``"g_loss"``, ``"d_real"`` or ``"d_fake"``.
    below, above:
        Stop when ``stats[monitor]`` stays below ``below`` (or above ``above``)
        for ``patience`` consecutive steps. For instance ``monitor="d_loss",
        below=0.01`` catches a discriminator that has won outright (the
        generator gets no gradient any more: a collapsed run).
    patience:
        Consecutive steps the condition must hold.
    stop_on_nan:
        Also stop at the first NaN or infinite statistic.

    Sets ``trainer.stop_training`` (fit ends after the current chunk);
    ``stopped_at`` (step) and ``reason`` tell why.
    """

    def __init__(self, monitor: str = "d_loss", below: Optional[float] = None, above: Optional[float] = None,
                 patience: int = 100, stop_on_nan: bool = True):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be a positive integer, got {patience!r}")
        self.monitor = monitor
        self.below = below
        self.above = above
        self.patience = patience
        self.stop_on_nan = stop_on_nan
        self.wait = 0
        self.stopped_at: Optional[int] = None
        self.reason: Optional[str] = None

    def on_step(self, trainer: Any, step: int, stats: Dict[str, float]) -> None:
        if self.stopped_at is not None:
            return
        if self.stop_on_nan:
            bad = [k for k, v in stats.items() if not math.isfinite(float(v))]
            if bad:
                self._stop(trainer, step, f"non-finite {', '.join(bad)} at step {step}")
                return
        if self.monitor not in stats or (self.below is None and self.above is None):
            return
        v = float(stats[self.monitor])
        hit = (self.below is not None and v < self.below) or (self.above is not None and v > self.above)
        self.wait = self.wait + 1 if hit else 0
        if self.wait >= self.patience:
            limit = f"< {self.below}" if self.below is not None and v < self.below else f"> {self.above}"
            self._stop(trainer, step, f"{self.monitor} {limit} for {self.patience} steps (step {step})")

    def _stop(self, trainer: Any, step: int, reason: str) -> None:
        self.stopped_at = int(step)
        self.reason = reason
        trainer.stop_training = True


class Evaluate(_Periodic):
    """Measures sample quality during training: FID, KID, precision/recall/density/coverage
    against real images, and the class histogram of samples (mode collapse).

    Parameters
    ----------
    reference:
        The real images' statistics: a dataset name (``"mnist"``, ``"fashion-mnist"``,
        ``"cifar10"``; its feature network is trained on first use and cached, see
        :meth:`dcgan.FeatureNet.train`), a :class:`dcgan.features.ReferenceStats`, or an array of
        real images.
    feature_net:
        A :class:`dcgan.FeatureNet`, or any callable mapping images (N, C, H, W) in the
        generator's range to features (N, D), e.g. a user's own Inception network. Default: the
        dataset's FeatureNet (``reference`` must then be a dataset name). Only a FeatureNet (or
        an object with ``predict_proba``) gives the class histogram.
    n_samples:
        Samples generated per evaluation (from fixed noise: ``seed``, default
        ``cfg.seed + EVAL_SEED_OFFSET``), 2000 by default.
    every_steps, every_epoch:
        When to evaluate (default: every epoch).
    best_path:
        If given, the full training state is saved there (``trainer.save``) whenever FID is the
        lowest so far: the checkpoint users want at the end of a run.
    collapse_threshold:
        A class whose share of the samples falls below this fraction is reported missing
        (default a quarter of uniform, 0.25 / n_classes); a warning names the missing classes.
    kid_subsets, kid_subset_size, k:
        KID's subsets and their size; the k of the k-nearest-neighbour radii of PRDC.
    root:
        Where the dataset named by ``reference`` is (default: found as
        :func:`dcgan.datasets.load` finds it).

    Each evaluation appends to ``trainer.eval_history`` (``step``, ``epoch``, ``fid``, ``kid``,
    ``kid_std``, ``precision``, ``recall``, ``density``, ``coverage``, and with a classifier
    ``kl_to_uniform``, ``missing_classes`` and ``class_fractions``), which checkpoints keep and
    :func:`dcgan.plot.plot_metrics` draws; ``results`` holds the same rows.
    """

    def __init__(self, reference: Any = "mnist", feature_net: Any = None, n_samples: int = 2000,
                 every_steps: Optional[int] = None, every_epoch: Optional[bool] = None,
                 best_path: Optional[PathLike] = None, collapse_threshold: Optional[float] = None,
                 seed: Optional[int] = None, kid_subsets: int = 50, kid_subset_size: int = 1000, k: int = 5,
                 root: Optional[PathLike] = None, verbose: bool = True):
        super().__init__(every_steps, every_epoch)
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < max(k + 1, 2):
            raise ValueError(f"n_samples must be an integer > k ({k}), got {n_samples!r}")
        if feature_net is None and not isinstance(reference, str):
            raise ValueError("give feature_net when reference is not a dataset name")
        if feature_net is not None and not callable(feature_net):
            raise TypeError(f"feature_net must be a FeatureNet or a callable images -> features, "
                            f"got {type(feature_net).__name__}")
        if collapse_threshold is not None and not 0 < collapse_threshold < 1:
            raise ValueError(f"collapse_threshold must be in (0, 1), got {collapse_threshold!r}")
        self.reference, self.feature_net, self.n_samples = reference, feature_net, n_samples
        self.best_path = Path(best_path) if best_path is not None else None
        self.collapse_threshold, self.seed, self.verbose = collapse_threshold, seed, verbose
        self.kid_subsets, self.kid_subset_size, self.k = kid_subsets, kid_subset_size, k
        self.root = root
        self.best_fid = math.inf
        self.results: List[Dict[str, Any]] = []
        self._ref: Any = None

    def _setup(self) -> None:
        from .features import FeatureNet, ReferenceStats
        from . import metrics

        if self.feature_net is None:
            self.feature_net = FeatureNet.train(self.reference, root=self.root, verbose=self.verbose)
        if isinstance(self.reference, ReferenceStats):
            self._ref = self.reference
        elif isinstance(self.reference, str):
            self._ref = self.feature_net.reference_stats(self.reference, root=self.root)
        else:
            feats = self._features(self.reference, None)
            mean, cov = metrics.feature_stats(feats)
            hist = None
            if hasattr(self.feature_net, "predict_proba"):
                hist = metrics.class_histogram(self.feature_net.predict_proba(self.reference))
            self._ref = ReferenceStats(mean, cov, feats[:5000], hist if hist is not None else np.zeros(0),
                                       len(feats), "array")

    def _fit_to_net(self, images: np.ndarray, value_range: Tuple[float, float]) -> Tuple[Any, Any]:
        """Samples as a FeatureNet of another image size takes them: resized as uint8 images
        (e.g. a 64x64 generator trained on MNIST, measured by the 28x28 MNIST network)."""
        from .features import FeatureNet

        net = self.feature_net
        if not isinstance(net, FeatureNet) or tuple(images.shape[1:]) == tuple(net.image_shape):
            return images, value_range
        if images.shape[1] != net.image_shape[0]:
            raise ValueError(f"the samples have {images.shape[1]} channels, the feature network takes "
                             f"{net.image_shape[0]}; give a feature_net for {images.shape[1]}-channel images")
        from .datasets import resize_images

        lo, hi = value_range
        u8 = np.clip(np.rint((images - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)
        u8 = u8[:, 0] if u8.shape[1] == 1 else u8.transpose(0, 2, 3, 1)
        return resize_images(u8, tuple(net.image_shape[1:])), None

    def _features(self, images: Any, value_range: Optional[Tuple[float, float]]) -> np.ndarray:
        from .features import FeatureNet

        if isinstance(self.feature_net, FeatureNet):
            return self.feature_net.features(images, input_range=value_range)
        f = np.asarray(self.feature_net(images), dtype=np.float64)
        return f.reshape(f.shape[0], -1)

    def _act(self, trainer: Any, kind: str, number: int) -> None:
        self.evaluate(trainer)

    def evaluate(self, trainer: Any) -> Dict[str, Any]:
        """Evaluate now; returns the row appended to ``trainer.eval_history``."""
        import warnings

        from . import metrics

        if self._ref is None:
            self._setup()
        cfg = getattr(trainer, "cfg", None)
        if self.seed is None:
            self.seed = int(getattr(cfg, "seed", 0) or 0) + EVAL_SEED_OFFSET
        value_range = tuple(getattr(cfg, "data_range", (-1.0, 1.0)))
        samples, value_range = self._fit_to_net(trainer.generate(self.n_samples, seed=self.seed), value_range)
        feats = self._features(samples, value_range)
        ref = self._ref
        mean, cov = metrics.feature_stats(feats)
        row: Dict[str, Any] = {"step": _step_count(trainer, 0), "epoch": int(getattr(trainer, "epoch", 0) or 0)}
        row["fid"] = metrics.fid_from_stats(mean, cov, ref.mean, ref.cov)
        m = min(self.kid_subset_size, len(feats), len(ref.features))
        row["kid"], row["kid_std"] = metrics.kid(feats, ref.features, subsets=self.kid_subsets, subset_size=m)
        n_prdc = min(len(feats), len(ref.features))
        row.update(metrics.prdc(ref.features[:n_prdc], feats[:n_prdc], k=self.k))
        if hasattr(self.feature_net, "predict_proba"):
            from .features import FeatureNet

            probs = self.feature_net.predict_proba(samples, input_range=value_range) \
                if isinstance(self.feature_net, FeatureNet) else self.feature_net.predict_proba(samples)
            hist = metrics.class_histogram(probs, probs.shape[1])
            rep = metrics.mode_report(hist, self.collapse_threshold)
            row["kl_to_uniform"] = rep["kl_to_uniform"]
            row["missing_classes"] = list(rep["missing"])
            row["class_fractions"] = [float(v) for v in rep["fractions"]]
            if rep["missing"]:
                warnings.warn(f"possible mode collapse at step {row['step']}: the samples hold almost no "
                              f"class {', '.join(str(c) for c in rep['missing'])} (shares "
                              f"{', '.join(f'{hist[c]:.3f}' for c in rep['missing'])}; uniform is "
                              f"{1 / len(hist):.3f})", RuntimeWarning, stacklevel=2)
        row = {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in row.items()}
        hist_store = getattr(trainer, "eval_history", None)
        if isinstance(hist_store, dict):
            for key, v in row.items():
                hist_store.setdefault(key, []).append(v)
        self.results.append(row)
        if self.best_path is not None and row["fid"] < self.best_fid:
            self.best_fid = row["fid"]
            trainer.save(self.best_path)
        if self.verbose:
            import sys

            print(f"eval at step {row['step']}: FID {row['fid']:.2f}  KID {row['kid']:.4f}  "
                  f"coverage {row['coverage']:.3f}" + (f"  KL(classes||uniform) {row['kl_to_uniform']:.3f}"
                                                      if "kl_to_uniform" in row else ""),
                  file=sys.stderr, flush=True)
        return row

