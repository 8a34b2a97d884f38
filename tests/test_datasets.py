"""dcgan.datasets: IDX reading, file lookup, validation; real MNIST (and Fashion-MNIST if installed)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from dcgan import datasets
from dcgan.datasets import load, load_fashion_mnist, load_mnist, read_idx

# Real MNIST comes from the ``mnist_dir`` fixture (tests/conftest.py: $DCGAN_DATA/mnist or
# ../shared/data/mnist; it fails rather than skips when the data is missing).
FASHION_SYSTEM = Path("/usr/share/datasets/fashion-mnist")

# Class counts of the canonical MNIST files.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# ----------------------------------------------------------------------------- helpers
def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | arr.ndim
    head = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + arr.tobytes()


def write_idx(path: Path, arr: np.ndarray, magic: int | None = None, gz: bool = False,
              cut: int = 0, extra: bytes = b"") -> Path:
    data = idx_bytes(arr, magic)
    data = (data[:-cut] if cut else data) + extra
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def fake_split(root: Path, n: int = 7, split: str = "train", gz: bool = True, seed: int = 0,
               n_labels: int | None = None, naming: str = "dash"):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, n if n_labels is None else n_labels, dtype=np.uint8)
    prefix = "train" if split == "train" else "t10k"
    sep = "-" if naming == "dash" else "."
    ext = ".gz" if gz else ""
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / f"{prefix}-images{sep}idx3-ubyte{ext}", x, gz=gz)
    write_idx(root / f"{prefix}-labels{sep}idx1-ubyte{ext}", y, gz=gz)
    return x, y


@pytest.fixture(scope="module")
def mnist_train(mnist_dir):
    return load_mnist(mnist_dir, "train")


# ----------------------------------------------------------------------------- real MNIST
def test_real_mnist_train(mnist_train):
    x, y = mnist_train
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (60000,) and y.dtype == np.uint8
    assert x.flags.c_contiguous and x.flags.writeable
    assert y.min() == 0 and y.max() == 9
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # the first digit is the famous "5"
    assert np.bincount(y).tolist() == MNIST_TRAIN_COUNTS
    assert x.min() == 0 and x.max() == 255
    assert abs(float(x.mean()) - 33.3184) < 1e-3  # the usual normalisation mean 0.1307 * 255
    assert int(x[0].sum()) == 27525


def test_real_mnist_test_split(mnist_dir):
    x, y = load_mnist(mnist_dir, split="test")
    assert x.shape == (10000, 28, 28) and y.shape == (10000,)
    assert x.dtype == np.uint8 and y.dtype == np.uint8
    assert y[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(y).tolist() == MNIST_TEST_COUNTS


def test_root_may_be_parent_folder_and_env_default(mnist_dir, monkeypatch):
    x1, y1 = load_mnist(mnist_dir.parent, "test")  # folder containing mnist/
    monkeypatch.setenv("DCGAN_DATA", str(mnist_dir.parent))
    x2, y2 = load_mnist(split="test")  # $DCGAN_DATA/mnist
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    x3, _ = load("mnist", split="test")
    assert np.array_equal(x1, x3)


def test_real_gz_and_raw_are_equivalent(mnist_dir, tmp_path):
    """The real test split, decompressed into tmp_path, under both accepted file names."""
    raw = tmp_path / "raw"
    dotted = tmp_path / "dotted"
    raw.mkdir()
    dotted.mkdir()
    for kind, ndim in (("images", 3), ("labels", 1)):
        src = mnist_dir / f"t10k-{kind}-idx{ndim}-ubyte.gz"
        with gzip.open(src, "rb") as f:
            content = f.read()
        (raw / f"t10k-{kind}-idx{ndim}-ubyte").write_bytes(content)
        (dotted / f"t10k-{kind}.idx{ndim}-ubyte").write_bytes(content)
    xg, yg = load_mnist(mnist_dir, "test")
    for folder in (raw, dotted):
        xr, yr = load_mnist(folder, "test")
        assert np.array_equal(xg, xr) and np.array_equal(yg, yr)


# ----------------------------------------------------------------------------- IDX reader
@pytest.mark.parametrize("gz", [False, True])
def test_synthetic_roundtrip(tmp_path, gz):
    x, y = fake_split(tmp_path, n=5, gz=gz)
    xl, yl = load_mnist(tmp_path)
    assert np.array_equal(x, xl) and np.array_equal(y, yl)


def test_gz_and_raw_equivalent_synthetic(tmp_path):
    xg, yg = fake_split(tmp_path / "g", gz=True, seed=3)
    xr, yr = fake_split(tmp_path / "r", gz=False, seed=3)
    a, b = load_mnist(tmp_path / "g"), load_mnist(tmp_path / "r")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_gzip_detected_by_content_not_name(tmp_path):
    p = tmp_path / "x-idx1-ubyte"  # no .gz suffix, gzip content
    p.write_bytes(gzip.compress(idx_bytes(np.arange(4, dtype=np.uint8))))
    assert read_idx(p).tolist() == [0, 1, 2, 3]


def test_read_idx_other_types(tmp_path):
    a = np.arange(-3, 3, dtype=">i4").reshape(2, 3)
    p = tmp_path / "a.idx"
    p.write_bytes((0x0C02).to_bytes(4, "big") + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + a.tobytes())
    b = read_idx(p)
    assert b.dtype == np.int32 and b.dtype.isnative
    assert b.tolist() == [[-3, -2, -1], [0, 1, 2]]


def test_truncated_raw_file(tmp_path):
    fake_split(tmp_path, n=3, gz=False)
    img = tmp_path / "train-images-idx3-ubyte"
    write_idx(img, np.zeros((3, 28, 28), np.uint8), cut=100)
    expected = 16 + 3 * 28 * 28
    with pytest.raises(ValueError) as e:
        load_mnist(tmp_path)
    msg = str(e.value)
    assert "train-images-idx3-ubyte" in msg and "truncated" in msg
    assert f"expected {expected} bytes" in msg and f"actual size {expected - 100} bytes" in msg


def test_truncated_idx_inside_valid_gzip(tmp_path):
    fake_split(tmp_path, n=3, gz=True)
    lbl = tmp_path / "train-labels-idx1-ubyte.gz"
    write_idx(lbl, np.zeros(3, np.uint8), gz=True, cut=1)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz.*expected 11 bytes \(decompressed\), actual size 10"):
        load_mnist(tmp_path)


def test_truncated_gzip_stream(tmp_path):
    fake_split(tmp_path, n=50, gz=True)
    img = tmp_path / "train-images-idx3-ubyte.gz"
    data = img.read_bytes()
    img.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz.*(corrupt or truncated)"):
        load_mnist(tmp_path)


def test_trailing_bytes(tmp_path):
    p = write_idx(tmp_path / "l", np.zeros(3, np.uint8), extra=b"xx")
    with pytest.raises(ValueError, match="trailing data.*expected 11 bytes.*actual size 13"):
        read_idx(p)


def test_wrong_magic(tmp_path):
    fake_split(tmp_path, n=3, gz=False)
    # labels magic (2049) on the images file
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8), magic=2049)
    with pytest.raises(ValueError) as e:
        load_mnist(tmp_path)
    msg = str(e.value)
    assert "train-images-idx3-ubyte" in msg and "magic" in msg and "2049" in msg and "2051" in msg


def test_not_idx_at_all(tmp_path):
    p = tmp_path / "junk"
    p.write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match="junk.*not an IDX file"):
        read_idx(p)
    (tmp_path / "tiny").write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "tiny")


def test_count_mismatch(tmp_path):
    fake_split(tmp_path, n=5, n_labels=4)
    with pytest.raises(ValueError) as e:
        load_mnist(tmp_path)
    msg = str(e.value)
    assert "mismatch" in msg and "5 images" in msg and "4 labels" in msg


def test_wrong_image_size(tmp_path):
    fake_split(tmp_path, n=2)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((2, 32, 32), np.uint8), gz=True)
    with pytest.raises(ValueError, match="28x28"):
        load_mnist(tmp_path)


def test_label_out_of_range(tmp_path):
    fake_split(tmp_path, n=2)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([1, 10], np.uint8), gz=True)
    with pytest.raises(ValueError, match="label 10 out of range"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("split", ["val", "TRAIN", "", None])
def test_bad_split(tmp_path, split):
    fake_split(tmp_path)
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_mnist(tmp_path, split=split)


def test_test_split_uses_t10k_files(tmp_path):
    x, y = fake_split(tmp_path, n=4, split="test")
    xl, yl = load_mnist(tmp_path, "test")
    assert np.array_equal(x, xl) and np.array_equal(y, yl)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path, "train")


# ----------------------------------------------------------------------------- missing data
def test_missing_without_root_or_env(monkeypatch):
    monkeypatch.delenv("DCGAN_DATA", raising=False)
    with pytest.raises(FileNotFoundError) as e:
        load_mnist()
    msg = str(e.value)
    assert "DCGAN_DATA" in msg and "root" in msg
    assert "train-images-idx3-ubyte.gz" in msg and "train-labels-idx1-ubyte.gz" in msg
    assert "mnist/" in msg


def test_missing_in_given_root(tmp_path):
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(FileNotFoundError) as e:
        load_mnist(tmp_path, "test")
    msg = str(e.value)
    assert str(tmp_path) in msg
    assert "t10k-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg


def test_missing_in_env_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "mnist")):
        load_mnist()


def test_nonexistent_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_mnist(tmp_path / "nope")


# ----------------------------------------------------------------------------- Fashion-MNIST
def test_fashion_mnist_synthetic(tmp_path, monkeypatch):
    x, y = fake_split(tmp_path / "fashion-mnist", n=6, seed=9)
    xl, yl = load_fashion_mnist(tmp_path)  # parent folder
    assert np.array_equal(x, xl) and np.array_equal(y, yl)
    monkeypatch.setenv("DCGAN_DATA", str(tmp_path))
    xe, _ = load_fashion_mnist()
    assert np.array_equal(x, xe)
    xr, _ = load("fashion_mnist")
    assert np.array_equal(x, xr)


def test_fashion_mnist_missing_message(tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_DATA", str(tmp_path))
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIRS", (str(tmp_path / "none"),))
    with pytest.raises(FileNotFoundError, match="Fashion-MNIST.*fashion-mnist"):
        load_fashion_mnist()


@pytest.mark.skipif(not (FASHION_SYSTEM / "train-labels-idx1-ubyte.gz").is_file(),
                    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist_system_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_DATA", str(tmp_path))  # nothing there: falls back to /usr/share
    x, y = load_fashion_mnist(split="test")
    assert x.shape == (10000, 28, 28) and y.shape == (10000,) and x.dtype == np.uint8
    assert y[:5].tolist() == [9, 2, 1, 1, 6]
    assert np.bincount(y).tolist() == [1000] * 10
    _, ytr = load_fashion_mnist(FASHION_SYSTEM, "train")
    assert ytr.shape == (60000,) and ytr[0] == 9  # ankle boot


def test_registry():
    assert datasets.LOADERS["mnist"] is load_mnist
    with pytest.raises(ValueError, match="unknown dataset 'celeba'"):
        load("celeba")
