"""Before/after for benchmarks/ui_latency.py in one sitting: interleaved runs of an older checkout
and this one, per-row medians side by side (the machine's speed drifts between minutes, so the
two are measured alternately, not one after the other).

    git worktree add /tmp/before <commit>
    python benchmarks/ui_latency_ab.py /tmp/before [--runs 4] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLUMNS = ("changes", "head p50", "p95", "max", "summary", "stall", "paints", "paint p50", "paint max")


def run_once(pythonpath: str | None, quick: bool) -> dict[str, list[float]]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    cmd = [sys.executable, str(HERE / "ui_latency.py")] + (["--quick"] if quick else [])
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=HERE)
    if out.returncode != 0:
        raise SystemExit(f"ui_latency.py failed ({pythonpath or 'this checkout'}): {out.stderr[-2000:]}")
    rows, inside = {}, False
    for line in out.stdout.splitlines():
        if line.startswith("-----"):
            inside = True
            continue
        if inside and not line.strip():
            break
        if inside:
            name, values = line[:44].strip(), line[44:].replace("s ", " ").split()
            rows[name] = [float(v.rstrip("s")) for v in values]
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", help="the older checkout (its directory holds the densegui package)")
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    before: list[dict] = []
    after: list[dict] = []
    for i in range(args.runs):
        before.append(run_once(os.path.abspath(args.before), args.quick))
        after.append(run_once(None, args.quick))
        print(f"run {i + 1}/{args.runs} done", file=sys.stderr)
    print(f"medians of {args.runs} interleaved runs; before = {args.before}, after = this checkout")
    print(f"{'sweep':44} {'stall ms':>15} {'head p50 ms':>15} {'head max ms':>15} {'paint p50 ms':>15} {'summary s':>13}")
    for name in after[0]:
        def med(runs, col, fmt):  # "—": a row one side does not have (a sweep added since)
            values = [r[name][COLUMNS.index(col)] for r in runs if name in r]
            return fmt.format(statistics.median(values)) if values else "—"
        cells = []
        for col, fmt in (("stall", "{:.1f}"), ("head p50", "{:.1f}"), ("max", "{:.1f}"), ("paint p50", "{:.1f}"),
                         ("summary", "{:.2f}")):
            cells.append(f"{med(before, col, fmt)} / {med(after, col, fmt)}")
        print(f"{name:44} " + " ".join(f"{c:>15}" for c in cells[:4]) + f" {cells[4]:>13}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
