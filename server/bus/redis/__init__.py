"""The bus on Redis: many chinwag processes behind a load balancer (docs/scaling.md).

- `keys`: every key and channel name, under `bus.prefix`.
- `scripts`: the Lua scripts that make each step atomic in Redis.
- `writer`: one ordered pipe of commands per process, so events leave in publish order.
- `sessions`, `fanout`: sessions whose event logs are Redis Streams, resumable anywhere.
- `routing`: which process runs which turn and waits for which approval.
- `node`: this process's channel, its lease, and the takeover of dead processes' turns.
- `bus`: the whole, built from `bus.url`.
"""
