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

# The PostgreSQL tests use the server at 127.0.0.1:5432 (BACKFLOW_TEST_POSTGRES overrides the
# connection string). Start the local cluster if it is installed but stopped.
if [ -z "${BACKFLOW_TEST_POSTGRES:-}" ] && command -v pg_isready >/dev/null 2>&1 \
  && ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && command -v pg_ctlcluster >/dev/null 2>&1; then
  for version in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  done
fi

exec cargo test --locked "$@"
