"""What the processes of one deployment share while they run: the session bus.

One process keeps it in memory (`local`); several processes behind a load balancer share it
through Redis (`redis`). Both sit behind the protocols of `base`.
"""
