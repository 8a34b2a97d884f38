"""Command line: ``python -m dcgan train | resume | sample`` (also installed as ``dcgan``).

The parser, the three commands and :func:`main` live here; ``dcgan/__main__.py``
only calls :func:`main`.

Examples::

    python -m dcgan train --preset mnist --data ../shared/data/mnist --epochs 5 --out runs/mnist
    python -m dcgan train --preset cifar10 --data ../shared/data/cifar10-subset --out runs/c10 \\
        --checkpoint-every 500 --sample-every 100
    python -m dcgan train --config small.json --data ../shared/data --out runs/small
    python -m dcgan resume --checkpoint runs/mnist/checkpoint.npz --data ../shared/data/mnist \\
        --epochs 10 --out runs/mnist
    python -m dcgan sample --checkpoint runs/mnist/checkpoint.npz -n 64 --out grid.png --seed 1

``train`` and ``resume`` write into ``--out``:

* ``samples_epoch_000.png``, ``samples_epoch_001.png``, ... one 8x8 grid per
  epoch (numbered as ``Trainer`` numbers epochs, from 0), always from the same
  noise (seed ``cfg.seed + 0x5EED``), so the files show the generator's
  progress; a run stopped by ``--steps`` inside an epoch also gets a grid for
  that partial epoch; with ``--sample-every N`` also ``samples_step_000N00.png``;
* ``checkpoint.npz``: the full training state at the end (also after Ctrl-C),
  for ``resume``; with ``--checkpoint-every N`` also ``checkpoints/step_*.npz``
  every N steps (the newest ``--keep-checkpoints`` kept);
* ``losses.csv`` (``step,epoch,d_loss,g_loss,d_real,d_fake``, rewritten every
  epoch) and ``losses.png``;
* ``config.json``, the configuration used (it can be given back to ``--config``).

The dataset follows the configuration unless ``--dataset`` says otherwise:
one-channel models train on MNIST, three-channel ones on CIFAR-10, resized to
the model's image size when it differs (``dcgan64``: CIFAR-10 at 64x64, or MNIST
at 64x64 with ``image_shape`` ``[1, 64, 64]``). ``--dataset folder --data DIR``
reads PNG/JPEG files (e.g. CelebA), centre-cropped and resized.

Errors in the arguments (bad values, missing files, unknown presets or
configuration fields) exit with status 2 and a usage message, no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

#: Seed of the fixed noise behind the sample grids (offset from cfg.seed);
#: the same as dcgan.callbacks.SAMPLE_SEED_OFFSET.
SAMPLE_SEED_OFFSET = 0x5EED
#: Images in each sample grid (an 8x8 grid).
NUM_SAMPLES = 64
#: Datasets --dataset accepts.
DATASETS = ("mnist", "fashion-mnist", "cifar10", "folder")


class _Exit(Exception):
    """Ends a command with an exit status (its message already printed)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _int_at_least(lo: int, what: str):
    """An argparse type: an integer >= lo, with a clean message otherwise."""
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            v = None
        if v is None or v < lo:
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}")
        return v
    return parse


_positive_int = _int_at_least(1, "a positive integer")
_nonneg_int = _int_at_least(0, "an integer >= 0")


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}")
    return v


