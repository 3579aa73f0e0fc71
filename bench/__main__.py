"""`python -m bench [--quick] [--only NAME]`: run the benchmarks, write bench/results/."""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import time

from bench.harness import REPO, RESULTS, Context, Layout, Row, bench_tmp, raise_nofile

BENCHMARKS = (
    "turn_overhead", "token_relay", "idle", "store", "gateway_overhead", "frame_checks", "scale_out", "peers",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs and connections (under 2 minutes)")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    nofile = raise_nofile()
    layout = Layout.detect()
    layout.pin_self()
    print(f"chinwag bench ({'quick' if args.quick else 'full'}): {layout.describe()}; RLIMIT_NOFILE {nofile}", flush=True)
    began = time.monotonic()
    rows: list[Row] = []
    timings: dict[str, float] = {}
    with bench_tmp() as tmp:
        ctx = Context(quick=args.quick, layout=layout, tmp=tmp)
        for name in args.only or BENCHMARKS:
            print(f"== {name}", flush=True)
            started = time.monotonic()
            rows += importlib.import_module(f"bench.{name}").run(ctx)
            timings[name] = round(time.monotonic() - started, 1)
            print(f"   ({timings[name]} s)", flush=True)
    meta = _meta(args.quick, layout, nofile, time.monotonic() - began, timings, ctx.notes)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps({"meta": meta, "rows": [r.as_dict() for r in rows]}, indent=2))
    table = markdown(rows, meta)
    (RESULTS / "latest.md").write_text(table)
    print()
    print(table)
    return 0


def _meta(quick: bool, layout: Layout, nofile: int, seconds: float, timings: dict[str, float],
          notes: list[str]) -> dict:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "?")
    return {
        "mode": "quick" if quick else "full",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no", "server")),
        "machine": f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "layout": layout.describe(),
        "rlimit_nofile": nofile,
        "seconds": round(seconds, 1),
        "timings": timings,
        "notes": notes,
    }


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def markdown(rows: list[Row], meta: dict) -> str:
    lines = [
        (f"chinwag bench, {meta['mode']} run, {meta['date']}, commit {meta['commit']}"
        f"{' (server/ with uncommitted changes)' if meta['dirty'] else ''}; {meta['machine']};"
        f" Python {meta['python']}; {meta['layout']}; {meta['seconds']} s."),
        "Each figure: the median of alternating baseline/subject runs (runs column); ratio = chinwag / baseline.",
        "",
        "| benchmark | metric | chinwag | baseline | ratio | target | runs | note |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for row in rows:
        unit = f" {row.unit}" if row.unit != "/s" else "/s"
        lines.append(
            f"| {row.benchmark} | {row.metric} | {_fmt(row.subject)}{unit} | {_fmt(row.baseline)}{unit} |"
            f" {row.ratio:.3g} | {row.target} | {row.runs} | {row.note} |"
        )
    if meta["notes"]:
        lines += ["", *[f"- {note}" for note in meta["notes"]]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
