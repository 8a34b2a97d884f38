"""Command line: ``python -m dcgan train ...`` (also installed as ``dcgan``).

Example::

    python -m dcgan train --preset mnist --data ../shared/data/mnist --epochs 5 --out runs/mnist

writes into ``--out``:

* ``samples_epoch_000.png``, ``samples_epoch_001.png``, ... one 8x8 grid per
  epoch (numbered as ``Trainer`` numbers epochs, from 0), always from the same
  noise, so the files show the generator's progress; a run stopped by
  ``--steps`` inside an epoch also gets a grid for that partial epoch;
* ``losses.csv`` (``step,epoch,d_loss,g_loss,d_real,d_fake``) and ``losses.png``;
* ``config.json``, the configuration used.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

#: Seed of the fixed noise behind the per-epoch sample grids (offset from cfg.seed).
SAMPLE_SEED_OFFSET = 0x5EED
#: Images in each sample grid (an 8x8 grid).
NUM_SAMPLES = 64


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _nonneg_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {s!r}")
    return v


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}")
    return v


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
        help="train a preset on a dataset, writing sample grids and loss curves",
        description="Train a preset; writes OUT/samples_epoch_NNN.png each epoch and "
        "OUT/losses.csv, OUT/losses.png, OUT/config.json.",
    )
    t.add_argument("--preset", default="mnist", help="configuration preset (default: mnist)")
    t.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="folder holding the dataset's files (e.g. the MNIST IDX files) or a folder "
        "containing mnist/ (default: $DCGAN_DATA)",
    )
    t.add_argument("--epochs", type=_positive_int, default=None, help="epochs (default: the preset's)")
    t.add_argument("--out", metavar="DIR", required=True, help="output folder (created if needed)")
    t.add_argument("--batch-size", type=_positive_int, default=None, help="batch size")
    t.add_argument("--seed", type=_nonneg_int, default=None, help="random seed")
    t.add_argument("--lr", type=_positive_float, default=None, help="learning rate (both nets)")
    t.add_argument("--steps", type=_positive_int, default=None, help="stop after this many steps in all")
    t.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="CPU threads for the core (Config.threads; default: the preset's, 0 there = all cores)",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train, parser=t)
    return parser


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------


def _config_fields(Config: Any) -> Optional[set]:
    import dataclasses

    try:
        return {f.name for f in dataclasses.fields(Config)}
    except TypeError:
        return None


def _has(h: Any, key: str) -> bool:
    v = h.get(key)
    return v is not None and len(v) > 0


def _mean(xs: Sequence[float]) -> float:
    vals = [float(v) for v in xs if v == v]
    return sum(vals) / len(vals) if vals else float("nan")


class _EpochReporter:
    """on_epoch_end callback: sample grid PNG + one summary line per epoch."""

    def __init__(self, out: Path, value_range, sample_seed: int, epochs: Optional[int]):
        self.out = out
        self.value_range = value_range
        self.sample_seed = sample_seed
        self.epochs = epochs
        self.last_step = 0
        self.t0 = time.perf_counter()
        self.files: List[Path] = []
        # callback's epoch number minus history["epoch"] at that time, once known
        self.epoch_offset: Optional[int] = None

    def on_epoch_end(self, trainer: Any, epoch: int) -> None:
        from .plot import sample_grid

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
            f"epoch {int(epoch)} [{len(self.files)}{of}]  steps {n}  "
            f"d_loss {_mean(h.get('d_loss', [])[sl]):.4f}  g_loss {_mean(h.get('g_loss', [])[sl]):.4f}  "
            f"D(x) {_mean(h.get('d_real', [])[sl]):.3f}  D(G(z)) {_mean(h.get('d_fake', [])[sl]):.3f}  "
            f"{now - self.t0:.1f}s  -> {path.name}"
        )
        self.t0 = now
        self._say(line)

    def finish(self, trainer: Any) -> None:
        """Report a last, partial epoch (training stopped by --steps mid-epoch)."""
        h = getattr(trainer, "history", None) or {}
        n = len(h["d_loss"]) if _has(h, "d_loss") else 0
        if n <= self.last_step:
            return
        if _has(h, "epoch"):
            epoch = int(h["epoch"][-1]) + (self.epoch_offset or 0)
        else:
            epoch = len(self.files) + 1
        self.on_epoch_end(trainer, epoch)

    @staticmethod
    def _say(line: str) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stdout)
        except ImportError:  # pragma: no cover
            print(line)
        sys.stdout.flush()


def _write_json(path: Path, obj: Dict[str, Any]) -> None:
    from .plot import _atomic_write

    data = (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")
    _atomic_write(path, lambda f: f.write(data))


def _cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    # 1. Cheap checks first (no import of the core).
    data = args.data if args.data is not None else (os.environ.get("DCGAN_DATA") or None)
    if data is None:
        parser.error("no data folder: pass --data DIR or set DCGAN_DATA")
    if not Path(data).expanduser().is_dir():
        parser.error(f"argument --data: {data} is not a folder")
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        parser.error(f"argument --out: {out} exists and is not a folder")

    # 2. Configuration.
    try:
        import dcgan
        from dcgan import Config, Trainer
    except ImportError as e:
        print(f"error: cannot import the dcgan package and its C++ core: {e}", file=sys.stderr)
        return 1

    overrides: Dict[str, Any] = {}
    for arg, field in (("batch_size", "batch_size"), ("seed", "seed"), ("lr", "lr"), ("epochs", "epochs")):
        v = getattr(args, arg)
        if v is not None:
            overrides[field] = v
    fields = _config_fields(Config)
    if args.threads is not None and fields is not None:
        for name in ("threads", "num_threads"):
            if name in fields:
                overrides[name] = args.threads
                break
    try:
        cfg = Config.preset(args.preset, **overrides)
    except (KeyError, ValueError, TypeError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        parser.error(str(msg))  # e.g. "unknown preset 'x'; available: mnist"

    # 3. Data.
    from .datasets import LOADERS

    dataset = str(getattr(cfg, "dataset", None) or args.preset).lower().replace("_", "-")
    loader = LOADERS.get(dataset)
    if loader is None:
        parser.error(f"argument --preset: {args.preset!r}: no loader for dataset {dataset!r} (known: {', '.join(sorted(LOADERS))})")
    try:
        x, _ = loader(root=data, split="train")
    except FileNotFoundError as e:
        parser.error(f"argument --data: {e}")
    except ValueError as e:
        print(f"error: bad data in {data}: {e}", file=sys.stderr)
        return 1

    try:
        trainer = Trainer(cfg)
    except (ValueError, TypeError) as e:
        parser.error(f"bad configuration: {e}")

    # 4. Train.
    out.mkdir(parents=True, exist_ok=True)
    try:
        cfg_dict = cfg.to_dict()
    except Exception:  # pragma: no cover - a nicety only
        cfg_dict = {"preset": args.preset, **overrides}
    _write_json(out / "config.json", {"preset": args.preset, "data": str(data), "config": cfg_dict,
                                      "dcgan_version": getattr(dcgan, "__version__", None)})
    epochs = args.epochs if args.epochs is not None else getattr(cfg, "epochs", None)
    steps_per_epoch = x.shape[0] // int(cfg.batch_size)
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
        f"training preset {args.preset!r} on {x.shape[0]} images from {data}: "
        + (f"{total} steps" if total is not None else "")
        + (f" ({n_epochs} epochs of {steps_per_epoch})" if n_epochs else "")
        + f" -> {out}",
        flush=True,
    )

    status = 0
    try:
        trainer.fit(x, callbacks=[reporter], progress=not args.no_progress, **fit_len)
    except ValueError as e:  # e.g. fewer images than one batch
        print(f"error: {e}", file=sys.stderr)
        _write_results(trainer, out)
        return 1
    except KeyboardInterrupt:
        print("interrupted; writing what there is", file=sys.stderr)
        status = 130
    except BaseException:
        try:  # keep what was learnt, but let the original error through
            _write_results(trainer, out)
        except Exception:
            pass
        raise
    reporter.finish(trainer)
    _write_results(trainer, out)
    return status


def _write_results(trainer: Any, out: Path) -> None:
    from .plot import plot_losses, save_history_csv

    h = getattr(trainer, "history", None) or {}
    if not _has(h, "d_loss"):
        return
    save_history_csv(h, out / "losses.csv")
    plot_losses(h, path=out / "losses.png")
    n = len(h["d_loss"])
    print(f"{n} steps; wrote {out / 'losses.csv'} and {out / 'losses.png'}", flush=True)


# ---------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m dcgan`` and the ``dcgan`` console script.

    Returns the exit status (bad arguments exit with status 2 and a usage message).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args, args.parser) or 0)


if __name__ == "__main__":
    sys.exit(main())
