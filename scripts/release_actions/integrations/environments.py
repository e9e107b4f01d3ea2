"""Environments as code (source §3.4): a file of GitHub environments, planned and applied."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
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

    from release_actions.core.policy import Policy
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
    "top": ("approvers", "environments"),
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
    approvers: dict[str, ReviewerGroup] = Field(
        default_factory=dict,
        description="The GitHub users and teams behind each approver name of the policy's "
        "release types (source §3.3), for `--from-policy`",
    )
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
    # Environments made from the policy's release types (--from-policy), by name.
    generated: Mapping[str, Generated] = field(default_factory=dict)

    def line(self, *loc: str | int) -> int | None:
        return self.located.line_of(loc)


def _unknown_key_message(key: str) -> str:
    parts = key.split(".")
    if len(parts) <= 1:
        level = "top"
    elif parts[0] == "approvers":
        level = "reviewers"
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


# -- environments from the policy's release types (source §3.3) -----------------------------

REVIEWER_FLAG_HELP = "NAME=team:SLUG, NAME=team:ORG/SLUG or NAME=user:LOGIN"


@dataclass(frozen=True)
class Generated:
    """An environment made from release types: which, and where each reviewer group is from."""

    name: str
    types: tuple[str, ...]
    approval: str
    approvers: tuple[str, ...]
    # Per reviewer group of the environment: the file and line that mapped it (None: a flag).
    origins: tuple[tuple[str | None, int | None], ...] = ()
    reviewers_from_file: bool = False

    def note(self) -> str:
        kinds = ", ".join(self.types)
        plural = "s" if len(self.types) > 1 else ""
        head = f"{self.name}: release type{plural} {kinds} (approval: {self.approval}"
        if self.approval != "manual":
            who = "the file's reviewers, unchanged" if self.reviewers_from_file else "no reviewers"
            return f"{head}): {who}."
        chain = " then ".join(self.approvers)
        text = (
            f"{head}, approvers {chain}): GitHub lets the deployment proceed on the approval of "
            "any one of them"
        )
        if len(self.approvers) > 1:
            # One environment per stage would need one job per stage in the workflows.
            text += (
                f"; it has no order of reviewers, so §3.3's chain ({chain}) is approximated "
                "by one environment whose reviewers are all stages: one approval from any "
                "stage releases the deployment"
            )
        return text + "."


class ApproverMappingError(EnvironmentsFileError):
    """Raised when the policy's approvers cannot become an environment's required reviewers."""

    title = "Approvers without GitHub reviewers"


def parse_reviewer_flags(values: Sequence[str]) -> dict[str, ReviewerGroup]:
    """`--reviewer NAME=team:SLUG|user:LOGIN`, repeatable; one name may take several."""
    found: dict[str, dict[str, list[str]]] = {}
    for value in values:
        name, sep, target = value.partition("=")
        kind, colon, who = target.partition(":")
        if not sep or not colon or not name.strip() or kind not in ("team", "user") or not who:
            raise EnvironmentsFileError(
                f"`--reviewer {value}` is not {REVIEWER_FLAG_HELP}.",
                hint="For example `--reviewer tech-lead=team:tech-leads` or "
                "`--reviewer tech-lead=user:octocat`.",
            )
        entry = found.setdefault(name.strip(), {"users": [], "teams": []})
        entry["users" if kind == "user" else "teams"].append(who.strip())
    out: dict[str, ReviewerGroup] = {}
    for name, entry in found.items():
        try:
            out[name] = ReviewerGroup.model_validate(entry)
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise EnvironmentsFileError(
                f"`--reviewer {name}=...`: {problem}.", hint=f"Use {REVIEWER_FLAG_HELP}."
            ) from None
    return out


def _people(groups: Sequence[ReviewerGroup]) -> set[tuple[str, str]]:
    out = {("users", u.lower()) for g in groups for u in g.users}
    out |= {("teams", t.lower().rsplit("/", 1)[-1]) for g in groups for t in g.teams}
    return out


def from_policy(
    config: EnvironmentsConfig, policy: Policy, flags: Mapping[str, ReviewerGroup] | None = None
) -> EnvironmentsConfig:
    """The file plus one environment per distinct `environment` of the policy's release types.

    A `manual` type's environment gets the type's `approvers` as required reviewers, each
    mapped to GitHub users and teams by the file's `approvers:` section or a `--reviewer`
    flag (the flag wins). An environment the file also lists keeps the file's branch policy,
    wait timer and self-review setting; one it does not list admits the release tags only
    (`{tag prefix}*`, type tag), as release.yml runs on tag pushes.
    """
    flags = dict(flags or {})
    mapping: dict[str, tuple[ReviewerGroup, str | None, int | None]] = {
        name: (group, config.path, config.line("approvers", name))
        for name, group in config.spec.approvers.items()
    }
    mapping.update({name: (group, None, None) for name, group in flags.items()})

    by_env: dict[str, list[str]] = {}
    for type_name, rt in policy.release_types.items():
        key = next((k for k in by_env if k.lower() == rt.environment.lower()), rt.environment)
        by_env.setdefault(key, []).append(type_name)

    existing = {n.lower(): n for n in config.spec.environments}
    envs: dict[str, EnvironmentSpec] = dict(config.spec.environments)
    generated: dict[str, Generated] = {}
    unmapped: dict[str, list[str]] = {}
    problems: list[str] = []
    for env_name, types in by_env.items():
        rts = [policy.release_types[t] for t in types]
        manual = [t for t, rt in zip(types, rts, strict=True) if rt.approval == "manual"]
        automatic = [t for t in types if t not in manual]
        if manual and automatic:
            problems.append(
                f"`{env_name}` is the environment of {_ticks(automatic)} (approval: automatic) "
                f"and of {_ticks(manual)} (approval: manual). A GitHub environment's reviewers "
                "hold every deployment to it: give the manual types their own `environment` in "
                "the policy (such as `production-" + manual[0] + "`)."
            )
            continue
        chains = {tuple(policy.release_types[t].approvers) for t in manual}
        if len(chains) > 1:
            problems.append(
                f"`{env_name}` is the environment of {_ticks(manual)}, whose `approvers` differ "
                f"({'; '.join(' then '.join(c) for c in sorted(chains))}): an environment has one "
                "set of reviewers. Give each type its own `environment` in the policy."
            )
            continue
        approvers = next(iter(chains)) if manual else ()
        for a in approvers:
            if a not in mapping:
                unmapped.setdefault(a, []).extend(manual)
        name = existing.get(env_name.lower(), env_name)
        base = envs.get(name)
        if base is None:
            prefix = policy.tag.prefix
            base = EnvironmentSpec.model_validate(
                {
                    "deployment_branch_policy": {
                        "custom_branch_policies": [{"name": f"{prefix}*", "type": "tag"}]
                    }
                }
            )
        if manual and any(a not in mapping for a in approvers):
            continue
        groups: list[ReviewerGroup] = []
        origins: list[tuple[str | None, int | None]] = []
        seen: set[tuple[str, str]] = set()
        for a in approvers:
            group, path, line = mapping[a]
            users = [u for u in group.users if ("users", u.lower()) not in seen]
            teams = [t for t in group.teams if ("teams", t.lower()) not in seen]
            seen |= {("users", u.lower()) for u in users} | {("teams", t.lower()) for t in teams}
            if users or teams:
                groups.append(ReviewerGroup(users=users, teams=teams))
                origins.append((path, line))
        spec = base
        if manual:
            listed = name in config.spec.environments and base.reviewers
            if listed and _people(base.reviewers) != _people(groups):
                problems.append(
                    f"`environments.{name}.reviewers` (line "
                    f"{config.line('environments', name, 'reviewers')}) differs from the "
                    f"approvers of {_ticks(manual)} ({' then '.join(approvers)}). Leave "
                    "`reviewers` out of the file for this environment, or map the approvers "
                    "to the same people."
                )
                continue
            try:
                spec = EnvironmentSpec.model_validate(
                    {
                        **base.model_dump(exclude={"reviewers"}),
                        "reviewers": [g.model_dump() for g in groups],
                    }
                )
            except ValidationError as exc:
                problem = exc.errors()[0]["msg"].removeprefix("Value error, ")
                problems.append(
                    f"`{name}`, from the approvers of {_ticks(manual)} "
                    f"({' then '.join(approvers)}): {problem}."
                )
                continue
        envs[name] = spec
        generated[name] = Generated(
            name,
            tuple(types),
            "manual" if manual else "automatic",
            tuple(approvers),
            tuple(origins) if manual else (),
            reviewers_from_file=not manual and bool(base.reviewers),
        )
    if unmapped:
        names = sorted(unmapped)
        listing = "; ".join(f"`{n}` ({', '.join(sorted(set(unmapped[n])))})" for n in names)
        raise ApproverMappingError(
            f"No GitHub reviewers for the approvers {', '.join(f'`{n}`' for n in names)} of "
            f"the policy's release types: {listing}.",
            hint="Map each approver name to GitHub teams or users, in the environments file:\n"
            "approvers:\n"
            + "".join(f"  {n}:\n    teams: [TEAM-SLUG]\n" for n in names)
            + f"or with `--reviewer {names[0]}=team:TEAM-SLUG` (also `user:LOGIN`).",
            file=config.path,
        )
    if problems:
        raise ApproverMappingError(
            "The policy's release types cannot become GitHub environments: " + " ".join(problems),
            hint="Each release type's `environment` is in the policy's `release_types` "
            "(`release-actions policy show`).",
            file=config.path,
        )
    spec_all = EnvironmentsFile.model_validate(
        {"approvers": config.spec.approvers, "environments": envs}
    )
    return EnvironmentsConfig(config.path, spec_all, config.located, config.warnings, generated)


def _ticks(names: Sequence[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


# -- workflow triggers against deployment branch policies -----------------------------------

DEFAULT_WORKFLOWS = Path(".github/workflows")
# This project's reusable workflows and the environments their jobs deploy to: `staging`
# and the release type's `environment` (release.yml's `release-type` input, default regular).
_REUSABLE = re.compile(r"/release-actions/\.github/workflows/(?P<wf>[\w.-]+)\.ya?ml@")


def _ref_trigger(on: Any) -> tuple[str, list[str]] | None:
    """("tags"|"branches", patterns) when a workflow runs only on pushes of that kind of ref."""
    if not isinstance(on, dict) or set(on) != {"push"} or not isinstance(on["push"], dict):
        return None
    push = on["push"]
    tags = "tags" in push or "tags-ignore" in push
    branches = "branches" in push or "branches-ignore" in push
    # GitHub: with only tag filters (or only branch filters), the other kind never triggers.
    if tags == branches:
        return None
    kind = "tags" if tags else "branches"
    patterns = push.get(kind)
    return kind, [str(p) for p in patterns] if isinstance(patterns, list) else []


def _literal(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("name")
    if isinstance(value, str) and value.strip() and "${{" not in value:
        return value.strip()
    return None


def _job_environments(job: dict[str, Any], folder: Path, policy: Callable[[], Policy]) -> list[str]:
    own = _literal(job.get("environment"))
    if own is not None:
        return [own]
    uses = job.get("uses")
    if not isinstance(uses, str):
        return []
    if uses.startswith("./"):
        called = folder / Path(uses).name
        try:
            from release_actions.core.yamlpos import load_yaml_file

            data = load_yaml_file(called).data
        except (PolicyError, OSError):
            return []
        jobs = data.get("jobs") if isinstance(data, dict) else None
        if not isinstance(jobs, dict):
            return []
        found = [_literal(j.get("environment")) for j in jobs.values() if isinstance(j, dict)]
        return [e for e in found if e]
    m = _REUSABLE.search(uses)
    if m is None:
        return []
    wf = m["wf"]
    if wf == "db-migration":
        return ["staging", "production"]
    if wf not in ("release", "hotfix"):
        return []
    with_ = job.get("with") if isinstance(job.get("with"), dict) else {}
    assert isinstance(with_, dict)
    kind = "hotfix" if wf == "hotfix" else with_.get("release-type", "regular")
    rt = policy().release_types.get(str(kind)) if _literal(kind) else None
    return ["staging"] + ([rt.environment] if rt is not None else [])


def _admits(spec: EnvironmentSpec, kind: str) -> tuple[bool, str]:
    policy = spec.deployment_branch_policy
    if policy is None:
        return True, "every branch and tag"
    if policy.custom_branch_policies:
        names = ", ".join(f"`{p.name}` ({p.type})" for p in policy.custom_branch_policies)
        want = "tag" if kind == "tags" else "branch"
        return any(p.type == want for p in policy.custom_branch_policies), f"only {names}"
    return kind == "branches", "protected branches only"


def check_workflows(
    config: EnvironmentsConfig, folder: Path, policy: Callable[[], Policy]
) -> list[PolicyIssue]:
    """Jobs whose workflow's only trigger can never pass their environment's branch policy."""
    from release_actions.core.yamlpos import load_yaml_file

    if not folder.is_dir():
        return []
    envs = {n.lower(): (n, s) for n, s in config.spec.environments.items()}
    issues: list[PolicyIssue] = []
    files = sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])
    for path in files:
        try:
            located = load_yaml_file(path)
        except PolicyError:
            continue  # not this command's file to judge
        data = located.data
        if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
            continue
        trigger = _ref_trigger(data.get("on"))
        if trigger is None:
            continue
        kind, patterns = trigger
        shown = ", ".join(f"`{p}`" for p in patterns) or f"any {kind[:-1]}"
        for job_id, job in data["jobs"].items():
            if not isinstance(job, dict):
                continue
            where = "environment" if _literal(job.get("environment")) else "uses"
            line = located.line_of(("jobs", job_id, where))
            for env_name in _job_environments(job, folder, policy):
                found = envs.get(env_name.lower())
                if found is None:
                    continue
                name, spec = found
                ok, admits = _admits(spec, kind)
                if ok:
                    continue
                if kind == "tags":
                    fix = (
                        f'Add `{{name: "{patterns[0] if patterns else "v*"}", type: tag}}` to '
                        f"`environments.{name}.deployment_branch_policy.custom_branch_policies` "
                        f"in {config.path} (and drop `protected_branches`)."
                    )
                    what = "tag"
                else:
                    fix = (
                        f"Add the branch pattern to `environments.{name}.deployment_branch_policy."
                        f"custom_branch_policies` in {config.path}."
                    )
                    what = "branch"
                issues.append(
                    PolicyIssue(
                        str(path),
                        line,
                        f"jobs.{job_id}.{where}",
                        f"Job `{job_id}` deploys to `{name}`, but this workflow runs only on "
                        f"{kind[:-1]} pushes ({shown}) and `{name}` admits no {what} ({admits}): "
                        f"GitHub will refuse the deployment. {fix}",
                    )
                )
    return issues


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
    # What environments made from release types mean for the approvals of source §3.3.
    notes: list[str] = field(default_factory=list)

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
            "notes": self.notes,
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
    kind: str, name: str, owner: str, status: int, path: str | None, line: int | None
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
        made = config.generated.get(env_name)
        for gi, group in enumerate(env.reviewers):
            for kind, names in (("users", group.users), ("teams", group.teams)):
                for ni, name in enumerate(names):
                    key = (kind, name.lower())
                    if key not in cache:
                        path: str | None = config.path
                        line = config.line("environments", env_name, "reviewers", gi, kind, ni)
                        if made is not None and made.origins:
                            # From an approver mapping: its line, or no file for a flag.
                            path, line = made.origins[gi]
                        try:
                            with github_errors(f"Looking up {kind[:-1]} `{name}`", repo=repo_name):
                                try:
                                    cache[key] = _lookup(gh, kind, name, owner)
                                except GithubException as exc:
                                    limited = "rate limit" in str(exc.data).lower()
                                    if exc.status not in (403, 404) or limited:
                                        raise
                                    raise _not_found(
                                        kind, name, owner, exc.status, path, line
                                    ) from exc
                        except IntegrationError as exc:
                            if exc.file is None:
                                exc.file, exc.line = path, line
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
    notes = [g.note() for g in config.generated.values()]
    return Plan(full, config.path, plans, unmanaged, config.warnings, notes)


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
    if plan.notes:
        lines.append("From the policy's release types (source §3.3):")
        lines += [f"  {n}" for n in plan.notes]
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
        where = f"`{w.key}`" if w.path == plan.path else f"`{w.path}`, `{w.key}`"
        out.append(f"\n> [!WARNING]\n> {where} (line {w.line}): {w.message}\n")
    if plan.notes:
        out.append("\nFrom the policy's release types (source §3.3):\n\n")
        out += [f"- {n}\n" for n in plan.notes]
    if plan.unmanaged:
        names = ", ".join(f"`{n}`" for n in plan.unmanaged)
        out.append(f"\nNot in the file, left as they are: {names}.\n")
    return "".join(out)
