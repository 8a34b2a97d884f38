"""Writes the PyTorch reference fixtures of tests/test_torch_reference.py.

Run by hand (not by the test suite), with torch==2.13.0 and the built core importable:

    PYTHONPATH=python python3 tests/make_fixtures.py            # every fixture
    PYTHONPATH=python python3 tests/make_fixtures.py joint mlp  # some of the step_<case>.npz

1. tests/fixtures/mnist_step.npz: one full DCGAN training step computed by PyTorch.

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

2. tests/fixtures/step_<case>.npz, one per entry of CASES: a training step (or two) of the
core's GAN step in all its options, replayed by `reference_run` below in float64:

  for each D step k < n_critic:                   (z_k = the core's noise(step, k))
      D loss = Ld_real(D(real)) + Ld_fake(D(G(z_k).detach()))   (G in training mode)
      Adam step on D                                (in joint mode: see below)
  for each G step j < g_steps:
      j = 0 reuses the last D step's fake (G's forward is not recomputed); j > 0 draws
      z = noise(step, n_critic + j - 1) and runs G forward again
      G loss = Lg(D(fake)) through the current D; Adam step on G
  joint mode (n_critic = g_steps = 1): one D forward on the fakes gives both D's fake loss and
  G's loss; both gradients are taken before either network changes, then D and G step.

Losses on D's logits x (t = 1 - label_smoothing):
  bce, minimax, saturating: Ld_real = BCE(x, t), Ld_fake = BCE(x, 0); Lg = BCE(x, 1) (bce, and
                minimax as seed 004 writes it: G maximises log D(G(z))) or
                mean log(1 - sigmoid(x)) = -mean softplus(x) (saturating)
  lsgan: Ld_real = mean (x - t)^2 / 2, Ld_fake = mean x^2 / 2, Lg = mean (x - 1)^2 / 2
  hinge: Ld_real = mean relu(1 - x), Ld_fake = mean relu(1 + x), Lg = -mean x
d_real / d_fake are mean sigmoid(x) for bce/minimax/saturating and mean x for lsgan/hinge.
Adam per network with its own lr, betas and eps. D and G BatchNorm layers run in training mode
at every forward (so their running statistics move at each one, as in the core).

Every case is a dcgan.Config.<preset>(**overrides): the loss/option cases the mnist preset at
narrow widths with the option set through Config fields; the preset cases each preset's own
layer lists and options at narrow widths (same topology; dropout p = 0, see (1)).
Contents: "config" (the core config, JSON), "meta" (JSON: case, preset, overrides, steps),
"real" (steps, batch, C, H, W: one real batch per step), "z" (steps, draws, batch, z_dim), "g_init.*", "d_init.*" and for the last step:
"d_grad_real.*", "d_grad_fake.*" (D's gradients of its last D step, the core's slots 0 and 1),
"g_grad.*" (G's gradient of its last G step), "g_new.*", "d_new.*", "g_state.*", "d_state.*";
"stats" (steps, 4): d_loss, g_loss, d_real, d_fake of each step (float64); "adam_t" (2,):
the number of Adam steps of D and G.
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
            x = F.batch_norm(x, rm, rv, W, b, training=training, momentum=L.get("momentum", 0.1),
                             eps=L.get("eps", 1e-5))
        elif t == "leaky_relu":
            x = F.leaky_relu(x, L["slope"])
        elif t == "tanh":
            x = torch.tanh(x)
        elif t == "sigmoid":
            x = torch.sigmoid(x)
        elif t == "relu":
            x = F.relu(x)
        elif t == "dropout":  # the fixtures use p = 0 (no masks to match); bench scripts train with it
            x = F.dropout(x, L["p"], training=training) if L["p"] else x
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


def write_mnist_step(core):
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


# ---------------------------------------------------------------------------------------------
# 2. every loss, option and preset
def case_path(name):
    return os.path.join(HERE, "fixtures", f"step_{name}.npz")


def d_loss_t(loss, real, x, target):
    """(loss, mean output) of D on logits x (N,), as the core defines them."""
    if loss in ("bce", "minimax", "saturating"):
        return F.binary_cross_entropy_with_logits(x, torch.full_like(x, target)), torch.sigmoid(x).mean()
    if loss == "lsgan":
        return (0.5 * (x - target) ** 2).mean(), x.mean()
    if loss == "hinge":
        return (F.relu(1 - x) if real else F.relu(1 + x)).mean(), x.mean()
    raise ValueError(loss)


def g_loss_t(loss, x):
    if loss == "bce":
        return F.softplus(-x).mean()
    if loss == "minimax":  # seed 004, literally: g_loss = mean(log(d_fake)), maximised
        return -torch.log(torch.sigmoid(x)).mean()
    if loss == "saturating":
        return -F.softplus(x).mean()
    if loss == "lsgan":
        return (0.5 * (x - 1) ** 2).mean()
    if loss == "hinge":
        return -x.mean()
    raise ValueError(loss)


def reference_run(cfg, g0, d0, reals, zs):
    """`len(zs)` training steps of the core's GAN step, in float64.

    reals[s]: the real batch of step s (every D step of a step uses it); zs[s][i]: the i-th
    latent batch G consumes in step s. Returns the fixture entries."""
    G, D = cfg["generator"], cfg["discriminator"]
    loss, n_critic, g_steps, joint = cfg["loss"], cfg["n_critic"], cfg["g_steps"], cfg["joint"]
    target = 1.0 - cfg["label_smoothing"]
    tg = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in g0.items()}
    td = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in d0.items()}
    gstate, dstate = bn_state(G, g0), bn_state(D, d0)
    gn, dn = list(tg), list(td)
    opt_g = torch.optim.Adam([tg[k] for k in gn], lr=cfg["lr_g"], betas=(cfg["beta1_g"], cfg["beta2_g"]),
                             eps=cfg["adam_eps"])
    opt_d = torch.optim.Adam([td[k] for k in dn], lr=cfg["lr_d"], betas=(cfg["beta1_d"], cfg["beta2_d"]),
                             eps=cfg["adam_eps"])
    Gf = lambda z: t_forward(G, tg, z, True, gstate)  # noqa: E731
    Df = lambda x: t_forward(D, td, x, True, dstate).reshape(-1)  # noqa: E731
    stats, adam_t = [], [0, 0]

    def apply(opt, params, names, grads):
        for k, gr in zip(names, grads):
            params[k].grad = gr.clone()
        opt.step()

    for real, z_step in zip(reals, zs):
        real_t = torch.tensor(real, dtype=torch.float64)
        zi = 0
        for k in range(n_critic):
            out_real = Df(real_t)
            l_r, m_r = d_loss_t(loss, True, out_real, target)
            fake = Gf(torch.tensor(z_step[zi], dtype=torch.float64))
            zi += 1
            out_fake = Df(fake if joint else fake.detach())
            l_f, m_f = d_loss_t(loss, False, out_fake, 0.0)
            gr = torch.autograd.grad(l_r, [td[n] for n in dn])
            gf = torch.autograd.grad(l_f, [td[n] for n in dn], retain_graph=joint)
            row = [(l_r + l_f).item(), np.nan, m_r.item(), m_f.item()]
            if joint:
                l_g = g_loss_t(loss, out_fake)
                gg = torch.autograd.grad(l_g, [tg[n] for n in gn])
                apply(opt_d, td, dn, [a + b for a, b in zip(gr, gf)])
                apply(opt_g, tg, gn, gg)
                adam_t[0] += 1
                adam_t[1] += 1
                row[1] = l_g.item()
                break
            apply(opt_d, td, dn, [a + b for a, b in zip(gr, gf)])
            adam_t[0] += 1
        if not joint:
            for j in range(g_steps):
                if j > 0:
                    fake = Gf(torch.tensor(z_step[zi], dtype=torch.float64))
                    zi += 1
                l_g = g_loss_t(loss, Df(fake))
                gg = torch.autograd.grad(l_g, [tg[n] for n in gn])
                apply(opt_g, tg, gn, gg)
                adam_t[1] += 1
                row[1] = l_g.item()
        assert zi == len(z_step), (zi, len(z_step))
        stats.append(row)

    f32 = lambda t: t.detach().numpy().astype(np.float32)  # noqa: E731
    r = {"stats": np.array(stats, np.float64), "adam_t": np.array(adam_t, np.int64)}
    for k, a, b in zip(dn, gr, gf):
        r[f"d_grad_real.{k}"], r[f"d_grad_fake.{k}"] = f32(a), f32(b)
    for k, a in zip(gn, gg):
        r[f"g_grad.{k}"] = f32(a)
    r.update({f"g_new.{k}": f32(v) for k, v in tg.items()})
    r.update({f"d_new.{k}": f32(v) for k, v in td.items()})
    for prefix, st in (("g_state", gstate), ("d_state", dstate)):
        for i, (rm, rv) in st.items():
            r[f"{prefix}.{i}.running_mean"], r[f"{prefix}.{i}.running_var"] = f32(rm), f32(rv)
    return r


def mnist_images(n, lo=-1.0):
    root = os.environ.get("DCGAN_DATA", os.path.join(HERE, "..", "..", "shared", "data"))
    with gzip.open(os.path.join(root, "mnist", "train-images-idx3-ubyte.gz"), "rb") as f:
        raw = f.read(16 + n * 784)
    img = np.frombuffer(raw[16:], np.uint8).reshape(n, 1, 28, 28).astype(np.float32)
    return (img / 255.0 if lo == 0.0 else img / 127.5 - 1).astype(np.float32)


def cifar_images(n, size=32):
    import pickle
    from PIL import Image
    root = os.environ.get("DCGAN_DATA", os.path.join(HERE, "..", "..", "shared", "data"))
    with open(os.path.join(root, "cifar10-subset", "cifar-10-batches-py", "data_batch_1"), "rb") as f:
        d = pickle.load(f, encoding="bytes")
    img = d[b"data"][:n].reshape(n, 3, 32, 32).transpose(0, 2, 3, 1)  # NHWC uint8
    if size != 32:
        img = np.stack([np.asarray(Image.fromarray(a, "RGB").resize((size, size), Image.BILINEAR))
                        for a in img])
    return (img.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1).astype(np.float32)


def case(preset, real, steps=1, **overrides):
    """A fixture made from dcgan.Config.preset(preset, **overrides): the test rebuilds the same
    Config and checks that its core config is the fixture's."""
    return dict(preset=preset, overrides=overrides, real=real, steps=steps)


