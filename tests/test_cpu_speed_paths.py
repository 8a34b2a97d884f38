"""The CPU backend's speed paths (issue 13) keep the numbers right.

- Fused activations (conv/convT/dense + activation post-op, BatchNorm + ReLU) give the fp32
  results of the unfused layers (DCGAN_CPU_FUSE=none) to fp32 rounding: a convolution with a
  post-op may run another oneDNN kernel, which sums in another order.
- bf16 training (Config.precision="bf16") is refused, naming the ISA, where oneDNN has no bf16
  kernels; where it has them it trains close to fp32, deterministically, with the same dropout
  masks, and its layers' outputs are close to fp32's.
- Trainer.step_flops() counts the step's multiply-adds as the step runs them (checked against
  an independent count), and the measured CPU peak is a plausible number.
- Dropout's keep flags give the reference masks on each vector path (AVX-512, AVX2, scalar;
  oneDNN held to each ISA in a subprocess) and in each activation layout.
- Backward-weights as matrix products (gemm_weights.cpp) and the few-channel passes as a matrix
  product and a gather (thin_conv.cpp) match oneDNN's kernels to fp32 rounding, and the network
  reports which path each layer takes.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import dcgan
from dcgan import _core

CPU_ISA = next(b["detail"] for b in dcgan.backends() if b["name"] == "cpu")
HAS_BF16 = CPU_ISA in ("avx512_core_bf16", "avx512_core_fp16", "avx512_core_amx", "avx512_core_amx_fp16")
needs_bf16 = pytest.mark.skipif(not HAS_BF16, reason=f"oneDNN dispatches to {CPU_ISA}: no bf16 kernels")

needs_x86 = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                               reason="ONEDNN_MAX_CPU_ISA is x86")


def run_under_isa(code, max_isa, drop=()):
    """Runs `code` in a fresh interpreter with oneDNN held to `max_isa` (as on a CPU that has no
    more) and without the environment variables in `drop`; returns its stdout. Skips when the
    CPU lacks an AVX-512 that is asked for."""
    if max_isa.startswith("AVX512") and not CPU_ISA.startswith("avx512"):
        pytest.skip(f"oneDNN dispatches to {CPU_ISA}: this CPU has no AVX-512")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["ONEDNN_MAX_CPU_ISA"] = max_isa
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def small_cfg(**kw):
    # Every fusable pair: dense+relu, BN+ReLU, convT+tanh in G; conv+leaky_relu, dropout in D.
    g = [dict(type="dense", out=4 * 7 * 7, bias=False), dict(type="batchnorm"), dict(type="relu"),
         dict(type="reshape", shape=[4, 7, 7]),
         dict(type="conv_transpose2d", out=8, kernel=4, stride=2, padding=1, bias=False), dict(type="batchnorm"),
         dict(type="relu"),
         dict(type="conv_transpose2d", out=1, kernel=4, stride=2, padding=1), dict(type="tanh")]
    d = [dict(type="conv2d", out=8, kernel=4, stride=2, padding=1, bias=True), dict(type="leaky_relu", slope=0.2),
         dict(type="dropout", p=0.3),
         dict(type="conv2d", out=16, kernel=4, stride=2, padding=1, bias=False), dict(type="batchnorm"),
         dict(type="leaky_relu", slope=0.2), dict(type="flatten"), dict(type="dense", out=1)]
    # (No bias before a BatchNorm: its gradient is zero up to rounding, which Adam would scale
    # up to full-size steps, so the tests below could not compare two roundings.)
    base = dict(image_shape=(1, 28, 28), z_dim=8, batch_size=8, seed=3, generator=g, discriminator=d,
                threads=2)
    base.update(kw)
    return dcgan.Config(**base)


def images(n=64):
    return np.random.default_rng(0).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def train(cfg, steps=6, fuse=None):
    old = os.environ.get("DCGAN_CPU_FUSE")
    try:
        if fuse is not None:
            os.environ["DCGAN_CPU_FUSE"] = fuse
        tr = dcgan.Trainer(cfg)
        tr.fit(images(), steps=steps, progress=False)
    finally:
        if old is None:
            os.environ.pop("DCGAN_CPU_FUSE", None)
        else:
            os.environ["DCGAN_CPU_FUSE"] = old
    return tr


# ----------------------------------------------------------------------------- fusion
@pytest.mark.parametrize("fuse", ["none", "act", "bn_relu"])
def test_fused_layers_match_unfused_in_fp32(fuse):
    ref = train(small_cfg(), fuse="all")
    other = train(small_cfg(), fuse=fuse)
    for k, v in ref.history.items():
        np.testing.assert_allclose(other.history[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
    for net in ("generator", "discriminator"):
        for k, v in ref.weights(net).items():
            np.testing.assert_allclose(other.weights(net)[k], v, rtol=1e-4, atol=1e-6, err_msg=f"{net} {k}")
    np.testing.assert_allclose(other.generate(8, seed=1), ref.generate(8, seed=1), rtol=1e-4, atol=1e-5)
    # Each setting alone is deterministic.
    assert train(small_cfg(), fuse=fuse).history == other.history


def test_fused_network_gradients_match_unfused():
    layers = [dict(type="conv2d", out=5, kernel=3, stride=1, padding=1, bias=True), dict(type="tanh"),
              dict(type="conv2d", out=4, kernel=3, stride=2, padding=1), dict(type="batchnorm"),
              dict(type="relu"), dict(type="flatten"), dict(type="dense", out=3), dict(type="sigmoid")]
    x = np.random.default_rng(1).standard_normal((4, 2, 6, 6)).astype(np.float32)
    dy = np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32)
    out = {}
    for fuse in ("all", "none"):
        os.environ["DCGAN_CPU_FUSE"] = fuse
        try:
            net = _core.Network(layers, [2, 6, 6], 4, seed=7)
        finally:
            os.environ.pop("DCGAN_CPU_FUSE", None)
        y = net.forward(x)
        dx = net.backward(dy)
        out[fuse] = (y, dx, net.get_grads())
    np.testing.assert_allclose(out["all"][0], out["none"][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["all"][1], out["none"][1], rtol=1e-5, atol=1e-6)
    for k in out["all"][2]:
        np.testing.assert_allclose(out["all"][2][k], out["none"][2][k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_bad_fuse_setting_is_refused():
    os.environ["DCGAN_CPU_FUSE"] = "act,everything"
    try:
        with pytest.raises(ValueError, match="DCGAN_CPU_FUSE.*'act' and 'bn_relu'"):
            _core.Network([dict(type="relu")], [3], 2)
    finally:
        os.environ.pop("DCGAN_CPU_FUSE", None)


# ----------------------------------------------------------------------------- bf16
def test_precision_is_validated():
    with pytest.raises(ValueError, match="precision must be 'fp32' or 'bf16'"):
        small_cfg(precision="fp16")
    with pytest.raises(ValueError, match="precision must be 'fp32' or 'bf16'"):
        _core.Network([dict(type="relu")], [3], 2, precision="int8")


@needs_x86
def test_bf16_is_refused_naming_the_isa_on_avx2():
    out = run_under_isa("""
        import dcgan
        cfg = dcgan.Config.mnist(batch_size=8, g_width=4, d_width=4, z_dim=8, precision="bf16")
        try:
            dcgan.Trainer(cfg)
        except ValueError as e:
            print("REFUSED:", e)
        else:
            print("ACCEPTED")
    """, "AVX2")
    assert "REFUSED:" in out, out
    assert "AVX512-BF16 or AMX" in out and "avx2" in out and "precision='fp32'" in out


@needs_bf16
def test_bf16_training_is_close_to_fp32_and_deterministic():
    f32 = train(small_cfg(), steps=10)
    b16 = train(small_cfg(precision="bf16"), steps=10)
    again = train(small_cfg(precision="bf16"), steps=10)
    assert b16.history == again.history  # same seed, data, backend and threads: same losses
    for k in ("d_loss", "g_loss"):
        a, b = np.array(f32.history[k]), np.array(b16.history[k])
        assert np.isfinite(b).all()
        # bf16 keeps 8 significant bits: per-step losses agree to about 1e-2 over 10 steps.
        np.testing.assert_allclose(b, a, rtol=3e-2, atol=3e-2, err_msg=k)
    # Master weights stay fp32: after 10 Adam steps of lr 2e-4 they differ from fp32's by far
    # less than the updates themselves.
    w0 = dcgan.Trainer(small_cfg()).weights("generator")
    for k, v in f32.weights("generator").items():
        moved = np.abs(v - w0[k]).max()
        assert np.abs(b16.weights("generator")[k] - v).max() < 0.5 * moved + 1e-6, k
    s32, s16 = f32.generate(8, seed=2), b16.generate(8, seed=2)
    assert s16.dtype == np.float32 and np.abs(s16 - s32).max() < 0.1


@needs_bf16
def test_bf16_layers_are_close_to_fp32():
    layers = [dict(type="conv2d", out=16, kernel=4, stride=2, padding=1, bias=False), dict(type="batchnorm"),
              dict(type="leaky_relu", slope=0.2), dict(type="conv_transpose2d", out=3, kernel=4, stride=2,
                                                        padding=1), dict(type="flatten"),
              dict(type="dense", out=5)]
    x = np.random.default_rng(1).standard_normal((8, 3, 8, 8)).astype(np.float32)
    dy = np.random.default_rng(2).standard_normal((8, 5)).astype(np.float32)
    res = {}
    for prec in ("fp32", "bf16"):
        net = _core.Network(layers, [3, 8, 8], 8, seed=4, precision=prec)
        res[prec] = (net.forward(x), net.backward(dy), net.get_grads())
    # Relative error in the 2-norm: bf16 rounds each operand to 8 significant bits (0.4%); the
    # BatchNorm backward's mean subtractions amplify that in the input gradient.
    rel = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(a)  # noqa: E731
    assert rel(res["fp32"][0], res["bf16"][0]) < 0.01
    assert rel(res["fp32"][1], res["bf16"][1]) < 0.03
    for k, a in res["fp32"][2].items():
        assert rel(a, res["bf16"][2][k]) < 0.03, k


@needs_bf16
def test_bf16_dropout_keeps_fp32_masks():
    # After a convolution the activations are channel-blocked: the masks must still be keyed by
    # the logical element, so bf16 and fp32 drop the same elements.
    layers = [dict(type="conv2d", out=16, kernel=3, stride=1, padding=1), dict(type="dropout", p=0.5)]
    x = np.random.default_rng(1).uniform(0.5, 1.0, (4, 3, 6, 6)).astype(np.float32)
    masks = {}
    for prec in ("fp32", "bf16"):
        net = _core.Network(layers[:1], [3, 6, 6], 4, seed=4, precision=prec)
        pre = net.forward(x)
        net = _core.Network(layers, [3, 6, 6], 4, seed=4, precision=prec)
        y = net.forward(x, training=True, counter=9)
        masks[prec] = (y == 0) & (pre != 0)
        kept = y != 0
        np.testing.assert_allclose(y[kept], 2 * pre[kept], rtol=1e-2)
    np.testing.assert_array_equal(masks["fp32"], masks["bf16"])
    assert 0.3 < masks["fp32"].mean() < 0.7


@needs_x86
@pytest.mark.parametrize("max_isa", ["SSE41", "AVX2", "AVX512_CORE"])
def test_dropout_masks_on_every_vector_path(max_isa):
    # The keep flags run 16 Philox blocks per AVX-512 vector, 8 per AVX2 vector, or one block at
    # a time, by the ISA oneDNN dispatches to: each path gives the reference masks bit for bit,
    # with partial vectors and a partial block at the ends, in plain, channels-last and
    # channel-blocked layouts.
    out = run_under_isa("""
        import json
        import numpy as np
        from dcgan import _core
        K, p, seed, ctr = _core.kernels, 0.3, 9, 17
        bad = []
        n = 3 * 4096 * 9 + 4 * 16 * 5 + 4 * 3 + 3
        y = _core.Network([{"type": "dropout", "p": p}], [n], 2, seed=seed).forward(
            np.ones((2, n), np.float32), counter=ctr)
        if not np.array_equal(y.ravel(), K.dropout_multipliers(seed, ctr, 0, 2 * n, p)):
            bad.append("plain")
        conv = {"type": "conv2d", "out": 24, "kernel": 3, "stride": 1, "padding": 1}
        x = np.random.default_rng(1).standard_normal((5, 3, 13, 13)).astype(np.float32)
        import os
        for fmt in ("nhwc", "any"):
            os.environ["DCGAN_CPU_ACT_FORMAT"] = fmt
            a = _core.Network([conv], [3, 13, 13], 5, seed=seed).forward(x, counter=ctr)
            b = _core.Network([conv, {"type": "dropout", "p": p}], [3, 13, 13], 5, seed=seed).forward(
                x, counter=ctr)
            if not np.array_equal(b, a * K.dropout_multipliers(seed, ctr, 1, a.size, p).reshape(a.shape)):
                bad.append(fmt)
        print(json.dumps(bad))
    """, max_isa, drop=("DCGAN_CPU_ACT_FORMAT",))
    assert json.loads(out.strip().splitlines()[-1]) == []


# ----------------------------------------------------------------------------- FLOPs and peak
def valid_taps(positions, stride, lo, kernel, limit):
    return sum(1 for p in range(positions) for k in range(kernel) if 0 <= p * stride - lo + k < limit)


def test_step_flops_match_an_independent_count():
    cfg = dcgan.Config.mnist(batch_size=8, g_width=4, d_width=4, z_dim=8, joint=False)
    tr = dcgan.Trainer(cfg)
    B = 8

    specs = dict(zip(("generator", "discriminator"), cfg.layers()))

    def macs(net):
        """Per weighted layer: (multiply-adds of one pass, has parameters below it)."""
        out, below = [], False
        for row, spec in zip(tr._core.describe(net), specs[net]):
            kind, ins, outs = row["type"], row["in_shape"], row["out_shape"]
            m = 0
            if kind == "dense":
                m = B * ins[0] * outs[0]
            elif kind in ("conv2d", "conv_transpose2d"):
                k, s, pad = spec["kernel"], spec.get("stride", 1), row["padding"]
                small, big = (outs, ins) if kind == "conv2d" else (ins, outs)
                m = B * ins[0] * outs[0] * valid_taps(small[1], s, pad[0], k, big[1]) * \
                    valid_taps(small[2], s, pad[2], k, big[2])
            out.append((m, below))
            below = below or row["params"] > 0
        return out

    g, d = macs("generator"), macs("discriminator")
    fwd = lambda layers: sum(2 * m for m, _ in layers)  # noqa: E731
    data = lambda layers, need: sum(2 * m for m, below in layers if need or below)  # noqa: E731
    # D step: D on real (weights, no input gradient), G forward, D on fakes (weights);
    # G step: D forward, D input gradients only, G weights.
    want = dict(forward=fwd(d) + fwd(g) + fwd(d) + fwd(d),
                backward_data=data(d, False) + data(d, False) + data(d, True) + data(g, False),
                backward_weights=fwd(d) + fwd(d) + fwd(g))
    got = tr.step_flops()
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-12), k
    assert got["total"] == pytest.approx(sum(want.values()), rel=1e-12)
    # The joint update skips the G step's D forward; n_critic=2 doubles the D step.
    joint = dcgan.Trainer(cfg.replace(joint=True)).step_flops()
    assert joint["forward"] == pytest.approx(want["forward"] - fwd(d), rel=1e-12)
    two = dcgan.Trainer(cfg.replace(n_critic=2)).step_flops()
    assert two["backward_weights"] == pytest.approx(want["backward_weights"] + 2 * fwd(d), rel=1e-12)


def test_cpu_peak_is_plausible():
    p = _core.cpu_peak(1, 0.2)
    assert p["isa"] == CPU_ISA and p["threads"] == 1
    if platform.machine() not in ("x86_64", "AMD64") or p["vector_bits"] == 0:
        pytest.skip(f"no FMA measurement for {CPU_ISA}")
    assert 0.5 < p["ghz"] < 7
    # 8 (one 256-bit FMA port at half rate) to 128 (two 512-bit ports... with room) FLOP/cycle.
    assert 8 <= p["flops_per_cycle"] <= 128
    assert p["gflops"] == pytest.approx(p["ghz"] * p["flops_per_cycle"], rel=1e-6)
    with pytest.raises(ValueError, match="seconds"):
        _core.cpu_peak(1, 0)


@contextlib.contextmanager
def env_var(name, value):
    """`name` set to `value` (None: unset) inside the block, unset after it (read when networks
    are compiled)."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


