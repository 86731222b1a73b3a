#!/usr/bin/env python3
"""Turns target/corpus-bench.json (from `cargo xtask bench corpus`) into the Markdown tables of
BENCHMARKS.md: one row per model and tool/method, then the targets per model.

usage: corpus_table.py CORPUS_BENCH_JSON
"""
import json
import sys


def fmt(v, digits=4):
    return "-" if v is None else f"{v:.{digits}f}"


def main():
    results = json.load(open(sys.argv[1]))
    print("| model | metric | tool | method | calibrates | time (s) | peak RSS (MiB) | metric value | metric value, Q/DQ exact | INT8 engine builds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, row in results.items():
        for tool in ("ours", "peer"):
            for method, r in row[tool].items():
                print(f"| {name} | {row['metric']} | {'trt-calib' if tool == 'ours' else 'onnxruntime'} | {method} | "
                      f"{'yes' if r['ok'] else 'no'} | {r['seconds']} | {r['peak_rss_mib']} | {fmt(r.get('metric'))} | {fmt(r.get('metric_exact'))} | "
                      f"{'-' if not r['ok'] else ('yes' if r.get('engine') else 'no')} |")
    print()
    print("| model | our best fixed method | Auto (mean SNR) | Auto (task metric) | Auto ≥ best fixed (task metric) | Auto + target (cosine ≥ 0.99) | peer's best | best ≥ peer's | Q/DQ exact: our best vs peer's best | our entropy time vs peer histogram time | our percentile run's peak RSS vs ¼ of the peer's (floor 64 MiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, row in results.items():
        ours = {m: r for m, r in row["ours"].items() if r["ok"] and r.get("metric") is not None}
        fixed = {m: r for m, r in ours.items() if not m.startswith("auto")}
        peer = {m: r for m, r in row["peer"].items() if r["ok"] and r.get("metric") is not None}
        best = max(fixed.items(), key=lambda kv: kv[1]["metric"], default=(None, None))
        pbest = max(peer.items(), key=lambda kv: kv[1]["metric"], default=(None, None))
        auto = ours.get("auto")
        target = ours.get("auto+target")
        task = ours.get("auto+task")
        task_ge = "-" if not (task and best[1]) else ("yes" if task["metric"] >= best[1]["metric"] - 1e-9 else "no")
        ours_best = max([r["metric"] for r in ours.values()], default=None)
        ge = "-" if ours_best is None or pbest[1] is None else ("yes" if ours_best >= pbest[1]["metric"] else "no")
        if pbest[1] is None:
            ge = "yes (peer has none)" if ours_best is not None else "-"
        ex = lambda rs: max((r["metric_exact"] for r in rs.values() if r["ok"] and r.get("metric_exact") is not None), default=None)
        eo, ep = ex(row["ours"]), ex(row["peer"])
        exact = "-" if eo is None else f"{eo:.4f} vs " + ("none" if ep is None else f"{ep:.4f}: {'yes' if eo >= ep else 'no'}")
        ent = row["ours"].get("entropy")
        hist = [r for m, r in row["peer"].items() if m in ("Entropy", "Percentile") and r["ok"]]
        tcmp = "-"
        pct = row["peer"].get("Percentile")
        if pct and pct["seconds"] == 0 and ent and ent["ok"]:
            tcmp = f"{ent['seconds']} vs peer not run"
        elif ent and ent["ok"] and hist:
            h = min(r["seconds"] for r in hist)
            tcmp = f"{ent['seconds']} vs {h}: {'met' if ent['seconds'] <= max(h, 1.0) else 'missed'}"
        elif ent and ent["ok"]:
            tcmp = f"{ent['seconds']} vs peer failed"
        # Like for like: our percentile run against the peer's.
        mine = row["ours"].get("percentile:99.99")
        rss = mine["peak_rss_mib"] if mine and mine["ok"] else None
        rcmp = "-"
        if pct and rss is not None and pct["seconds"] == 0:
            rcmp = f"{rss} vs the 64 MiB floor (peer not run): {'met' if rss <= 64 else 'missed'}"
        elif pct and rss is not None:
            limit = max(pct["peak_rss_mib"] / 4, 64)
            rcmp = f"{rss} vs {limit:.0f}{'' if pct['ok'] else ' (peer failed at ' + str(pct['peak_rss_mib']) + ')'}: {'met' if rss <= limit else 'missed'}"
        print(f"| {name} | {best[0]} {fmt(best[1]['metric']) if best[1] else '-'} | {fmt(auto['metric']) if auto else '-'} | "
              f"{fmt(task['metric']) if task else '-'} | {task_ge} | "
              f"{fmt(target['metric']) if target else 'failed' if row['ours'].get('auto+target') else '-'} | "
              f"{(pbest[0] + ' ' + fmt(pbest[1]['metric'])) if pbest[1] else 'none ran'} | {ge} | {exact} | {tcmp} | {rcmp} |")


if __name__ == "__main__":
    main()
