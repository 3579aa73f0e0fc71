"""Peers: what LiteLLM's proxy adds to a model call, beside what chinwag adds, on the same
fake Anthropic upstream in one alternating run (`make bench-peers`).

LiteLLM's proxy is what a user would pick instead of chinwag for the model-routing part.
It is installed by `make bench-peers` into a virtual environment of its own
(`bench/.venv-peers`, `litellm[proxy]` pinned there), never into chinwag's. All three
paths stream a one-token answer ("ok") from the fake Anthropic server (`bench.fake_model`):

- baseline: the `anthropic` SDK calling the fake directly;
- LiteLLM: the `openai` SDK streaming a chat completion through the LiteLLM proxy;
- chinwag: the same `openai` SDK call through chinwag's `/v1/chat/completions`, a stored
  turn (durable commits included) routed to the same fake.

Each figure is what the path adds to the baseline's p50 / p99, one call at a time.
"""

from __future__ import annotations

import asyncio
import re

from bench.gateway_overhead import KEY_ENV, direct, fake_server
from bench.harness import (
    REPO,
    Context,
    Row,
    ServerProcess,
    chinwag_server,
    median,
    percentile,
    timed_calls,
)
from tests.support.services import free_port

NAME = "peers"
PEERS_VENV = REPO / "bench" / ".venv-peers"
LITELLM = PEERS_VENV / "bin" / "litellm"
UVICORN_READY = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
MASTER_KEY = "sk-bench-peers-0123456789abcdef"


def litellm_server(ctx: Context, fake_port: int) -> ServerProcess:
    folder = ctx.tmp / f"litellm-{next(ctx.counter)}"
    folder.mkdir()
    config = folder / "litellm.yaml"
    config.write_text(
        "model_list:\n  - model_name: claude-bench\n    litellm_params:\n"
        f"      model: anthropic/claude-bench\n      api_base: http://127.0.0.1:{fake_port}\n      api_key: bench\n"
    )
    return ServerProcess(
        "litellm", [str(LITELLM), "--config", str(config), "--host", "127.0.0.1", "--port", str(free_port())],
        cores=ctx.layout.server_cores, cwd=folder, ready=UVICORN_READY,
        # No network: the price map bundled with the package, not GitHub's.
        env={"LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )


def chat(port: int, key: str, model: str, calls: int, seconds: float) -> dict:
    import openai

    async def go() -> dict:
        client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=30)

        async def call() -> None:
            stream = await client.chat.completions.create(
                model=model, stream=True, messages=[{"role": "user", "content": "hi"}],
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            if text != "ok":
                raise RuntimeError(f"unexpected answer {text!r} from port {port}")

        try:
            latencies = await timed_calls(call, calls, seconds)
        finally:
            await client.close()
        return {"p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000}

    return asyncio.run(go())


def run(ctx: Context) -> list[Row]:
    if not LITELLM.exists():
        ctx.note(f"peers: LiteLLM is not installed ({LITELLM}); `make bench-peers` installs it")
        return []
    runs = ctx.pick(3, 5)
    calls = ctx.pick(100, 300)
    seconds = ctx.pick(2.0, 5.0)
    figures: dict[str, list[dict]] = {"direct": [], "litellm": [], "chinwag": []}
    with fake_server(ctx) as fake, litellm_server(ctx, fake.port) as litellm:
        settings = (
            'models.claude.provider="anthropic"', 'models.claude.model_id="claude-bench"',
            f'models.claude.base_url="http://127.0.0.1:{fake.port}"', f'models.claude.api_key_env="{KEY_ENV}"',
            'routing.default="claude"', "routing.max_retries=0",
        )
        with chinwag_server(ctx, "chinwag-peers", *settings, env={KEY_ENV: "bench"}, users=1) as subject:
            for _ in range(runs):  # alternating: each path once per round
                figures["direct"].append(direct(fake.port, calls, seconds))
                figures["litellm"].append(chat(litellm.port, MASTER_KEY, "claude-bench", calls, seconds))
                figures["chinwag"].append(chat(subject.port, subject.keys[0], "claude", calls, seconds))
                d, lit, cw = (figures[k][-1] for k in ("direct", "litellm", "chinwag"))
                print(f"    direct p50 {d['p50_ms']:.2f} ms | LiteLLM p50 {lit['p50_ms']:.2f} ms p99 {lit['p99_ms']:.2f} ms"
                      f" | chinwag p50 {cw['p50_ms']:.2f} ms p99 {cw['p99_ms']:.2f} ms", flush=True)
    rows = []
    for key, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
        base = median([f[key] for f in figures["direct"]])
        peer = median([f[key] for f in figures["litellm"]]) - base
        ours = median([f[key] for f in figures["chinwag"]]) - base
        rows.append(Row(
            NAME, f"{label} added to an Anthropic call (chinwag vs LiteLLM)", "ms", ours, peer, "lower",
            target="ratio <= 0.1", runs=runs,
            note=f"chinwag adds {ours:+.2f} ms, LiteLLM {peer:+.2f} ms (direct SDK {base:.2f} ms); chinwag's includes its durable commits",
        ))
    return rows