# ----------------------------------------------------------------------------- GEMM weights
GEMM_LAYERS = [
    # (layer, input shape): strides 1 and 2, 'same' (asymmetric) padding, output_padding, bias.
    (dict(type="conv2d", out=32, kernel=5, stride=2, padding="same", bias=True), [16, 9, 9]),
    (dict(type="conv2d", out=16, kernel=3, stride=1, padding=1, bias=False), [24, 4, 4]),
    (dict(type="conv2d", out=20, kernel=4, stride=2, padding=1, bias=True), [16, 8, 8]),
    (dict(type="conv_transpose2d", out=16, kernel=5, stride=2, padding="same", bias=True), [32, 4, 4]),
    (dict(type="conv_transpose2d", out=24, kernel=4, stride=2, padding=1, bias=False), [16, 3, 3]),
    (dict(type="conv_transpose2d", out=16, kernel=5, stride=1, padding=2, bias=True), [16, 5, 5]),
]


def grads_with(mode, layer, in_shape, precision="fp32", batch=3):
    with env_var("DCGAN_CPU_BWDW", mode):
        net = _core.Network([layer], in_shape, batch, seed=11, precision=precision)
    rng = np.random.default_rng(5)
    y = net.forward(rng.standard_normal([batch] + in_shape).astype(np.float32))
    net.backward(rng.standard_normal(y.shape).astype(np.float32), need_d_input=False)
    return net.get_grads()


