#!/usr/bin/env python3
"""Real-model benchmark: trt-calib against onnxruntime's quantize_static on every corpus model.

For each model of the corpus (`cargo xtask corpus`), in one run:
- ours: `trt-calib quantize` with minmax, percentile:99.99, entropy, mse, auto (choice on the
  held-out samples) and auto with an accuracy target (min cosine 0.99);
- the peer: `quantize_static(QDQ, per_channel=True, QInt8 activations and weights, symmetric)`
  with MinMax, Entropy and Percentile (its histogram calibrators);
each as its own child process under GNU time (wall time, peak RSS). Then, for every Q/DQ model,
the task metric against the FP32 model on the held-out samples, computed by onnxruntime
(independent of our code) twice: with its default optimizations (Q/DQ fused into its integer
kernels) and with them off (Q/DQ as the operators define them), and whether TensorRT-RTX builds an engine from it.

usage: corpus_bench.py TRT_CALIB BUILD_ENGINE CORPUS_DIR OUT_JSON [MODEL ...]
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

OURS = ["minmax", "percentile:99.99", "entropy", "mse", "auto", "auto+task", "auto+target"]
# The accuracy target of the "auto+target" run (cosine of every output on held-out samples).
TARGET_COSINE = "0.99"
PEER = ["MinMax", "Entropy", "Percentile"]


def samples(folder):
    for d in sorted(os.listdir(folder)):
        p = os.path.join(folder, d)
        yield {f[:-4]: np.load(os.path.join(p, f)) for f in sorted(os.listdir(p)) if f.endswith(".npy")}


def measure(cmd, timeout=1800):
    """Runs `cmd` under GNU time and returns its wall time and peak RSS. Not wait4 on a child
    of this process: Linux folds the memory high-water mark of the forked parent (this Python,
    with onnxruntime loaded) into the child's ru_maxrss at exec, which inflates small tools."""
    with tempfile.TemporaryFile() as log, tempfile.NamedTemporaryFile(mode="r") as rss:
        start = time.perf_counter()
        # A run past `timeout` is killed and recorded as failed (the log says so); the models
        # after it still run.
        child = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss.name] + cmd, stdout=log, stderr=log, start_new_session=True)
        try:
            code = child.wait(timeout=timeout)
            timed_out = ""
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, 9)
            code = child.wait()
            timed_out = f"\n(killed: no result within the bench's limit of {timeout} s)"
        wall = time.perf_counter() - start
        log.seek(0)
        text = log.read().decode(errors="replace") + timed_out
        lines = [l for l in rss.read().split() if l.isdigit()]
        kib = int(lines[-1]) if lines else 0
    return {"ok": code == 0, "seconds": round(wall, 2), "peak_rss_mib": round(kib / 1024, 1),
            "log": text[-800:] if code else "", "stdout": text}


def peer_child(model, calib, method, out):
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = samples(calib)

        def get_next(self):
            return next(self.it, None)

    quantize_static(
        model, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        calibrate_method=getattr(CalibrationMethod, method),
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )


def session(path, exact=False):
    """An onnxruntime session; `exact` turns its graph optimizations off, so Q/DQ pairs run as
    the ONNX operators define them (float arithmetic on quantized values) instead of being fused
    into onnxruntime's own integer kernels."""
    import onnxruntime as ort
    o = ort.SessionOptions()
    o.log_severity_level = 3
    if exact:
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def ctc(seq):
    out, prev = [], None
    for t in seq:
        if t != prev and t != 0:
            out.append(int(t))
        prev = t
    return out


def metric(kind, a, b):
    """Task metric of the INT8 outputs `b` against FP32 `a` (lists of arrays, one per sample)."""
    if kind == "top1":
        x = np.concatenate([v.reshape(-1, v.shape[-1]).argmax(-1) for v in a])
        y = np.concatenate([v.reshape(-1, v.shape[-1]).argmax(-1) for v in b])
        return float((x == y).mean())
    if kind == "iou":
        inter = sum(float(((u > 0.3) & (v > 0.3)).sum()) for u, v in zip(a, b))
        union = sum(float(((u > 0.3) | (v > 0.3)).sum()) for u, v in zip(a, b))
        return inter / union if union else 1.0
    if kind == "ctc":
        def rows(v):
            idx = v if v.dtype.kind in "iu" else v.argmax(-1)
            return [ctc(r) for r in idx.reshape(-1, idx.shape[-1])]
        pairs = [(p, q) for u, v in zip(a, b) for p, q in zip(rows(u), rows(v))]
        return float(np.mean([p == q for p, q in pairs]))
    if kind == "decision":
        x = np.concatenate([v.ravel() > 0.5 for v in a])
        y = np.concatenate([v.ravel() > 0.5 for v in b])
        return float((x == y).mean())
    x = np.concatenate([v.ravel() for v in a]).astype(np.float64)
    y = np.concatenate([v.ravel() for v in b]).astype(np.float64)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def evaluate(info, corpus, qdq, exact=False):
    ref = session(os.path.join(corpus, info["model"]))
    cand = session(qdq, exact)
    k = info["metric_output"]
    a, b = [], []
    # Inputs bound as constants (`--constant`) are gone from the Q/DQ model, not the FP32 one.
    types = {i.name: i.type for i in ref.get_inputs()}
    constants = {}
    for c in info.get("constants", []):
        name, value = c.split("=")
        constants[name] = np.array(value, dtype=np.int64 if "int" in types[name] else np.float32)
    for s in samples(os.path.join(corpus, info["held_out"])):
        a.append(ref.run(None, {**s, **constants})[k])
        b.append(cand.run(None, s)[k])
    return round(metric(info["metric"], a, b), 4)


