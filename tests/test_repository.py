"""The repository's own quality gates, run as tests so one command checks everything."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import backend_missing

ROOT = Path(__file__).resolve().parents[1]
YAML_DIRS = [ROOT / "actions", ROOT / ".github" / "workflows", ROOT / "workflow-templates"]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        backend_missing(name)
    assert path is not None
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_lint() -> None:
    r = _run(_tool("ruff"), "check", "scripts", "tests")
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format() -> None:
    r = _run(_tool("ruff"), "format", "--check", "scripts", "tests")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy() -> None:
    _tool("mypy")
    r = _run(sys.executable, "-m", "mypy")
    assert r.returncode == 0, r.stdout + r.stderr


def _yaml_files() -> list[Path]:
    return sorted(p for d in YAML_DIRS if d.exists() for p in d.rglob("*.y*ml"))


def test_zizmor_has_no_findings() -> None:
    targets = [str(p.relative_to(ROOT)) for p in _yaml_files()]
    assert targets
    r = _run(_tool("zizmor"), "--offline", "--format", "plain", "--no-progress", *targets)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No findings" in r.stdout + r.stderr


@pytest.mark.parametrize(
    ("schema", "pattern"),
    [
        ("vendor.github-actions", "actions/*/action.yml"),
        ("vendor.github-workflows", ".github/workflows/*.yml"),
        ("vendor.github-workflows", "workflow-templates/*.yml"),
    ],
)
def test_yaml_validates_against_schemastore(schema: str, pattern: str) -> None:
    files = sorted(ROOT.glob(pattern))
    if not files:
        pytest.fail(f"no files match {pattern}") if pattern.startswith("actions") else None
        return
    r = _run(_tool("check-jsonschema"), "--builtin-schema", schema, *map(str, files))
    assert r.returncode == 0, r.stdout + r.stderr


def test_no_expressions_inside_run_scripts() -> None:
    """`${{ }}` inside `run:` is script injection; inputs go through `env:`."""
    from ruamel.yaml import YAML

    offenders = []
    for path in _yaml_files():
        doc = YAML(typ="safe").load(path.read_text())

        def walk(node: object, where: str, path: Path = path) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "run" and isinstance(value, str) and "${{" in value:
                        offenders.append(f"{path.relative_to(ROOT)}: {where}")
                    walk(value, f"{where}.{key}")
            elif isinstance(node, list):
                for i, value in enumerate(node):
                    walk(value, f"{where}[{i}]")

        walk(doc, "")
    assert offenders == []


def test_generated_docs_are_current() -> None:
    r = _run(sys.executable, "tools/gen_docs.py", "--check")
    assert r.returncode == 0, r.stdout + r.stderr


def test_python_dash_m_runs_the_cli() -> None:
    r = _run(sys.executable, "-m", "release_actions", "version", "compare", "1.0.0", "1.0.0-rc.1")
    assert (r.returncode, r.stdout) == (0, "1\n")


def test_the_manual_rollback_never_shares_a_concurrency_group_with_a_release() -> None:
    """A rollback must not queue behind a canary's watch, nor be displaced by a release push."""
    from ruamel.yaml import YAML

    def groups(path: Path) -> set[str]:
        doc = YAML(typ="safe").load(path.read_text("utf-8"))
        blocks = [doc.get("concurrency")] + [
            job.get("concurrency") for job in (doc.get("jobs") or {}).values()
        ]
        return {str(b["group"] if isinstance(b, dict) else b) for b in blocks if b}

    rollback = groups(ROOT / "workflow-templates" / "rollback.yml")
    releases = set().union(
        *(groups(ROOT / ".github" / "workflows" / n) for n in ("release.yml", "hotfix.yml"))
    )
    assert rollback == {"rollback-${{ github.repository }}-production"}
    assert "release-${{ github.repository }}-production" in releases
    assert rollback.isdisjoint(releases)


