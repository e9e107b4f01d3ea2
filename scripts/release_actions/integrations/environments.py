"""Environments as code (source §3.4): a file of GitHub environments, planned and applied."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from release_actions.errors import IntegrationError, PolicyError, PolicyIssue

if TYPE_CHECKING:
    import github
    from github.Environment import Environment
    from github.Repository import Repository

    from release_actions.core.yamlpos import Located

# Source §3.4's file, read from the consuming repository.
DEFAULT_ENVIRONMENTS_PATH = Path(".github/environments.yml")
MAX_WAIT_MINUTES = 43200  # GitHub's limit: 30 days
MAX_REVIEWERS = 6  # GitHub's limit, users and teams together
_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_TEAM = re.compile(
    r"^(?:(?P<org>[A-Za-z0-9][A-Za-z0-9-]{0,38})/)?(?P<slug>[A-Za-z0-9][A-Za-z0-9._-]*)$"
)

ADMIN_ENV_YAML = (
    "# GITHUB_TOKEN cannot manage environments, whatever the job's `permissions:` say\n"
    "env:\n"
    "  GITHUB_TOKEN: ${{ secrets.ENVIRONMENTS_ADMIN_TOKEN }}"
)
ADMIN_TOKEN_HINT = (
    "Environments need the repository permission `administration: write`, and a workflow's "
    "`permissions:` block cannot give it to GITHUB_TOKEN. Use a GitHub App installation token "
    "(repository permission Administration: Read and write; actions/create-github-app-token "
    "makes one in the job) or a fine-grained personal access token with Administration: Read "
    "and write on this repository, stored as a secret:\n" + ADMIN_ENV_YAML
)

_KEYS = {
    "top": ("environments",),
    "environment": ("deployment_branch_policy", "reviewers", "wait_timer", "prevent_self_review"),
    "policy": ("protected_branches", "custom_branch_policies"),
    "pattern": ("name", "type"),
    "reviewers": ("users", "teams"),
}


class EnvironmentsFileError(PolicyError):
    """Raised when an environments file is missing, is not YAML, or does not validate."""

    title = "Invalid environments file"


# -- the file ------------------------------------------------------------------------------


class _Model(BaseModel):
    # A typo in a key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True)


class BranchPattern(_Model):
    """One name pattern that branches (or tags) must match to deploy (GitHub's fnmatch)."""

    name: str = Field(min_length=1, max_length=255)
    type: Literal["branch", "tag"] = "branch"


def _pattern(value: Any) -> Any:
    # The document writes patterns as plain strings: `- "release/*"`.
    return {"name": value} if isinstance(value, str) else value


class BranchPolicySpec(_Model):
    protected_branches: bool = Field(
        False, description="Only branches with protection rules may deploy (source §3.4)"
    )
    custom_branch_policies: list[Annotated[BranchPattern, BeforeValidator(_pattern)]] = Field(
        default_factory=list,
        description="Name patterns that may deploy, such as `release/*` (source §3.4)",
    )

    @model_validator(mode="after")
    def _says_something(self) -> BranchPolicySpec:
        if not self.protected_branches and not self.custom_branch_policies:
            raise ValueError(
                "set `protected_branches: true` or list `custom_branch_policies`; to let every "
                "branch deploy, leave `deployment_branch_policy` out"
            )
        keys = [(p.name, p.type) for p in self.custom_branch_policies]
        twice = sorted({name for name, kind in keys if keys.count((name, kind)) > 1})
        if twice:
            raise ValueError(f"`custom_branch_policies` lists {', '.join(twice)} twice")
        return self


class ReviewerGroup(_Model):
    users: list[str] = Field(default_factory=list, description="GitHub logins")
    teams: list[str] = Field(
        default_factory=list,
        description="Team slugs of the repository's organization (`slug` or `org/slug`)",
    )

    @model_validator(mode="after")
    def _names(self) -> ReviewerGroup:
        for login in self.users:
            if not _LOGIN.match(login):
                raise ValueError(f"{login!r} is not a GitHub login")
        for team in self.teams:
            if not _TEAM.match(team):
                raise ValueError(f"{team!r} is not a team slug (such as `release-managers`)")
        return self


class EnvironmentSpec(_Model):
    deployment_branch_policy: BranchPolicySpec | None = Field(
        None, description="Which branches may deploy; left out: every branch (source §3.4)"
    )
    reviewers: list[ReviewerGroup] = Field(
        default_factory=list, description="Who approves a deployment (source §3.4)"
    )
    wait_timer: int = Field(
        0, ge=0, le=MAX_WAIT_MINUTES, description="Minutes to wait before deploying (source §3.4)"
    )
    prevent_self_review: bool = Field(
        False, description="The person who started the deployment may not approve it"
    )

    @model_validator(mode="after")
    def _reviewers(self) -> EnvironmentSpec:
        people = [("User", u.lower()) for g in self.reviewers for u in g.users]
        people += [("Team", t.lower()) for g in self.reviewers for t in g.teams]
        if len(people) > MAX_REVIEWERS:
            raise ValueError(
                f"{len(people)} reviewers; GitHub allows up to {MAX_REVIEWERS} users and teams "
                "together (add a team to have more people)"
            )
        if len(set(people)) != len(people):
            raise ValueError("a reviewer is listed twice")
        if self.prevent_self_review and not people:
            raise ValueError("`prevent_self_review` needs `reviewers`")
        return self


def _env_name(value: Any) -> str:
    text = str(value)
    if not text or len(text) > 255 or any(ord(c) < 32 for c in text):
        raise ValueError(f"{text!r} is not an environment name (1 to 255 printable characters)")
    return text


class EnvironmentsFile(_Model):
    environments: dict[Annotated[str, BeforeValidator(_env_name)], EnvironmentSpec] = Field(
        description="GitHub environments by name (source §3.4)"
    )

    @model_validator(mode="after")
    def _unique(self) -> EnvironmentsFile:
        lowered = [n.lower() for n in self.environments]
        if len(set(lowered)) != len(lowered):
            raise ValueError("two environments differ only in case; GitHub treats them as one")
        return self


@dataclass(frozen=True)
class EnvironmentsConfig:
    """A validated file, with the line of every key so later problems can point at it."""

    path: str
    spec: EnvironmentsFile
    located: Located
    warnings: tuple[PolicyIssue, ...] = ()

    def line(self, *loc: str | int) -> int | None:
        return self.located.line_of(loc)


def _unknown_key_message(key: str) -> str:
    parts = key.split(".")
    if len(parts) <= 1:
        level = "top"
    elif len(parts) == 3:
        level = "environment"
    elif parts[2] == "deployment_branch_policy":
        level = "pattern" if len(parts) >= 6 else "policy"
    else:
        level = "reviewers"
    where = "here" if level != "top" else "at the top"
    return f"unknown key (valid {where}: {', '.join(_KEYS[level])})"


def parse_environments(located: Located) -> EnvironmentsConfig:
    """Validate loaded YAML; errors name file, line and key."""
    from release_actions.core.yamlpos import validation_issues

    path = located.path
    data = located.data
    if not isinstance(data, dict):
        found = "nothing" if data is None else type(data).__name__
        raise EnvironmentsFileError(
            f"{path} is not a valid environments file",
            [
                PolicyIssue(
                    path, 1, "(document)", f"expected an `environments:` mapping, found {found}"
                )
            ],
        )
    try:
        spec = EnvironmentsFile.model_validate(data)
    except ValidationError as exc:
        issues = [
            PolicyIssue(i.path, i.line, i.key, _unknown_key_message(i.key))
            if i.message.startswith("unknown key")
            else i
            for i in validation_issues(exc, located, "")
        ]
        raise EnvironmentsFileError(
            f"{path} is not a valid environments file",
            issues,
            hint="The format is source §3.4's: `environments: {NAME: {deployment_branch_policy, "
            "reviewers, wait_timer}}`; examples/environments.yml has the document's three.",
        ) from None
    warnings = []
    for name, env in spec.environments.items():
        policy = env.deployment_branch_policy
        if policy is not None and policy.protected_branches and policy.custom_branch_policies:
            loc = ("environments", name, "deployment_branch_policy", "protected_branches")
            patterns = ", ".join(f"`{p.name}`" for p in policy.custom_branch_policies)
            warnings.append(
                PolicyIssue(
                    path,
                    located.line_of(loc),
                    ".".join(loc),
                    "GitHub takes either protected branches or custom patterns, not both: the "
                    f"patterns ({patterns}) apply and `protected_branches` does not. Protect "
                    "those branches (a branch protection rule or ruleset) to keep both.",
                )
            )
    return EnvironmentsConfig(path, spec, located, tuple(warnings))


def load_environments(path: Path) -> EnvironmentsConfig:
    from release_actions.core.yamlpos import load_yaml_file

    if not path.is_file():
        raise EnvironmentsFileError(
            f"The environments file {path} does not exist.",
            hint="Pass --file PATH; examples/environments.yml is source §3.4's configuration.",
            file=str(path),
        )
    try:
        located = load_yaml_file(path)
    except PolicyError as exc:
        raise EnvironmentsFileError(exc.message, exc.issues, file=exc.file, line=exc.line) from None
    return parse_environments(located)


# -- desired and current state --------------------------------------------------------------

BranchMode = Literal["all", "protected", "custom"]
_BRANCH_MODES = {
    "all": "every branch",
    "protected": "protected branches",
    "custom": "branch and tag patterns",
}


@dataclass(frozen=True)
class Reviewer:
    type: Literal["User", "Team"]
    id: int
    name: str  # login, or org/slug

    def show(self) -> str:
        return f"{'user' if self.type == 'User' else 'team'} {self.name}"


@dataclass(frozen=True)
class Settings:
    """One environment's protection, in the shape the API reads and writes."""

    wait_timer: int = 0
    prevent_self_review: bool = False
    reviewers: tuple[Reviewer, ...] = ()
    branches: BranchMode = "all"
    patterns: frozenset[tuple[str, str]] = frozenset()

    def reviewer_keys(self) -> frozenset[tuple[str, int]]:
        return frozenset((r.type, r.id) for r in self.reviewers)


def _show_reviewers(reviewers: tuple[Reviewer, ...]) -> str:
    return ", ".join(sorted(r.show() for r in reviewers)) or "none"


@dataclass(frozen=True)
class SettingChange:
    setting: str
    before: str | None  # None: the environment does not exist yet
    after: str


@dataclass
class EnvironmentPlan:
    name: str
    action: Literal["create", "update", "none"]
    desired: Settings
    changes: list[SettingChange] = field(default_factory=list)
    put: bool = False
    add_patterns: list[tuple[str, str]] = field(default_factory=list)
    remove_patterns: list[tuple[int, str, str]] = field(default_factory=list)
    # Switching to custom patterns: apply lists them again after the switch.
    recheck_patterns: bool = False

    @property
    def writes(self) -> int:
        return int(self.put) + len(self.add_patterns) + len(self.remove_patterns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "action": self.action,
            "writes": self.writes,
            "changes": [
                {"setting": c.setting, "before": c.before, "after": c.after} for c in self.changes
            ],
            "add_patterns": [{"name": n, "type": t} for n, t in self.add_patterns],
            "remove_patterns": [{"name": n, "type": t} for _, n, t in self.remove_patterns],
        }


@dataclass
class Plan:
    repo: str
    path: str
    environments: list[EnvironmentPlan]
    unmanaged: list[str]
    warnings: tuple[PolicyIssue, ...] = ()

    @property
    def changes(self) -> int:
        """The number of API writes that apply makes (0: the repository matches the file)."""
        return sum(e.writes for e in self.environments)

    def count(self, action: str) -> int:
        return sum(e.action == action for e in self.environments)

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "file": self.path,
            "changes": self.changes,
            "environments": [e.to_dict() for e in self.environments],
            "unmanaged": self.unmanaged,
            "warnings": [str(w) for w in self.warnings],
        }


