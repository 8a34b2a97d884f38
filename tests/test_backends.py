"""The backend registry (issue 7): backends listed with versions, picked by Config.device, clear
errors for a device that is not built; the layer-kind table the core and Python share; the step's
statistics coming back from backend memory once per chunk."""
from __future__ import annotations

import numpy as np
import pytest

import dcgan
from dcgan import _core
from dcgan.models import layer, layer_kinds


def tiny(**kw) -> dcgan.Config:
    return dcgan.Config.mnist(batch_size=8, z_dim=8, g_width=4, d_width=4, seed=3, **kw)


def test_backends_lists_cpu_with_onednn_version_and_isa():
    bs = dcgan.backends()
    names = [b["name"] for b in bs]
    assert names[0] == "cpu" and len(set(names)) == len(names)
    cpu = bs[0]
    assert cpu["available"] and cpu["unavailable_reason"] == ""
    assert cpu["library"] == f"oneDNN {dcgan.onednn_version}"
    major, minor, patch = (int(v) for v in dcgan.onednn_version.split("."))
    assert (major, minor) >= (3, 1)
    # the ISA oneDNN dispatches to on this machine, e.g. avx512_core_bf16 or avx2
    assert cpu["detail"] and cpu["detail"] != "default", cpu


def test_device_picks_the_backend():
    tr = dcgan.Trainer(tiny(device="cpu"))
    assert tr._core.device == "cpu"
    assert tiny().device == "cpu"


def test_cuda_not_built_says_how_to_build_it():
    if any(b["name"] == "cuda" for b in dcgan.backends()):
        pytest.skip("this build has the CUDA backend")
    with pytest.raises(ValueError, match=r"device 'cuda' is not built.*available: cpu.*DCGAN_CUDA=ON"):
        dcgan.Trainer(tiny(device="cuda"))


def test_unknown_device_lists_the_available_ones():
    with pytest.raises(ValueError, match=r"unknown device 'tpu'; available: cpu"):
        dcgan.Trainer(tiny(device="tpu"))
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        _core.Network([{"type": "relu"}], [3], 1, device="gpu")
    with pytest.raises(ValueError, match="device must be a backend name"):
        dcgan.Trainer(tiny(device=""))


def test_device_is_saved_and_can_change_on_load(tmp_path):
    tr = dcgan.Trainer(tiny())
    p = tr.save(tmp_path / "run")
    back = dcgan.Trainer.load(p, cfg=tiny(device="cpu"))
    assert back.cfg.device == "cpu"


# ----------------------------------------------------------------------------- layer-kind table
def test_layer_kind_table_is_the_cores():
    kinds = layer_kinds()
    assert set(kinds) == {"dense", "conv2d", "conv_transpose2d", "batchnorm", "relu", "leaky_relu",
                          "tanh", "sigmoid", "dropout", "reshape", "flatten"}
    assert set(kinds["conv_transpose2d"]["fields"]) >= {"out", "kernel", "stride", "padding", "output_padding"}
    assert "output_padding" not in kinds["conv2d"]["fields"]
    assert kinds["dense"]["has_params"] and not kinds["relu"]["has_params"]
    assert kinds["dense"]["fields"]["out"]["default"] == "required"
    assert kinds["leaky_relu"]["fields"]["slope"]["default"] == "0.01"


def test_python_builder_checks_fields_against_the_table():
    assert layer("conv2d", out=4, kernel=3) == {"type": "conv2d", "out": 4, "kernel": 3}
    with pytest.raises(ValueError, match="layer 'dense' has no field 'kernel'; it takes out, bias, init, init_std"):
        layer("dense", out=3, kernel=3)
    with pytest.raises(ValueError, match="unknown layer type 'convolution'"):
        layer("convolution")


def test_core_parser_checks_fields_against_the_table():
    with pytest.raises(ValueError, match=r"layer 0 \(dense\): unknown field 'kernel'; dense takes out, bias"):
        _core.Network([{"type": "dense", "out": 3, "kernel": 3}], [4], 1)
    with pytest.raises(ValueError, match=r"layer 0 \(dense\): field 'out' must be int, got str"):
        _core.Network([{"type": "dense", "out": "3"}], [4], 1)
    with pytest.raises(ValueError, match=r"layer 0 \(dense\): needs the field 'out'"):
        _core.Network([{"type": "dense"}], [4], 1)
    with pytest.raises(ValueError, match=r"layer 1 \(relu\): unknown field 'slope'; relu takes no fields"):
        _core.Network([{"type": "leaky_relu", "slope": 0.2}, {"type": "relu", "slope": 0.2}], [4], 1)
    with pytest.raises(ValueError, match=r"field 'bias' must be bool, got int"):
        _core.Network([{"type": "dense", "out": 2, "bias": 1}], [4], 1)
    # NumPy scalars are numbers like any other
    net = _core.Network([{"type": "dense", "out": np.int64(2), "init_std": np.float32(0.1)}], [4], 1)
    assert net.describe()[0]["out_shape"] == (2,)


# ----------------------------------------------------------------------------- statistics per chunk
def test_run_statistics_equal_one_step_at_a_time():
    """run(k) gathers k steps' statistics in backend memory and downloads them once; the
    numbers are those of k single runs, including across the 256-step chunk of the buffer."""
    x = np.random.default_rng(0).integers(0, 256, (64, 28, 28), dtype=np.uint8)
    a, b = dcgan.Trainer(tiny()), dcgan.Trainer(tiny())
    a.fit(x, steps=300, progress=False)
    for _ in range(300):
        b.fit(x, steps=1, progress=False)
    assert a.history == b.history
    assert len(a.history["d_loss"]) == 300
    h = np.array([a.history[k] for k in ("d_loss", "g_loss", "d_real", "d_fake")])
    assert np.isfinite(h).all() and (h[2:] > 0).all() and (h[2:] < 1).all()
