"""Image folders (CelebA and the like) and resizing: :func:`load_image_folder`, :func:`resize_images`.

Both decode and resample with Pillow (imported when first needed); the
``resample`` names they take are checked by :func:`_resample`.
"""

from __future__ import annotations

import os
import stat
import warnings
import zlib
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._paths import PathLike

_RESAMPLE = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


def _resample(name: str) -> Any:
    from PIL import Image

    key = str(name).lower()
    if key not in _RESAMPLE:
        raise ValueError(f"resample must be one of {', '.join(_RESAMPLE)}, got {name!r}")
    enum = getattr(Image, "Resampling", Image)
    return getattr(enum, key.upper())


def _size_hw(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        h = w = int(size)
    else:
        try:
            h, w = (int(v) for v in size)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise ValueError(f"size must be an int or (height, width), got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return h, w


def resize_images(
    images: np.ndarray, size: Union[int, Sequence[int]], resample: str = "bilinear"
) -> np.ndarray:
    """Resize a batch of uint8 images with Pillow.

    Parameters
    ----------
    images:
        ``uint8`` ``(N, H, W)`` (grey) or ``(N, H, W, C)`` (channels last, any C,
        e.g. from :func:`load_cifar10`).
    size:
        ``s`` for ``s x s``, or ``(height, width)``.
    resample:
        ``"bilinear"`` (default), ``"bicubic"``, ``"lanczos"``, ``"box"``,
        ``"hamming"`` or ``"nearest"``. Pillow's filters widen with the scale
        when shrinking, so downscaling averages over the covered area (no aliasing).

    Returns
    -------
    numpy.ndarray
        ``uint8`` ``(N, h, w)`` or ``(N, h, w, C)``, same layout as the input.
    """
    from PIL import Image

    x = np.asarray(images)
    if x.dtype != np.uint8:
        raise TypeError(f"images must be uint8, got {x.dtype}")
    if x.ndim not in (3, 4):
        raise ValueError(f"images must have shape (N, H, W) or (N, H, W, C), got {x.shape}")
    h, w = _size_hw(size)
    filt = _resample(resample)
    out_shape = (x.shape[0], h, w) + x.shape[3:]
    if x.shape[1:3] == (h, w):
        return np.array(x, copy=True)
    out = np.empty(out_shape, dtype=np.uint8)
    rgb = x.ndim == 4 and x.shape[3] == 3
    for i in range(x.shape[0]):
        if x.ndim == 3:
            out[i] = np.asarray(Image.fromarray(x[i]).resize((w, h), filt))
        elif rgb:
            out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(x[i]), "RGB").resize((w, h), filt))
        else:
            for c in range(x.shape[3]):
                out[i, :, :, c] = np.asarray(
                    Image.fromarray(np.ascontiguousarray(x[i, :, :, c])).resize((w, h), filt))
    return out


class UnreadableImageError(ValueError):
    """An image file that cannot be decoded (``load_image_folder`` without ``skip_bad``).

    ``path`` is the file and ``reason`` what went wrong, so that a caller (the command line)
    can word its own advice; the message names both.
    """

    def __init__(self, message: str, path: Path, reason: str) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


#: File suffixes :func:`load_image_folder` reads (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def _list_images(root: Path) -> List[Path]:
    files: List[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in sorted(filenames):
            if not fn.startswith(".") and os.path.splitext(fn)[1].lower() in IMAGE_EXTENSIONS:
                p = Path(dirpath) / fn
                # A FIFO, socket or device named like an image would block or never end.
                try:
                    regular = stat.S_ISREG(os.stat(p).st_mode)
                except OSError:
                    regular = False
                if not regular:
                    warnings.warn(f"skipping {p}: not a regular file", stacklevel=3)
                    continue
                files.append(p)
    return sorted(files, key=lambda p: p.relative_to(root).parts)


def _read_image(path: Path, size: int, mode: str, filt: Any) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft("RGB" if mode == "RGB" else "L", (size, size))  # decode at a reduced scale
        im.load()
        w, h = im.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
            # 16-bit grayscale (PNG): 0..65535 to 0..255, not clipped to white.
            a = np.asarray(im).astype(np.float64)
            im = Image.fromarray(np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8))
        if im.mode not in ("L", "RGB"):
            im = im.convert("RGBA" if "A" in im.mode or im.mode == "P" else "RGB")
            if im.mode == "RGBA":  # transparent areas become white, not black
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
        im = im.convert(mode)
        if (w, h) != (s, s):
            im = im.crop((left, top, left + s, top + s))
        im = im.resize((size, size), filt)
        return np.asarray(im, dtype=np.uint8)


