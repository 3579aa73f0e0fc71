#!/bin/sh
# Install the services chinwag's scale-out backends use, from Debian's packages, when they
# are missing: PostgreSQL (the store, `store.url`) and Redis (for the session bus to come).
# Idempotent and quick when both are there. It starts nothing: the tests start a private
# PostgreSQL of their own (tests/support/services.py), on a free port, and stop it after.
set -eu

missing=""
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
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
