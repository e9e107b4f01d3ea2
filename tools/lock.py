"""Writes actions/_lib/lock/*.txt: the hash-locked requirements that the composite actions install.

    python tools/lock.py            # re-resolve against PyPI (uv), newest versions allowed
    python tools/lock.py --check    # exit 1 when a lock file is not current with pyproject.toml

One file per extra the actions can ask for, each the whole closure of the core dependencies plus
that extra, so actions/_lib/run.sh installs the union of the files it needs (`base.txt` alone,
or `base.txt` + `kubernetes.txt` + `github.txt`) with `--require-hashes`. The files come from one
resolution of everything together, so a package has the same version and hashes in every file
it appears in and any union of them installs. `build.txt` holds what building release-actions
itself needs (setuptools, setuptools-scm), installed the same way and used without build
isolation, so no unhashed download happens at all.

Each file's first line records a digest of the requirements it was made from (pyproject's
specifiers, requires-python); `--check` (and tests/unit/test_lock.py) recompute it, so editing a
dependency in pyproject.toml without running this script fails the tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK_DIR = ROOT / "actions" / "_lib" / "lock"
# Extras that only the project's own tests use: never installed by an action.
NOT_FOR_ACTIONS = {"test", "all"}
PYTHON = "3.11"


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def inputs() -> dict[str, list[str]]:
    """Each lock file's name and the requirement strings it is resolved from."""
    data = pyproject()
    project = data["project"]
    assert isinstance(project, dict)
    base = list(project["dependencies"])
    out = {"base": base}
    for extra, reqs in sorted(project["optional-dependencies"].items()):
        if extra not in NOT_FOR_ACTIONS:
            out[extra] = base + list(reqs)
    build = data["build-system"]
    assert isinstance(build, dict)
    out["build"] = list(build["requires"])
    return out


def digest(name: str, requirements: list[str]) -> str:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    blob = json.dumps(
        {
            "name": name,
            "requirements": sorted(requirements),
            "requires-python": project["requires-python"],
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def header(name: str, requirements: list[str]) -> str:
    return (
        f"# release-actions lock {name}: inputs sha256:{digest(name, requirements)}\n"
        "# Written by `python tools/lock.py` (uv pip compile --universal --generate-hashes);"
        " do not edit.\n"
    )


def uv() -> str:
    found = shutil.which("uv")
    if found is None:
        sys.exit("tools/lock.py needs uv on PATH (pip install uv)")
    return found


def compile_lock(
    requirements: list[str], out: Path, *, constraints: Path | None, hashes: bool
) -> str:
    source = out.with_suffix(".in")
    source.write_text("".join(f"{r}\n" for r in requirements), encoding="utf-8")
    args = [
        uv(),
        "pip",
        "compile",
        "--quiet",
        "--universal",
        "--python-version",
        PYTHON,
        "--no-header",
        "--no-annotate",
        "--only-binary",
        ":all:",
        str(source),
        "-o",
        str(out),
    ]
    if hashes:
        args.append("--generate-hashes")
    if constraints is not None:
        args += ["--constraint", str(constraints)]
    subprocess.run(args, check=True)
    return out.read_text(encoding="utf-8")


def write() -> None:
    wanted = inputs()
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        # One resolution of everything, so every file below agrees on every version.
        everything = sorted({r for reqs in wanted.values() for r in reqs})
        full = work / "full.txt"
        compile_lock(everything, full, constraints=None, hashes=False)
        for name, reqs in wanted.items():
            body = compile_lock(reqs, work / f"{name}.txt", constraints=full, hashes=True)
            (LOCK_DIR / f"{name}.txt").write_text(header(name, reqs) + body, encoding="utf-8")
    for stale in set(LOCK_DIR.glob("*.txt")) - {LOCK_DIR / f"{n}.txt" for n in wanted}:
        stale.unlink()


def problems() -> list[str]:
    """What is out of date, in words; empty when every lock file is current."""
    wanted = inputs()
    found = {p.stem for p in LOCK_DIR.glob("*.txt")}
    out = [f"{LOCK_DIR.name}/{n}.txt is missing" for n in sorted(set(wanted) - found)]
    out += [
        f"{LOCK_DIR.name}/{n}.txt has no extra in pyproject" for n in sorted(found - set(wanted))
    ]
    for name in sorted(set(wanted) & found):
        first = (LOCK_DIR / f"{name}.txt").read_text(encoding="utf-8").partition("\n")[0]
        if first != header(name, wanted[name]).partition("\n")[0]:
            out.append(f"{LOCK_DIR.name}/{name}.txt was made from other requirements")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Only check; write nothing.")
    args = parser.parse_args()
    if args.check:
        found = problems()
        for line in found:
            print(line, file=sys.stderr)
        if found:
            sys.exit(
                "The action lock is out of date with pyproject.toml: run `python tools/lock.py`."
            )
        return
    write()


if __name__ == "__main__":
    main()
