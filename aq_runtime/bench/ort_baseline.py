"""ONNX Runtime baselines of the same float model: fp32 and static int8 (QDQ, per-channel
weights, uint8 activations, min/max calibration on the same calibration images).

ONNX Runtime's int8 is CPU-dependent: its default (int8 weights, "s8") multiplies u8 x s8 with
`vpdpbusd` on AVX-512 VNNI / AVX-VNNI CPUs, exact, but with `vpmaddubsw` on AVX2-only CPUs,
whose int16 pair sums saturate (5.7 dB on Lite0 on an AVX2-only EPYC; its docs: use 7-bit
weights, `reduce_range`, or uint8 weights, "u8u8", there; both cost fidelity themselves:
benchmarks/results/fidelity_lite0.txt). Run with graph optimizations off, ONNX Runtime executes
the same QDQ model as DequantizeLinear + float ops: the recipe without the CPU's integer
kernels, the same on every CPU; tests compare with that, and the default is reported as it runs
on the CPU at hand."""

from __future__ import annotations

import os
import tempfile

import numpy as np

from ..ir.float_graph import FloatGraph


def export_onnx(module, fg: FloatGraph, path: str) -> None:
    import torch

    c, h, w = fg.input_shape
    torch.onnx.export(module.eval(), torch.zeros(1, c, h, w), path, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
                      opset_version=17, dynamo=False)


ORT_CONFIGS = ("s8", "u8u8", "reduce_range")  # weights int8 (default) / uint8 / int8 in 7 bits


def int8_file(config: str) -> str:
    """The file name `ort_int8` gives the QDQ model of `config` in its folder."""
    return "model_int8.onnx" if config == "s8" else f"model_int8_{config}.onnx"


def ort_int8(module, fg: FloatGraph, calib: np.ndarray, workdir: str | None = None,
             config: str = "s8", fp32: str | None = None) -> tuple[str, str]:
    """(fp32 .onnx path, int8 QDQ .onnx path) for `module`, calibrated on `calib` images, in
    one of ORT_CONFIGS; `fp32`: the module's float .onnx from an earlier call, quantized
    again instead of exported again."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from ..export.float_exec import normalize_input

    if config not in ORT_CONFIGS:
        raise ValueError(f"unknown ONNX Runtime int8 configuration {config!r}")
    d = workdir or tempfile.mkdtemp(prefix="aq-ort-")
    int8 = os.path.join(d, int8_file(config))
    if fp32 is None:
        fp32 = os.path.join(d, "model_fp32.onnx")
        export_onnx(module, fg, fp32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.i = 0

        def get_next(self):
            if self.i >= len(calib):
                return None
            self.i += 1
            return {"x": normalize_input(calib[self.i - 1:self.i], fg).numpy()}

    quantize_static(fp32, int8, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QUInt8 if config == "u8u8" else QuantType.QInt8,
                    reduce_range=config == "reduce_range",
                    calibrate_method=CalibrationMethod.MinMax)
    return fp32, int8


def ort_logits(path: str, fg: FloatGraph, images: np.ndarray, batch: int = 32,
               optimize: bool = True) -> np.ndarray:
    """ONNX Runtime's logits; `optimize=False` runs QDQ models as DequantizeLinear + float ops
    (no fused integer kernels: CPU-independent)."""
    import onnxruntime as ort

    from ..export.float_exec import normalize_input

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, {"x": normalize_input(images[i:i + batch], fg).numpy()})[0]
                           for i in range(0, len(images), batch)]).astype(np.float64)
