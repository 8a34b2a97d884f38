"""Coverage-guided fuzzing of the file parsers that read untrusted bytes (atheris, libFuzzer).

    python fuzz/fuzz_parsers.py idx fuzz/corpus/idx -max_total_time=60
    python fuzz/fuzz_parsers.py cifar fuzz/corpus/cifar -max_total_time=60
    python fuzz/fuzz_parsers.py checkpoint fuzz/corpus/checkpoint -max_total_time=60

Each input is written to a file and handed to the parser (`read_idx`, `read_cifar_batch`,
`checkpoint.read`). The parser may refuse it with the exceptions its documentation names
(ValueError, or UnsafePickleError for a pickle that asks for code); anything else, a crash, a
hang (libFuzzer's -timeout) or memory beyond -rss_limit_mb is a finding. The corpus folders hold
the seeds (`python fuzz/make_corpus.py` writes them); libFuzzer adds what it finds there, so CI
runs on a copy.
"""
from __future__ import annotations

import os
import pickle
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    from dcgan import checkpoint
    from dcgan.datasets import cifar, idx

_TMP = os.path.join(tempfile.gettempdir(), f"dcgan-fuzz-{os.getpid()}")


def _parse(target: str, data: bytes) -> None:
    with open(_TMP, "wb") as f:
        f.write(data)
    try:
        if target == "idx":
            idx.read_idx(_TMP, max_bytes=1 << 24)
        elif target == "cifar":
            cifar.read_cifar_batch(_TMP)
        else:
            checkpoint.read(_TMP)
    except (ValueError, pickle.UnpicklingError):  # UnsafePickleError is an UnpicklingError
        pass


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("idx", "cifar", "checkpoint"):
        sys.exit("usage: fuzz_parsers.py idx|cifar|checkpoint [corpus folder] [libFuzzer options]")
    target = sys.argv[1]
    atheris.Setup([sys.argv[0]] + sys.argv[2:], lambda data: _parse(target, data))
    try:
        atheris.Fuzz()
    finally:
        if os.path.exists(_TMP):
            os.unlink(_TMP)


if __name__ == "__main__":
    main()
