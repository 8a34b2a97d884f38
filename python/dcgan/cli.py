"""Command line: ``python -m dcgan train | resume | sample`` (also installed as ``dcgan``).

The parser, the three commands and :func:`main` live here; ``dcgan/__main__.py``
only calls :func:`main`.

Examples::

    python -m dcgan train --preset mnist --epochs 5 --out runs/mnist   # MNIST found or downloaded
    python -m dcgan train --preset mnist --data ../shared/data/mnist --epochs 5 --out runs/mnist
    python -m dcgan train --preset dcgan64 --channels 1 --dataset mnist --out runs/mnist64
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
at 64x64 with ``--channels 1``, i.e. ``image_shape`` ``[1, 64, 64]``;
``--image-shape C,H,W`` sets the whole shape). ``--dataset folder --data DIR``
reads PNG/JPEG files (e.g. CelebA), centre-cropped and resized; ``--skip-bad``
skips the files that cannot be read, with a warning saying how many.

Where the data comes from: ``--data DIR`` is the only place looked in (``--download``
downloads into it). Without ``--data``, MNIST, Fashion-MNIST and CIFAR-10 are looked
for under ``$DCGAN_DATA``, then in the cache folder (``$DCGAN_CACHE``, default
``~/.cache/dcgan``), and downloaded into it (checksums verified) when not found;
``--no-download`` forbids the network, and without one the error says where the files
were looked for and where to put them. With ``--nproc`` the download happens once,
before the ranks start.

``resume``'s ``--epochs`` and ``--steps`` are totals for the whole run, not additional.

Errors in the arguments (bad values, missing files, unknown presets or
configuration fields) exit with status 2 and a usage message, no traceback;
too few images for one batch, unreadable data and failed downloads exit with
status 1 and one ``error:`` line, before anything is written into ``--out``.
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


def _image_shape(s: str) -> Tuple[int, int, int]:
    parts = s.replace("x", ",").replace("X", ",").split(",")
    try:
        v = tuple(int(x) for x in parts)
    except ValueError:
        v = ()
    if len(v) != 3 or v[0] not in (1, 3) or v[1] < 1 or v[2] < 1:
        raise argparse.ArgumentTypeError(f"expected C,H,W with C 1 or 3 (e.g. 1,64,64), got {s!r}")
    return v  # type: ignore[return-value]


def _plural(n: int, word: str, plural: Optional[str] = None) -> str:
    """'1 epoch', '2 epochs', '0 images'."""
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data", metavar="DIR", default=None,
        help="folder holding the dataset's files (MNIST IDX files, cifar-10-batches-py/, images for "
        "--dataset folder) or a folder containing mnist/, fashion-mnist/, cifar10/ (default: $DCGAN_DATA)",
    )
    p.add_argument("--dataset", type=_dataset_name, default=None, metavar="NAME",
                   help=f"one of {', '.join(DATASETS)} (default: from the configuration: 1 channel -> "
                   "mnist, 3 channels -> cifar10, resized to the model's image size)")
    dl = p.add_mutually_exclusive_group()
    dl.add_argument("--download", action="store_true",
                    help="download MNIST / Fashion-MNIST / CIFAR-10 if not found, into --data DIR when given "
                    "(checksums verified). Without --data this happens anyway: the dataset is looked for in "
                    "$DCGAN_DATA, then in the cache folder ($DCGAN_CACHE, default ~/.cache/dcgan), and "
                    "downloaded when not found")
    dl.add_argument("--no-download", action="store_true",
                    help="never use the network: stop with a message saying where the files were looked for")
    p.add_argument("--max-images", type=_positive_int, default=None, metavar="N",
                   help="use only the first N training images")
    p.add_argument("--skip-bad", action="store_true",
                   help="--dataset folder: skip image files that cannot be read (with a warning saying how "
                   "many) instead of stopping at the first one")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR", required=True, help="output folder (created if needed)")
    p.add_argument("--steps", type=_positive_int, default=None,
                   help="stop when the run has this many steps in all")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads for the core (Config.threads; default: the configuration's, 0 there = all)")
    p.add_argument("--device", default=None, metavar="NAME",
                   help="backend that runs the step: cpu or cuda (Config.device; default: the configuration's, "
                        "or for resume the one that saved the checkpoint)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                   help="arithmetic of the training step (Config.precision): bf16 needs a CPU with AVX512-BF16 "
                        "or AMX (default: the configuration's, or for resume the checkpoint's)")
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
    shape = t.add_mutually_exclusive_group()
    shape.add_argument("--channels", type=int, choices=(1, 3), default=None,
                       help="image channels of the networks (image_shape's C; the preset's size is kept): "
                       "1 trains on mnist by default, 3 on cifar10; e.g. --preset dcgan64 --channels 1 "
                       "trains on MNIST resized to 64x64")
    shape.add_argument("--image-shape", type=_image_shape, default=None, metavar="C,H,W",
                       help="the networks' image shape, e.g. 1,64,64 (the data is resized to H x W)")
    _add_run_args(t)
    t.set_defaults(func=_cmd_train, parser=t)

    r = sub.add_parser(
        "resume",
        help="continue a run from a checkpoint, exactly where it stopped",
        description="Continue training from a checkpoint written by train (OUT/checkpoint.npz, "
        "OUT/checkpoints/step_*.npz) or Trainer.save. --epochs and --steps are totals for the whole run, "
        "not additional (default: the configuration's epochs): a run stopped at step 400 of a 2-epoch run "
        "resumed with --epochs 2 trains the rest of those 2 epochs, so the same command finishes an "
        "interrupted run; to train longer, raise the total.",
    )
    r.add_argument("--checkpoint", metavar="FILE", required=True, help="checkpoint to resume from")
    _add_data_args(r)
    r.add_argument("--epochs", type=_positive_int, default=None,
                   help="train until the run has this many epochs in all, counting those already done "
                   "(a total, not additional; default: the configuration's)")
    _add_run_args(r)
    for a in r._actions:
        if a.dest == "steps":
            a.help = ("stop when the run has this many steps in all, counting those already done "
                      "(a total, not additional)")
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
            f"epoch {int(epoch)} [{int(epoch) + 1}{of}]  step {n}  "
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
                       ("threads", "threads"), ("device", "device"), ("precision", "precision")):
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
    shape = getattr(args, "image_shape", None)
    if shape is None and getattr(args, "channels", None) is not None:
        shape = (args.channels, *tuple(cfg.image_shape)[1:])
    if shape is not None and tuple(shape) != tuple(cfg.image_shape):
        import dataclasses

        try:
            cfg = dataclasses.replace(cfg, image_shape=tuple(shape))
        except (ValueError, TypeError) as e:
            opt = "--image-shape" if getattr(args, "image_shape", None) else "--channels"
            parser.error(f"argument {opt}: {e}")
    return cfg, extras


def _check_data_arg(data: Optional[str], parser: argparse.ArgumentParser) -> Optional[str]:
    if data is not None and not Path(data).expanduser().is_dir():
        parser.error(f"argument --data: {data} is not a folder")
    return data


#: How the datasets are called in messages.
_DISPLAY = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}


def _cli_words(msg: str) -> str:
    """A dcgan.datasets message in command-line terms (options instead of Python arguments)."""
    return (msg.replace("pass root=<folder>", "pass --data DIR").replace("root=<folder>", "--data DIR")
            .replace("download=True", "--download"))


def _needed_files(name: str) -> str:
    if name == "cifar10":
        return "cifar-10-batches-py/ (unpacked from cifar-10-python.tar.gz)"
    return "train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz"


def _default_dataset_note(cfg: Any, name: str, defaulted: bool, data: Optional[str]) -> str:
    """For a 3-channel configuration whose dataset was not chosen: why CIFAR-10, and how to get MNIST."""
    if not defaulted or name != "cifar10":
        return ""
    preset = getattr(cfg, "preset_name", None)
    what = f"--preset {preset}" if preset and preset != "custom" else "this configuration"
    note = (f"{what} makes 3-channel images, and three-channel presets default to the cifar10 dataset; "
            f"to train on MNIST instead pass --dataset mnist --channels 1")
    if data is not None:
        d = Path(data).expanduser()
        if any((f / n).is_file() for f in (d, d / "mnist") for n in ("train-images-idx3-ubyte.gz",
                                                                      "train-images-idx3-ubyte")):
            note += f" ({data} holds MNIST)"
    return note + ". "


def _may_download(data: Optional[str], args: argparse.Namespace) -> bool:
    """Whether loading a named dataset may download it (the same answer on every rank)."""
    if getattr(args, "no_download", False):
        return False
    return data is None or bool(getattr(args, "download", False))


def _load_named(cfg: Any, name: str, defaulted: bool, data: Optional[str], args: argparse.Namespace,
                parser: argparse.ArgumentParser) -> Any:
    """:func:`_load_named_here`, on rank 0 first in a data-parallel run that may download: the other
    ranks wait for it (so that one rank downloads and unpacks, into a folder the others then read)
    and stop, quietly, if it failed (rank 0 says why). ``--nproc`` fetches a missing dataset
    before it starts the ranks (:func:`main`), so there rank 0 only loads."""
    from . import distributed

    if distributed.launched_size() <= 1 or not _may_download(data, args):
        return _load_named_here(cfg, name, defaulted, data, args, parser)
    if distributed.world().rank != 0:
        if not distributed.broadcast_object(None):
            raise _Exit(1)
        return _load_named_here(cfg, name, defaulted, data, args, parser)
    ok = False
    try:
        x = _load_named_here(cfg, name, defaulted, data, args, parser)
        ok = True
    finally:
        distributed.broadcast_object(ok)
    return x


def _load_named_here(cfg: Any, name: str, defaulted: bool, data: Optional[str], args: argparse.Namespace,
                     parser: argparse.ArgumentParser) -> Any:
    """The images of a named dataset (mnist, fashion-mnist, cifar10).

    With --data DIR only DIR is searched (and downloaded into with --download). Without it the
    dataset is looked for in $DCGAN_DATA, system folders and the cache, and downloaded into the
    cache (or $DCGAN_DATA) when not found, unless --no-download.
    """
    from . import datasets

    shown = _DISPLAY.get(name, name)
    note = _default_dataset_note(cfg, name, defaulted, data)
    no_download = bool(getattr(args, "no_download", False))
    try:
        if data is not None:
            try:
                return datasets.load(name, root=data, split="train", download=args.download)[0]
            except FileNotFoundError as e:
                parser.error(f"argument --data: {note}{_cli_words(str(e))}")
        try:  # --download without --data: the same as without it, found here or downloaded below
            return datasets.load(name, root=None, split="train")[0]
        except FileNotFoundError as e:
            looked = ", ".join(str(d) for d in datasets.search_dirs(name))
            target = datasets.download_dir(name)
            if no_download:
                parser.error(
                    f"{note}{shown} not found on this machine (looked in {looked}) and --no-download forbids "
                    f"downloading it. Put {_needed_files(name)} in {target}, or in DIR/{datasets.SUBDIRS[name]}/ "
                    f"and set {datasets.DATA_ENV}=DIR or pass --data DIR; or leave out --no-download to "
                    f"download it (checksums verified)")
            if _main_rank():
                print(f"{note}{shown} not found (looked in {looked}): downloading it into {target} "
                      "(checksums verified; --no-download forbids this)", file=sys.stderr, flush=True)
            try:
                return datasets.load(name, root=None, split="train", download=True)[0]
            except datasets.DownloadError as e2:
                print(f"error: {note}{shown} not found on this machine (looked in {looked}) and it could not "
                      f"be downloaded: {e2}. Alternatively put {_needed_files(name)} in "
                      f"DIR/{datasets.SUBDIRS[name]}/ and set {datasets.DATA_ENV}=DIR, or pass --data DIR",
                      file=sys.stderr)
                raise _Exit(1) from None
            except FileNotFoundError as e3:
                parser.error(f"{note}{_cli_words(str(e3))}")
    except datasets.DownloadError as e:
        print(f"error: {note}{e}", file=sys.stderr)
        raise _Exit(1)
    except ValueError as e:
        print(f"error: bad data in {data if data is not None else shown}: {e}", file=sys.stderr)
        raise _Exit(1)


def _load_folder(cfg: Any, data: Optional[str], args: argparse.Namespace,
                 parser: argparse.ArgumentParser) -> Any:
    import warnings

    from . import datasets

    c, h, w = (int(v) for v in cfg.image_shape)
    if data is None:
        parser.error("argument --data: --dataset folder needs --data DIR (the folder of images)")
    if h != w:
        parser.error(f"--dataset folder makes square images, but the configuration's image_shape is "
                     f"{list(cfg.image_shape)}")
    skip_bad = bool(getattr(args, "skip_bad", False))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            x, _, _ = datasets.load_image_folder(data, size=h, channels=c, limit=args.max_images,
                                                 skip_bad=skip_bad)
    except FileNotFoundError as e:
        parser.error(f"argument --data: {e}")
    except datasets.UnreadableImageError as e:
        print(f"error: cannot read the image {e.path} ({e.reason}); pass --skip-bad to skip unreadable "
              "images (with a warning saying how many)", file=sys.stderr)
        raise _Exit(1)
    except ValueError as e:
        print(f"error: bad data in {data}: {e}", file=sys.stderr)
        raise _Exit(1)
    skipped = [str(m.message)[len("skipping "):] for m in caught if str(m.message).startswith("skipping ")
               and "cannot read image" in str(m.message)]
    for m in caught:  # anything else (e.g. a FIFO named like an image) is still shown
        text = str(m.message)
        if not (text.startswith("skipping ") and "cannot read image" in text) and not text.startswith("skipped "):
            if _main_rank():
                print(f"warning: {text}", file=sys.stderr)
    if skipped and _main_rank():
        first = skipped[0].split(": cannot read image")[0]
        print(f"warning: --skip-bad: skipped {_plural(len(skipped), 'unreadable image')} under {data} "
              f"(the first: {first}); training on the other {_plural(int(x.shape[0]), 'image')}",
              file=sys.stderr, flush=True)
    return x


def _load_data(cfg: Any, dataset: Optional[str], data: Optional[str], args: argparse.Namespace,
               parser: argparse.ArgumentParser) -> Tuple[Any, str]:
    """Training images for ``cfg``: uint8 (N, H, W) or (N, H, W, C), sized for the model."""
    from . import datasets

    c, h, w = (int(v) for v in cfg.image_shape)
    name = dataset or ("mnist" if c == 1 else "cifar10")
    if getattr(args, "data_only", False) and (name == "folder" or not _may_download(data, args)):
        return None, name  # nothing to fetch before the ranks start
    if name == "folder":
        return _load_folder(cfg, data, args, parser), name
    x = _load_named(cfg, name, dataset is None, data, args, parser)
    have_c = 1 if x.ndim == 3 else x.shape[3]
    if have_c != c:
        fix = (f"pick a {c}-channel dataset (--dataset) or set image_shape (--channels {have_c})"
               if getattr(args, "command", None) == "train" else
               f"pick a {c}-channel dataset (--dataset): a checkpoint's image_shape cannot change")
        parser.error(f"dataset {name} has {have_c}-channel images but the configuration's image_shape is "
                     f"{list(cfg.image_shape)}; {fix}")
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
    print(f"{_plural(n, 'step')}; wrote {', '.join(str(p) for p in written)}", flush=True)


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


def _too_few_images(n: int, bs: int, world_size: int, args: argparse.Namespace, resume: bool) -> Optional[str]:
    """The error for fewer images than one (global) batch, or None."""
    if n >= bs * world_size:
        return None
    if world_size > 1:
        batch = f"one batch of {bs * world_size} ({bs} per rank x {world_size} ranks)"
        most = n // world_size
    else:
        batch = f"one batch of {bs}"
        most = n
    more = "more images" + (" (raise --max-images)" if getattr(args, "max_images", None) is not None else "")
    if resume:
        fix = (f"the checkpoint's batch size is fixed, so use {more}"
               + (" or fewer ranks (--nproc)" if world_size > 1 else ""))
    elif most >= 1:
        fix = f"use --batch-size {most} or fewer, or {more}"
    else:
        fix = f"use {more} or fewer ranks (--nproc)"
    return f"{_plural(n, 'image')}, fewer than {batch}; {fix}"


def _cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    # 1. Cheap checks first.
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        parser.error(f"argument --out: {out} exists and is not a folder")
    dcgan = _import_core()

    # 2. Configuration.
    cfg, extras = _make_config(args, parser)
    data = args.data if args.data is not None else extras.get("data")
    dataset = args.dataset or (_dataset_name(str(extras["dataset"])) if extras.get("dataset") else None)
    _check_data_arg(data, parser)

    # 3. Data (without --data: $DCGAN_DATA, the cache, else a download).
    x, dataset = _load_data(cfg, dataset, data, args, parser)
    if getattr(args, "data_only", False):
        return 0
    try:
        trainer = dcgan.Trainer(cfg)
    except (ValueError, TypeError) as e:
        parser.error(f"bad configuration: {e}")
    bs = int(cfg.batch_size)
    world_size = int(getattr(trainer, "world_size", 1))
    problem = _too_few_images(int(x.shape[0]), bs, world_size, args, resume=False)
    if problem is not None:  # before anything is printed or written
        if _main_rank():
            print(f"error: {problem}", file=sys.stderr)
        return 1

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
        f"training {preset!r} on {_plural(int(x.shape[0]), dataset + ' image')}"
        + (f" from {data}" if data else "") + ": "
        + (_plural(total, "step") if total is not None else "")
        + (f" ({_plural(n_epochs, 'epoch')} of {steps_per_epoch})" if n_epochs else "")
        + (f" on {world_size} ranks x batch {bs}" if world_size > 1 else "")
        + f" -> {out}",
        flush=True,
    )
    cbs = _callbacks(args, out, seed + SAMPLE_SEED_OFFSET, dataset, parser, data)
    return _fit(trainer, x, fit_len, total, args, out, reporter, cbs, data)


# ---------------------------------------------------------------------------
# resume
# ---------------------------------------------------------------------------


def _checkpoint_error(path: Path, e: BaseException) -> str:
    """'FILE is not a dcgan checkpoint (why, in plain words)' for a file that checkpoint.read refuses."""
    msg = str(e)
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as oe:
        return f"{path} cannot be read ({oe.strerror or oe})"
    if head.startswith(b"\x93NUMPY"):
        why = ("it is a single NumPy array written by numpy.save; a checkpoint is the .npz archive that "
               "train writes as OUT/checkpoint.npz, or Trainer.save and save_generator")
    elif not head:
        why = "the file is empty"
    elif head.startswith(b"PK"):
        if "Object arrays" in msg or "allow_pickle" in msg:
            why = ("it is a NumPy archive holding pickled Python objects, which dcgan never writes and "
                   "never loads, since loading a pickle can run code")
        elif "no meta.json" in msg:
            why = ("it is a NumPy .npz archive without the meta.json entry every dcgan checkpoint has, so "
                   "something else wrote it, numpy.savez perhaps")
        elif "not a readable" in msg:
            why = ("it starts like a zip archive but cannot be read: it is truncated or damaged, perhaps by "
                   "an interrupted copy or download")
        else:  # format, version, meta.json or array problems: checkpoint.read's own words
            return msg
    elif "not a readable" in msg or "not a zip" in msg.lower():
        try:
            head.decode("utf-8")
            kind = "a text file"
        except UnicodeDecodeError:
            kind = "some other binary file"
        why = (f"it is {kind}, not the .npz archive that train writes as OUT/checkpoint.npz, or "
               "Trainer.save and save_generator")
    else:
        return msg
    return f"{path} is not a dcgan checkpoint ({why})"


def _cmd_resume(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    ckpt = Path(args.checkpoint).expanduser()
    if not ckpt.is_file():
        parser.error(f"argument --checkpoint: {ckpt} does not exist")
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        parser.error(f"argument --out: {out} exists and is not a folder")
    data = args.data
    _check_data_arg(data, parser)
    dcgan = _import_core()
    from dcgan import checkpoint as ckpt_mod

    try:
        meta, _ = ckpt_mod.read(ckpt)
    except (ValueError, TypeError, KeyError) as e:
        parser.error(f"argument --checkpoint: {_checkpoint_error(ckpt, e)}")
    try:
        if meta.get("kind") != "full":
            parser.error(f"argument --checkpoint: {ckpt} holds only a generator (for sampling); "
                         "resume needs a full checkpoint (Trainer.save)")
        saved = dcgan.Config.from_dict(meta["config"])
        cfg = saved
        changes = {k: getattr(args, k) for k in ("threads", "precision") if getattr(args, k, None) is not None}
        if changes:
            import dataclasses

            cfg = dataclasses.replace(saved, **changes)
        if getattr(args, "data_only", False):
            x, _ = _load_data(cfg, args.dataset, data, args, parser)
            return 0
        trainer = dcgan.Trainer.load(ckpt, cfg=cfg, device=args.device)
    except (ValueError, TypeError, KeyError) as e:
        parser.error(f"argument --checkpoint: {e}")

    x, dataset = _load_data(cfg, args.dataset, data, args, parser)
    world_size = int(getattr(trainer, "world_size", 1))
    problem = _too_few_images(int(x.shape[0]), int(cfg.batch_size), world_size, args, resume=True)
    if problem is not None:
        if _main_rank():
            print(f"error: {problem}", file=sys.stderr)
        return 1
    spe = x.shape[0] // (int(cfg.batch_size) * world_size)
    epochs = args.epochs if args.epochs is not None else int(cfg.epochs)
    target = epochs * spe
    if args.steps is not None:
        target = args.steps if args.epochs is None else min(args.steps, target)
    start = _steps_done(trainer)
    if target <= start:
        print(f"nothing to do: {ckpt} is at step {start}, the target is step {target} "
              f"({_plural(epochs, 'epoch')} of {spe}); --epochs and --steps are totals for the whole run, "
              "not additional: raise them to train longer", flush=True)
        return 0
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "config.json", {"preset": getattr(cfg, "preset_name", None), "dataset": dataset,
                                      "data": None if data is None else str(data), "config": cfg.to_dict(),
                                      "resumed_from": str(ckpt), "resumed_at_step": start,
                                      "dcgan_version": getattr(dcgan, "__version__", None)})
    seed = int(getattr(cfg, "seed", 0) or 0)
    reporter = _EpochReporter(out, tuple(cfg.data_range), seed + SAMPLE_SEED_OFFSET, -(-target // spe),
                              first_step=len(trainer.history.get("d_loss", ())))
    print(f"resuming {ckpt} at step {start} of {target} (epoch {start // spe} of {-(-target // spe)}; "
          f"epochs and steps are totals, not additional) on {_plural(int(x.shape[0]), dataset + ' image')}: "
          f"{_plural(target - start, 'more step')} -> {out}", flush=True)
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
    from dcgan import checkpoint as ckpt_mod

    try:
        ckpt_mod.read(ckpt)
    except (ValueError, TypeError, KeyError) as e:
        parser.error(f"argument --checkpoint: {_checkpoint_error(ckpt, e)}")
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
    print(f"wrote {_plural(args.num, 'sample')} (seed {seed}) from {ckpt} to {out}", flush=True)
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
            # Start the ranks: the same command without --nproc, under mpiexec; first make sure
            # MPI loads, and fetch a dataset that is not here yet, once, instead of once per rank.
            try:
                distributed._load_mpi()
            except RuntimeError as e:
                parser.error(str(e))
            if _may_download(getattr(args, "data", None), args):
                args.data_only = True
                try:
                    status = int(args.func(args, args.parser) or 0)
                except _Exit as e:
                    status = e.status
                args.data_only = False
                if status:
                    return status
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
