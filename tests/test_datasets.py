"""dcgan.datasets: IDX reading, file lookup, validation; real MNIST (and Fashion-MNIST if installed)."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import tempfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import data_root
from dcgan import datasets
from dcgan.datasets import (UnsafePickleError, load, load_cifar10, load_fashion_mnist, load_image_folder,
                            load_mnist, read_cifar_batch, read_cifar_bin, read_idx, resize_images)

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


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Keep the download cache (~/.cache/dcgan) out of every test."""
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path_factory.mktemp("cache")))


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
    monkeypatch.setattr(datasets.idx, "FASHION_MNIST_SYSTEM_DIRS", (str(tmp_path / "none"),))
    with pytest.raises(FileNotFoundError, match="Fashion-MNIST.*fashion-mnist"):
        load_fashion_mnist()


@pytest.fixture
def fashion_system():
    """Fashion-MNIST from Debian's dataset-fashion-mnist: required in CI (fail), else optional."""
    if not (FASHION_SYSTEM / "train-labels-idx1-ubyte.gz").is_file():
        msg = (f"real Fashion-MNIST not found in {FASHION_SYSTEM} "
               "(apt-get install -y dataset-fashion-mnist)")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    return FASHION_SYSTEM


def test_real_fashion_mnist_system_dir(fashion_system, tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_DATA", str(tmp_path))  # nothing there: falls back to /usr/share
    x, y = load_fashion_mnist(split="test")
    assert x.shape == (10000, 28, 28) and y.shape == (10000,) and x.dtype == np.uint8
    assert y[:5].tolist() == [9, 2, 1, 1, 6]
    assert np.bincount(y).tolist() == [1000] * 10
    _, ytr = load_fashion_mnist(FASHION_SYSTEM, "train")
    assert ytr.shape == (60000,) and ytr[0] == 9  # ankle boot


def test_registry():
    assert datasets.LOADERS["mnist"] is load_mnist
    assert datasets.LOADERS["cifar10"] is datasets.load_cifar10
    with pytest.raises(ValueError, match="unknown dataset 'celeba'"):
        load("celeba")


# ============================================================================= CIFAR-10
CIFAR_SUBSET = data_root() / "cifar10-subset"
# Label counts of the subset (first 761 images of each official batch).
CIFAR_SUBSET_TRAIN_COUNTS = [393, 397, 358, 363, 401, 358, 370, 393, 399, 373]
CIFAR_SUBSET_TEST_COUNTS = [74, 62, 77, 75, 67, 73, 88, 72, 83, 90]


@pytest.fixture(scope="module")
def cifar_subset():
    if not (CIFAR_SUBSET / "cifar-10-batches-py" / "data_batch_1").is_file():
        pytest.fail(f"real CIFAR-10 subset not found in {CIFAR_SUBSET}; set DCGAN_DATA to the folder "
                    "holding cifar10-subset/")
    return CIFAR_SUBSET


@pytest.fixture(scope="module")
def cifar_train(cifar_subset):
    return load_cifar10(cifar_subset, "train")


def cifar_records(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N, 3073) official binary records from NHWC images and labels."""
    planes = x.transpose(0, 3, 1, 2).reshape(len(x), 3072)
    return np.concatenate([np.asarray(y, np.uint8)[:, None], planes], axis=1)


def cifar_dict(x: np.ndarray, y, str_keys: bool = False) -> dict:
    data = x.transpose(0, 3, 1, 2).reshape(len(x), 3072).copy()
    d = {b"batch_label": b"synthetic", b"labels": [int(v) for v in y], b"data": data}
    return {k.decode(): v for k, v in d.items()} if str_keys else d


def write_cifar_py(folder: Path, n: int = 6, seed: int = 0, protocol: int = 2, str_keys: bool = False,
                   split: str = "train"):
    """Synthetic batches in the official python format; returns the concatenated (x, y)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    for name in names:
        x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, n)
        (folder / name).write_bytes(pickle.dumps(cifar_dict(x, y, str_keys), protocol=protocol))
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys).astype(np.uint8)


