"""One rank of the data-parallel tests (tests/test_mpi.py runs it under mpiexec).

    python mpi_worker.py MODE OUT_DIR [options as key=value]

Modes:
  train   fit `steps` steps; write OUT_DIR/rank{r}.npz with the losses, every parameter and BN
          buffer, and the replica check's verdict (resume=PATH loads that checkpoint first,
          save=PATH saves at the end).
  raise   rank `bad` raises in a callback after 2 steps.
  die     rank `bad` kills itself (SIGKILL) after 2 steps.
  stall   rank `bad` sleeps for an hour after 2 steps (the others' collectives time out).
  perturb rank `bad` changes one of G's weights before training (check=N must catch it).
"""
from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np

import dcgan


def data(n: int = 256) -> np.ndarray:
    # The same images on every rank (fixed seed): digits-like blobs on [0, 255].
    rng = np.random.default_rng(123)
    return (rng.random((n, 28, 28)) ** 3 * 255).astype(np.uint8)


def config(opts: dict) -> dcgan.Config:
    return dcgan.Config.mnist(batch_size=int(opts.get("batch", 8)), dropout=0.0, seed=7,
                              device=opts.get("device", "cpu"),
                              sync_bn=opts.get("sync_bn", "0") == "1",
                              check_replicas_every=int(opts.get("check", 0)))


def main() -> int:
    mode, out = sys.argv[1], sys.argv[2]
    opts = dict(a.split("=", 1) for a in sys.argv[3:])
    steps = int(opts.get("steps", 4))
    if "resume" in opts:
        tr = dcgan.Trainer.load(opts["resume"], cfg=config(opts))
    else:
        tr = dcgan.Trainer(config(opts))
    rank = tr.rank
    bad = int(opts.get("bad", 1))
    if mode == "perturb" and rank == bad:
        w = tr.weights("generator")
        first = next(iter(w))
        w[first] = w[first] + 1e-3
        tr.set_weights("generator", {first: w[first]})

    class Fail(dcgan.Callback):
        def on_step(self, trainer, step, stats):
            if step + 1 == 2 and rank == bad:
                if mode == "raise":
                    raise ValueError(f"deliberate failure on rank {rank}")
                if mode == "die":
                    os.kill(os.getpid(), signal.SIGKILL)
                if mode == "stall":
                    time.sleep(3600)

    tr.fit(data(), steps=steps, progress=False, callbacks=[Fail()] if mode != "train" else [])
    if "save" in opts:
        tr.save(opts["save"])
    arrays = {f"{net}/{k}": v for net in ("generator", "discriminator")
              for k, v in list(tr.weights(net).items()) + list(tr.buffers(net).items())}
    arrays.update({k: np.asarray(v) for k, v in tr.history.items()})
    np.savez(os.path.join(out, f"rank{rank}.npz"), world=tr.world_size,
             mismatch=tr._core.replica_mismatch(), **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main())