def option_case(steps=1, **options):
    """The mnist topology (REFERENCE section 2) at narrow widths with some training options;
    BN momentum 0.1 so that one step moves the running statistics visibly."""
    return case("mnist", lambda n: mnist_images(n), steps=steps, z_dim=8, g_width=2, d_width=2,
                batch_size=B, dropout=0.0, bn_momentum=0.1, bn_eps=1e-5, **options)


CASES = {
    # losses
    "loss_minimax": option_case(loss="minimax"),
    "loss_saturating": option_case(loss="saturating"),
    "loss_lsgan": option_case(loss="lsgan"),
    "loss_lsgan_smooth": option_case(loss="lsgan", label_smoothing=0.1),
    "loss_hinge": option_case(loss="hinge"),
    # alternation and updates
    "n_critic2": option_case(n_critic=2),
    "g_steps2": option_case(g_steps=2),
    "n_critic3_g_steps2": option_case(n_critic=3, g_steps=2, loss="lsgan"),
    "joint": option_case(joint=True),
    "joint_lsgan_smooth": option_case(joint=True, loss="lsgan", label_smoothing=0.1),
    "joint_hinge": option_case(joint=True, loss="hinge"),
    # three steps, and betas far from the defaults: Adam's first step is lr * sign(g) whatever
    # the betas, and beta2 near 1 weighs the first few squared gradients almost equally
    "adam_separate": option_case(steps=3, lr=5e-4, lr_g=3e-4, lr_d=1e-4, betas_g=(0.5, 0.6),
                                 betas_d=(0.7, 0.8), adam_eps=1e-7),
    "uniform_noise": option_case(noise="uniform", label_smoothing=0.1),
    "two_steps": option_case(steps=2, loss="saturating", n_critic=2),
    # presets: their own layer lists at narrow widths (dropout p = 0), their own options
    "preset_mlp": case("mlp", lambda n: mnist_images(n), z_dim=8, g_width=4, d_width=4, batch_size=B),
    "preset_mnist": case("mnist", lambda n: mnist_images(n), z_dim=8, g_width=2, d_width=2,
                         batch_size=B, dropout=0.0),
    "preset_mnist_seed000": case("mnist_seed000", lambda n: mnist_images(n, lo=0.0), z_dim=8,
                                 g_width=2, d_width=2, batch_size=B, dropout=0.0),
    "preset_cifar10": case("cifar10", lambda n: cifar_images(n), z_dim=8, g_width=2, d_width=2,
                           batch_size=B, dropout=0.0),
    "preset_dcgan64": case("dcgan64", lambda n: cifar_images(n, 64), z_dim=8, g_width=1, d_width=1,
                           batch_size=4),
    "preset_dcgan64_gray_k4": case("dcgan64", lambda n: cifar_images(n, 64)[:, :1], z_dim=8,
                                   g_width=1, d_width=1, batch_size=4, kernel=4,
                                   image_shape=(1, 64, 64)),
}