def test_real_cifar10_subset_train(cifar_train):
    x, y = cifar_train
    assert x.shape == (3805, 32, 32, 3) and x.dtype == np.uint8 and x.flags.c_contiguous
    assert y.shape == (3805,) and y.dtype == np.uint8
    # the official first labels: frog, truck, truck, deer, automobile, ...
    assert y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert np.bincount(y).tolist() == CIFAR_SUBSET_TRAIN_COUNTS
    assert x[0, 0, 0].tolist() == [59, 62, 63]  # top-left pixel of the first frog, RGB
    assert int(x[0].sum()) == 317790
    # channel means close to CIFAR-10's well-known (0.491, 0.482, 0.447)
    m = x.reshape(-1, 3).mean(0) / 255
    assert np.allclose(m, [0.491, 0.482, 0.447], atol=0.01)


def test_real_cifar10_subset_test_and_default_roots(cifar_subset, monkeypatch):
    x, y = load_cifar10(cifar_subset / "cifar-10-batches-py", split="test")  # the batches folder itself
    assert x.shape == (761, 32, 32, 3) and y[:5].tolist() == [3, 8, 8, 0, 6]
    assert np.bincount(y).tolist() == CIFAR_SUBSET_TEST_COUNTS
    assert x[0, 0, 0].tolist() == [158, 112, 49]
    monkeypatch.setenv("DCGAN_DATA", str(cifar_subset.parent))  # $DCGAN_DATA/cifar10-subset
    x2, y2 = load_cifar10(split="test")
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    x3, _ = load("cifar-10", cifar_subset.parent, split="test")  # a folder containing cifar10-subset/
    assert np.array_equal(x, x3)


def test_cifar10_binary_version_matches_python_version(cifar_train, tmp_path):
    x, y = cifar_train
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    per = len(x) // 5
    for i in range(5):
        sl = slice(i * per, (i + 1) * per)
        (folder / f"data_batch_{i + 1}.bin").write_bytes(cifar_records(x[sl], y[sl]).tobytes())
    (folder / "test_batch.bin").write_bytes(cifar_records(x[:3], y[:3]).tobytes())
    xb, yb = load_cifar10(tmp_path)
    assert np.array_equal(xb, x) and np.array_equal(yb, y) and xb.flags.c_contiguous
    xt, yt = load_cifar10(folder, "test")
    assert np.array_equal(xt, x[:3]) and np.array_equal(yt, y[:3])


@pytest.mark.parametrize("protocol,str_keys", [(2, False), (2, True), (4, False), (5, True)])
def test_cifar10_pickles_written_by_python3(tmp_path, protocol, str_keys):
    """Re-saved batches (bytes or str keys, protocols 2..5) read the same."""
    x, y = write_cifar_py(tmp_path / "cifar10" / "cifar-10-batches-py", protocol=protocol, str_keys=str_keys)
    xl, yl = load_cifar10(tmp_path)
    assert np.array_equal(x, xl) and np.array_equal(y, yl)


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalEvil:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("where", ["top", "labels", "data"])
def test_cifar10_hostile_pickle_is_refused_and_not_run(tmp_path, where):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_py(folder, n=2)
    marker = tmp_path / "pwned"
    evil = _Evil(marker)
    d = cifar_dict(np.zeros((2, 32, 32, 3), np.uint8), [0, 1])
    if where == "top":
        obj = evil
    elif where == "labels":
        obj = {**d, b"labels": [0, evil]}
    else:
        obj = {**d, b"data": evil}
    (folder / "data_batch_3").write_bytes(pickle.dumps(obj, protocol=2))
    # the same pickle really does run its payload when loaded the usual way
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Evil(probe), protocol=2))
    assert probe.exists()
    with pytest.raises(UnsafePickleError) as e:
        load_cifar10(tmp_path)
    msg = str(e.value)
    assert "data_batch_3" in msg and "refusing" in msg and "system" in msg
    assert not marker.exists()


def test_cifar10_eval_and_other_globals_refused(tmp_path):
    p = tmp_path / "test_batch"
    p.write_bytes(pickle.dumps({b"data": _EvalEvil(), b"labels": []}, protocol=4))
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        read_cifar_batch(p)
    # UnsafePickleError is a pickle.UnpicklingError
    assert issubclass(UnsafePickleError, pickle.UnpicklingError)


