#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need from the distribution when it is
# missing (nats-server; prometheus), so a fresh Debian machine needs nothing else.
set -euo pipefail
cd "$(dirname "$0")"

need_pkg() { # need_pkg <binary> <debian package>
  if command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; then
    return
  fi
  echo "test.sh: $1 not found; installing Debian package $2" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null
}

need_pkg nats-server nats-server
need_pkg prometheus prometheus

exec cargo test --locked "$@"