def test_a_released_tree_has_no_moving_nested_reference(tmp_path: Path) -> None:
    """`release pin-actions`, as the self-release runs it, leaves no `@v1` to follow."""
    import io
    import re

    from ruamel.yaml import YAML

    from release_actions.cli import main

    shutil.copytree(ROOT / ".github", tmp_path / ".github")
    sha = "0123456789abcdef0123456789abcdef01234567"
    out = io.StringIO()
    args = ["release", "pin-actions", "--sha", sha, "--tag", "v1.4.0", "--dir", str(tmp_path)]
    code = main(args, env={}, out=out, err=out)
    assert code == 0, out.getvalue()

    def own_uses(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [v for k, v in node.items() if k == "uses" and isinstance(v, str)]
            return [u for u in found if u.startswith("triptrip/release-actions/")] + [
                u for v in node.values() for u in own_uses(v)
            ]
        if isinstance(node, list):
            return [u for v in node for u in own_uses(v)]
        return []

    seen = []
    for path in sorted((tmp_path / ".github" / "workflows").glob("*.yml")):
        text = path.read_text("utf-8")
        seen += own_uses(YAML(typ="safe").load(text))
        for line in text.splitlines():
            if re.match(r"\s*(-\s+)?uses:\s*triptrip/release-actions/", line):
                assert line.endswith(f"@{sha} # v1.4.0"), f"{path.name}: {line.strip()}"
    assert len(seen) >= 10, "the reusable workflows call the project's actions"
    moving = [u for u in seen if not re.fullmatch(r"[^@]+@[0-9a-f]{40}", u)]
    assert moving == []
    self_release = YAML(typ="safe").load(
        (ROOT / ".github" / "workflows" / "self-release.yml").read_text("utf-8")
    )
    runs = [s.get("run", "") for s in self_release["jobs"]["pin"]["steps"]]
    assert any("release pin-actions" in r for r in runs)
    assert self_release["jobs"]["release"]["needs"] == "pin", "tagged after the pin"


def _markdown_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _prose(text: str) -> str:
    """The page without its code blocks and code spans, where a `[x](y)` is code, not a link."""
    import re

    return re.sub(r"``.*?``|`[^`\n]*`", "", _without_fences(text))


def _without_fences(text: str) -> str:
    import re

    return re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.S | re.M)


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes, -N for repeats."""
    import re

    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(
        r"^#{1,6} +(.+?) *#*$", _without_fences(path.read_text("utf-8")), re.M
    ):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_the_readme_opens_with_the_two_set_up_commands() -> None:
    """A fresh machine needs only these; the unit-test fast path is documented beside them."""
    import re

    text = (ROOT / "README.md").read_text("utf-8")
    first = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first is not None
    commands = [line for line in first.group(1).splitlines() if line and not line.startswith("#")]
    assert commands == [
        "bash tools/venv.sh release-actions rehearse",
        "bash .ci/install && bash tools/venv.sh --extras test python -m pytest",
    ]
    assert "bash tools/venv.sh --extras test python -m pytest tests/unit" in text


def test_the_readme_links_every_docs_page() -> None:
    text = (ROOT / "README.md").read_text("utf-8")
    missing = [
        p.name for p in sorted((ROOT / "docs").glob("*.md")) if f"](docs/{p.name})" not in text
    ]
    assert missing == []


def test_relative_links_in_the_readme_and_docs_resolve() -> None:
    """Every relative link (Markdown or an <img>) names a file that exists, and its #anchor a heading."""
    import re

    broken = []
    for page in _markdown_pages():
        prose = _prose(page.read_text("utf-8"))
        targets = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", prose)
        targets += re.findall(r"<img [^>]*src=\"([^\"]+)\"", prose)
        for target in targets:
            if re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # https:, mailto:
            path_part, _, anchor = target.partition("#")
            dest = (page.parent / path_part).resolve() if path_part else page
            where = f"{page.relative_to(ROOT)}: {target}"
            if not dest.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{where} (no such heading)")
    assert broken == []