@pytest.mark.parametrize("cls", ["bytes", "bytearray"])
def test_cifar10_pickle_asking_for_a_huge_buffer_is_refused(tmp_path, cls):
    # Found by fuzzing: bytes(n) / bytearray(n) in a 40-byte pickle allocates n zero bytes
    # (8 GiB here) before anything can check the result.
    import resource

    p = tmp_path / "data_batch_1"
    p.write_bytes(b"\x80\x02c__builtin__\n" + cls.encode() + b"\nq\x00\x8a\x05\x00\x00\x00\x00\x02\x85q\x01Rq\x02.")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UnsafePickleError, match=rf"refusing {cls}\(8589934592\)"):
        read_cifar_batch(p)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: nothing allocated
    # What a pickle may still do with them: bytes from bytes, and from a str with its encoding.
    ok = tmp_path / "data_batch_2"
    ok.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]}, protocol=2))
    x, y = read_cifar_batch(ok)
    assert x.shape == (2, 32, 32, 3) and list(y) == [1, 2]


def test_cifar10_pickle_with_a_huge_memo_index_is_refused(tmp_path):
    # Found by fuzzing: LONG_BINPUT 200,000,000 makes CPython's unpickler grow its memo table to
    # that many slots (several GB, zero-filled) from a 20-byte file.
    import resource

    p = tmp_path / "data_batch_1"
    p.write_bytes(b"\x80\x02}r" + (200_000_000).to_bytes(4, "little") + b".")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UnsafePickleError, match="memo slot 200000000"):
        read_cifar_batch(p)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB


def test_cifar10_pickle_with_a_malformed_dtype_state_is_a_value_error(tmp_path):
    # Found by fuzzing: numpy.dtype('i8') rebuilt with a state whose names field is [] instead
    # of None makes NumPy's __setstate__ raise SystemError; the reader reports a corrupt batch.
    p = tmp_path / "data_batch_1"
    p.write_bytes(b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00i8\x89\x88\x87R(K\x03X\x01\x00\x00\x00<]NNN"
                  b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb.")
    with pytest.raises(ValueError, match="not a readable CIFAR-10 python batch.*SystemError"):
        read_cifar_batch(p)


def test_cifar10_truncated_pickle(tmp_path, cifar_subset):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes((cifar_subset / "cifar-10-batches-py" / "test_batch").read_bytes()[:100000])
    with pytest.raises(ValueError, match=r"test_batch: not a readable CIFAR-10 python batch \(truncated or corrupt"):
        load_cifar10(tmp_path, "test")


def test_cifar10_not_a_pickle(tmp_path):
    p = tmp_path / "test_batch"
    p.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(ValueError, match="test_batch: not a readable CIFAR-10"):
        read_cifar_batch(p)


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda d: [1, 2, 3], "holds a list"),
        (lambda d: {b"data": d[b"data"]}, "expected b'data' and b'labels'"),
        (lambda d: {b"fine_labels": [0, 1], b"data": d[b"data"]}, "CIFAR-100"),
        (lambda d: {**d, b"labels": [0, 1, 2]}, "count mismatch: 2 images in b'data' but 3 labels"),
        (lambda d: {**d, b"labels": [0, 10]}, "label 10 at index 1 is not an int in 0..9"),
        (lambda d: {**d, b"labels": [0, -1]}, "label -1"),
        (lambda d: {**d, b"labels": [0, "cat"]}, "label 'cat'"),
        (lambda d: {**d, b"labels": b"\x00\x01"}, "b'labels' is a bytes"),
        (lambda d: {**d, b"data": d[b"data"].astype(np.float32)}, "float32 array of shape (2, 3072)"),
        (lambda d: {**d, b"data": d[b"data"][:, :3000]}, "uint8 array of shape (2, 3000)"),
        (lambda d: {**d, b"data": d[b"data"].tolist()}, "b'data' is a list"),
    ],
)
def test_cifar10_mislabelled_batches(tmp_path, mutate, needle):
    d = cifar_dict(np.zeros((2, 32, 32, 3), np.uint8), [0, 1])
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps(mutate(d), protocol=2))
    with pytest.raises(ValueError) as e:
        read_cifar_batch(p)
    assert "data_batch_1" in str(e.value) and needle in str(e.value), str(e.value)


