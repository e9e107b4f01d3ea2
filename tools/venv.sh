#!/usr/bin/env bash
# Runs a command with release-actions installed in the checkout's own virtual environment.
#
#   bash tools/venv.sh [--extras test] COMMAND [ARGS...]
#
# A distribution's python3 refuses `pip install` outside a virtual environment (PEP 668), so
# the README's commands use this instead: the first run creates .venv with python3 (3.11 or
# newer) and installs the package editable with the extras asked for; later runs reuse it and
# install again only when pyproject.toml or the extras change.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras=""
if [ "${1:-}" = "--extras" ]; then
  extras="$2"
  shift 2
fi
if [ "$#" -eq 0 ]; then
  echo "usage: bash tools/venv.sh [--extras EXTRAS] COMMAND [ARGS...]" >&2
  exit 2
fi
venv="${RELEASE_ACTIONS_VENV:-$root/.venv}"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "release-actions needs Python 3.11 or newer; \`$python\` is $("$python" --version 2>&1)." >&2
  echo "Install one (Debian 12 and Ubuntu 24.04 ship it) and rerun with PYTHON=python3.11." >&2
  exit 2
fi

if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    # Debian and Ubuntu split ensurepip into pythonX.Y-venv.
    package="python$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')-venv"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    if [ -n "$sudo" ] && ! command -v sudo >/dev/null 2>&1; then
      echo "\`$python -m venv\` needs the $package package: apt-get install $package" >&2
      exit 2
    fi
    echo "Installing $package (python3 -m venv needs it)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$package" >/dev/null
    "$python" -m venv "$venv"
  fi
fi

hash="$(sha256sum "$root/pyproject.toml" | cut -c1-64)"
stamp="$venv/.release-actions-installed"
have="$(cat "$stamp" 2>/dev/null || true)"
# Installed with these extras (or with some already, and none asked for now): nothing to do.
if [ "$have" != "$hash $extras" ] && { [ -n "$extras" ] || [ "${have%% *}" != "$hash" ]; }; then
  spec="$root"
  [ -n "$extras" ] && spec="$root[$extras]"
  echo "Installing release-actions${extras:+[$extras]} into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec" >&2
  printf '%s' "$hash $extras" > "$stamp"
fi

export VIRTUAL_ENV="$venv"
export PATH="$venv/bin:$PATH"
exec "$@"
