#!/usr/bin/env bash
# Runs the release-actions CLI for a composite action, installing it once per job.
#
# The first action of a job creates a virtual environment under $RUNNER_TEMP and installs the
# dependencies from the committed lock (actions/_lib/lock/*.txt: every version pinned, every file
# checked against its sha256 with --require-hashes, wheels only), then release-actions itself from
# this checkout (the action's own ref, so @v1 runs the v1 code) without dependencies or build
# isolation, so nothing unhashed is downloaded. Every later step of the job finds the environment
# and starts at once. Extras are added to the same environment when a later action needs one
# (github-release needs `github`): base.txt plus one file per extra, installed together.
#
# `run.sh action NAME` runs composite action NAME from its INPUT_* variables: the CLI itself
# says which extras it needs (`release-actions action extras NAME`, from the same effective
# settings the command will use, so an input left empty and the policy's value install alike),
# then runs it (`release-actions action run NAME`).
#
# `run.sh runtime-key` prints `path=` and `key=` lines for $GITHUB_OUTPUT: the environment's
# folder and the actions/cache key prefix under which the jobs of one workflow run share it. An
# action step then prints `runtime-key=` (that prefix and the extras installed) to
# $GITHUB_OUTPUT, for the step that saves the environment when it grew.
# The environment is always entered through its python (`python -m release_actions`), never a
# script's absolute #! line, so a copy restored under another job's RUNNER_TEMP works as is.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
lock="$root/actions/_lib/lock"
extras="${RELEASE_ACTIONS_EXTRAS:-}"
venv="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/release-actions-venv"
python="${RELEASE_ACTIONS_PYTHON:-python3}"
# uv when the runner has it (about 4x faster on a cold job), else pip.
installer="${RELEASE_ACTIONS_INSTALLER:-auto}"
if [ "$installer" = auto ]; then
  if command -v uv >/dev/null 2>&1; then installer=uv; else installer=pip; fi
fi
stamp="$venv/.release-actions-source"

# What the environment was made from: this code and its lock (not the folder it sits in, so a
# restored environment made by an earlier job of the run from the same ref is taken as is).
source_digest() {
  (
    cd "$root"
    find pyproject.toml actions/_lib/run.sh actions/_lib/lock scripts/release_actions \
      -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  ) | sha256sum | cut -c1-16
}

if [ "${1:-}" = runtime-key ]; then
  # Python's version and place: a virtual environment works only with the interpreter it was
  # made with. The run id keeps the cache to the jobs of this workflow run: an environment
  # saved by another run (a pull request's, say) is never restored into a release job.
  interpreter="$("$python" -c 'import os, sys; print(sys.version.split()[0], os.path.realpath(sys.executable))' 2>/dev/null || echo none)"
  which="$(printf '%s %s %s' "$interpreter" "$installer" "$(source_digest)" | sha256sum | cut -c1-16)"
  printf 'path=%s\n' "$venv"
  printf 'key=release-actions-runtime-%s-%s-%s-%s-%s-\n' "${RUNNER_OS:-os}" "${RUNNER_ARCH:-arch}" "$which" \
    "${GITHUB_RUN_ID:-0}" "${GITHUB_RUN_ATTEMPT:-1}"
  exit 0
fi

want="$(source_digest) $installer"
have_extras=""
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$want" ]; then
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

# Runs an installer command; on failure says which lock refused (a hash mismatch names the file).
install() {
  local log status
  log="$(mktemp)"
  set +e
  if [ "$installer" = uv ]; then
    uv pip install --quiet --python "$venv/bin/python" "$@" 2>"$log"
  else
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "$@" 2>"$log"
  fi
  status=$?
  set -e
  cat "$log" >&2
  if [ "$status" -ne 0 ]; then
    if grep -qi 'hash' "$log"; then
      echo "::error title=release-actions::A package did not match the sha256 in release-actions' lock (actions/_lib/lock): the install was refused. Rerun the job; if it fails again, the package index served another file than the one locked." >&2
    fi
    rm -f "$log"
    exit "$status"
  fi
  rm -f "$log"
}

install_extras() {
  local missing="" extra all started files=()
  for extra in ${1//,/ }; do
    case ",$have_extras," in *",$extra,"*) ;; *) missing="$missing,$extra" ;; esac
  done
  if [ -f "$stamp" ] && [ -z "$missing" ]; then return 0; fi
  all="$(printf '%s' "$have_extras$missing" | sed 's/^,*//; s/,,*/,/g; s/,$//')"
  files=(-r "$lock/base.txt" -r "$lock/build.txt")
  for extra in ${all//,/ }; do
    if [ "$extra" = all ]; then
      for file in "$lock"/*.txt; do files+=(-r "$file"); done
    elif [ -f "$lock/$extra.txt" ] && [ "$extra" != base ] && [ "$extra" != build ]; then
      files+=(-r "$lock/$extra.txt")
    else
      echo "::error title=release-actions::No extra \`$extra\` in release-actions' lock (actions/_lib/lock); the extras are: $(cd "$lock" && ls ./*.txt | sed 's|^\./||; s|\.txt$||' | grep -vx -e base -e build | paste -sd, -), all." >&2
      exit 2
    fi
  done
  started=$(date +%s.%N)
  install --require-hashes --only-binary ':all:' "${files[@]}"
  if [ ! -f "$stamp" ]; then
    # The dependencies are all in place and hashed; then release-actions itself, as a wheel built
    # in one process with the locked setuptools and setuptools-scm (the version comes from the
    # release tag), installed without dependencies. An installer building from the folder calls
    # the backend once per hook: three imports of setuptools, twice as slow.
    wheels="$(mktemp -d)"
    log="$(mktemp)"
    if ! (cd "$root" && "$venv/bin/python" -c 'import sys, setuptools.build_meta as b; print(b.build_wheel(sys.argv[1]))' "$wheels") >"$log" 2>&1; then
      cat "$log" >&2
      echo "::error title=release-actions::Could not build release-actions from $root (the log is above)." >&2
      exit 2
    fi
    rm -f "$log"
    install --no-deps --no-index "$wheels"/*.whl
    rm -rf "$wheels"
  fi
  printf '%s\n%s\n' "$want" "$all" > "$stamp"
  have_extras="$all"
  echo "release-actions installed in $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $started}") s with $installer (${all:-no extras})" >&2
}

runtime_key() {
  # The key prefix the composite action restored with, plus what this job installed.
  if [ -n "${RELEASE_ACTIONS_RUNTIME_KEY:-}" ] && [ -n "${GITHUB_OUTPUT:-}" ]; then
    printf 'runtime-key=%s%s\n' "$RELEASE_ACTIONS_RUNTIME_KEY" "$(printf '%s' "${have_extras:-base}" | tr ',' '\n' | LC_ALL=C sort -u | paste -sd+ -)" >> "$GITHUB_OUTPUT"
  fi
}

install_extras "$extras"
if [ "${1:-}" = action ] && [ "$#" -eq 2 ]; then
  # A policy that does not load installs nothing more here; the run then reports it in full.
  wanted="$("$venv/bin/python" -m release_actions action extras "$2")" || wanted=""
  install_extras "$wanted"
  runtime_key
  exec "$venv/bin/python" -m release_actions action run "$2"
fi
runtime_key
exec "$venv/bin/python" -m release_actions "$@"