def test_cifar10_labels_as_numpy_array_accepted(tmp_path):
    d = cifar_dict(np.zeros((2, 32, 32, 3), np.uint8), [0, 1])
    d[b"labels"] = np.array([3, 4], dtype=np.int64)
    p = tmp_path / "b"
    p.write_bytes(pickle.dumps(d, protocol=2))
    assert read_cifar_batch(p)[1].tolist() == [3, 4]


def test_cifar10_binary_truncated_and_bad_label(tmp_path):
    rec = cifar_records(np.zeros((2, 32, 32, 3), np.uint8), [1, 2])
    p = tmp_path / "test_batch.bin"
    p.write_bytes(rec.tobytes()[:-5])
    with pytest.raises(ValueError, match=r"test_batch\.bin: truncated.*6141 bytes is not a whole number of 3073-byte"):
        read_cifar_bin(p)
    rec[1, 0] = 11
    p.write_bytes(rec.tobytes())
    with pytest.raises(ValueError, match=r"label 11 of record 1 is out of range"):
        read_cifar_bin(p)
    p.write_bytes(b"")
    with pytest.raises(ValueError, match="0 bytes"):
        read_cifar_bin(p)
    p.write_bytes(b"\x00" * 3074 * 3)  # CIFAR-100's records
    with pytest.raises(ValueError, match="CIFAR-100"):
        read_cifar_bin(p)


def test_cifar10_bin_values_planar_to_nhwc(tmp_path):
    rec = np.zeros((1, 3073), np.uint8)
    rec[0, 0] = 7
    rec[0, 1 + 0 * 1024 + 5 * 32 + 6] = 200  # red plane, row 5, column 6
    rec[0, 1 + 2 * 1024 + 0] = 9  # blue plane, first pixel
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "test_batch.bin").write_bytes(rec.tobytes())
    x, y = load_cifar10(tmp_path, "test")
    assert y.tolist() == [7] and x[0, 5, 6].tolist() == [200, 0, 0] and x[0, 0, 0].tolist() == [0, 0, 9]


