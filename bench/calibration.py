#!/usr/bin/env python3
"""Calibration benchmark: trt-calib against onnxruntime's quantize_static on the same model and
samples (QDQ format, per-channel, symmetric INT8 activations and weights; Entropy and MinMax).

Each tool runs as a child process; wall time and peak resident memory (ru_maxrss) come from
the OS. Accuracy of both Q/DQ models against the FP32 model is measured with onnxruntime on
held-out samples (an independent runtime for both). Run through `cargo xtask bench`, which
builds the binaries and installs onnxruntime into .trt/bench-venv.

usage: calibration.py TRT_CALIB FIXTURE_DIR
"""
import json
import os
import subprocess
import sys
import time

import numpy as np


def samples(folder):
    for d in sorted(os.listdir(folder)):
        yield {"x": np.load(os.path.join(folder, d, "x.npy"))}


def ort_quantize(fixture, method, out):
    """Child process body: onnxruntime's quantize_static."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = samples(os.path.join(fixture, "data"))

        def get_next(self):
            return next(self.it, None)

    quantize_static(
        os.path.join(fixture, "model.onnx"), out, Reader(),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        calibrate_method={"entropy": CalibrationMethod.Entropy, "minmax": CalibrationMethod.MinMax}[method],
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )


def measure(cmd):
    """Runs one child; returns (wall seconds, that child's peak RSS in KiB) via wait4."""
    import tempfile
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            raise SystemExit(f"{cmd} failed:\n{log.read().decode(errors='replace')}")
    return wall, usage.ru_maxrss


def accuracy(fixture, qdq):
    import onnxruntime as ort
    ref = ort.InferenceSession(os.path.join(fixture, "model.onnx"), providers=["CPUExecutionProvider"])
    cand = ort.InferenceSession(qdq, providers=["CPUExecutionProvider"])
    a, b = [], []
    for s in samples(os.path.join(fixture, "held")):
        a.append(ref.run(None, s)[0].ravel())
        b.append(cand.run(None, s)[0].ravel())
    a, b = np.concatenate(a).astype(np.float64), np.concatenate(b).astype(np.float64)
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    snr = float(10 * np.log10((a @ a) / ((a - b) @ (a - b))))
    return {"cosine": cos, "snr_db": snr, "max_abs_error": float(np.abs(a - b).max())}


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--ort-child":
        fixture, method = sys.argv[2], sys.argv[3]
        ort_quantize(fixture, method, os.path.join(fixture, f"ort.{method}.onnx"))
        return
    trt_calib, fixture = sys.argv[1], sys.argv[2]
    results = []
    for method in ["minmax", "entropy"]:
        ours_out = os.path.join(fixture, f"ours.{method}.onnx")
        ours = measure([trt_calib, "quantize", "--model", os.path.join(fixture, "model.onnx"),
                        "--data", os.path.join(fixture, "data"), "--method", method,
                        "--hold-out-every", "0", "--out", ours_out])
        peer = measure([sys.executable, __file__, "--ort-child", fixture, method])
        results.append({
            "method": method,
            "trt_calib": {"seconds": ours[0], "peak_rss_kib": ours[1], **accuracy(fixture, ours_out)},
            "onnxruntime": {"seconds": peer[0], "peak_rss_kib": peer[1],
                            **accuracy(fixture, os.path.join(fixture, f"ort.{method}.onnx"))},
        })
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