# -- GitHub ------------------------------------------------------------------------------


READ_HINT = (
    "Reading environments needs read access to the repository's Actions settings: give the "
    "job\npermissions:\n  actions: read\n(a fine-grained token: Actions: Read; a GitHub App: "
    "the repository permission Actions: Read)."
)


@contextmanager
def admin_errors(action: str, *, repo: str, reading: bool = False) -> Iterator[None]:
    """github_errors, with a 403 that says which token environments need."""
    from github import GithubException, RateLimitExceededException

    from release_actions.integrations.github import _github_message, github_errors

    with github_errors(action, repo=repo):
        try:
            yield
        except GithubException as exc:
            headers = exc.headers or {}
            if (
                exc.status != 403
                or isinstance(exc, RateLimitExceededException)
                or headers.get("x-ratelimit-remaining") == "0"
            ):
                raise
            needs = headers.get("x-accepted-github-permissions", "")
            raise IntegrationError(
                f"{action} in {repo} failed: the token may not "
                f"{'read' if reading else 'manage'} environments "
                f"(403 {_github_message(exc.data)}"
                + (f"; GitHub wants {needs}" if needs else "")
                + ").",
                hint=READ_HINT if reading else ADMIN_TOKEN_HINT,
            ) from exc


def _lookup(gh: github.Github, kind: str, name: str, owner: str) -> Reviewer:
    if kind == "users":
        user = gh.get_user(name)
        return Reviewer("User", int(user.id), user.login)
    m = _TEAM.match(name)
    assert m is not None
    org = m["org"] or owner
    # One request: PyGithub's Organization would fetch the organization first.
    _, team = gh.requester.requestJsonAndCheck(
        "GET", f"/orgs/{quote(org, safe='')}/teams/{quote(m['slug'], safe='')}"
    )
    return Reviewer("Team", int(team["id"]), f"{org}/{team['slug']}")