@pytest.mark.parametrize("layer,in_shape", GEMM_LAYERS, ids=lambda v: str(v))
def test_gemm_weight_gradients_match_onednn(layer, in_shape):
    native, gemm = grads_with("native", layer, in_shape), grads_with("gemm", layer, in_shape)
    assert set(native) == set(gemm) and any(k.endswith("bias") for k in native) == layer["bias"]
    for k, v in native.items():
        np.testing.assert_allclose(gemm[k], v, rtol=1e-5, atol=1e-5 * np.abs(v).max(), err_msg=k)
    # Deterministic: the same numbers again.
    again = grads_with("gemm", layer, in_shape)
    for k, v in gemm.items():
        np.testing.assert_array_equal(again[k], v)


@needs_bf16
@pytest.mark.parametrize("layer,in_shape", GEMM_LAYERS[::3], ids=lambda v: str(v))
def test_gemm_weight_gradients_in_bf16(layer, in_shape):
    ref = grads_with("native", layer, in_shape)
    gemm = grads_with("gemm", layer, in_shape, precision="bf16")
    for k, v in ref.items():
        assert np.linalg.norm(gemm[k] - v) < 0.02 * np.linalg.norm(v), k


def _same_grads(a, b):
    return set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


AVX2_CLASS = CPU_ISA in ("avx2", "avx2_vnni", "avx2_vnni_2")


