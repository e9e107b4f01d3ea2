"""Release readiness (source §3.1): the pre-release checklist, checked through the GitHub API."""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from release_actions.errors import ReleaseActionsError

if TYPE_CHECKING:
    from github.Commit import Commit
    from github.PullRequest import PullRequest
    from github.Repository import Repository

    from release_actions.core.versions import Version

PASSING = ("success", "neutral", "skipped")
# Review states that change where a reviewer stands; a later COMMENTED leaves it as it was.
_DECISIVE = ("APPROVED", "CHANGES_REQUESTED", "DISMISSED")

# Source §3.1's checklist, item by item, and which of them this command checks.
CHECKLIST: tuple[tuple[str, tuple[tuple[str, str | None], ...]], ...] = (
    (
        "Code quality",
        (
            ("All tests pass (unit, integration, E2E)", "checks"),
            ("Code coverage 80 % or more", "coverage"),
            ("Lint and format checks pass", None),
            ("Security scans (SAST/DAST) pass", None),
            ("Dependency vulnerability check passes", None),
        ),
    ),
    (
        "Review",
        (
            ("Pull request reviewed (2 or more approvals)", "approvals"),
            ("Architecture review (when needed)", None),
            ("Security review (when needed)", None),
            ("UX review (UI changes)", None),
        ),
    ),
    (
        "Documentation",
        (
            ("CHANGELOG updated", "changelog"),
            ("API documentation updated (API changes)", None),
            ("Operations documentation updated (when needed)", None),
            ("Release notes written", None),
        ),
    ),
    (
        "Environment",
        (
            ("Tests on staging done", None),
            ("Performance tests done", None),
            ("Rollback procedure confirmed", None),
            ("Feature flag settings confirmed", None),
        ),
    ),
    (
        "Notice",
        (
            ("Internal notice of the release sent", None),
            ("On-call team told", None),
            ("Customer support told (when needed)", None),
        ),
    ),
)
# Checks that usually run as check runs on the commit, and so are covered by "checks".
_AS_CHECKS = {
    "Lint and format checks pass",
    "Security scans (SAST/DAST) pass",
    "Dependency vulnerability check passes",
}


class CoverageError(ReleaseActionsError):
    """Raised when a coverage report cannot be read or is in no format this knows, or a folder
    holds no report or several."""


FORMATS_HINT = (
    "Give Cobertura XML (`coverage xml`, jest's `cobertura` reporter), JaCoCo XML "
    "(`jacoco:report`, Gradle's `jacocoTestReport`), coverage.py JSON (`coverage json`) or "
    "LCOV (`lcov.info`)."
)


Status = Literal["passed", "failed", "warning", "manual"]


@dataclass(frozen=True)
class Item:
    """One automatic item of the checklist: ``ok`` None when it was not checked.

    An unchecked item with ``warning`` set could have been checked but had nothing to check
    (no coverage report): neither a pass nor, unless the policy asks for it, a failure.
    """

    key: str
    title: str
    ok: bool | None
    detail: str
    data: dict[str, Any] = field(default_factory=dict)
    warning: bool = False

    @property
    def status(self) -> Status:
        if self.ok is None:
            return "warning" if self.warning else "manual"
        return "passed" if self.ok else "failed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "ok": self.ok,
            "status": self.status,
            "detail": self.detail,
            **self.data,
        }


@dataclass
class Report:
    repo: str
    tag: str
    sha: str
    items: list[Item]

    @property
    def ready(self) -> bool:
        return all(i.ok is not False for i in self.items)

    @property
    def failed(self) -> list[str]:
        return [i.key for i in self.items if i.ok is False]

    @property
    def warnings(self) -> list[str]:
        return [i.key for i in self.items if i.status == "warning"]

    def item(self, key: str) -> Item:
        return next(i for i in self.items if i.key == key)

    def to_dict(self) -> dict[str, Any]:
        auto = {i.key for i in self.items if i.status != "manual"}
        return {
            "repo": self.repo,
            "tag": self.tag,
            "sha": self.sha,
            "ready": self.ready,
            "failed": self.failed,
            "warnings": self.warnings,
            "items": [i.to_dict() for i in self.items],
            "manual": [
                title
                for _, entries in CHECKLIST
                for title, key in entries
                if key is None or key not in auto
            ],
        }


# -- coverage ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Coverage:
    percent: float
    format: str
    covered: int | None = None
    total: int | None = None