def _not_found(
    kind: str, name: str, owner: str, status: int, path: str, line: int | None
) -> IntegrationError:
    if kind == "users":
        return IntegrationError(
            f"User `{name}` does not exist on GitHub ({status}).",
            hint="Check the login's spelling in the file.",
            file=path,
            line=line,
        )
    m = _TEAM.match(name)
    assert m is not None
    org = m["org"] or owner
    return IntegrationError(
        f"Team `{m['slug']}` was not found in the organization `{org}` ({status}).",
        hint="Use the team's slug, its URL name (`release-managers`, not `Release Managers`). "
        "GitHub also answers 404 when the token cannot see the team: a GitHub App token needs "
        "the organization permission Members: Read, a classic token `read:org`. A repository "
        "owned by a user (not an organization) has no teams: list `users:` instead.",
        file=path,
        line=line,
    )


def _resolve_reviewers(
    gh: github.Github, config: EnvironmentsConfig, owner: str, repo_name: str
) -> dict[str, tuple[Reviewer, ...]]:
    """Logins and team slugs to ids (GET /users/{login}, GET /orgs/{org}/teams/{slug})."""
    from github import GithubException

    from release_actions.integrations.github import github_errors

    cache: dict[tuple[str, str], Reviewer] = {}
    out: dict[str, tuple[Reviewer, ...]] = {}
    for env_name, env in config.spec.environments.items():
        found: list[Reviewer] = []
        for gi, group in enumerate(env.reviewers):
            for kind, names in (("users", group.users), ("teams", group.teams)):
                for ni, name in enumerate(names):
                    key = (kind, name.lower())
                    if key not in cache:
                        line = config.line("environments", env_name, "reviewers", gi, kind, ni)
                        try:
                            with github_errors(f"Looking up {kind[:-1]} `{name}`", repo=repo_name):
                                try:
                                    cache[key] = _lookup(gh, kind, name, owner)
                                except GithubException as exc:
                                    limited = "rate limit" in str(exc.data).lower()
                                    if exc.status not in (403, 404) or limited:
                                        raise
                                    raise _not_found(
                                        kind, name, owner, exc.status, config.path, line
                                    ) from exc
                        except IntegrationError as exc:
                            if exc.file is None:
                                exc.file, exc.line = config.path, line
                            raise
                    found.append(cache[key])
        out[env_name] = tuple(found)
    return out