@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=needs_bf16)])
def test_automatic_rule_picks_per_precision(precision):
    # The rule (gemm_weights.cpp) was measured per precision and ISA: a stride-2 layer with 4x4
    # output positions and 32 channels takes the matrix products in bf16 and in fp32 on AVX2,
    # not in fp32 on AVX-512; one with 2x2 positions takes them everywhere. The two paths'
    # gradients differ in the last bits, so equality tells which ran, and the pick the network
    # reports (cpu_backward_weights) must be the one that ran.
    layer = dict(type="conv2d", out=32, kernel=5, stride=2, padding="same", bias=True)
    for in_shape, gemm_expected in (([32, 8, 8], precision == "bf16" or AVX2_CLASS), ([32, 4, 4], True)):
        auto = grads_with("auto", layer, in_shape, precision, batch=8)
        native = grads_with("native", layer, in_shape, precision, batch=8)
        gemm = grads_with("gemm", layer, in_shape, precision, batch=8)
        assert not _same_grads(native, gemm), "the test needs the two paths to differ"
        assert _same_grads(auto, gemm if gemm_expected else native), (in_shape, precision, CPU_ISA)
        reported = _core.Network([layer], in_shape, 8, precision=precision).cpu_backward_weights()
        assert reported == ["gemm" if gemm_expected else "native"], (in_shape, precision, CPU_ISA)


@needs_x86
@pytest.mark.parametrize("max_isa", ["AVX2", "AVX512_CORE"])
def test_fp32_rule_follows_the_isa(max_isa):
    # With oneDNN held to an ISA (as on a CPU that has no more), the fp32 picks follow that ISA's
    # measurements: stride-2 layers with up to 8x8 positions on the small side take the matrix
    # products on AVX2, and on AVX-512 only 2x2, or 4x4 with 512+ channels; stride 1 at 8x8 and
    # stride 2 at 16x16 stay native on both.
    cases = [  # (layer, in_shape, AVX2 pick, AVX-512 pick)
        (dict(type="conv2d", out=64, kernel=5, stride=2, padding="same"), [32, 16, 16], "gemm", "native"),
        (dict(type="conv_transpose2d", out=32, kernel=5, stride=2, padding="same"), [64, 8, 8], "gemm", "native"),
        (dict(type="conv_transpose2d", out=64, kernel=5, stride=1, padding="same"), [64, 8, 8], "native", "native"),
        (dict(type="conv2d", out=64, kernel=5, stride=2, padding="same"), [32, 32, 32], "native", "native"),
        (dict(type="conv2d", out=512, kernel=5, stride=2, padding="same"), [512, 8, 8], "gemm", "gemm"),
        (dict(type="conv2d", out=32, kernel=5, stride=2, padding="same"), [32, 4, 4], "gemm", "gemm"),
    ]
    # (Winograd off: it takes the backward-weights of the stride-2 layers with 8x8+ small sides.)
    out = run_under_isa(f"""
        import json, os
        os.environ["DCGAN_CPU_WINO"] = "native"
        from dcgan import _core
        cases = json.loads({json.dumps(json.dumps([(c[0], c[1]) for c in cases]))})
        print(json.dumps([_core.Network([l], s, 1).cpu_backward_weights()[0] for l, s in cases]))
    """, max_isa, drop=("DCGAN_CPU_BWDW",))
    picks = json.loads(out.strip().splitlines()[-1])
    assert picks == [c[2] if max_isa == "AVX2" else c[3] for c in cases]


def test_backward_weights_paths_are_reported_per_layer():
    net = _core.Network([dict(type="conv2d", out=32, kernel=5, stride=2, padding="same"), dict(type="relu"),
                         dict(type="flatten"), dict(type="dense", out=1)], [32, 4, 4], 2)
    assert net.cpu_backward_weights() == ["gemm", None, None, None]
    with env_var("DCGAN_CPU_BWDW", "native"):
        assert net.cpu_backward_weights()[0] == "native"


def test_gemm_setting_is_validated_and_small_channels_stay_native():
    with env_var("DCGAN_CPU_BWDW", "fast"), \
            pytest.raises(ValueError, match="DCGAN_CPU_BWDW.*'auto', 'gemm' or 'native'"):
        _core.Network([dict(type="conv2d", out=16, kernel=3)], [16, 4, 4], 2)
    # 3 input channels: never the matrix products, even when asked (the results agree exactly).
    layer = dict(type="conv2d", out=16, kernel=3, stride=2, padding=1)
    a, b = grads_with("native", layer, [3, 8, 8]), grads_with("gemm", layer, [3, 8, 8])
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


# ----------------------------------------------------------------------------- few-channel passes
FEW_CHANNEL_LAYERS = [
    # (layers, input shape): a ConvTranspose2d's forward into 1-4 channels (with a fused
    # activation or not), a Conv2d's backward-data into 1-4 channels; strides 1 and 2, 'same'
    # (asymmetric) padding, output_padding, kernels 3-5, odd sizes, bias or none.
    ([dict(type="conv_transpose2d", out=1, kernel=5, stride=2, padding="same"), dict(type="tanh")], [64, 7, 7]),
    ([dict(type="conv_transpose2d", out=3, kernel=4, stride=2, padding=1, bias=False)], [32, 5, 5]),
    ([dict(type="conv_transpose2d", out=2, kernel=3, stride=1, padding=1), dict(type="sigmoid")], [16, 6, 5]),
    ([dict(type="conv_transpose2d", out=4, kernel=3, stride=2, padding=1, output_padding=1)], [24, 4, 3]),
    ([dict(type="conv2d", out=64, kernel=5, stride=2, padding="same")], [1, 28, 28]),
    ([dict(type="conv2d", out=32, kernel=4, stride=2, padding=1), dict(type="leaky_relu", slope=0.2)], [3, 9, 9]),
    ([dict(type="conv2d", out=16, kernel=3, stride=1, padding=0, bias=False)], [2, 7, 6]),
]


def run_thin(mode, layers, in_shape, precision="fp32", fmt=None, batch=3):
    with env_var("DCGAN_CPU_THIN", mode), env_var("DCGAN_CPU_ACT_FORMAT", fmt):
        net = _core.Network(layers, in_shape, batch, seed=3, precision=precision)
        paths = net.cpu_few_channel_paths()
    rng = np.random.default_rng(0)
    y = net.forward(rng.standard_normal([batch] + in_shape).astype(np.float32))
    dx = net.backward(rng.standard_normal(y.shape).astype(np.float32), need_d_input=True)
    return paths, y, dx, net.get_grads()