def _dataset_name(s: str) -> str:
    key = s.lower().replace("_", "-")
    key = {"cifar-10": "cifar10", "fashion": "fashion-mnist", "fashionmnist": "fashion-mnist"}.get(key, key)
    if key not in DATASETS:
        raise argparse.ArgumentTypeError(f"invalid choice: {s!r} (choose from {', '.join(DATASETS)})")
    return key


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data", metavar="DIR", default=None,
        help="folder holding the dataset's files (MNIST IDX files, cifar-10-batches-py/, images for "
        "--dataset folder) or a folder containing mnist/, fashion-mnist/, cifar10/ (default: $DCGAN_DATA)",
    )
    p.add_argument("--dataset", type=_dataset_name, default=None, metavar="NAME",
                   help=f"one of {', '.join(DATASETS)} (default: from the configuration: 1 channel -> "
                   "mnist, 3 channels -> cifar10, resized to the model's image size)")
    p.add_argument("--download", action="store_true",
                   help="download MNIST / Fashion-MNIST / CIFAR-10 if not found (checksums verified)")
    p.add_argument("--max-images", type=_positive_int, default=None, metavar="N",
                   help="use only the first N training images")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR", required=True, help="output folder (created if needed)")
    p.add_argument("--steps", type=_positive_int, default=None,
                   help="stop when the run has this many steps in all")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads for the core (Config.threads; default: the configuration's, 0 there = all)")
    p.add_argument("--device", default=None, metavar="NAME",
                   help="backend that runs the step: cpu or cuda (Config.device; default: the configuration's, "
                        "or for resume the one that saved the checkpoint)")
    p.add_argument("--checkpoint-every", type=_positive_int, default=None, metavar="N",
                   help="also save OUT/checkpoints/step_NNNNNN.npz every N steps")
    p.add_argument("--keep-checkpoints", type=_positive_int, default=3, metavar="K",
                   help="keep the newest K of those (default: 3)")
    p.add_argument("--sample-every", type=_positive_int, default=None, metavar="N",
                   help="also save OUT/samples_step_NNNNNN.png every N steps")
    p.add_argument("--eval-every", type=_positive_int, default=None, metavar="N",
                   help="every N steps measure FID, KID, coverage and the class balance of 2000 samples "
                        "against the dataset (its feature network is trained once and cached), write "
                        "OUT/metrics.csv and OUT/metrics.png, and keep OUT/best.npz, the checkpoint with "
                        "the lowest FID; needs a labelled dataset (mnist, fashion-mnist, cifar10)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--nproc", type=_positive_int, default=None, metavar="N",
                   help="train as N data-parallel processes on this machine (MPI ranks started with "
                        "mpiexec; --batch-size is per rank; needs pip install \"dcgan[mpi]\"). Under mpiexec "
                        "a run uses the ranks it was launched with")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcgan" if Path(sys.argv[0]).name == "dcgan" else "python -m dcgan",
        description="Train GANs / DCGANs with the dcgan C++ core.",
    )
    pkg = sys.modules.get(__package__ or "dcgan")
    parser.add_argument("--version", action="version",
                        version=f"dcgan {getattr(pkg, '__version__', 'unknown')}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser(
        "train",
        help="train a preset on a dataset, writing sample grids, loss curves and a checkpoint",
        description="Train a preset or a configuration file; writes OUT/samples_epoch_NNN.png each epoch, "
        "OUT/checkpoint.npz, OUT/losses.csv, OUT/losses.png and OUT/config.json.",
    )
    t.add_argument("--preset", default=None,
                   help="configuration preset (default: the --config file's, else mnist)")
    t.add_argument("--config", metavar="FILE", default=None,
                   help="JSON or TOML file of Config fields (and optionally 'preset', 'dataset', 'data'); "
                   "command-line options override it")
    _add_data_args(t)
    t.add_argument("--epochs", type=_positive_int, default=None, help="epochs (default: the configuration's)")
    t.add_argument("--batch-size", type=_positive_int, default=None, help="batch size")
    t.add_argument("--seed", type=_nonneg_int, default=None, help="random seed")
    t.add_argument("--lr", type=_positive_float, default=None, help="learning rate (both nets)")
    _add_run_args(t)
    t.set_defaults(func=_cmd_train, parser=t)

    r = sub.add_parser(
        "resume",
        help="continue a run from a checkpoint, exactly where it stopped",
        description="Continue training from a checkpoint written by train (OUT/checkpoint.npz, "
        "OUT/checkpoints/step_*.npz) or Trainer.save. --epochs and --steps are totals for the whole run "
        "(default: the configuration's epochs), so the same command finishes an interrupted run.",
    )
    r.add_argument("--checkpoint", metavar="FILE", required=True, help="checkpoint to resume from")
    _add_data_args(r)
    r.add_argument("--epochs", type=_positive_int, default=None,
                   help="train until the run has this many epochs in all (default: the configuration's)")
    _add_run_args(r)
    r.set_defaults(func=_cmd_resume, parser=r)

    s = sub.add_parser(
        "sample",
        help="draw samples from a checkpoint into a PNG grid",
        description="Generate images with a checkpoint's generator (full or generator-only).",
    )
    s.add_argument("--checkpoint", metavar="FILE", required=True, help="checkpoint to sample from")
    s.add_argument("-n", "--num", type=_positive_int, default=NUM_SAMPLES, help="number of images (default 64)")
    s.add_argument("--out", metavar="FILE", required=True,
                   help="output file: .png (a grid) or .npy (the float images, (n, C, H, W))")
    s.add_argument("--seed", type=_nonneg_int, default=None,
                   help="noise seed (default: the one of the training grids, so they are reproduced)")
    s.add_argument("--nrow", type=_positive_int, default=None, help="images per row of the grid")
    s.add_argument("--device", default=None, metavar="NAME",
                   help="backend that runs the generator (default: the one that saved the checkpoint)")
    s.add_argument("--bn-inference", choices=("precise", "running", "batch"), default=None,
                   help="BatchNorm statistics to sample with: precise ones recomputed for the weights "
                        "(default), the running averages, or each batch's own")
    s.set_defaults(func=_cmd_sample, parser=s)
    return parser


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _has(h: Any, key: str) -> bool:
    v = h.get(key)
    return v is not None and len(v) > 0


