#!/usr/bin/env python3
"""Calibration's two CPU engines side by side: tract (pure Rust, the default) and onnxruntime
(through `ort`'s dynamic loading), on every corpus model, in one run.

For each model: `trt-calib quantize --method entropy --engine tract|onnxruntime` as its own
child process under GNU time (wall time, peak RSS), then the task metric of the Q/DQ model on
the held-out samples (onnxruntime in Python, independent of our code). A model tract cannot run
is a `no` for tract with the reason: that is where the automatic choice moves it to onnxruntime.

usage: engines_bench.py TRT_CALIB CORPUS_DIR OUT_JSON [MODEL ...]
"""
import json
import os
import sys
import tempfile

from corpus_bench import evaluate, measure

ENGINES = ["tract", "onnxruntime"]


def main():
    trt_calib, corpus, out_json = sys.argv[1:4]
    only = set(sys.argv[4:])
    listing = json.load(open(os.path.join(corpus, "corpus.json")))
    results = json.load(open(out_json)) if os.path.exists(out_json) else {}
    work = tempfile.mkdtemp(prefix="engines-bench-")
    for info in listing:
        name = info["name"]
        if only and name not in only:
            continue
        row = {"metric": info["metric"]}
        for engine in ENGINES:
            out = os.path.join(work, f"{name}.{engine}.onnx")
            cmd = [trt_calib, "quantize", "--model", os.path.join(corpus, info["model"]),
                   "--data", os.path.join(corpus, info["calib"]), "--out", out,
                   "--method", "entropy", "--hold-out-every", "0", "--engine", engine]
            for p in info["profiles"][0]:
                cmd += ["--profile", p]
            for c in info.get("constants", []):
                cmd += ["--constant", c]
            r = measure(cmd)
            r.pop("stdout", None)
            if r["ok"]:
                r["metric"] = evaluate(info, corpus, out)
            else:
                r["log"] = r["log"].strip().splitlines()[-1][:300] if r["log"].strip() else ""
            row[engine] = r
            print(name, engine, r, flush=True)
        results[name] = row
        with open(out_json, "w") as f:
            json.dump(results, f, indent=1)
    print("| model | task metric | tract: s / peak MiB / metric | onnxruntime: s / peak MiB / metric |")
    print("|---|---|---|---|")
    for name, row in results.items():
        cells = []
        for engine in ENGINES:
            r = row[engine]
            if r["ok"]:
                m = r["metric"]
                m = f"{m:.4f}" if isinstance(m, float) else str(m)
                cells.append(f"{r['seconds']} / {r['peak_rss_mib']} / {m}")
            else:
                cells.append(f"no ({r['log'][:80]})")
        print(f"| {name} | {row['metric']} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