def write_case(core, name, spec):
    import dcgan
    cfg = dcgan.Config.preset(spec["preset"], seed=4321, **spec["overrides"]).core_config()
    cfg["threads"] = 0
    steps = spec["steps"]
    real = spec["real"](steps * cfg["batch_size"]).reshape(steps, cfg["batch_size"], *cfg["image"])
    tr = core.Trainer(cfg)
    draws = 1 if cfg["joint"] else cfg["n_critic"] + cfg["g_steps"] - 1
    zs = np.stack([np.stack([tr.noise(s, i) for i in range(draws)]) for s in range(steps)])
    gen = torch.Generator().manual_seed(20240601 + sum(map(ord, name)))
    g0 = torch_init(cfg["generator"], [cfg["z_dim"]], gen)
    d0 = torch_init(cfg["discriminator"], cfg["image"], gen)
    for net, p in (("generator", g0), ("discriminator", d0)):
        want = {k: v.shape for k, v in tr.get_params(net).items()}
        assert want == {k: v.shape for k, v in p.items()}, (net, want)
    r = reference_run(cfg, g0, d0, real, zs)
    meta = {"case": name, "preset": spec["preset"], "overrides": spec["overrides"], "seed": 4321,
            "steps": steps}
    out = {"config": np.array(json.dumps(cfg)), "meta": np.array(json.dumps(meta)), "real": real,
           "z": zs.astype(np.float32), "torch_version": np.array(torch.__version__)}
    out.update({f"g_init.{k}": v for k, v in g0.items()})
    out.update({f"d_init.{k}": v for k, v in d0.items()})
    out.update(r)
    np.savez_compressed(case_path(name), **out)
    st = r["stats"][-1]
    print(f"{name}: d_loss {st[0]:.6f} g_loss {st[1]:.6f} d_real {st[2]:.4f} d_fake {st[3]:.4f} "
          f"adam_t {r['adam_t'].tolist()} -> {os.path.getsize(case_path(name)) / 1024:.0f} KiB")


def main():
    assert torch.__version__.startswith("2.13.0"), f"made with torch 2.13.0, this is {torch.__version__}"
    core = import_core()
    names = sys.argv[1:] or ["mnist_step", *CASES]
    for n in names:
        if n == "mnist_step":
            write_mnist_step(core)
        elif n in CASES:
            write_case(core, n, CASES[n])
        else:
            raise SystemExit(f"unknown fixture {n!r}; known: mnist_step, {', '.join(CASES)}")


if __name__ == "__main__":
    main()