@pytest.mark.parametrize("fmt", ["nhwc", "any"])
@pytest.mark.parametrize("layers,in_shape", FEW_CHANNEL_LAYERS, ids=lambda v: str(v))
def test_few_channel_passes_match_onednn(layers, in_shape, fmt):
    # The matrix product and gather (thin_conv.cpp) against oneDNN's own kernels: the same
    # forward, input gradient and weight gradients to fp32 rounding (another summation order).
    pn, yn, dxn, gn = run_thin("native", layers, in_shape, fmt=fmt)
    pm, ym, dxm, gm = run_thin(None, layers, in_shape, fmt=fmt)
    assert pn[0] == "native" and pm[0] == "matmul"
    for a, b in [(yn, ym), (dxn, dxm)] + [(gn[k], gm[k]) for k in gn]:
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=2e-6 * np.abs(a).max())
    # The pass that changed differs from oneDNN's AVX-512 kernels in the last bits: it ran.
    # (oneDNN's AVX2 kernel for one 4x4-kernel stride-2 layer sums in that order, bit for bit.)
    changed = (yn, ym) if layers[0]["type"] == "conv_transpose2d" else (dxn, dxm)
    if CPU_ISA.startswith("avx512"):
        assert not np.array_equal(*changed)


@needs_bf16
@pytest.mark.parametrize("layers,in_shape", FEW_CHANNEL_LAYERS[::3], ids=lambda v: str(v))
def test_few_channel_passes_in_bf16(layers, in_shape):
    _, yn, dxn, gn = run_thin("native", layers, in_shape, "bf16")
    _, ym, dxm, gm = run_thin(None, layers, in_shape, "bf16")
    for a, b in [(yn, ym), (dxn, dxm)] + [(gn[k], gm[k]) for k in gn]:
        np.testing.assert_allclose(b, a, rtol=2e-2, atol=1e-2 * np.abs(a).max())


def test_few_channel_paths_are_reported_and_the_setting_validated():
    layers = [dict(type="conv2d", out=16, kernel=3, stride=2, padding=1), dict(type="leaky_relu", slope=0.2),
              dict(type="conv2d", out=4, kernel=3, stride=1, padding=1),
              dict(type="conv_transpose2d", out=4, kernel=3, stride=2, padding=1, output_padding=1),
              dict(type="conv_transpose2d", out=5, kernel=3, stride=1, padding=1)]
    # 3 -> 16: backward-data into 3 channels; 16 -> 4: 4 channels on the small side, not the
    # image's; convT 4 -> 4: too few channels to multiply; convT 4 -> 5: more than 4 outputs.
    assert _core.Network(layers, [3, 8, 8], 2).cpu_few_channel_paths() == ["matmul", None, "native", "native",
                                                                           "native"]
    layers = [dict(type="conv_transpose2d", out=4, kernel=3, stride=2, padding=1, output_padding=1)]
    assert _core.Network(layers, [16, 4, 4], 2).cpu_few_channel_paths() == ["matmul"]
    with env_var("DCGAN_CPU_THIN", "native"):
        assert _core.Network(layers, [16, 4, 4], 2).cpu_few_channel_paths() == ["native"]
    with env_var("DCGAN_CPU_THIN", "fast"), pytest.raises(ValueError, match="DCGAN_CPU_THIN.*'auto' or 'native'"):
        _core.Network(layers, [16, 4, 4], 2)


# ----------------------------------------------------------------------------- Winograd
WINOGRAD_LAYERS = [
    # (layers, input shape): stride-2 Conv2d and ConvTranspose2d with 5x5 'same' and 4x4 pad-1
    # kernels, small sides of 8x8 and more (whole and partial tiles, non-square), channel
    # counts that are not multiples of 16, bias or none, a fused activation or none; all with
    # the channels the rule asks for (128 in the products, phases included; 64 for 5x5 at
    # stride 1).
    ([dict(type="conv2d", out=128, kernel=5, stride=2, padding="same", bias=False)], [32, 16, 16]),
    ([dict(type="conv_transpose2d", out=32, kernel=5, stride=2, padding="same", bias=False)], [128, 8, 8]),
    ([dict(type="conv2d", out=136, kernel=5, stride=2, padding="same"), dict(type="leaky_relu", slope=0.2)],
     [40, 20, 16]),
    ([dict(type="conv_transpose2d", out=33, kernel=5, stride=2, padding="same"), dict(type="relu")], [136, 10, 8]),
    ([dict(type="conv2d", out=128, kernel=4, stride=2, padding=1)], [32, 18, 18]),
    ([dict(type="conv_transpose2d", out=40, kernel=4, stride=2, padding=1, bias=False)], [128, 9, 12]),
    # A 4x4 small side at stride 2: one tile per image (cifar10's D 8->4, dcgan64's G 4->8).
    ([dict(type="conv2d", out=136, kernel=5, stride=2, padding="same"), dict(type="leaky_relu", slope=0.2)],
     [40, 8, 8]),
    ([dict(type="conv_transpose2d", out=40, kernel=4, stride=2, padding=1), dict(type="relu")], [128, 4, 4]),
    # Stride 1, 'same': F(4x4, 5x5) for 5x5 kernels (whole tiles, mnist's 7x7 with a partial
    # one, a single 4x4 tile, non-square, odd channel counts), F(4x4, 3x3) for 3x3.
    ([dict(type="conv2d", out=256, kernel=5, stride=1, padding="same", bias=False)], [256, 8, 8]),
    ([dict(type="conv_transpose2d", out=256, kernel=5, stride=1, padding="same"), dict(type="relu")], [264, 9, 10]),
    ([dict(type="conv_transpose2d", out=128, kernel=5, stride=1, padding="same")], [256, 7, 7]),
    ([dict(type="conv2d", out=72, kernel=5, stride=1, padding="same"), dict(type="leaky_relu", slope=0.2)],
     [65, 4, 4]),
    ([dict(type="conv2d", out=136, kernel=5, stride=1, padding="same", bias=False)], [130, 11, 6]),
    ([dict(type="conv2d", out=136, kernel=3, stride=1, padding=1)], [128, 11, 8]),
    ([dict(type="conv_transpose2d", out=128, kernel=3, stride=1, padding=1, bias=False)], [128, 8, 8]),
]