def _desired(env: EnvironmentSpec, reviewers: tuple[Reviewer, ...]) -> Settings:
    policy = env.deployment_branch_policy
    mode: BranchMode = "all"
    patterns: frozenset[tuple[str, str]] = frozenset()
    if policy is not None and policy.custom_branch_policies:
        # GitHub cannot combine the two; the explicit patterns win (parse_environments warns).
        mode = "custom"
        patterns = frozenset((p.name, p.type) for p in policy.custom_branch_policies)
    elif policy is not None:
        mode = "protected"
    return Settings(
        wait_timer=env.wait_timer,
        prevent_self_review=env.prevent_self_review if reviewers else False,
        reviewers=reviewers,
        branches=mode,
        patterns=patterns,
    )


def _policies_url(repo: Repository, name: str) -> str:
    return f"{repo.url}/environments/{quote(name, safe='')}/deployment-branch-policies"


def _list_patterns(repo: Repository, name: str) -> list[tuple[int, str, str]]:
    """GET .../deployment-branch-policies, every page (PyGithub has no call for it)."""
    out: list[tuple[int, str, str]] = []
    page = 1
    while True:
        _, data = repo.requester.requestJsonAndCheck(
            "GET", _policies_url(repo, name), parameters={"per_page": 100, "page": page}
        )
        items = data.get("branch_policies") or []
        out += [(int(p["id"]), str(p["name"]), str(p.get("type") or "branch")) for p in items]
        if not items or len(out) >= int(data.get("total_count") or 0):
            return out
        page += 1


