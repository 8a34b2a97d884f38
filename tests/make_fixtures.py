"""Writes tests/fixtures/mnist_step.npz: one full DCGAN training step computed by PyTorch.

Run by hand (not by the test suite), with torch==2.13.0 and the built core importable:

    PYTHONPATH=build/dev:python python3 tests/make_fixtures.py      # or with dcgan installed

The networks have the exact topology of REFERENCE.md section 2 (`mnist`), with narrow widths so
the file stays small (z 16, dense to 16x7x7, ConvT 8 / 4 / 1, Conv 4 / 8; batch 8). Dropout is
p = 0: a mask drawn by PyTorch could not be reproduced by the core.

PyTorch runs in float64 and the core's TensorFlow-"same" padding is spelled out: a conv2d pads
(top, bottom, left, right) = split of max((out-1)*s + k - in, 0) with the smaller half first;
a transposed conv computes the full output (padding 0) and crops [lo : lo + in*s] with lo the
smaller half of (in-1)*s + k - in*s. (PyTorch's ConvTranspose2d(padding=2, output_padding=1) for
5x5 stride 2 crops one pixel further, so it is not used.)

The step is the one `core.Trainer.step` implements (and /work/shared/anchors/torch_dcgan.py):
  z (taken from the core: Trainer(config).noise(0), so both sides use the same latent batch)
  fake = G(z)                                   (training mode: G's BN running stats move once)
  D loss = BCEwithlogits(D(real), 1 - s) + BCEwithlogits(D(fake.detach()), 0)   (two D passes)
  Adam step on D
  G loss = BCEwithlogits(D(fake), 1) with the updated D, backward through D into G (G's forward
  is not recomputed), Adam step on G.
Adam: lr 2e-4, betas (0.5, 0.999), eps 1e-8. Two variants: label smoothing s = 0 and s = 0.1.

Contents (float32 unless said): "config" (JSON string: the Trainer config, seed included),
"real" (8,1,28,28), "z" (8,16), "g_init.<name>", "d_init.<name>" and per variant V in
{"plain", "smooth"}: "V.d_loss", "V.g_loss", "V.d_real", "V.d_fake" (float64 scalars),
"V.d_grad.<name>" (total D gradient), "V.d_grad_real.<name>", "V.d_grad_fake.<name>",
"V.g_grad.<name>", "V.g_new.<name>", "V.d_new.<name>", "V.g_state.<i>.running_mean|var".
Names are the core's: "<layer index>.weight" / "<layer index>.bias".
"""
import gzip
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "mnist_step.npz")

Z, B = 16, 8
LRELU = {"type": "leaky_relu", "slope": 0.3}
GENERATOR = [
    {"type": "dense", "out": 7 * 7 * 16, "bias": False},
    {"type": "batchnorm", "momentum": 0.1, "eps": 1e-5},
    LRELU,
    {"type": "reshape", "shape": [16, 7, 7]},
    {"type": "conv_transpose2d", "out": 8, "kernel": 5, "stride": 1, "padding": "same", "bias": False},
    {"type": "batchnorm", "momentum": 0.1, "eps": 1e-5},
    LRELU,
    {"type": "conv_transpose2d", "out": 4, "kernel": 5, "stride": 2, "padding": "same", "bias": False},
    {"type": "batchnorm", "momentum": 0.1, "eps": 1e-5},
    LRELU,
    {"type": "conv_transpose2d", "out": 1, "kernel": 5, "stride": 2, "padding": "same", "bias": False},
    {"type": "tanh"},
]
DISCRIMINATOR = [
    {"type": "conv2d", "out": 4, "kernel": 5, "stride": 2, "padding": "same", "bias": True},
    LRELU,
    {"type": "dropout", "p": 0.0},
    {"type": "conv2d", "out": 8, "kernel": 5, "stride": 2, "padding": "same", "bias": True},
    LRELU,
    {"type": "dropout", "p": 0.0},
    {"type": "flatten"},
    {"type": "dense", "out": 1, "bias": True},
]
CONFIG = {
    "z_dim": Z, "image": [1, 28, 28], "generator": GENERATOR, "discriminator": DISCRIMINATOR,
    "batch_size": B, "loss": "bce", "label_smoothing": 0.0, "n_critic": 1, "g_steps": 1,
    "joint": False, "lr_g": 2e-4, "lr_d": 2e-4, "beta1_g": 0.5, "beta2_g": 0.999,
    "beta1_d": 0.5, "beta2_d": 0.999, "adam_eps": 1e-8, "noise": "normal", "seed": 1234,
}
VARIANTS = {"plain": 0.0, "smooth": 0.1}


