"""Profile chinwag under the turn benchmark's load: `python -m bench.profile_turns`.

Starts chinwag as `turn_overhead` does (its settings, 50 API-key users), drives one-token
turns from 50 connections in a closed loop, and samples the server with py-spy meanwhile.
Writes `bench/profiles/turns-50conn-COMMIT.svg` (a flame graph, committed with the change
it informed) and `...-COMMIT.txt` (the collapsed stacks, and the functions with the most
samples of their own, for reading without a browser).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from bench.harness import Context, Layout, bench_tmp, chinwag_server
from bench.turn_overhead import closed_loop, open_chinwag

PROFILES = Path(__file__).with_name("profiles")


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    PROFILES.mkdir(exist_ok=True)
    stem = PROFILES / f"turns-{args.connections}conn-{commit()}"
    with bench_tmp() as tmp:
        ctx = Context(quick=False, layout=Layout.detect(), tmp=tmp)
        ctx.layout.pin_self()
        with chinwag_server(ctx, "chinwag", users=args.connections) as server:
            raw = stem.with_suffix(".raw")
            spies = [
                subprocess.Popen([py_spy, "record", "--pid", str(server.pid), "--duration", str(int(args.seconds)),
                                  "--rate", "200", "--gil", "--format", fmt, "--output", str(out), "--nonblocking"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for fmt, out in (("flamegraph", stem.with_suffix(".svg")), ("raw", raw))
            ]

            async def load() -> dict:
                clients = await asyncio.gather(*(open_chinwag(server, i, f"p-{i}") for i in range(args.connections)))
                try:
                    return await closed_loop(clients, turns=1_000_000, seconds=args.seconds, warmup=3)
                finally:
                    for client in clients:
                        client.conn.abort()

            result: dict = {}
            runner = threading.Thread(target=lambda: result.update(asyncio.run(load())))
            runner.start()
            runner.join()
            for spy in spies:
                spy.wait(args.seconds + 30)
    print(f"{result.get('per_s', 0):.0f} turns/s, p50 {result.get('p50_ms', 0):.2f} ms over the profile")
    summary = _summary(raw.read_text())
    stem.with_suffix(".txt").write_text(summary)
    raw.unlink()
    print(summary[:3000])
    print(f"wrote {stem.with_suffix('.svg')} and {stem.with_suffix('.txt')}")
    return 0


def _summary(collapsed: str) -> str:
    """Functions by samples of their own and by samples under them (inclusive)."""
    own: collections.Counter[str] = collections.Counter()
    under: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            under[frame] += n
    lines = [f"{total} samples", "", "own time:"]
    lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(40)]
    lines += ["", "inclusive:"]
    lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in under.most_common(80)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
