"""A chinwag bot in a page of Python: asks the server a question, prints the answer as it
streams, survives dropped connections, and recovers when its session is lost.

    python -m server serve &                       # a local server (the echo model)
    python examples/bots/echo_bot.py "Hello there" --url ws://127.0.0.1:8000/ws

With authentication configured, pass an API key: `--api-key` or `CHINWAG_API_KEY`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from chinwag_client import AuthenticationFailed, ChinwagClient, ResumeLost


async def ask(url: str, api_key: str | None, questions: list[str]) -> int:
    async with ChinwagClient(url, api_key=api_key, name="echo-bot") as client:
        events = client.events()
        conversation_id = None
        for question in questions:
            ack = await client.send(question, conversation_id)
            conversation_id = ack["conversation_id"]
            async for event in events:
                if isinstance(event, ResumeLost):
                    # The server could not replay what we missed: show what it has stored.
                    answer = event.histories[conversation_id]["messages"][-1]
                    print(f"\n[session lost; stored so far: {answer.get('text', '')!r}]")
                    continue
                if event.get("turn_id") != ack["turn_id"]:
                    continue  # another conversation of this user (another tab, another bot)
                if event["type"] == "delta":
                    print(event["text"], end="", flush=True)
                elif event["type"] == "turn.completed":
                    print(f"\n[{event['status']}, model {event['model']}]")
                    break
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", nargs="+")
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws")
    parser.add_argument("--api-key", default=os.environ.get("CHINWAG_API_KEY"))
    args = parser.parse_args()
    try:
        return asyncio.run(ask(args.url, args.api_key, args.questions))
    except AuthenticationFailed as exc:
        print(f"echo_bot: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