def parse_coverage(path: Path) -> Coverage:
    """Line coverage from Cobertura or JaCoCo XML, coverage.py JSON or LCOV, told by content."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CoverageError(
            f"Cannot read the coverage report {path}: {exc.strerror}.", file=str(path)
        ) from exc
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    head = text.lstrip()
    if head.startswith("<"):
        return _xml(text, path)
    if head.startswith("{"):
        return _coverage_json(text, path)
    if re.search(r"^(?:SF|LF|LH|DA):", text, re.MULTILINE):
        return _lcov(text, path)
    raise CoverageError(
        f"{path} is not a coverage report this reads.",
        hint=FORMATS_HINT,
        file=str(path),
    )


def _xml(text: str, path: Path) -> Coverage:
    import xml.etree.ElementTree as ET

    # A report has no business declaring entities; refusing them keeps expansion bombs out.
    # (defusedxml is not a dependency; expat never fetches the external DTD JaCoCo names.)
    if "<!ENTITY" in text:
        raise CoverageError(f"{path} declares XML entities; refusing to read it.", file=str(path))
    try:
        root = ET.fromstring(text)  # noqa: S314 (entities refused above)
    except ET.ParseError as exc:
        raise CoverageError(f"{path} is not well-formed XML: {exc}.", file=str(path)) from exc
    if root.tag == "coverage":
        return _cobertura(root, path)
    if root.tag == "report":
        return _jacoco(root, path)
    raise CoverageError(
        f"{path} is XML but neither Cobertura nor JaCoCo (its root is <{root.tag}>, not "
        "<coverage> or <report>).",
        file=str(path),
    )


def _cobertura(root: Any, path: Path) -> Coverage:
    valid, covered = root.get("lines-valid"), root.get("lines-covered")
    try:
        if valid and covered and int(valid) > 0:
            # The counts are exact; line-rate is rounded (coverage.py keeps 4 digits).
            return Coverage(
                int(covered) * 100 / int(valid), "Cobertura XML", int(covered), int(valid)
            )
        rate = root.get("line-rate")
        if rate is not None:
            return Coverage(float(rate) * 100, "Cobertura XML")
    except ValueError as exc:
        raise CoverageError(
            f"{path} has a line count or rate that is not a number.", file=str(path)
        ) from exc
    raise CoverageError(f"{path} has no `line-rate` on <coverage>.", file=str(path))


def _jacoco(root: Any, path: Path) -> Coverage:
    # Only the report's own counter is the whole build; package, class, method and source-file
    # elements nest counters of their own, which findall("counter") (direct children) skips.
    line = next((c for c in root.findall("counter") if c.get("type") == "LINE"), None)
    if line is None:
        raise CoverageError(
            f'{path} is JaCoCo XML with no report-level `<counter type="LINE">`.',
            hint="Give the report of the whole build (`jacoco:report`, Gradle's "
            "`jacocoTestReport`), not a fragment of one.",
            file=str(path),
        )
    try:
        missed, covered = int(line.get("missed", "")), int(line.get("covered", ""))
    except ValueError as exc:
        raise CoverageError(
            f"{path} has a LINE counter whose `missed` or `covered` is not a count.",
            file=str(path),
        ) from exc
    if missed < 0 or covered < 0:
        raise CoverageError(f"{path} has a negative LINE count.", file=str(path))
    total = missed + covered
    if total == 0:
        raise CoverageError(f"{path} counts no lines (its LINE counter is 0 of 0).", file=str(path))
    return Coverage(covered * 100 / total, "JaCoCo XML", covered, total)


def _coverage_json(text: str, path: Path) -> Coverage:
    try:
        data = json.loads(text)
        totals = data["totals"]
        percent = float(totals["percent_covered"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CoverageError(
            f"{path} is JSON but not coverage.py's report (no `totals.percent_covered`).",
            file=str(path),
        ) from exc
    covered, total = totals.get("covered_lines"), totals.get("num_statements")
    return Coverage(
        percent,
        "coverage.py JSON",
        covered if isinstance(covered, int) else None,
        total if isinstance(total, int) else None,
    )


def _lcov(text: str, path: Path) -> Coverage:
    found = hit = 0
    for line in text.splitlines():
        key, _, value = line.strip().partition(":")
        try:
            if key == "LF":
                found += int(value)
            elif key == "LH":
                hit += int(value)
        except ValueError as exc:
            raise CoverageError(
                f"{path} has `{line.strip()}`, not a count.", file=str(path)
            ) from exc
    if found == 0:
        raise CoverageError(f"{path} counts no lines (no `LF:` records).", file=str(path))
    return Coverage(hit * 100 / found, "LCOV", hit, found)


# What build tools name their reports: looked at first, but every file is told by its content.
USUAL_NAMES = (
    "coverage.xml",
    "cobertura.xml",
    "cobertura-coverage.xml",
    "jacoco.xml",
    "jacocoTestReport.xml",
    "lcov.info",
    "coverage.lcov",
    "coverage.json",
)
# A coverage artifact is a report and perhaps its HTML; more than this is something else.
_MAX_FILES = 2000
_MAX_BYTES = 256 * 1024 * 1024
_LISTED = 20


def find_report(path: Path) -> Path:
    """``path`` when it is a file; in a folder (a downloaded artifact), its one coverage report.

    Raised when the folder holds none or several: a CoverageError that lists what is there.
    """
    if not path.is_dir():
        return path
    found: list[Path] = []
    for top, dirs, names in os.walk(path):
        dirs.sort()
        found.extend(Path(top, name).relative_to(path) for name in names)
    if not found:
        raise CoverageError(
            f"The coverage folder {path} is empty.",
            hint="Upload the report itself with actions/upload-artifact (`path: coverage.xml`).",
            file=str(path),
        )
    rank = {name: i for i, name in enumerate(USUAL_NAMES)}
    found.sort(key=lambda rel: (rank.get(rel.name, len(rank)), rel.as_posix()))
    reports: list[tuple[Path, str]] = []
    others: list[tuple[Path, str]] = []
    for rel in found[:_MAX_FILES]:
        full = path / rel
        try:
            if full.stat().st_size > _MAX_BYTES:
                others.append((rel, "too large for a report"))
                continue
            reports.append((rel, parse_coverage(full).format))
        except CoverageError as exc:
            others.append((rel, _reason(exc, full)))
        except OSError as exc:
            others.append((rel, exc.strerror or "unreadable"))
    if len(reports) == 1:
        return path / reports[0][0]
    unseen = f"; {len(found) - _MAX_FILES} more not looked at" if len(found) > _MAX_FILES else ""
    if reports:
        raise CoverageError(
            f"The coverage folder {path} holds {len(reports)} coverage reports: "
            f"{_listing(reports)}; which one to check is not clear.",
            hint="Put one report in the artifact, or pass the report's own path to "
            "`--coverage-file` (`coverage-file` of the readiness action).",
            file=str(path),
        )
    raise CoverageError(
        f"The coverage folder {path} holds no coverage report this reads: "
        f"{_listing(others)}{unseen}.",
        hint=FORMATS_HINT,
        file=str(path),
    )


def _reason(exc: CoverageError, full: Path) -> str:
    """The error without the path it starts with: "not well-formed XML: ...", "JSON but ..."."""
    return exc.message.removeprefix(f"{full} ").removeprefix("is ").rstrip(".")


def _listing(entries: Sequence[tuple[Path, str]]) -> str:
    shown = [f"{_code(rel.as_posix())} ({what})" for rel, what in entries[:_LISTED]]
    if len(entries) > _LISTED:
        shown.append(f"and {len(entries) - _LISTED} more")
    return ", ".join(shown)


def percent_text(value: float, minimum: float) -> str:
    """Two decimals, or more where two would round a miss up to the minimum (79.996 %)."""
    text = f"{value:.2f}"
    if value < minimum <= float(text):
        text = f"{value:.6f}".rstrip("0")
    return f"{text} %"


def coverage_item(
    path: Path | None, minimum: float, *, missing: str = "pass `--coverage-file`"
) -> Item:
    """The coverage item; without a report, a warning whose detail ends with ``missing``."""
    title = f"Code coverage {minimum:g} % or more"
    if path is None:
        return Item(
            "coverage", title, None, f"not measured: {missing}", {"minimum": minimum}, warning=True
        )
    try:
        cov = parse_coverage(path)
    except CoverageError as exc:
        return Item("coverage", title, False, exc.message, {"file": str(path)})
    counts = f", {cov.covered} of {cov.total} lines" if cov.covered is not None else ""
    ok = cov.percent >= minimum
    detail = (
        f"{percent_text(cov.percent, minimum)}{'' if ok else f' < {minimum:g} %'} "
        f"({cov.format}{counts}, {_code(str(path))})"
    )
    return Item(
        "coverage",
        title,
        ok,
        detail,
        {"percent": cov.percent, "minimum": minimum, "format": cov.format, "file": str(path)},
    )


# -- CHANGELOG -----------------------------------------------------------------------------


def changelog_item(path: Path, version: Version) -> Item:
    from release_actions.core import changelog as cl
    from release_actions.errors import ChangelogError

    title = "CHANGELOG updated"
    try:
        section = cl.require_released(cl.read(path), version)
    except ChangelogError as exc:
        return Item("changelog", title, False, exc.message, {"file": str(path)})
    return Item(
        "changelog",
        title,
        True,
        f"{_code(f'{path}:{section.line}')} has `[{section.label}] - {section.date}`",
        {"file": str(path), "line": section.line},
    )


# -- check runs ------------------------------------------------------------------------------


def checks_item(commit: Commit, required: Sequence[str] = (), ignore: Sequence[str] = ()) -> Item:
    """Every check run on the commit completed and passed; required ones are there."""
    title = "All tests pass (unit, integration, E2E)"
    runs = [
        r
        for r in commit.get_check_runs()
        if not any(fnmatch.fnmatchcase(r.name, pattern) for pattern in ignore)
    ]
    names = {r.name for r in runs}
    running = sorted(r.name for r in runs if r.status != "completed")
    failed = sorted(
        (r.name, r.conclusion or "no conclusion")
        for r in runs
        if r.status == "completed" and r.conclusion not in PASSING
    )
    missing = sorted(n for n in dict.fromkeys(required) if n not in names)
    passed: dict[str, int] = {}
    for r in runs:
        if r.status == "completed" and r.conclusion in PASSING:
            passed[r.conclusion] = passed.get(r.conclusion, 0) + 1
    data = {
        "runs": len(runs),
        "failed": [f"{name} ({conclusion})" for name, conclusion in failed],
        "running": running,
        "missing": missing,
        "passed": passed,
    }
    problems = []
    if failed:
        problems.append("failed: " + ", ".join(f"{_code(n)} ({c})" for n, c in failed))
    if running:
        problems.append(f"still running: {_codes(running)}")
    if missing:
        problems.append(f"required but missing: {_codes(missing)}")
    if not runs and not missing:
        problems.append("no check runs on the commit: nothing shows that the tests ran")
    if problems:
        return Item("checks", title, False, "; ".join(problems), data)
    counts = ", ".join(f"{n} {c}" for c, n in sorted(passed.items()))
    return Item("checks", title, True, f"{len(runs)} check run(s) passed ({counts})", data)


# -- approvals -----------------------------------------------------------------------------


def _pick_pull(pulls: Iterable[PullRequest], sha: str) -> PullRequest | None:
    """The pull request that brought the commit: merged as it, else with it as head."""
    ranked = sorted(
        pulls,
        key=lambda p: (
            p.merge_commit_sha != sha or not p.merged,
            p.head.sha != sha,
            not p.merged,
            -p.number,
        ),
    )
    return ranked[0] if ranked else None


def approvals_item(commit: Commit, minimum: int) -> Item:
    """The latest decisive review of each reviewer; APPROVED ones count, CHANGES_REQUESTED blocks."""
    title = f"Pull request reviewed ({minimum} or more approvals)"
    pull = _pick_pull(commit.get_pulls(), commit.sha)
    if pull is None:
        return Item(
            "approvals",
            title,
            minimum == 0,
            "no pull request contains the commit (pushed without review?)",
            {"approvals": 0, "minimum": minimum},
        )
    author = (pull.user.login if pull.user else "").lower()
    latest: dict[str, tuple[str, str]] = {}
    for review in pull.get_reviews():  # chronological
        login = review.user.login if review.user else ""
        if review.state in _DECISIVE and login.lower() != author:
            latest[login.lower()] = (login, review.state)
    approved = sorted(login for login, state in latest.values() if state == "APPROVED")
    blocking = sorted(login for login, state in latest.values() if state == "CHANGES_REQUESTED")
    data = {
        "pull_request": pull.number,
        "url": pull.html_url,
        "approvals": len(approved),
        "approved_by": approved,
        "changes_requested_by": blocking,
        "minimum": minimum,
    }
    detail = f"#{pull.number} has {len(approved)} approval(s)"
    if approved:
        detail += f" ({', '.join(approved)})"
    if len(approved) < minimum:
        detail += f", {minimum} needed"
    if blocking:
        detail += f"; changes requested by {', '.join(blocking)}"
    return Item("approvals", title, len(approved) >= minimum and not blocking, detail, data)


# -- the whole report ---------------------------------------------------------------------


def tag_commit(repo: Repository, tag: str) -> Commit:
    """The commit a tag points at, or an error that says the tag is not there."""
    from github import GithubException

    from release_actions.errors import IntegrationError
    from release_actions.integrations.github import github_errors

    with github_errors(f"Reading tag {tag}", repo=repo.full_name):
        try:
            commit = repo.get_commit(tag)
            commit.sha  # noqa: B018 (a lazy object: reading it is the request)
        except GithubException as exc:
            if exc.status not in (404, 422):
                raise
            raise IntegrationError(
                f"Tag `{tag}` does not exist in {repo.full_name} (GitHub answered {exc.status}).",
                hint="Push the tag first, or check `--tag` and `--repo`.",
            ) from exc
    return commit


def assess(
    repo: Repository,
    tag: str,
    version: Version,
    *,
    changelog: Path,
    coverage_file: Path | None,
    min_coverage: float,
    min_approvals: int,
    coverage_missing: str = "pass `--coverage-file`",
    required_checks: Sequence[str] = (),
    ignore_checks: Sequence[str] = (),
) -> Report:
    from release_actions.integrations.github import github_errors

    commit = tag_commit(repo, tag)
    with github_errors(f"Reading check runs of {tag}", repo=repo.full_name):
        checks = checks_item(commit, required_checks, ignore_checks)
    with github_errors(f"Reading the reviews of {tag}", repo=repo.full_name):
        approvals = approvals_item(commit, min_approvals)
    items = [
        checks,
        coverage_item(coverage_file, min_coverage, missing=coverage_missing),
        approvals,
        changelog_item(changelog, version),
    ]
    return Report(repo.full_name, tag, commit.sha, items)


# -- rendering -----------------------------------------------------------------------------


def _code(text: str) -> str:
    """Text as an inert Markdown code span (no HTML, links or mentions), on one line."""
    text = text.replace("\r", " ").replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _codes(names: Iterable[str]) -> str:
    return ", ".join(_code(n) for n in names)


def render_markdown(report: Report) -> str:
    items = {i.key: i for i in report.items}
    auto = [i for i in report.items if i.status != "manual"]
    bad = [i for i in auto if i.status == "failed"]
    passed = [i for i in auto if i.status == "passed"]
    unmeasured = len(report.warnings)
    if not report.ready:
        verdict = f"❌ **Not ready**: {len(bad)} of {len(auto)} automatic checks failed"
        verdict += f", {unmeasured} not measured." if unmeasured else "."
    elif unmeasured:
        verdict = (
            f"✅ **Ready**: {len(passed)} of {len(auto)} automatic checks passed, "
            f"{unmeasured} not measured (see ⚠️ below)."
        )
    else:
        verdict = f"✅ **Ready**: all {len(auto)} automatic checks passed."
    out = [
        f"### Release readiness of {_code(report.tag)} (source §3.1)\n\n",
        f"{verdict} Commit `{report.sha[:12]}` in {report.repo}.\n\n",
        "#### Checked automatically\n\n",
    ]
    marks = {"passed": ("x", "✅"), "failed": (" ", "❌"), "warning": (" ", "⚠️")}
    for item in auto:
        box, mark = marks[item.status]
        out.append(f"- [{box}] {mark} {item.title}: {item.detail}\n")
    out.append("\n#### To check by hand\n")
    for heading, entries in CHECKLIST:
        rows = []
        for title, key in entries:
            if key is not None and key in items and items[key].status != "manual":
                continue
            note = ""
            if key is not None and key in items:
                note = f" ({items[key].detail})"
            elif title in _AS_CHECKS:
                note = " (checked above when it runs as a check on the commit)"
            rows.append(f"- [ ] {title}{note}\n")
        if rows:
            out.append(f"\n**{heading}**\n\n" + "".join(rows))
    return "".join(out)


def render_text(report: Report) -> str:
    lines = [
        f"{report.tag} ({report.sha[:12]}) in {report.repo}: "
        + ("ready" if report.ready else f"NOT ready ({', '.join(report.failed)})")
    ]
    for item in report.items:
        mark = {"passed": "ok  ", "failed": "FAIL", "warning": "WARN", "manual": "--  "}[
            item.status
        ]
        lines.append(f"  {mark} {item.title}: {item.detail}")
    return "\n".join(lines)