def _current(
    repo: Repository, env: Environment, owner: str
) -> tuple[Settings, list[tuple[int, str, str]]]:
    from github.Team import Team

    wait, self_review = 0, False
    reviewers: list[Reviewer] = []
    for rule in env.protection_rules or []:
        if rule.type == "wait_timer":
            wait = int(rule.wait_timer or 0)
        elif rule.type == "required_reviewers":
            self_review = bool(rule.prevent_self_review)
            for r in rule.reviewers or []:
                who = r.reviewer
                if isinstance(who, Team):
                    # A reviewing team belongs to the repository's organization.
                    reviewers.append(Reviewer("Team", int(who.id), f"{owner}/{who.slug}"))
                else:
                    reviewers.append(Reviewer("User", int(who.id), who.login))
    policy = env.deployment_branch_policy
    mode: BranchMode = "all"
    listed: list[tuple[int, str, str]] = []
    if policy is not None and policy.custom_branch_policies:
        mode = "custom"
        listed = _list_patterns(repo, env.name)
    elif policy is not None and policy.protected_branches:
        mode = "protected"
    settings = Settings(
        wait_timer=wait,
        prevent_self_review=self_review if reviewers else False,
        reviewers=tuple(reviewers),
        branches=mode,
        patterns=frozenset((n, t) for _, n, t in listed),
    )
    return settings, listed


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _compare(
    name: str, desired: Settings, current: Settings | None, listed: list[tuple[int, str, str]]
) -> EnvironmentPlan:
    plan = EnvironmentPlan(name, "create" if current is None else "none", desired)

    def note(setting: str, before: str | None, after: str) -> None:
        if before != after:
            plan.changes.append(SettingChange(setting, before, after))

    note(
        "deployment branches",
        None if current is None else _BRANCH_MODES[current.branches],
        _BRANCH_MODES[desired.branches],
    )
    note(
        "reviewers",
        None if current is None else _show_reviewers(current.reviewers),
        _show_reviewers(desired.reviewers),
    )
    if desired.reviewers:
        note(
            "prevent self-review",
            None if current is None else _yes(current.prevent_self_review),
            _yes(desired.prevent_self_review),
        )
    note(
        "wait timer",
        None if current is None else f"{current.wait_timer} min",
        f"{desired.wait_timer} min",
    )
    plan.put = current is None or (
        current.wait_timer != desired.wait_timer
        or current.prevent_self_review != desired.prevent_self_review
        or current.reviewer_keys() != desired.reviewer_keys()
        or current.branches != desired.branches
    )
    if desired.branches == "custom":
        was_custom = current is not None and current.branches == "custom"
        plan.recheck_patterns = current is not None and not was_custom
        have = {(n, t) for _, n, t in listed} if was_custom else set()
        plan.add_patterns = sorted(desired.patterns - have)
        if was_custom:
            plan.remove_patterns = sorted(
                (i, n, t) for i, n, t in listed if (n, t) not in desired.patterns
            )
    if current is not None and plan.writes:
        plan.action = "update"
    return plan


def plan_environments(gh: github.Github, repo: Repository, config: EnvironmentsConfig) -> Plan:
    """Read the repository's environments and say what apply would change; writes nothing."""
    full = repo.full_name
    owner = repo.owner.login
    reviewers = _resolve_reviewers(gh, config, owner, full)
    with admin_errors("Reading environments", repo=full, reading=True):
        existing = {e.name.lower(): e for e in repo.get_environments()}
        plans = []
        for name, spec in config.spec.environments.items():
            desired = _desired(spec, reviewers[name])
            env = existing.get(name.lower())
            if env is None:
                plans.append(_compare(name, desired, None, []))
            else:
                current, listed = _current(repo, env, owner)
                plans.append(_compare(env.name, desired, current, listed))
    wanted = {n.lower() for n in config.spec.environments}
    unmanaged = sorted(e.name for k, e in existing.items() if k not in wanted)
    return Plan(full, config.path, plans, unmanaged, config.warnings)


