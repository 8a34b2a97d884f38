"""Writes the fuzzers' seed corpus (small valid and nearly valid files) into fuzz/corpus/."""
from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent / "corpus"


def idx(arr: np.ndarray, magic: int) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape) + arr.tobytes()


def main() -> None:
    rng = np.random.default_rng(0)
    out = {"idx": {}, "cifar": {}, "checkpoint": {}}
    img = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    out["idx"]["images"] = idx(img, 0x0803)
    out["idx"]["images.gz"] = gzip.compress(idx(img, 0x0803), mtime=0)
    out["idx"]["labels"] = idx(np.array([1, 2, 3], np.uint8), 0x0801)
    out["idx"]["floats"] = idx(np.arange(4, dtype=">f4"), 0x0D01)
    d = {b"batch_label": b"seed", b"labels": [1, 2], b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8),
         b"filenames": [b"a.png", b"b.png"]}
    out["cifar"]["batch_p2"] = pickle.dumps(d, protocol=2)
    out["cifar"]["labels_array"] = pickle.dumps({b"labels": np.array([3, 4]), b"data": d[b"data"]}, protocol=2)
    out["cifar"]["empty_dict"] = pickle.dumps({}, protocol=2)
    import dcgan

    tr = dcgan.Trainer(dcgan.Config.mnist(batch_size=2, z_dim=2, g_width=1, d_width=1, seed=0))
    buf = Path(ROOT / "_tmp")
    ROOT.mkdir(parents=True, exist_ok=True)
    p = tr.save_generator(buf)
    out["checkpoint"]["generator"] = p.read_bytes()
    p.unlink()
    for kind, files in out.items():
        (ROOT / kind).mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (ROOT / kind / name).write_bytes(data)
            print(kind, name, len(data))


if __name__ == "__main__":
    main()
