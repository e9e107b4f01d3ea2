#!/usr/bin/env bash
# Runs the release-actions CLI for a composite action, installing it once per job.
#
# The first action of a job creates a virtual environment under $RUNNER_TEMP and installs
# the package from this checkout of release-actions (the action's own ref, so @v1 runs the
# v1 code); every later step of the job finds it and starts at once. Extras are added to
# the same environment when a later action needs one (github-release needs `github`).
#
# `run.sh action NAME` runs composite action NAME from its INPUT_* variables: the CLI itself
# says which extras it needs (`release-actions action extras NAME`, from the same effective
# settings the command will use, so an input left empty and the policy's value install alike),
# then runs it (`release-actions action run NAME`).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
extras="${RELEASE_ACTIONS_EXTRAS:-}"
venv="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/release-actions-venv"
python="${RELEASE_ACTIONS_PYTHON:-python3}"
# uv when the runner has it (about 4x faster on a cold job), else pip.
installer="${RELEASE_ACTIONS_INSTALLER:-auto}"
if [ "$installer" = auto ]; then
  if command -v uv >/dev/null 2>&1; then installer=uv; else installer=pip; fi
fi
stamp="$venv/.release-actions-source"
want="$root"

have_extras=""
if [ -x "$venv/bin/release-actions" ] && [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$want" ]; then
  have_extras="$(sed -n 2p "$stamp")"
else
  rm -rf "$venv"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "::error title=release-actions::release-actions needs Python 3.11 or newer on the runner; set up one first (actions/setup-python) or set RELEASE_ACTIONS_PYTHON." >&2
    exit 2
  fi
  if [ "$installer" = uv ]; then
    uv venv --quiet --python "$python" "$venv" >&2
  else
    "$python" -m venv "$venv"
  fi
fi

install_extras() {
  local missing="" extra all spec started
  for extra in ${1//,/ }; do
    case ",$have_extras," in *",$extra,"*) ;; *) missing="$missing,$extra" ;; esac
  done
  if [ -x "$venv/bin/release-actions" ] && [ -z "$missing" ]; then return 0; fi
  all="$(printf '%s' "$have_extras$missing" | sed 's/^,*//; s/,,*/,/g; s/,$//')"
  spec="$root"
  [ -n "$all" ] && spec="$root[$all]"
  started=$(date +%s.%N)
  if [ "$installer" = uv ]; then
    uv pip install --quiet --python "$venv/bin/python" "$spec" >&2
  else
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$spec" >&2
  fi
  printf '%s\n%s\n' "$want" "$all" > "$stamp"
  have_extras="$all"
  echo "release-actions installed in $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $started}") s with $installer (${all:-no extras})" >&2
}

install_extras "$extras"
if [ "${1:-}" = action ] && [ "$#" -eq 2 ]; then
  # A policy that does not load installs nothing more here; the run then reports it in full.
  wanted="$("$venv/bin/release-actions" action extras "$2")" || wanted=""
  install_extras "$wanted"
  exec "$venv/bin/release-actions" action run "$2"
fi
exec "$venv/bin/release-actions" "$@"