def test_cifar10_missing_messages(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError) as e:
        load_cifar10(tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "data_batch_1" in msg and "cifar-10-batches-py" in msg
    assert "download=True" in msg
    # a partial set names what is missing
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_py(folder, n=2)
    (folder / "data_batch_5").unlink()
    with pytest.raises(FileNotFoundError, match="lacks data_batch_5"):
        load_cifar10(tmp_path)
    monkeypatch.delenv("DCGAN_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="DCGAN_DATA"):
        load_cifar10()
    with pytest.raises(ValueError, match="split must be"):
        load_cifar10(tmp_path, split="valid")


# ============================================================================= downloads
def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _tar_gz(members: dict, symlinks: dict = {}) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in symlinks.items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a URL fails as it does offline; records the URLs tried."""
    tried = []

    def fetch(url, dest, timeout=None):
        tried.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(datasets.download, "_fetch", fetch)
    return tried


def test_download_offline_error_says_what_to_put_where(tmp_path, no_network):
    with pytest.raises(datasets.DownloadError) as e:
        load_mnist(tmp_path / "m", split="test", download=True)
    msg = str(e.value)
    assert "t10k-images-idx3-ubyte.gz" in msg and str(tmp_path / "m") in msg
    assert "name resolution" in msg and "Without a network" in msg
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz" in msg
    assert "9fb629c4189551a2d022fa330f9573f3" in msg  # the md5 to check by hand
    assert len(no_network) == 2  # both mirrors tried
    assert not any(p.name.endswith(".part") for p in (tmp_path / "m").iterdir())
    assert isinstance(e.value, OSError)


def test_download_offline_cifar_and_fashion(tmp_path, no_network, monkeypatch):
    monkeypatch.setenv("DCGAN_DATA", str(tmp_path))
    with pytest.raises(datasets.DownloadError) as e:
        load_cifar10(download=True)
    msg = str(e.value)
    assert "cifar-10-python.tar.gz" in msg and str(tmp_path / "cifar10") in msg
    assert "cifar-10-batches-py" in msg and "c58f30108f718f92721af3b95e74349a" in msg
    monkeypatch.setattr(datasets.idx, "FASHION_MNIST_SYSTEM_DIRS", ())
    with pytest.raises(datasets.DownloadError, match=r"Fashion-MNIST.*train-images-idx3-ubyte\.gz.*fashion-mnist"):
        load_fashion_mnist(download=True)
    assert no_network[-1].startswith("http://fashion-mnist.s3-website")


def test_download_not_attempted_when_files_exist(tmp_path, no_network):
    x, y = fake_split(tmp_path, n=3)
    xl, _ = load_mnist(tmp_path, download=True)
    assert np.array_equal(x, xl) and no_network == []


def _local_remotes(monkeypatch, name: str, files: dict, bad_md5: set = frozenset()):
    """Point REMOTES[name] at file:// URLs of ``files`` (name -> bytes) written to a 'server' folder."""
    server = Path(tempfile.mkdtemp(prefix="server"))
    remotes = []
    for fn, data in files.items():
        (server / fn).write_bytes(data)
        md5 = "0" * 32 if fn in bad_md5 else _md5(data)
        remotes.append(datasets.Remote(fn, md5, (f"file://{server / 'missing' / fn}", (server / fn).as_uri())))
    monkeypatch.setitem(datasets.REMOTES, name, remotes)
    return server


def test_download_mnist_from_local_mirror_with_md5(tmp_path, monkeypatch, capsys):
    src = tmp_path / "src"
    x, y = fake_split(src, n=5, split="test")
    _local_remotes(monkeypatch, "mnist", {p.name: p.read_bytes() for p in src.iterdir()})
    monkeypatch.delenv("DCGAN_DATA", raising=False)
    xl, yl = load_mnist(split="test", download=True)  # into the cache folder
    assert np.array_equal(x, xl) and np.array_equal(y, yl)
    cache = datasets.cache_dir() / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert "downloading" in capsys.readouterr().out
    # found in the cache next time, without download=True
    assert np.array_equal(load_mnist(split="test")[0], x)


def test_download_checksum_mismatch_rejected(tmp_path, monkeypatch):
    src = tmp_path / "src"
    fake_split(src, n=5, split="test")
    _local_remotes(monkeypatch, "mnist", {p.name: p.read_bytes() for p in src.iterdir()},
                   bad_md5={"t10k-images-idx3-ubyte.gz"})
    dest = tmp_path / "dest"
    with pytest.raises(datasets.DownloadError) as e:
        load_mnist(dest, split="test", download=True)
    msg = str(e.value)
    assert "md5 mismatch: expected 00000000000000000000000000000000" in msg
    assert "t10k-images-idx3-ubyte.gz" in msg and str(dest) in msg
    assert not (dest / "t10k-images-idx3-ubyte.gz").exists()  # the bad file is not kept
    assert not any(p.name.endswith(".part") for p in dest.iterdir())


def test_download_file_keeps_verified_file_and_replaces_bad_one(tmp_path, monkeypatch):
    data = b"payload" * 100
    server = tmp_path / "server"
    server.mkdir()
    (server / "f.bin").write_bytes(data)
    remote = datasets.Remote("f.bin", _md5(data), ((server / "f.bin").as_uri(),),
                             sha256=hashlib.sha256(data).hexdigest())
    dest = tmp_path / "dest"
    assert datasets.download_file(remote, dest, quiet=True).read_bytes() == data
    (server / "f.bin").write_bytes(b"changed")  # a second call does not fetch again
    assert datasets.download_file(remote, dest, quiet=True).read_bytes() == data
    (dest / "f.bin").write_bytes(b"corrupt")  # a damaged local copy is fetched again (and checked)
    with pytest.raises(datasets.DownloadError, match="md5 mismatch"):
        datasets.download_file(remote, dest, quiet=True)
    (server / "f.bin").write_bytes(data)
    assert datasets.download_file(remote, dest, quiet=True).read_bytes() == data
    bad_sha = datasets.Remote("f.bin", None, ((server / "f.bin").as_uri(),), sha256="ab" * 32)
    with pytest.raises(datasets.DownloadError, match="sha256 mismatch"):
        datasets.download_file(bad_sha, tmp_path / "d2", quiet=True)


def test_download_cifar10_archive_extracted_safely(tmp_path, monkeypatch):
    batches = tmp_path / "b" / "cifar-10-batches-py"
    x, y = write_cifar_py(batches, n=3, seed=5)
    xt, yt = write_cifar_py(batches, n=2, seed=6, split="test")
    members = {f"cifar-10-batches-py/{p.name}": p.read_bytes() for p in sorted(batches.iterdir())}
    members["cifar-10-batches-py/../../escaped"] = b"x"
    members["/abs_escaped"] = b"x"
    members["other/readme"] = b"x"
    archive = _tar_gz(members, symlinks={"cifar-10-batches-py/link": "/etc/passwd"})
    _local_remotes(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive})
    root = tmp_path / "root" / "data"
    xl, yl = load_cifar10(root, download=True)
    assert np.array_equal(x, xl) and np.array_equal(y, yl)
    assert np.array_equal(load_cifar10(root, "test")[0], xt)
    got = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    assert got == ["cifar-10-batches-py"] + [f"cifar-10-batches-py/{n}" for n in
                                             ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                                              "data_batch_5", "test_batch"]]
    assert not (tmp_path / "root" / "escaped").exists() and not Path("/abs_escaped").exists()


