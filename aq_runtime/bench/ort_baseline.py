"""ONNX Runtime baselines of the same float model: fp32 and static int8 (QDQ, per-channel
weights, uint8 activations, min/max calibration on the same calibration images)."""

from __future__ import annotations

import os
import tempfile

import numpy as np

from ..export.float_graph import FloatGraph


def export_onnx(module, fg: FloatGraph, path: str) -> None:
    import torch

    c, h, w = fg.input_shape
    torch.onnx.export(module.eval(), torch.zeros(1, c, h, w), path, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
                      opset_version=17, dynamo=False)


def ort_int8(module, fg: FloatGraph, calib: np.ndarray, workdir: str | None = None
             ) -> tuple[str, str]:
    """(fp32 .onnx path, int8 QDQ .onnx path) for `module`, calibrated on `calib` images."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from ..export.float_exec import normalize_input

    d = workdir or tempfile.mkdtemp(prefix="aq-ort-")
    fp32, int8 = os.path.join(d, "model_fp32.onnx"), os.path.join(d, "model_int8.onnx")
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
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    return fp32, int8


def ort_logits(path: str, fg: FloatGraph, images: np.ndarray, batch: int = 32) -> np.ndarray:
    import onnxruntime as ort

    from ..export.float_exec import normalize_input

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, {"x": normalize_input(images[i:i + batch], fg).numpy()})[0]
                           for i in range(0, len(images), batch)]).astype(np.float64)