def load_image_folder(
    root: PathLike,
    size: int = 64,
    *,
    channels: int = 3,
    split: Optional[str] = None,
    skip_bad: bool = False,
    limit: Optional[int] = None,
    resample: str = "bilinear",
) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Load every PNG and JPEG under a folder (recursively), centre-cropped and resized.

    Works for CelebA (``root`` holding ``img_align_celeba/*.jpg``) and for
    ImageNet-style class folders (``root/<class>/*.png``).

    Parameters
    ----------
    root:
        The folder to read. Files and folders whose names start with ``.`` are
        ignored; files are read in sorted path order (deterministic).
    size:
        Output side length: each image is cropped to its central square and
        resized to ``size x size``.
    channels:
        3 (default): RGB output; grey images are converted to RGB (and
        transparent pixels to white). 1: greyscale output (ITU-R 601 luma).
    split:
        If given (e.g. ``"train"``), read ``root/split`` instead of ``root``.
    skip_bad:
        A file that cannot be decoded raises ``ValueError`` naming it (default);
        with ``skip_bad=True`` it is skipped with a warning instead.
    limit:
        Read at most this many files (the first ones in sorted order).
    resample:
        Pillow filter name, as in :func:`resize_images`.

    Returns
    -------
    images : numpy.ndarray
        ``uint8`` ``(N, size, size, 3)``, or ``(N, size, size)`` for ``channels=1``.
    labels : numpy.ndarray
        ``int64`` ``(N,)``: index into ``class_names`` of the image's class.
    class_names : list of str
        Sorted names of ``root``'s immediate sub-folders that hold images (the
        class of an image is the first folder below ``root`` on its path, so
        ``root/cats/a/1.png`` is a "cats"); ``"."`` stands for images lying
        directly in ``root``. A CelebA folder gives one class,
        ``["img_align_celeba"]``.

    Raises
    ------
    FileNotFoundError
        ``root`` is not a folder or holds no PNG/JPEG file.
    ValueError
        A corrupt or truncated image (:class:`UnreadableImageError`, unless ``skip_bad``),
        bad arguments.
    """
    from PIL import Image

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive int (images are made square), got {size!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    folder = Path(root).expanduser()
    if split is not None:
        folder = folder / split
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist or is not a folder")
    files = _list_images(folder)
    if not files:
        raise FileNotFoundError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {folder}; for CelebA, point "
            "root at the folder that holds img_align_celeba/"
        )
    if limit is not None:
        files = files[: int(limit)]
    mode = "RGB" if channels == 3 else "L"
    filt = _resample(resample)
    images: List[np.ndarray] = []
    classes: List[str] = []
    skipped = 0
    for p in files:
        try:
            img = _read_image(p, int(size), mode, filt)
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError, zlib.error) as e:
            reason = f"{type(e).__name__}: {e}"
            msg = f"{p}: cannot read image ({reason})"
            if not skip_bad:
                raise UnreadableImageError(msg + "; pass skip_bad=True to skip unreadable files", p,
                                           reason) from None
            warnings.warn("skipping " + msg, stacklevel=2)
            skipped += 1
            continue
        rel = p.relative_to(folder).parts
        classes.append(rel[0] if len(rel) > 1 else ".")
        images.append(img)
    if not images:
        raise ValueError(f"none of the {len(files)} image files under {folder} could be read")
    if skipped:
        warnings.warn(f"skipped {skipped} unreadable image file(s) under {folder}", stacklevel=2)
    class_names = sorted(set(classes))
    index = {c: i for i, c in enumerate(class_names)}
    labels = np.array([index[c] for c in classes], dtype=np.int64)
    return np.stack(images), labels, class_names