def test_download_cifar10_corrupt_archive(tmp_path, monkeypatch):
    _local_remotes(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": b"\x1f\x8b not really gzip"})
    with pytest.raises(datasets.DownloadError, match="cannot extract"):
        load_cifar10(tmp_path, download=True)


# ============================================================================= resize_images
def test_resize_shapes_and_layouts():
    g = np.zeros((4, 28, 28), np.uint8)
    assert resize_images(g, 64).shape == (4, 64, 64)
    c = np.zeros((2, 32, 32, 3), np.uint8)
    r = resize_images(c, (16, 24))
    assert r.shape == (2, 16, 24, 3) and r.dtype == np.uint8
    assert resize_images(np.zeros((1, 8, 8, 4), np.uint8), 4).shape == (1, 4, 4, 4)
    same = resize_images(c, 32)
    assert same.shape == c.shape and same is not c


def test_resize_values():
    rng = np.random.default_rng(0)
    flat = np.full((3, 10, 10, 3), 77, np.uint8)
    flat[1] = 200
    assert np.all(resize_images(flat, 23)[0] == 77) and np.all(resize_images(flat, 23)[1] == 200)
    # downscaling a checkerboard averages it (area-like filtering, no aliasing)
    board = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)[None]
    small = resize_images(board, 8)
    assert abs(float(small.mean()) - 127.5) < 2 and small.std() < 3
    # channels are resized independently and in the same way
    x = rng.integers(0, 256, (2, 9, 7, 3), dtype=np.uint8)
    r = resize_images(x, 12, resample="bicubic")
    for ch in range(3):
        assert np.array_equal(r[..., ch], resize_images(np.ascontiguousarray(x[..., ch]), 12, resample="bicubic"))
    # upscaling MNIST-like data keeps the range and the rough mass
    digit = np.zeros((1, 28, 28), np.uint8)
    digit[0, 8:20, 12:16] = 255
    up = resize_images(digit, 56)
    assert up.max() == 255 and abs(up.astype(float).mean() - digit.astype(float).mean()) < 3


@pytest.mark.parametrize("bad,exc", [
    ((np.zeros((2, 8, 8), np.float32), 4), TypeError),
    ((np.zeros((8, 8), np.uint8), 4), ValueError),
    ((np.zeros((2, 8, 8), np.uint8), 0), ValueError),
    ((np.zeros((2, 8, 8), np.uint8), (4,)), ValueError),
])
def test_resize_errors(bad, exc):
    with pytest.raises(exc):
        resize_images(*bad)
    with pytest.raises(ValueError, match="resample"):
        resize_images(np.zeros((1, 4, 4), np.uint8), 2, resample="magic")


# ============================================================================= image folders
def _save(path: Path, arr: np.ndarray, mode=None, fmt=None, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path, format=fmt, **kw)


