#!/bin/sh
# Install the services chinwag's scale-out tests use, from Debian's packages, when they are
# missing: PostgreSQL (the store, `store.url`), Redis (the bus, `bus.url`), and the two load
# balancers the cluster tests put in front of several nodes, HAProxy and nginx (`nginx`, or
# `nginx-light` where only that exists). Idempotent and quick when all are there. It starts
# nothing, and keeps Debian's packages from starting system-wide services: the tests start
# private servers of their own (tests/support/services.py, tests/support/balancer.py), on
# free ports, and stop them after.
set -eu

missing=""
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null 2>&1 || missing="$missing haproxy"
if ! { [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1; }; then
    # Debian 12 has both (nginx-light is nginx plus a module); older releases only -light.
    if apt-cache show nginx >/dev/null 2>&1; then
        missing="$missing nginx"
    else
        missing="$missing nginx-light"
    fi
fi
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-services: missing:$missing; run this script as root (it uses apt-get)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Debian's packages would start system-wide services: policy-rc.d 101 keeps them stopped.
policy=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
fi
trap '[ -n "$made_policy" ] && rm -f "$policy"' EXIT
apt-get install -y --no-install-recommends $missing >/dev/null || {
    apt-get update >/dev/null && apt-get install -y --no-install-recommends $missing >/dev/null
}
echo "ensure-services: installed$missing"