def run_wino(mode, layers, in_shape, bwdw=None, batch=3, threads=None):
    with env_var("DCGAN_CPU_WINO", mode), env_var("DCGAN_CPU_BWDW", bwdw):
        kw = {} if threads is None else {"threads": threads}
        net = _core.Network(layers, in_shape, batch, seed=3, **kw)
        algos, bwdw_paths = net.cpu_conv_algorithms(), net.cpu_backward_weights()
    rng = np.random.default_rng(0)
    y = net.forward(rng.standard_normal([batch] + in_shape).astype(np.float32))
    dx = net.backward(rng.standard_normal(y.shape).astype(np.float32), need_d_input=True)
    return (algos[0], bwdw_paths[0]), y, dx, net.get_grads()


# Small sides the rule leaves to oneDNN (DCGAN_CPU_WINO=all takes them): mnist's 7x7 at stride 2
# (the rule's under AVX2 only), 5x6 and 2x3 (partial tiles only), a 3x2 output at stride 1.
WINOGRAD_ANY_SIDE = [
    ([dict(type="conv2d", out=128, kernel=5, stride=2, padding="same"), dict(type="leaky_relu", slope=0.3)],
     [64, 14, 14]),
    ([dict(type="conv_transpose2d", out=64, kernel=5, stride=2, padding="same", bias=False)], [128, 7, 7]),
    ([dict(type="conv2d", out=128, kernel=5, stride=2, padding="same", bias=False)], [40, 10, 12]),
    ([dict(type="conv_transpose2d", out=36, kernel=4, stride=2, padding=1), dict(type="relu")], [128, 2, 3]),
    ([dict(type="conv2d", out=72, kernel=5, stride=1, padding="same")], [64, 3, 2]),
]


@pytest.mark.parametrize("layers,in_shape,mode", [c + (None,) for c in WINOGRAD_LAYERS]
                         + [c + ("all",) for c in WINOGRAD_ANY_SIDE], ids=lambda v: str(v))
def test_winograd_passes_match_onednn(layers, in_shape, mode):
    # Forward, input gradient and weight (and bias) gradients of each Winograd variant
    # (winograd.cpp) against oneDNN's direct kernels. F(4x4, 3x3) rounds differently from a
    # direct sum (its transforms scale by up to 8 and 1/24), so the bound is a few 1e-5 of the
    # largest entry rather than fp32's last bits.
    pn, yn, dxn, gn = run_wino("native", layers, in_shape, bwdw="native")
    pw, yw, dxw, gw = run_wino(mode, layers, in_shape)
    assert pn == ("native", "native") and pw == ("winograd", "winograd")
    for a, b in [(yn, yw), (dxn, dxw)] + [(gn[k], gw[k]) for k in gn]:
        np.testing.assert_allclose(b, a, rtol=0, atol=3e-5 * np.abs(a).max())
    # Every pass ran on the other path: none is bit-equal to oneDNN's.
    for a, b in [(yn, yw), (dxn, dxw), (gn["0.weight"], gw["0.weight"])]:
        assert not np.array_equal(a, b)


WINO_ROWS_CODE = """
    import json, os
    os.environ["ONEDNN_VERBOSE"] = "profile_exec"
    import numpy as np
    from dcgan import _core

    def run(mode, layers, in_shape):
        os.environ["DCGAN_CPU_WINO"], os.environ["DCGAN_CPU_BWDW"] = mode, "native"
        net = _core.Network(layers, in_shape, 3, seed=3)
        rng = np.random.default_rng(0)
        y = net.forward(rng.standard_normal([3] + in_shape).astype(np.float32))
        dx = net.backward(rng.standard_normal(y.shape).astype(np.float32), need_d_input=True)
        return [y, dx, net.get_grads()["0.weight"]]

    errs = []
    for layers, in_shape in json.loads(os.environ["WINO_CASES"]):
        n, w = run("native", layers, in_shape), run("auto", layers, in_shape)
        errs.append([float(np.abs(b - a).max() / np.abs(a).max()) for a, b in zip(n, w)])
    print("ERRS", json.dumps(errs))
"""


@needs_x86
@pytest.mark.parametrize("max_isa", ["AVX2", "ALL"])
def test_winograd_products_row_layout(max_isa, monkeypatch):
    # winograd.cpp stores its matrices with rows 16 floats longer than K or N where oneDNN runs
    # the products on its gemm-based matmul (AVX2: dense rows of 2^k floats ran at half speed
    # there), dense where it has its brgemm matmul (AVX-512). Checks, in a process held to
    # `max_isa`, which layout each product ran on (oneDNN's verbose lines give the strides) and
    # that the passes still match oneDNN's direct kernels: a stride-2 F(4x4, 3x3) layer and a
    # stride-1 F(4x4, 5x5) one, both with channel tails (K, N not multiples of 16).
    cases = [WINOGRAD_LAYERS[2], WINOGRAD_LAYERS[12]]
    monkeypatch.setenv("WINO_CASES", json.dumps(cases))
    out = run_under_isa(WINO_ROWS_CODE, max_isa)
    errs = json.loads(next(line for line in out.splitlines() if line.startswith("ERRS"))[5:])
    for case in errs:
        assert all(e < 3e-5 for e in case), errs
    matmuls = [line.split(",") for line in out.splitlines() if line.startswith("onednn_verbose,exec,cpu,matmul")]
    assert matmuls
    for f in matmuls:
        impl, mds, shape = f[4], f[6].split(), f[-2]
        # Descriptors "src_f32::blocked:abc:<strides, when not dense>:f0"; problem "BxMxK:BxKxN".
        fields = [md.split(":") for md in mds]
        padded = [fl[4] != "" for fl in fields]
        if not impl.startswith("gemm"):
            assert not any(padded), f
            continue
        assert all(padded), f
        src_k = int(shape.split(":")[0].split("x")[2])
        if fields[0][3] == "abc":  # V or M as the source: rows of K + 16
            assert int(fields[0][4].split("x")[1]) == src_k + 16, f


def test_winograd_backward_weights_yields_to_a_named_path():
    # DCGAN_CPU_BWDW=gemm or native takes a Winograd layer's backward-weights; its forward and
    # backward-data stay Winograd. The weight gradient then equals that path's bit for bit
    # (it reads the same x and dy), while the output still differs from oneDNN's.
    layers, in_shape = WINOGRAD_LAYERS[0]
    for bwdw in ("gemm", "native"):
        p, y, dx, g = run_wino(None, layers, in_shape, bwdw=bwdw)
        p0, y0, dx0, g0 = run_wino("native", layers, in_shape, bwdw=bwdw)
        assert p == ("winograd", bwdw) and p0 == ("native", bwdw)
        np.testing.assert_array_equal(g["0.weight"], g0["0.weight"])
        assert not np.array_equal(y, y0)
        np.testing.assert_allclose(dx, dx0, rtol=0, atol=3e-5 * np.abs(dx0).max())