def apply_plan(repo: Repository, plan: Plan) -> int:
    """Make the repository match the plan; the number of writes made (the plan's changes)."""
    from github.EnvironmentDeploymentBranchPolicy import EnvironmentDeploymentBranchPolicyParams
    from github.EnvironmentProtectionRuleReviewer import ReviewerParams

    done = 0
    for env in plan.environments:
        d = env.desired
        if env.put:
            policy = (
                None
                if d.branches == "all"
                else EnvironmentDeploymentBranchPolicyParams(
                    protected_branches=d.branches == "protected",
                    custom_branch_policies=d.branches == "custom",
                )
            )
            with admin_errors(f"Writing environment `{env.name}`", repo=plan.repo):
                repo.create_environment(
                    env.name,
                    wait_timer=d.wait_timer,
                    reviewers=[ReviewerParams(r.type, r.id) for r in d.reviewers],
                    prevent_self_review=d.prevent_self_review,
                    deployment_branch_policy=policy,
                )
            done += 1
        url = _policies_url(repo, env.name)
        if env.recheck_patterns:
            # Patterns from an earlier custom period may come back with the switch.
            with admin_errors(
                f"Reading branch policies of `{env.name}`", repo=plan.repo, reading=True
            ):
                listed = _list_patterns(repo, env.name)
            have = {(n, t) for _, n, t in listed}
            env.add_patterns = sorted(d.patterns - have)
            env.remove_patterns = sorted(
                (i, n, t) for i, n, t in listed if (n, t) not in d.patterns
            )
        for ident, name, _kind in env.remove_patterns:
            with admin_errors(f"Removing branch policy `{name}` of `{env.name}`", repo=plan.repo):
                repo.requester.requestJsonAndCheck("DELETE", f"{url}/{ident}")
            done += 1
        for name, kind in env.add_patterns:
            with admin_errors(f"Adding branch policy `{name}` to `{env.name}`", repo=plan.repo):
                repo.requester.requestJsonAndCheck("POST", url, input={"name": name, "type": kind})
            done += 1
    return done


# -- reports -------------------------------------------------------------------------------


def render_text(plan: Plan, *, applied: bool = False) -> str:
    """The readable diff: `+` create, `~` update, `=` unchanged, one line per setting."""
    if applied:
        head = (
            f"Environments of {plan.repo} from {plan.path}: {plan.count('create')} created, "
            f"{plan.count('update')} updated, {plan.count('none')} unchanged "
            f"({plan.changes} API write(s) made)"
        )
    else:
        head = (
            f"Environments of {plan.repo} from {plan.path}: {plan.count('create')} to create, "
            f"{plan.count('update')} to update, {plan.count('none')} unchanged "
            f"({plan.changes} API write(s) to make)"
        )
    lines = [head]
    mark = {"create": "+", "update": "~", "none": "="}
    suffix = {"create": " (new)", "update": "", "none": " (no changes)"}
    for env in plan.environments:
        lines.append(f"{mark[env.action]} {env.name}{suffix[env.action]}")
        for c in env.changes:
            shown = c.after if c.before is None else f"{c.before} -> {c.after}"
            lines.append(f"    {c.setting}: {shown}")
        lines += [f"    + branch policy {n} ({t})" for n, t in env.add_patterns]
        lines += [f"    - branch policy {n} ({t})" for _, n, t in env.remove_patterns]
    if plan.unmanaged:
        lines.append(f"Not in the file, left as they are: {', '.join(plan.unmanaged)}")
    return "\n".join(lines)


def render_markdown(plan: Plan, *, applied: bool) -> str:
    from release_actions.gha import markdown_table

    title = "Applied" if applied else "Plan"
    out = [f"### {title}: GitHub environments of {plan.repo} (source §3.4)\n\n"]
    if not plan.changes:
        out.append(f"The environments match `{plan.path}`: nothing to change.\n")
    else:
        rows: list[list[str]] = []
        for env in plan.environments:
            rows += [[env.name, c.setting, c.before or "(new)", c.after] for c in env.changes]
            rows += [
                [env.name, "branch policy", "(none)", f"{n} ({t})"] for n, t in env.add_patterns
            ]
            rows += [
                [env.name, "branch policy", f"{n} ({t})", "(removed)"]
                for _, n, t in env.remove_patterns
            ]
        verb = "Changed" if applied else "To change"
        out.append(f"{verb}: {plan.changes} write(s) from `{plan.path}`.\n\n")
        out.append(markdown_table(["Environment", "Setting", "Now", "In the file"], rows))
    for w in plan.warnings:
        out.append(f"\n> [!WARNING]\n> `{w.key}` (line {w.line}): {w.message}\n")
    if plan.unmanaged:
        names = ", ".join(f"`{n}`" for n in plan.unmanaged)
        out.append(f"\nNot in the file, left as they are: {names}.\n")
    return "".join(out)