def test_image_folder_classes_and_formats(tmp_path):
    red = np.zeros((40, 40, 3), np.uint8)
    red[..., 0] = 255
    _save(tmp_path / "cats" / "a.png", red)
    _save(tmp_path / "cats" / "sub" / "b.jpg", red, fmt="JPEG", quality=95)
    _save(tmp_path / "dogs" / "c.PNG", np.full((20, 30), 128, np.uint8))  # grey, non-square
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 2] = 255  # transparent blue -> white
    _save(tmp_path / "dogs" / "d.png", rgba)
    _save(tmp_path / "e.jpeg", red, fmt="JPEG")  # directly in root
    (tmp_path / "notes.txt").write_text("not an image")
    _save(tmp_path / ".hidden" / "x.png", red)
    _save(tmp_path / "dogs" / ".y.png", red)
    x, labels, names = load_image_folder(tmp_path, 8)
    assert names == [".", "cats", "dogs"]
    assert x.shape == (5, 8, 8, 3) and x.dtype == np.uint8 and labels.dtype == np.int64
    # sorted path order: cats/a.png, cats/sub/b.jpg, dogs/c.PNG, dogs/d.png, e.jpeg
    assert labels.tolist() == [1, 1, 2, 2, 0]
    assert np.all(x[0] == [255, 0, 0])
    assert np.abs(x[1].astype(int) - [255, 0, 0]).max() < 8  # JPEG, nearly red
    assert np.all(x[2] == 128)  # grey -> RGB
    assert np.all(x[3] == 255)  # transparent -> white
    g, _, _ = load_image_folder(tmp_path, 8, channels=1)
    assert g.shape == (5, 8, 8) and np.all(g[2] == 128) and abs(int(g[0, 0, 0]) - 76) <= 1  # luma of red


def test_image_folder_centre_crop(tmp_path):
    img = np.zeros((20, 60, 3), np.uint8)  # wide: left and right thirds green, centre blue
    img[:, :20, 1] = 255
    img[:, 40:, 1] = 255
    img[:, 20:40, 2] = 255
    _save(tmp_path / "img_align_celeba" / "000001.jpg", img, fmt="PNG")  # content decides, not the name
    _save(tmp_path / "img_align_celeba" / "000002.png", np.transpose(img, (1, 0, 2)).copy())  # tall
    x, labels, names = load_image_folder(tmp_path, 10)
    assert names == ["img_align_celeba"] and labels.tolist() == [0, 0]
    assert np.all(x[:, :, :, 2] == 255) and np.all(x[:, :, :, 1] == 0)


def test_image_folder_celeba_style_jpegs_split_and_limit(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(5):
        _save(tmp_path / "train" / "img_align_celeba" / f"{i:06d}.jpg",
              rng.integers(0, 256, (218, 178, 3), dtype=np.uint8), fmt="JPEG")
    x, labels, names = load_image_folder(tmp_path, 64, split="train")
    assert x.shape == (5, 64, 64, 3) and names == ["img_align_celeba"]
    assert load_image_folder(tmp_path / "train", 16, limit=2)[0].shape == (2, 16, 16, 3)


def test_image_folder_corrupt_files(tmp_path):
    ok = np.full((8, 8, 3), 9, np.uint8)
    _save(tmp_path / "a.png", ok)
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    buf = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 50).save(buf, format="PNG")
    (tmp_path / "c.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # truncated
    with pytest.raises(ValueError) as e:
        load_image_folder(tmp_path, 8)
    assert "b.jpg" in str(e.value) and "cannot read image" in str(e.value) and "skip_bad" in str(e.value)
    with pytest.warns(UserWarning) as rec:
        x, labels, names = load_image_folder(tmp_path, 8, skip_bad=True)
    assert x.shape == (1, 8, 8, 3) and np.all(x == 9)
    text = " ".join(str(w.message) for w in rec)
    assert "b.jpg" in text and "c.png" in text and "skipped 2" in text


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "nope", 8)
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="no images"):
        load_image_folder(tmp_path, 8)
    _save(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    for kw in ({"channels": 2}, {"limit": 0}):
        with pytest.raises(ValueError):
            load_image_folder(tmp_path, 8, **kw)
    with pytest.raises(ValueError, match="size"):
        load_image_folder(tmp_path, 0)
    (tmp_path / "a.png").write_bytes(b"junk")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="none of the 1 image files"):
        load_image_folder(tmp_path, 8, skip_bad=True)