def auto_metric(info):
    """The model's task metric as `trt-calib --auto-metric` spells it."""
    k = info["metric_output"]
    return {"top1": f"top1:{k}", "iou": f"iou:{k}:0.3", "ctc": f"ctc:{k}",
            "decision": f"decision:{k}:0.5"}.get(info["metric"], "cosine")


def main():
    if sys.argv[1] == "--peer-child":
        peer_child(*sys.argv[2:6])
        return
    trt_calib, build_engine, corpus, out_json = sys.argv[1:5]
    only = set(sys.argv[5:])
    listing = json.load(open(os.path.join(corpus, "corpus.json")))
    results = json.load(open(out_json)) if os.path.exists(out_json) else {}
    work = tempfile.mkdtemp(prefix="corpus-bench-")
    for info in listing:
        name = info["name"]
        if only and name not in only:
            continue
        model = os.path.join(corpus, info["model"])
        calib = os.path.join(corpus, info["calib"])
        held = os.path.join(corpus, info["held_out"])
        profiles = [p for p in info["profiles"][0]]
        row = {"metric": info["metric"], "ours": {}, "peer": {}}
        for m in OURS:
            out = os.path.join(work, f"{name}.ours.{m.replace(':', '_')}.onnx")
            cmd = [trt_calib, "quantize", "--model", model, "--data", calib, "--out", out]
            if m.startswith("auto"):
                # Auto chooses on the held-out samples; the target searches on them too.
                cmd += ["--method", "auto", "--report-data", held]
                if m == "auto+target":
                    cmd += ["--min-cosine", TARGET_COSINE, "--max-float-share", "0.5"]
                if m == "auto+task":
                    # Auto ranking the candidates by the model's own task metric.
                    cmd += ["--auto-metric", auto_metric(info)]
            else:
                cmd += ["--method", m, "--hold-out-every", "0"]
            for p in profiles:
                cmd += ["--profile", p]
            for c in info.get("constants", []):
                cmd += ["--constant", c]
            r = measure(cmd)
            if m.startswith("auto") and r["ok"]:
                lines = r.pop("stdout", "").splitlines()
                start = next((i for i, l in enumerate(lines) if l.startswith("method choice")), len(lines))
                r["choice"] = [l for l in lines[start:] if l.startswith("  ") or "chosen" in l or "kept" in l or "target" in l or l.startswith("method choice")][:40]
            if r["ok"]:
                r["metric"] = evaluate(info, corpus, out)
                r["metric_exact"] = evaluate(info, corpus, out, exact=True)
                r["engine"] = measure([build_engine, out] + profiles)["ok"]
            r.pop("stdout", None)
            row["ours"][m] = r
            r.pop("stdout", None)
            print(name, "ours", m, {k: v for k, v in r.items() if k != "log"}, flush=True)
        for m in PEER:
            out = os.path.join(work, f"{name}.peer.{m}.onnx")
            if info.get("constants"):
                # The peer cannot bind an input; its calibration data would need the value.
                row["peer"][m] = {"ok": False, "seconds": 0, "peak_rss_mib": 0, "log": "quantize_static cannot bind a constant input"}
                continue
            r = measure([sys.executable, __file__, "--peer-child", model, calib, m, out])
            r.pop("stdout", None)
            if r["ok"]:
                try:
                    r["metric"] = evaluate(info, corpus, out)
                    r["metric_exact"] = evaluate(info, corpus, out, exact=True)
                except Exception as e:  # the peer's model may not run
                    r["metric"] = None
                    r["log"] = str(e)[-400:]
                r["engine"] = measure([build_engine, out] + profiles)["ok"]
            row["peer"][m] = r
            print(name, "peer", m, {k: v for k, v in r.items() if k != "log"}, flush=True)
        results[name] = row
        with open(out_json, "w") as f:
            json.dump(results, f, indent=1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