def import_core():
    try:
        from dcgan import _core
    except ImportError:
        import _core  # a development build on PYTHONPATH
    return _core


# ---------------------------------------------------------------------------------------------
def same_split(total):
    return total // 2, total - total // 2


def t_forward(layers, params, x, training=True, state=None):
    """Functional float64 forward of a layer list; state: {i: (running_mean, running_var)}."""
    for i, L in enumerate(layers):
        t = L["type"]
        W, b = params.get(f"{i}.weight"), params.get(f"{i}.bias")
        if t == "dense":
            x = F.linear(x, W, b)
        elif t == "conv2d":
            k, s = L["kernel"], L["stride"]
            assert L["padding"] == "same"
            h, w = x.shape[2:]
            pads = []
            for n in (w, h):  # F.pad: last dim first
                out = -(-n // s)
                pads += same_split(max((out - 1) * s + k - n, 0))
            x = F.conv2d(F.pad(x, pads), W, b, stride=s)
        elif t == "conv_transpose2d":
            k, s = L["kernel"], L["stride"]
            assert L["padding"] == "same"
            h, w = x.shape[2:]
            full = F.conv_transpose2d(x, W, b, stride=s)
            lo_h, _ = same_split((h - 1) * s + k - h * s)
            lo_w, _ = same_split((w - 1) * s + k - w * s)
            x = full[:, :, lo_h:lo_h + h * s, lo_w:lo_w + w * s]
        elif t == "batchnorm":
            rm, rv = state[i]
            x = F.batch_norm(x, rm, rv, W, b, training=training, momentum=L["momentum"], eps=L["eps"])
        elif t == "leaky_relu":
            x = F.leaky_relu(x, L["slope"])
        elif t == "tanh":
            x = torch.tanh(x)
        elif t == "dropout":
            assert L["p"] == 0.0
        elif t == "reshape":
            x = x.reshape(x.shape[0], *L["shape"])
        elif t == "flatten":
            x = x.flatten(1)
        else:
            raise ValueError(t)
    return x


def torch_init(layers, in_shape, gen):
    """PyTorch-default-like initial weights (uniform +-1/sqrt(fan_in)), BN gamma/beta perturbed
    away from 1/0 so that they matter. Returns float32 NumPy arrays in the core's naming."""
    params, shape = {}, list(in_shape)
    for i, L in enumerate(layers):
        t = L["type"]
        if t == "dense":
            w = (L["out"], shape[0])
            fan_in = shape[0]
            shape = [L["out"]]
        elif t in ("conv2d", "conv_transpose2d"):
            k, s, c = L["kernel"], L["stride"], shape[0]
            if t == "conv2d":
                w, fan_in = (L["out"], c, k, k), c * k * k
                shape = [L["out"], -(-shape[1] // s), -(-shape[2] // s)]
            else:
                w, fan_in = (c, L["out"], k, k), L["out"] * k * k
                shape = [L["out"], shape[1] * s, shape[2] * s]
        elif t == "batchnorm":
            c = shape[0]
            params[f"{i}.weight"] = 1 + 0.1 * torch.randn(c, generator=gen, dtype=torch.float64)
            params[f"{i}.bias"] = 0.1 * torch.randn(c, generator=gen, dtype=torch.float64)
            continue
        elif t == "reshape":
            shape = list(L["shape"])
            continue
        elif t == "flatten":
            shape = [int(np.prod(shape))]
            continue
        else:
            continue
        bound = 1 / np.sqrt(fan_in)
        params[f"{i}.weight"] = (torch.rand(w, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        if L.get("bias", True):
            params[f"{i}.bias"] = (torch.rand(L["out"], generator=gen, dtype=torch.float64) * 2 - 1) * bound
    return {k: v.numpy().astype(np.float32) for k, v in params.items()}


def bn_state(layers, params):
    return {i: (torch.zeros(params[f"{i}.weight"].shape[0], dtype=torch.float64),
                torch.ones(params[f"{i}.weight"].shape[0], dtype=torch.float64))
            for i, L in enumerate(layers) if L["type"] == "batchnorm"}


def load_real():
    """The first 8 MNIST training digits scaled to [-1, 1] if the shared data is there, else noise."""
    root = os.environ.get("DCGAN_DATA", os.path.join(HERE, "..", "..", "shared", "data"))
    path = os.path.join(root, "mnist", "train-images-idx3-ubyte.gz")
    if os.path.exists(path):
        with gzip.open(path, "rb") as f:
            raw = f.read(16 + B * 784)
        img = np.frombuffer(raw[16:], np.uint8).reshape(B, 1, 28, 28)
        return (img.astype(np.float32) / 127.5 - 1).astype(np.float32)
    print("MNIST not found; using uniform noise as the real batch", file=sys.stderr)
    return np.random.default_rng(0).uniform(-1, 1, (B, 1, 28, 28)).astype(np.float32)


def bce(logits, target):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def one_step(g0, d0, real, z, smoothing):
    tg = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in g0.items()}
    td = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in d0.items()}
    gstate = bn_state(GENERATOR, g0)
    opt_g = torch.optim.Adam(list(tg.values()), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
    opt_d = torch.optim.Adam(list(td.values()), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
    real_t = torch.tensor(real, dtype=torch.float64)
    z_t = torch.tensor(z, dtype=torch.float64)

    fake = t_forward(GENERATOR, tg, z_t, True, gstate)
    out_real = t_forward(DISCRIMINATOR, td, real_t)
    out_fake = t_forward(DISCRIMINATOR, td, fake.detach())
    l_real, l_fake = bce(out_real, 1 - smoothing), bce(out_fake, 0.0)
    names = list(td)
    g_real = torch.autograd.grad(l_real, [td[k] for k in names])
    g_fake = torch.autograd.grad(l_fake, [td[k] for k in names])
    for k, a, b in zip(names, g_real, g_fake):
        td[k].grad = a + b
    opt_d.step()

    out_g = t_forward(DISCRIMINATOR, td, fake)
    l_g = bce(out_g, 1.0)
    gnames = list(tg)
    g_grads = torch.autograd.grad(l_g, [tg[k] for k in gnames])
    for k, a in zip(gnames, g_grads):
        tg[k].grad = a
    opt_g.step()

    f32 = lambda t: t.detach().numpy().astype(np.float32)  # noqa: E731
    r = {
        "d_loss": np.float64((l_real + l_fake).item()), "g_loss": np.float64(l_g.item()),
        "d_real": np.float64(torch.sigmoid(out_real).mean().item()),
        "d_fake": np.float64(torch.sigmoid(out_fake).mean().item()),
    }
    for k, a, b in zip(names, g_real, g_fake):
        r[f"d_grad.{k}"], r[f"d_grad_real.{k}"], r[f"d_grad_fake.{k}"] = f32(a + b), f32(a), f32(b)
    for k, a in zip(gnames, g_grads):
        r[f"g_grad.{k}"] = f32(a)
    for k in tg:
        r[f"g_new.{k}"] = f32(tg[k])
    for k in td:
        r[f"d_new.{k}"] = f32(td[k])
    for i, (rm, rv) in gstate.items():
        r[f"g_state.{i}.running_mean"], r[f"g_state.{i}.running_var"] = f32(rm), f32(rv)
    return r


def main():
    assert torch.__version__.startswith("2.13.0"), f"made with torch 2.13.0, this is {torch.__version__}"
    core = import_core()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(20240601)
    g0 = torch_init(GENERATOR, [Z], gen)
    d0 = torch_init(DISCRIMINATOR, [1, 28, 28], gen)
    real = load_real()

    # The core's latent batch of step 0; and a check that our names and shapes are the core's.
    tr = core.Trainer(CONFIG)
    z = np.ascontiguousarray(tr.noise(0), np.float32)
    assert z.shape == (B, Z)
    for net, p in (("generator", g0), ("discriminator", d0)):
        want = {k: v.shape for k, v in tr.get_params(net).items()}
        assert want == {k: v.shape for k, v in p.items()}, (net, want)

    out = {"config": np.array(json.dumps(CONFIG)), "real": real, "z": z,
           "torch_version": np.array(torch.__version__)}
    out.update({f"g_init.{k}": v for k, v in g0.items()})
    out.update({f"d_init.{k}": v for k, v in d0.items()})
    for name, s in VARIANTS.items():
        r = one_step(g0, d0, real, z, s)
        out.update({f"{name}.{k}": v for k, v in r.items()})
        out[f"{name}.label_smoothing"] = np.float64(s)
        print(f"{name}: d_loss {r['d_loss']:.6f} g_loss {r['g_loss']:.6f} "
              f"d_real {r['d_real']:.4f} d_fake {r['d_fake']:.4f}")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({os.path.getsize(OUT) / 1024:.0f} KiB, {len(out)} arrays)")


if __name__ == "__main__":
    main()