@pytest.mark.parametrize("case", [WINOGRAD_LAYERS[1], WINOGRAD_LAYERS[6]], ids=["convT_from_8x8", "conv_to_4x4"])
def test_winograd_weight_gradient_leaves_the_weights_intact(case):
    # The weight gradient's dU is computed into the transformed weights' buffer (U), which is
    # then rebuilt when next needed: a second backward and a forward after it, with no update
    # between, give the same bits as the first ones.
    layers, in_shape = case
    net = _core.Network(layers, in_shape, 3, seed=3)
    assert net.cpu_conv_algorithms()[0] == "winograd"
    rng = np.random.default_rng(0)
    x = rng.standard_normal([3] + in_shape).astype(np.float32)
    y = net.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    first = (net.backward(dy, need_d_input=True), net.get_grads())
    second = (net.backward(dy, need_d_input=True), net.get_grads())
    assert np.array_equal(first[0], second[0])
    assert all(np.array_equal(first[1][k], second[1][k]) for k in first[1])
    assert np.array_equal(net.forward(x), y)


def test_winograd_is_deterministic():
    # The same network and inputs twice give the same bits (the transforms give each element to
    # one thread, overlapping tiles are gathered in a fixed order); the transforms alone do not
    # depend on the thread count either, so 1 and 2 threads agree to the matrix products'
    # rounding.
    layers, in_shape = WINOGRAD_LAYERS[2]
    runs = [run_wino(None, layers, in_shape, threads=2) for _ in range(2)]
    for a, b in zip(runs[0][1:3], runs[1][1:3]):
        np.testing.assert_array_equal(a, b)
    for k in runs[0][3]:
        np.testing.assert_array_equal(runs[0][3][k], runs[1][3][k])
    one = run_wino(None, layers, in_shape, threads=1)
    np.testing.assert_allclose(one[1], runs[0][1], rtol=0, atol=1e-5 * np.abs(runs[0][1]).max())


def test_winograd_layers_are_reported_and_the_setting_validated():
    def algos(layers, in_shape, precision="fp32"):
        return _core.Network(layers, in_shape, 2, precision=precision).cpu_conv_algorithms()

    conv = dict(type="conv2d", out=128, kernel=5, stride=2, padding="same")
    convt = dict(type="conv_transpose2d", out=32, kernel=5, stride=2, padding="same")
    assert algos([conv, dict(type="relu"), dict(conv, out=256)], [32, 32, 32]) == ["winograd", None, "winograd"]
    assert algos([convt], [128, 8, 8]) == ["winograd"]
    assert algos([dict(conv, stride=1, out=256)], [256, 8, 8]) == ["winograd"]
    assert algos([dict(convt, stride=1, kernel=3, padding=1, out=128)], [128, 8, 8]) == ["winograd"]
    # 5x5 at stride 1 (F(4x4, 5x5)): from 64 channels and a 4x4 small side.
    assert algos([dict(convt, stride=1, out=128)], [256, 7, 7]) == ["winograd"]
    assert algos([dict(conv, stride=1, out=64)], [64, 4, 4]) == ["winograd"]
    # F(4x4, 3x3): small sides of 4 (one tile) and from 8; 7 where oneDNN dispatches to AVX2.
    assert algos([conv], [32, 8, 8]) == ["winograd"]
    assert algos([convt], [128, 4, 8]) == ["winograd"]
    on_avx2 = "winograd" if CPU_ISA.startswith("avx2") else "native"
    assert algos([conv], [32, 14, 14]) == [on_avx2]
    assert algos([convt], [128, 7, 8]) == [on_avx2]
    # Not eligible: at stride 2, small sides of 5 or 6 (and 7 off AVX2); at stride 1, a small
    # side under 4x4; too few channels in the products (a Conv2d's output, a ConvTranspose2d's
    # input, 128 at 3x3 and stride 2 after the phases, 64 for 5x5 at stride 1); stride 1 with a
    # 4x4 kernel or without padding; a 3x3 kernel with padding 0 at stride 2 (taps outside the
    # phase window); a 7x7 kernel.
    assert algos([conv], [32, 12, 12]) == ["native"]
    assert algos([convt], [128, 5, 8]) == ["native"]
    assert algos([dict(conv, out=120)], [32, 16, 16]) == ["native"]
    assert algos([conv], [16, 16, 16]) == ["native"]
    assert algos([convt], [64, 8, 8]) == ["native"]
    assert algos([dict(convt, out=16)], [128, 8, 8]) == ["native"]
    assert algos([dict(conv, stride=1, out=56)], [256, 8, 8]) == ["native"]
    assert algos([dict(convt, stride=1, out=128)], [60, 8, 8]) == ["native"]
    assert algos([dict(conv, stride=1, out=256)], [256, 3, 8]) == ["native"]
    assert algos([dict(conv, stride=1, kernel=3, padding=1, out=64)], [128, 8, 8]) == ["native"]
    assert algos([dict(conv, stride=1, kernel=4, padding=1)], [128, 8, 8]) == ["native"]
    assert algos([dict(conv, stride=1, padding=0, out=256)], [256, 12, 12]) == ["native"]
    assert algos([dict(conv, kernel=3, padding=0)], [32, 17, 17]) == ["native"]
    assert algos([dict(conv, kernel=7, padding=3)], [32, 16, 16]) == ["native"]
    with env_var("DCGAN_CPU_WINO", "native"):
        assert algos([convt], [128, 8, 8]) == ["native"]
    # "all" lifts the size rule only: any small side, but still not too few channels.
    with env_var("DCGAN_CPU_WINO", "all"):
        assert algos([conv], [32, 12, 12]) == ["winograd"]
        assert algos([dict(conv, stride=1, out=256)], [256, 3, 8]) == ["winograd"]
        assert algos([dict(conv, out=120)], [32, 16, 16]) == ["native"]
        assert algos([conv], [32, 12, 12], precision="bf16" if HAS_BF16 else "fp32") == [
            "native" if HAS_BF16 else "winograd"]
    with env_var("DCGAN_CPU_WINO", "fast"), pytest.raises(
            ValueError, match="DCGAN_CPU_WINO: expected 'auto', 'all' or 'native', got 'fast'"):
        _core.Network([convt], [128, 8, 8], 2)