def _mean(xs: Sequence[float]) -> float:
    vals = [float(v) for v in xs if v == v]
    return sum(vals) / len(vals) if vals else float("nan")


def _steps_done(trainer: Any) -> int:
    v = getattr(trainer, "step_count", None)
    if v is not None:
        return int(v)
    h = getattr(trainer, "history", None) or {}
    return len(h.get("d_loss", ()))


class _EpochReporter:
    """on_epoch_end callback: sample grid PNG + one summary line per epoch."""

    def __init__(self, out: Path, value_range, sample_seed: int, epochs: Optional[int], first_step: int = 0):
        self.out = out
        self.value_range = value_range
        self.sample_seed = sample_seed
        self.epochs = epochs
        self.last_step = first_step
        self.t0 = time.perf_counter()
        self.files: List[Path] = []
        # callback's epoch number minus history["epoch"] at that time, once known
        self.epoch_offset: Optional[int] = None

    def on_epoch_end(self, trainer: Any, epoch: int) -> None:
        from .plot import sample_grid

        if not _main_rank():
            return
        h = trainer.history
        n = len(h.get("d_loss", ()))
        if self.epoch_offset is None and _has(h, "epoch"):
            self.epoch_offset = int(epoch) - int(h["epoch"][-1])
        sl = slice(self.last_step, n)
        self.last_step = n
        imgs = trainer.generate(NUM_SAMPLES, seed=self.sample_seed)
        path = self.out / f"samples_epoch_{int(epoch):03d}.png"
        sample_grid(imgs, nrow=8, path=path, value_range=self.value_range)
        self.files.append(path)
        now = time.perf_counter()
        of = f"/{self.epochs}" if self.epochs else ""
        line = (
            f"epoch {int(epoch)} [{int(epoch) + 1}{of}]  steps {n}  "
            f"d_loss {_mean(h.get('d_loss', [])[sl]):.4f}  g_loss {_mean(h.get('g_loss', [])[sl]):.4f}  "
            f"D(x) {_mean(h.get('d_real', [])[sl]):.3f}  D(G(z)) {_mean(h.get('d_fake', [])[sl]):.3f}  "
            f"{now - self.t0:.1f}s  -> {path.name}"
        )
        self.t0 = now
        _say(line)

    def finish(self, trainer: Any) -> None:
        """Report a last, partial epoch (training stopped by --steps mid-epoch)."""
        h = getattr(trainer, "history", None) or {}
        n = len(h["d_loss"]) if _has(h, "d_loss") else 0
        if n <= self.last_step:
            return
        if _has(h, "epoch"):
            epoch = int(h["epoch"][-1]) + (self.epoch_offset or 0)
        else:
            epoch = len(self.files)
        self.on_epoch_end(trainer, epoch)