@needs_bf16
def test_winograd_is_fp32_only():
    conv = dict(type="conv2d", out=128, kernel=5, stride=2, padding="same")
    assert _core.Network([conv], [32, 16, 16], 2).cpu_conv_algorithms() == ["winograd"]
    assert _core.Network([conv], [32, 16, 16], 2, precision="bf16").cpu_conv_algorithms() == ["native"]


@pytest.mark.parametrize("preset,image_shape,winograd_layers",
                         [("dcgan64", (3, 32, 32), 4), ("cifar10", (3, 32, 32), 6),
                          ("mnist", (1, 28, 28), 3 if CPU_ISA.startswith("avx2") else 1)])
def test_winograd_training_step_matches_onednn(preset, image_shape, winograd_layers):
    # Whole steps against oneDNN's kernels: the same losses and samples to the transforms'
    # rounding. dcgan64 at 32x32: G's 4->8 and 8->16 layers and D's 16->8 and 8->4 (stride 2);
    # cifar10: G's three 8x8 stride-1 layers (F(4x4, 5x5)) and its 8->16 layer, D's 16->8 and
    # 8->4; mnist: G's 7x7 stride-1 layer, and under AVX2 G's 7->14 and D's 14->7.
    def train(mode):
        with env_var("DCGAN_CPU_WINO", mode):
            cfg = dcgan.Config.preset(preset, image_shape=image_shape, batch_size=8, seed=3, threads=1)
            tr = dcgan.Trainer(cfg)
            g, d = cfg.layers()
            algos = (_core.Network(g, [cfg.z_dim], 8).cpu_conv_algorithms()
                     + _core.Network(d, list(cfg.image_shape), 8).cpu_conv_algorithms())
            first = tr.generate(4, seed=2)
            c, h, w = image_shape
            images = np.random.default_rng(0).integers(0, 256, (16, h, w, c), dtype=np.uint8)
            hist = tr.fit(images[..., 0] if c == 1 else images, steps=3, progress=False)
        return (algos.count("winograd"), np.array(hist["d_loss"] + hist["g_loss"]), first,
                tr.generate(4, seed=2))

    (cn, ln, fn, gn), (cw, lw, fw, gw) = train("native"), train(None)
    assert (cn, cw) == (0, winograd_layers)
    # The samples of the initial weights and the first D loss (forward passes only) to the
    # transforms' rounding (samples in [-1, 1]; measured up to 1e-5). Afterwards Adam moves
    # each weight by about lr (2e-4) whatever its gradient's size, so a gradient near zero that
    # rounds to the other sign moves it the other way, and the paths drift apart: losses by a
    # few 1e-3 after three steps, samples by a few 1e-3 on average and a few 1e-2 at single
    # pixels (dcgan64: 6.1e-3 and 0.05, its four Winograd layers against oneDNN's kernels;
    # oneDNN's kernels alone at 1 and 2 threads: 2.7e-3 and 0.023). A wrong pass (a misplaced
    # tap, a missing tile) differs by far more: the per-layer tests above bound each to 3e-5.
    np.testing.assert_allclose(fw, fn, rtol=0, atol=5e-5)
    np.testing.assert_allclose(lw[0], ln[0], rtol=1e-5)
    np.testing.assert_allclose(lw, ln, rtol=1e-2)
    assert np.abs(gw - gn).mean() < 1e-2 and np.abs(gw - gn).max() < 0.1


# ----------------------------------------------------------------------------- activation layout
def _train_with_layout(fmt, precision="fp32"):
    with env_var("DCGAN_CPU_ACT_FORMAT", fmt):
        tr = dcgan.Trainer(dcgan.Config.preset("mnist", batch_size=8, seed=3, g_width=16, d_width=16,
                                               threads=1, precision=precision))
        hist = tr.fit(np.random.default_rng(0).integers(0, 256, (32, 28, 28), dtype=np.uint8),
                      steps=3, progress=False)
        return np.array(hist["d_loss"] + hist["g_loss"]), tr.generate(4, seed=2)


def test_channels_last_layout_trains_like_the_default():
    # DCGAN_CPU_ACT_FORMAT=nhwc (every convolution channels-last) against oneDNN's own choice:
    # the same step within fp32 rounding, and a bad value is refused.
    (l_any, g_any), (l_nhwc, g_nhwc) = _train_with_layout("any"), _train_with_layout("nhwc")
    np.testing.assert_allclose(l_nhwc, l_any, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g_nhwc, g_any, atol=1e-4)
    with env_var("DCGAN_CPU_ACT_FORMAT", "nchw16c"), \
            pytest.raises(ValueError, match="DCGAN_CPU_ACT_FORMAT.*'auto', 'any' or 'nhwc'"):
        _core.Network([dict(type="conv2d", out=16, kernel=3)], [16, 4, 4], 2)


def test_automatic_layout_choice():
    # "auto" (the default): channels-last for networks without a stride-2 layer of 512+
    # channels. The layouts run different kernels, whose results differ in the last bits, so
    # bit equality tells which one ran.
    l_auto, _ = _train_with_layout(None)
    l_nhwc, _ = _train_with_layout("nhwc")
    l_any, _ = _train_with_layout("any")
    assert not np.array_equal(l_nhwc, l_any), "the test needs the two layouts to differ"
    np.testing.assert_array_equal(l_auto, l_nhwc)
    # A network with a 512-channel stride-2 layer keeps oneDNN's choice.
    layers = [dict(type="conv2d", out=512, kernel=3, stride=2, padding=1), dict(type="leaky_relu", slope=0.2),
              dict(type="conv2d", out=16, kernel=3, stride=1, padding=1)]
    x = np.random.default_rng(4).standard_normal((2, 16, 8, 8)).astype(np.float32)

    def grads(fmt):
        with env_var("DCGAN_CPU_ACT_FORMAT", fmt):
            net = _core.Network(layers, [16, 8, 8], 2, seed=1, threads=1)
        y = net.forward(x)
        net.backward(np.ones_like(y), need_d_input=True)
        return net.get_grads()
    g_auto, g_any, g_nhwc = grads(None), grads("any"), grads("nhwc")
    assert not _same_grads(g_any, g_nhwc), "the test needs the two layouts to differ"
    assert _same_grads(g_auto, g_any)


@needs_bf16
def test_automatic_layout_is_channels_last_in_bf16():
    l_auto, _ = _train_with_layout(None, "bf16")
    l_nhwc, _ = _train_with_layout("nhwc", "bf16")
    np.testing.assert_array_equal(l_auto, l_nhwc)