def _say(line: str) -> None:
    try:
        from tqdm import tqdm

        tqdm.write(line, file=sys.stdout)
    except ImportError:  # pragma: no cover
        print(line)
    sys.stdout.flush()


def _main_rank() -> bool:
    """False on the ranks > 0 of a data-parallel run: rank 0 alone prints and writes files."""
    from .distributed import launched_size, world

    return launched_size() == 1 or world().rank == 0


def _write_json(path: Path, obj: Dict[str, Any]) -> None:
    from .plot import _atomic_write

    if not _main_rank():
        return
    data = (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")
    _atomic_write(path, lambda f: f.write(data))


def _read_config_file(path: str, parser: argparse.ArgumentParser) -> Dict[str, Any]:
    """The --config file as a dict (JSON, or TOML by suffix)."""
    p = Path(path).expanduser()
    if not p.is_file():
        parser.error(f"argument --config: {path} does not exist or is not a file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        parser.error(f"argument --config: cannot read {path}: {e}")
    if p.suffix.lower() == ".toml":
        try:
            import tomllib  # Python >= 3.11
        except ImportError:  # pragma: no cover
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ImportError:
                parser.error("argument --config: reading TOML needs Python >= 3.11 or the tomli package "
                             "(or give a .json file)")
        try:
            d = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, RecursionError) as e:
            parser.error(f"argument --config: {path} is not valid TOML: {e or 'nested too deeply'}")
    else:
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            parser.error(f"argument --config: {path} is not valid JSON: {e or 'nested too deeply'}")
    if not isinstance(d, dict):
        parser.error(f"argument --config: {path} must hold an object/table of Config fields")
    return d


def _make_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Tuple[Any, Dict[str, Any]]:
    """(Config, extras) from --preset, --config and the override options; extras: dataset/data from the file."""
    from dcgan import Config

    fields: Dict[str, Any] = {}
    extras: Dict[str, Any] = {}
    file_preset = None
    if args.config is not None:
        d = _read_config_file(args.config, parser)
        if isinstance(d.get("config"), dict):  # a config.json written by this command
            extras = {k: d[k] for k in ("dataset",) if k in d}
            file_preset = d.get("preset")
            fields = dict(d["config"])
        else:
            fields = dict(d)
            for k in ("dataset", "data"):
                if k in fields:
                    extras[k] = fields.pop(k)
        file_preset = fields.pop("preset", None) or file_preset
    overrides: Dict[str, Any] = {}
    for arg, field in (("batch_size", "batch_size"), ("seed", "seed"), ("lr", "lr"), ("epochs", "epochs"),
                       ("threads", "threads"), ("device", "device")):
        v = getattr(args, arg, None)
        if v is not None:
            overrides[field] = v
    name = args.preset or file_preset or "mnist"
    try:
        if name in Config.preset_names():
            cfg = Config.preset(name, **{**fields, **overrides})
        elif name == "custom" and args.config is not None:  # Config fields only, no preset behind them
            cfg = Config.from_dict({**fields, **overrides, "preset": name})
        else:
            cfg = Config.preset(name)  # raises: unknown preset, with the list
    except (KeyError, ValueError, TypeError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        where = f" (in {args.config})" if args.config else ""
        parser.error(f"{msg}{where}")
    return cfg, extras


def _check_data_arg(data: Optional[str], parser: argparse.ArgumentParser) -> Optional[str]:
    if data is not None and not Path(data).expanduser().is_dir():
        parser.error(f"argument --data: {data} is not a folder")
    return data


def _load_data(cfg: Any, dataset: Optional[str], data: Optional[str], args: argparse.Namespace,
               parser: argparse.ArgumentParser) -> Tuple[Any, str]:
    """Training images for ``cfg``: uint8 (N, H, W) or (N, H, W, C), sized for the model."""
    from . import datasets

    c, h, w = (int(v) for v in cfg.image_shape)
    name = dataset or ("mnist" if c == 1 else "cifar10")
    if name == "folder":
        if data is None:
            parser.error("argument --data: --dataset folder needs --data DIR (the folder of images)")
        if h != w:
            parser.error(f"--dataset folder makes square images, but the configuration's image_shape is "
                         f"{list(cfg.image_shape)}")
        try:
            x, _, _ = datasets.load_image_folder(data, size=h, channels=c, limit=args.max_images)
        except FileNotFoundError as e:
            parser.error(f"argument --data: {e}")
        except ValueError as e:
            print(f"error: bad data in {data}: {e}", file=sys.stderr)
            raise _Exit(1)
        return x, name
    try:
        x, _ = datasets.load(name, root=data, split="train", download=args.download)
    except FileNotFoundError as e:
        parser.error(f"argument --data: {str(e).replace('pass download=True', 'pass --download')}")
    except datasets.DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        raise _Exit(1)
    except ValueError as e:
        print(f"error: bad data in {data}: {e}", file=sys.stderr)
        raise _Exit(1)
    have_c = 1 if x.ndim == 3 else x.shape[3]
    if have_c != c:
        parser.error(f"dataset {name} has {have_c}-channel images but the configuration's image_shape is "
                     f"{list(cfg.image_shape)}; pick a {c}-channel dataset (--dataset) or set image_shape")
    if args.max_images is not None:
        x = x[: args.max_images]
    if x.shape[1:3] != (h, w):
        x = datasets.resize_images(x, (h, w))
    return x, name


def _callbacks(args: argparse.Namespace, out: Path, sample_seed: int, dataset: Optional[str] = None,
               parser: Optional[argparse.ArgumentParser] = None, data: Optional[str] = None) -> List[Any]:
    from .callbacks import Evaluate, HistoryLogger, ModelCheckpoint, SampleGrid

    cbs: List[Any] = [HistoryLogger(csv_path=out / "losses.csv")]
    if getattr(args, "eval_every", None):
        if dataset not in ("mnist", "fashion-mnist", "cifar10"):
            msg = (f"--eval-every needs a labelled dataset to train its feature network on (mnist, fashion-mnist, "
                   f"cifar10); {dataset or 'this data'} has no labels")
            if parser is not None:
                parser.error(msg)
            raise ValueError(msg)
        cbs.append(_MetricsWriter(Evaluate(dataset, every_steps=args.eval_every, every_epoch=False,
                                           best_path=out / "best.npz", root=data), out))
    if args.sample_every:
        cbs.append(SampleGrid(out, every_steps=args.sample_every, every_epoch=False, n=NUM_SAMPLES,
                              seed=sample_seed, nrow=8))
    if args.checkpoint_every:
        cbs.append(ModelCheckpoint(out / "checkpoints" / "step_{step:06d}.npz", every_steps=args.checkpoint_every,
                                   keep_last=args.keep_checkpoints))
    return cbs


def _fit(trainer: Any, x: Any, fit_len: Dict[str, Any], target: Optional[int], args: argparse.Namespace,
         out: Path, reporter: _EpochReporter, extra_cbs: List[Any], data: Optional[str]) -> int:
    """Runs fit with the reporter and callbacks; always writes the results and a checkpoint."""
    status = 0
    try:
        trainer.fit(x, callbacks=[reporter, *extra_cbs], progress=not args.no_progress, **fit_len)
    except FloatingPointError as e:  # diverged: keep the curves, never a non-finite checkpoint
        print(f"error: {e}", file=sys.stderr)
        _write_results(trainer, out, checkpoint=False)
        return 3
    except ValueError as e:  # e.g. fewer images than one batch
        print(f"error: {e}", file=sys.stderr)
        _write_results(trainer, out)
        return 1
    except KeyboardInterrupt:
        status = 130
    except BaseException:
        try:  # keep what was learnt, but let the original error through
            _write_results(trainer, out)
        except Exception:
            pass
        raise
    done = _steps_done(trainer)
    if status == 0 and target is not None and done < target and not getattr(trainer, "stop_training", False):
        status = 130  # Trainer.fit returned early: Ctrl-C
    reporter.finish(trainer)
    _write_results(trainer, out)
    if status == 130:
        prog = "dcgan" if Path(sys.argv[0]).name == "dcgan" else "python -m dcgan"
        hint = [prog, "resume", "--checkpoint", str(out / "checkpoint.npz")]
        if data is not None:
            hint += ["--data", str(data)]
        if getattr(args, "dataset", None):
            hint += ["--dataset", args.dataset]
        if target is not None:
            hint += ["--steps", str(target)]
        hint += ["--out", str(out)]
        print(f"interrupted at step {done}; continue with: {' '.join(hint)}", file=sys.stderr)
    return status


class _MetricsWriter:
    """Runs an Evaluate callback and rewrites OUT/metrics.csv and OUT/metrics.png after each
    evaluation."""

    def __init__(self, evaluate: Any, out: Path) -> None:
        self.evaluate, self.out, self._seen = evaluate, out, 0
        self.every_steps = evaluate.every_steps  # the trainer ends its chunks on these steps

    def on_step(self, trainer: Any, step: int, stats: Dict[str, float]) -> None:
        self.evaluate.on_step(trainer, step, stats)
        if len(self.evaluate.results) != self._seen:
            self._seen = len(self.evaluate.results)
            _write_metrics(trainer, self.out)

    def on_epoch_end(self, trainer: Any, epoch: int) -> None:
        self.evaluate.on_epoch_end(trainer, epoch)


def _write_metrics(trainer: Any, out: Path) -> None:
    import csv
    import io

    from ._io import atomic_write
    from .plot import plot_metrics

    h = getattr(trainer, "eval_history", None) or {}
    cols = [k for k in ("step", "epoch", "fid", "kid", "kid_std", "precision", "recall", "density", "coverage",
                        "kl_to_uniform") if k in h]
    if not cols:
        return
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols + (["missing_classes"] if "missing_classes" in h else []))
    for i in range(len(h[cols[0]])):
        extra = [" ".join(str(c) for c in h["missing_classes"][i])] if "missing_classes" in h else []
        w.writerow([h[k][i] for k in cols] + extra)
    atomic_write(out / "metrics.csv", lambda f: f.write(buf.getvalue().encode()))
    plot_metrics(h, path=out / "metrics.png")


def _write_results(trainer: Any, out: Path, checkpoint: bool = True) -> None:
    from .plot import plot_losses, save_history_csv

    h = getattr(trainer, "history", None) or {}
    if not _has(h, "d_loss") or not _main_rank():
        return
    save_history_csv(h, out / "losses.csv")
    plot_losses(h, path=out / "losses.png")
    written = [out / "losses.csv", out / "losses.png"]
    save = getattr(trainer, "save", None) if checkpoint else None
    if callable(save):
        written.append(Path(save(out / "checkpoint.npz") or out / "checkpoint.npz"))
    n = len(h["d_loss"])
    print(f"{n} steps; wrote {', '.join(str(p) for p in written)}", flush=True)


def _import_core() -> Any:
    try:
        import dcgan  # loads the C++ core: fail here with a clear message, not mid-run
    except ImportError as e:
        print(f"error: cannot import the dcgan package and its C++ core: {e}", file=sys.stderr)
        raise _Exit(1)
    return dcgan


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------


def _cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    # 1. Cheap checks first.
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        parser.error(f"argument --out: {out} exists and is not a folder")
    dcgan = _import_core()

    # 2. Configuration.
    cfg, extras = _make_config(args, parser)
    data = args.data if args.data is not None else extras.get("data")
    if data is None:
        data = os.environ.get("DCGAN_DATA") or None
    dataset = args.dataset or (_dataset_name(str(extras["dataset"])) if extras.get("dataset") else None)
    if data is None and not args.download and dataset != "fashion-mnist":
        parser.error("no data folder: pass --data DIR or set DCGAN_DATA (or --download)")
    _check_data_arg(data, parser)

    # 3. Data.
    x, dataset = _load_data(cfg, dataset, data, args, parser)
    try:
        trainer = dcgan.Trainer(cfg)
    except (ValueError, TypeError) as e:
        parser.error(f"bad configuration: {e}")

    # 4. Train.
    out.mkdir(parents=True, exist_ok=True)
    try:
        cfg_dict = cfg.to_dict()
    except Exception:  # pragma: no cover - a nicety only
        cfg_dict = {}
    preset = getattr(cfg, "preset_name", None) or args.preset
    _write_json(out / "config.json", {"preset": preset, "dataset": dataset, "data": None if data is None else str(data),
                                      "config": cfg_dict, "dcgan_version": getattr(dcgan, "__version__", None)})
    epochs = args.epochs if args.epochs is not None else getattr(cfg, "epochs", None)
    bs = int(cfg.batch_size)
    world_size = int(getattr(trainer, "world_size", 1))
    steps_per_epoch = x.shape[0] // (bs * world_size)
    # Trainer.fit takes epochs or steps: --steps caps the run, --epochs too when both are given.
    if args.steps is not None:
        total = args.steps if args.epochs is None else min(args.steps, args.epochs * steps_per_epoch)
        fit_len: Dict[str, Any] = {"steps": total}
        n_epochs = -(-total // steps_per_epoch) if steps_per_epoch else None
    else:
        fit_len = {"epochs": epochs} if epochs is not None else {}
        total = epochs * steps_per_epoch if epochs is not None else None
        n_epochs = epochs
    seed = int(getattr(cfg, "seed", 0) or 0)
    value_range = tuple(getattr(cfg, "data_range", (-1.0, 1.0)))
    reporter = _EpochReporter(out, value_range, seed + SAMPLE_SEED_OFFSET, n_epochs)
    print(
        f"training {preset!r} on {x.shape[0]} {dataset} images"
        + (f" from {data}" if data else "") + ": "
        + (f"{total} steps" if total is not None else "")
        + (f" ({n_epochs} epochs of {steps_per_epoch})" if n_epochs else "")
        + (f" on {world_size} ranks x batch {bs}" if world_size > 1 else "")
        + f" -> {out}",
        flush=True,
    )
    cbs = _callbacks(args, out, seed + SAMPLE_SEED_OFFSET, dataset, parser, data)
    return _fit(trainer, x, fit_len, total, args, out, reporter, cbs, data)


# ---------------------------------------------------------------------------
# resume
# ---------------------------------------------------------------------------


def _cmd_resume(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    ckpt = Path(args.checkpoint).expanduser()
    if not ckpt.is_file():
        parser.error(f"argument --checkpoint: {ckpt} does not exist")
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        parser.error(f"argument --out: {out} exists and is not a folder")
    data = args.data if args.data is not None else (os.environ.get("DCGAN_DATA") or None)
    if data is None and not args.download and args.dataset != "fashion-mnist":
        parser.error("no data folder: pass --data DIR or set DCGAN_DATA (or --download)")
    _check_data_arg(data, parser)
    dcgan = _import_core()
    from dcgan import checkpoint as ckpt_mod

    try:
        meta, _ = ckpt_mod.read(ckpt)
        if meta.get("kind") != "full":
            parser.error(f"argument --checkpoint: {ckpt} holds only a generator (for sampling); "
                         "resume needs a full checkpoint (Trainer.save)")
        saved = dcgan.Config.from_dict(meta["config"])
        cfg = saved
        if args.threads is not None:
            import dataclasses

            cfg = dataclasses.replace(saved, threads=args.threads)
        trainer = dcgan.Trainer.load(ckpt, cfg=cfg, device=args.device)
    except (ValueError, TypeError, KeyError) as e:
        parser.error(f"argument --checkpoint: {e}")

    x, dataset = _load_data(cfg, args.dataset, data, args, parser)
    bs = int(cfg.batch_size) * int(getattr(trainer, "world_size", 1))
    spe = x.shape[0] // bs
    if spe < 1:
        print(f"error: {x.shape[0]} images, fewer than one batch ({bs})", file=sys.stderr)
        return 1
    epochs = args.epochs if args.epochs is not None else int(cfg.epochs)
    target = epochs * spe
    if args.steps is not None:
        target = args.steps if args.epochs is None else min(args.steps, target)
    start = _steps_done(trainer)
    out.mkdir(parents=True, exist_ok=True)
    if target <= start:
        print(f"nothing to do: {ckpt} is at step {start}, the target is step {target} "
              f"({epochs} epochs of {spe}); raise --epochs or --steps", flush=True)
        return 0
    _write_json(out / "config.json", {"preset": getattr(cfg, "preset_name", None), "dataset": dataset,
                                      "data": None if data is None else str(data), "config": cfg.to_dict(),
                                      "resumed_from": str(ckpt), "resumed_at_step": start,
                                      "dcgan_version": getattr(dcgan, "__version__", None)})
    seed = int(getattr(cfg, "seed", 0) or 0)
    reporter = _EpochReporter(out, tuple(cfg.data_range), seed + SAMPLE_SEED_OFFSET, -(-target // spe),
                              first_step=len(trainer.history.get("d_loss", ())))
    print(f"resuming {ckpt} at step {start} (epoch {start // spe}) on {x.shape[0]} {dataset} images: "
          f"{target - start} more steps, to step {target} -> {out}", flush=True)
    cbs = _callbacks(args, out, seed + SAMPLE_SEED_OFFSET, dataset, parser, data)
    return _fit(trainer, x, {"steps": target - start}, target, args, out, reporter, cbs, data)


# ---------------------------------------------------------------------------
# sample
# ---------------------------------------------------------------------------


def _cmd_sample(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    ckpt = Path(args.checkpoint).expanduser()
    if not ckpt.is_file():
        parser.error(f"argument --checkpoint: {ckpt} does not exist")
    out = Path(args.out).expanduser()
    if out.is_dir():
        parser.error(f"argument --out: {out} is a folder; give a file name such as grid.png")
    suffix = out.suffix.lower()
    if suffix not in ("", ".png", ".jpg", ".jpeg", ".npy"):
        parser.error(f"argument --out: unsupported file type {out.suffix!r} (use .png or .npy)")
    dcgan = _import_core()
    try:
        g = dcgan.Generator.load(ckpt, device=args.device)
    except (ValueError, TypeError, KeyError) as e:
        parser.error(f"argument --checkpoint: {e}")
    seed = args.seed if args.seed is not None else int(getattr(g.cfg, "seed", 0) or 0) + SAMPLE_SEED_OFFSET
    imgs = g.generate(args.num, seed=seed, bn_inference=args.bn_inference)
    if suffix == ".npy":
        import numpy as np

        from .plot import _atomic_write

        _atomic_write(out, lambda f: np.save(f, imgs))
    else:
        from .plot import sample_grid

        if not suffix:
            out = out.with_suffix(".png")
        sample_grid(imgs, nrow=args.nrow, path=out, value_range=tuple(g.cfg.data_range))
    print(f"wrote {args.num} samples (seed {seed}) from {ckpt} to {out}", flush=True)
    return 0


# ---------------------------------------------------------------------------


def _without_nproc(argv: Sequence[str]) -> List[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m dcgan`` and the ``dcgan`` console script.

    Returns the exit status (bad arguments exit with status 2 and a usage message).
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if getattr(args, "command", None) in ("train", "resume"):
        from . import distributed

        nproc = getattr(args, "nproc", None)
        if nproc is not None and nproc > 1 and distributed.launched_size() == 1:
            # Start the ranks: the same command without --nproc, under mpiexec.
            try:
                return distributed.launch(nproc, _without_nproc(argv))
            except RuntimeError as e:
                parser.error(str(e))
        if distributed.launched_size() > 1 and distributed.world().rank != 0:
            sys.stdout = open(os.devnull, "w")  # rank 0 reports; errors still reach stderr
    try:
        return int(args.func(args, args.parser) or 0)
    except _Exit as e:
        return e.status
