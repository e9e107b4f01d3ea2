"""The feature-flag lifecycle (source §5): export the flags, name and advance their stage."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from release_actions.app.flags import LAUNCHDARKLY_BASE_URL_ENV
from release_actions.app.session import Session
from release_actions.core.policy import FlagRule, FlagStage, Policy
from release_actions.errors import IntegrationError, ReleaseActionsError

if TYPE_CHECKING:
    from release_actions.integrations.launchdarkly import LaunchDarklyFlags

KINDS = ("release", "ops", "experiment", "permission")
STAGES = ("internal", "beta", "gradual", "ga")
# Switched, never rolled out by percentage (source §5.1): `advance --to gradual` needs --force.
NOT_GRADUAL = frozenset({"ops", "permission"})
LAST_REVIEWED_PROPERTY = "lastReviewedAt"
# How many times `advance` reads the flag again after LaunchDarkly answers 409.
CONFLICT_ATTEMPTS = 3


def flags_client(session: Session, policy: Policy, project: str | None = None) -> LaunchDarklyFlags:
    """The project's flags as the environment reaches them; tokens masked first.

    The project is ``project``, else `LAUNCHDARKLY_PROJECT`, else the policy's.
    """
    from release_actions.integrations.launchdarkly import TOKEN_ENV, LaunchDarklyFlags

    for name in TOKEN_ENV:
        if session.env.get(name):
            session.runtime.mask(session.env[name])
    extra: dict[str, Any] = {}
    if session.env.get(LAUNCHDARKLY_BASE_URL_ENV):
        extra["base_url"] = session.env[LAUNCHDARKLY_BASE_URL_ENV]
    project = (
        project
        or session.env.get("LAUNCHDARKLY_PROJECT")
        or policy.feature_flags.launchdarkly.project
    )
    return LaunchDarklyFlags.from_env(session.env, project=project, **extra)


# -- reading targeting ---------------------------------------------------------------------------


def _variation(flag: Mapping[str, Any], value: bool, default_key: str) -> int:
    """The index of the boolean variation ``value``; else the flag's default on/off one."""
    for i, variation in enumerate(flag.get("variations") or []):
        if isinstance(variation, dict) and variation.get("value") is value:
            return i
    index = (flag.get("defaults") or {}).get(default_key)
    return int(index) if isinstance(index, int) else (0 if value else 1)


def on_index(flag: Mapping[str, Any]) -> int:
    """The variation that means "on": `true`, else the flag's default on variation."""
    return _variation(flag, True, "onVariation")


def off_index(flag: Mapping[str, Any]) -> int:
    return _variation(flag, False, "offVariation")


def _variation_id(flag: Mapping[str, Any], index: int) -> str:
    variations = flag.get("variations") or []
    if not 0 <= index < len(variations) or not variations[index].get("_id"):
        raise IntegrationError(
            f"LaunchDarkly's flag `{flag.get('key')}` has no ID for variation {index}."
        )
    return str(variations[index]["_id"])


@dataclass(frozen=True)
class Serve:
    """What a rule or the fallthrough serves: a share of the "on" variation, fixed or rolled out."""

    percent: float
    rollout: bool

    @classmethod
    def of(cls, flag: Mapping[str, Any], target: Any) -> Serve | None:
        if not isinstance(target, dict):
            return None
        on = on_index(flag)
        if isinstance(target.get("variation"), int):
            return cls(100.0 if target["variation"] == on else 0.0, False)
        rollout = target.get("rollout")
        if isinstance(rollout, dict) and isinstance(rollout.get("variations"), list):
            weight = sum(
                int(v.get("weight") or 0)
                for v in rollout["variations"]
                if isinstance(v, dict) and v.get("variation") == on
            )
            return cls(weight / 1000.0, True)  # weights are thousandths of a percent
        return None

    def fields(self, flag: Mapping[str, Any]) -> dict[str, Any]:
        """The ``variationId`` or ``rolloutWeights`` of a semantic patch instruction."""
        on, off = _variation_id(flag, on_index(flag)), _variation_id(flag, off_index(flag))
        if not self.rollout:
            return {"variationId": on if self.percent >= 100 else off}
        weight = round(self.percent * 1000)
        return {"rolloutWeights": {on: weight, off: 100000 - weight}}

    def shown(self) -> str:
        if not self.rollout:
            return "on" if self.percent >= 100 else "off"
        return f"{_num(self.percent)} % on (rollout)"


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 3)


def rule_matches(rule: Mapping[str, Any], wanted: FlagRule) -> bool:
    """One clause, not negated, on the policy rule's attribute, operator and values."""
    clauses = rule.get("clauses") or []
    if len(clauses) != 1 or not isinstance(clauses[0], dict):
        return False
    clause = clauses[0]
    return (
        clause.get("attribute") == wanted.attribute
        and clause.get("op") == wanted.operator
        and not clause.get("negate")
        and _same_values(clause.get("values") or [], wanted.values)
    )


def _same_values(have: list[Any], want: list[Any]) -> bool:
    def key(v: Any) -> str:
        return f"{type(v).__name__}:{v}"

    return sorted(map(key, have)) == sorted(map(key, want))


def _environment(flag: Mapping[str, Any], environment: str) -> dict[str, Any]:
    env = (flag.get("environments") or {}).get(environment)
    if not isinstance(env, dict):
        raise IntegrationError(
            f"LaunchDarkly flag `{flag.get('key')}` has no environment `{environment}`.",
            hint="The lifecycle's environments come from `feature_flags.stages` in the "
            "policy (`internal.environment`, `beta.environment`, `environment`); each must be "
            "an environment key of the project.",
        )
    return env


def rollout_percent(flag: Mapping[str, Any], environment: str) -> int | float | None:
    """The share of contexts the environment's fallthrough serves "on"; null when it is off."""
    env = (flag.get("environments") or {}).get(environment)
    if not isinstance(env, dict) or not env.get("on"):
        return None
    serve = Serve.of(flag, env.get("fallthrough"))
    return None if serve is None else _num(serve.percent)


# -- stages -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """A lifecycle stage; ``percent`` is the beta rule's or the gradual rollout's share."""

    name: str  # development, internal, beta, gradual, ga
    percent: float | None = None

    @property
    def label(self) -> str:
        if self.name == "gradual" and self.percent is not None:
            return f"gradual {_num(self.percent)} %"
        return self.name

    @property
    def rank(self) -> float:
        order = {"development": 0, "internal": 1, "beta": 2, "gradual": 3, "ga": 4}
        return order[self.name] + (self.percent or 0) / 1000.0

    def to_dict(self) -> dict[str, Any]:
        percent = None if self.percent is None else _num(self.percent)
        return {"name": self.name, "percent": percent, "label": self.label}


def _rule_share(flag: Mapping[str, Any], env: Mapping[str, Any], rule: FlagRule) -> float | None:
    for r in env.get("rules") or []:
        if isinstance(r, dict) and rule_matches(r, rule):
            serve = Serve.of(flag, r)
            if serve is not None and serve.percent > 0:
                return serve.percent
    return None


def stage_of(flag: Mapping[str, Any], policy: Policy) -> Stage:
    """The furthest stage whose targeting the flag has, production first.

    GA: production on, fallthrough fixed on the "on" variation. Gradual N %: production
    on, fallthrough serving N % on. Beta: the beta rule serving on in its environment.
    Internal: the internal rule serving on in its environment. Else development.
    """
    stages = policy.feature_flags.stages
    envs = flag.get("environments") or {}
    prod = envs.get(stages.environment)
    if isinstance(prod, dict) and prod.get("on"):
        serve = Serve.of(flag, prod.get("fallthrough"))
        if serve is not None and serve.percent >= 100 and not serve.rollout:
            return Stage("ga", 100.0)
        if serve is not None and serve.percent > 0:
            return Stage("gradual", serve.percent)
    for name, stage in (("beta", stages.beta), ("internal", stages.internal)):
        env = envs.get(stage.environment)
        if not isinstance(env, dict) or not env.get("on"):
            continue
        if stage.rule is not None:
            share = _rule_share(flag, env, stage.rule)
            if share is not None:
                return Stage(name, share)
    return Stage("development")


def describe(flag: Mapping[str, Any], environment: str) -> list[str]:
    """The environment's targeting as lines, for people and for a diff."""
    env = _environment(flag, environment)
    if not env.get("on"):
        return [f"{environment}: off"]
    lines = [f"{environment}: on"]
    for n, rule in enumerate(env.get("rules") or [], 1):
        clauses = " and ".join(
            f"{c.get('attribute')} {'not ' if c.get('negate') else ''}{c.get('op')} "
            f"{_values(c.get('values') or [])}"
            for c in rule.get("clauses") or []
        )
        serve = Serve.of(flag, rule)
        lines.append(f"  rule {n}: {clauses} -> {serve.shown() if serve else '?'}")
    serve = Serve.of(flag, env.get("fallthrough"))
    lines.append(f"  default rule: {serve.shown() if serve else '?'}")
    return lines


def _values(values: list[Any]) -> str:
    return "[" + ", ".join(str(v).lower() if isinstance(v, bool) else str(v) for v in values) + "]"


# -- the plan: desired targeting per environment, and the instructions to reach it -----------------


@dataclass
class _Target:
    on: bool = False
    rules: list[tuple[FlagRule, Serve]] = field(default_factory=list)
    absent: list[FlagRule] = field(default_factory=list)
    fallthrough: Serve | None = None
    # The fallthrough when this turns the environment on: a later stage that skipped
    # internal still turns staging on for the internal rule only, not for everyone.
    fallthrough_when_off: Serve | None = None


def _stage_serve(stage: FlagStage, percent: float | None = None) -> Serve:
    share = percent if percent is not None else stage.percent
    return Serve(100.0, False) if share is None or share >= 100 else Serve(float(share), True)


def desired(policy: Policy, target: Stage) -> dict[str, _Target]:
    """What each environment's targeting must be at ``target``; stages build on the earlier.

    Internal: its environment on, the internal rule serving on, everyone else off. Beta:
    the beta rule (at its percentage) in its environment, everyone else off. Gradual N %:
    production's fallthrough rolled out to N %, the beta rule removed (a rule is read
    before the fallthrough, so it would hold beta testers back at its own percentage).
    GA: the fallthrough fixed on. Later stages keep the internal environment's rule.
    """
    stages = policy.feature_flags.stages
    out: dict[str, _Target] = {}

    def env(key: str) -> _Target:
        return out.setdefault(key, _Target())

    internal = env(stages.internal.environment)
    internal.on = True
    if stages.internal.rule is not None:
        internal.rules.append((stages.internal.rule, _stage_serve(stages.internal)))
        internal.fallthrough_when_off = Serve(0.0, False)
        if target.name == "internal":
            internal.fallthrough = Serve(0.0, False)
    elif target.name == "internal":
        internal.fallthrough = _stage_serve(stages.internal)
    if target.name == "beta":
        beta = env(stages.beta.environment)
        beta.on = True
        if stages.beta.rule is not None:
            beta.rules.append((stages.beta.rule, _stage_serve(stages.beta, target.percent)))
            beta.fallthrough = Serve(0.0, False)
        else:
            beta.fallthrough = _stage_serve(stages.beta, target.percent)
    if target.name in ("gradual", "ga"):
        prod = env(stages.environment)
        prod.on = True
        if stages.beta.rule is not None and stages.beta.environment == stages.environment:
            prod.absent.append(stages.beta.rule)
        if target.name == "ga":
            prod.fallthrough = Serve(100.0, False)
        else:
            prod.fallthrough = Serve(float(target.percent or 0), True)
    return out


def instructions_for(
    flag: Mapping[str, Any], environment: str, want: _Target, description: str
) -> list[dict[str, Any]]:
    """The semantic patch instructions that take the environment to ``want``; [] when there."""
    env = _environment(flag, environment)
    rules = [r for r in env.get("rules") or [] if isinstance(r, dict)]
    out: list[dict[str, Any]] = []
    for rule, serve in want.rules:
        found = next((r for r in rules if rule_matches(r, rule)), None)
        if found is None:
            out.append(
                {
                    "kind": "addRule",
                    "clauses": [
                        {
                            "contextKind": "user",
                            "attribute": rule.attribute,
                            "op": rule.operator,
                            "negate": False,
                            "values": list(rule.values),
                        }
                    ],
                    "description": description,
                    **serve.fields(flag),
                }
            )
        elif Serve.of(flag, found) != serve:
            out.append(
                {
                    "kind": "updateRuleVariationOrRollout",
                    "ruleId": found["_id"],
                    **serve.fields(flag),
                }
            )
    for rule in want.absent:
        out.extend(
            {"kind": "removeRule", "ruleId": r["_id"]} for r in rules if rule_matches(r, rule)
        )
    fallthrough = want.fallthrough
    if fallthrough is None and want.on and not env.get("on"):
        fallthrough = want.fallthrough_when_off
    if fallthrough is not None and Serve.of(flag, env.get("fallthrough")) != fallthrough:
        out.append({"kind": "updateFallthroughVariationOrRollout", **fallthrough.fields(flag)})
    if want.on and not env.get("on"):
        # Last, for a person reading it: the targeting is in place before the flag is on
        # (the patch is applied as one change either way).
        out.append({"kind": "turnFlagOn"})
    return out


def apply_locally(
    flag: Mapping[str, Any], environment: str, instructions: list[dict[str, Any]]
) -> dict[str, Any]:
    """The flag as LaunchDarkly would make it, for a dry run's "after"."""
    new = copy.deepcopy(dict(flag))
    env = _environment(new, environment)
    ids = {v.get("_id"): i for i, v in enumerate(new.get("variations") or [])}

    def serve(ins: Mapping[str, Any]) -> dict[str, Any]:
        if ins.get("variationId") is not None:
            return {"variation": ids[ins["variationId"]]}
        weights = ins["rolloutWeights"]
        return {
            "rollout": {
                "variations": [{"variation": ids[k], "weight": w} for k, w in weights.items()]
            }
        }

    env.setdefault("rules", [])
    for n, ins in enumerate(instructions):
        kind = ins["kind"]
        if kind in ("turnFlagOn", "turnFlagOff"):
            env["on"] = kind == "turnFlagOn"
        elif kind == "addRule":
            env["rules"].append({"_id": f"new-{n}", "clauses": ins["clauses"], **serve(ins)})
        elif kind == "removeRule":
            env["rules"] = [r for r in env["rules"] if r.get("_id") != ins["ruleId"]]
        elif kind == "updateRuleVariationOrRollout":
            for rule in env["rules"]:
                if rule.get("_id") == ins["ruleId"]:
                    rule.pop("variation", None)
                    rule.pop("rollout", None)
                    rule.update(serve(ins))
        elif kind == "updateFallthroughVariationOrRollout":
            env["fallthrough"] = serve(ins)
    return new


# -- kinds ---------------------------------------------------------------------------------------


def kind_from_tags(flag: Mapping[str, Any]) -> str | None:
    tags = [t for t in flag.get("tags") or [] if t in KINDS]
    if tags:
        return str(tags[0])
    return "release" if flag.get("temporary") else None


def kind_of(policy: Policy, key: str, flag: Mapping[str, Any] | None) -> tuple[str | None, str]:
    """The flag's kind and where it came from: `catalog`, `tags`, `temporary` or `unknown`."""
    entry = next((e for e in policy.feature_flags.catalog if e.key == key), None)
    if entry is not None:
        return entry.kind, "catalog"
    if flag is None:
        return None, "unknown"
    tagged = [t for t in flag.get("tags") or [] if t in KINDS]
    if tagged:
        return str(tagged[0]), "tags"
    if flag.get("temporary"):
        return "release", "temporary"
    return None, "unknown"


# -- export --------------------------------------------------------------------------------------


def _iso_ms(ms: Any) -> str | None:
    if not isinstance(ms, int | float) or isinstance(ms, bool):
        return None
    return datetime.fromtimestamp(ms / 1000.0, UTC).isoformat()


def _midnight(day: str, policy: Policy) -> str:
    return datetime.combine(
        date.fromisoformat(day), datetime.min.time(), policy.calendar.tz
    ).isoformat()


def _last_reviewed(flag: Mapping[str, Any], policy: Policy) -> tuple[str | None, str | None]:
    """``customProperties.lastReviewedAt`` as ISO 8601 (a date is midnight in the calendar's
    zone); the second value is a warning when it is there but not a date."""
    prop = (flag.get("customProperties") or {}).get(LAST_REVIEWED_PROPERTY)
    if not isinstance(prop, dict):
        return None, None
    values = prop.get("value") or []
    text = str(values[0]).strip() if isinstance(values, list) and values else ""
    if not text:
        return None, None
    try:
        if len(text) == 10:
            return _midnight(text, policy), None
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=policy.calendar.tz)
        return moment.isoformat(), None
    except ValueError:
        return None, (
            f"flag `{flag.get('key')}`: the custom property `{LAST_REVIEWED_PROPERTY}` is "
            f"{text!r}, not a date (YYYY-MM-DD or ISO 8601); it is read as never reviewed."
        )


def _fully_on(flag: Mapping[str, Any], environment: str) -> bool:
    env = (flag.get("environments") or {}).get(environment)
    if not isinstance(env, dict) or not env.get("on"):
        return False
    serve = Serve.of(flag, env.get("fallthrough"))
    return serve is not None and serve.percent >= 100


def ga_at(
    client: LaunchDarklyFlags, flag: Mapping[str, Any], environment: str, status: str | None
) -> str | None:
    """When the flag last reached GA in ``environment``: its fallthrough 100 % on, read back
    through the audit log to the change that made it so; null when it is not GA now.

    A flag LaunchDarkly calls `launched` (one variation served for 7 days) with no such
    change in the audit log (or a GA flag whose entries are gone) dates from its
    environment's last change: `launched` means nothing changed since.
    """
    key = str(flag.get("key"))
    if not _fully_on(flag, environment) and status != "launched":
        return None
    reached: int | None = None
    for entry in client.audit_log(key, environment):
        detail = client.audit_entry(str(entry.get("_id")))
        current = detail.get("currentVersion")
        if not isinstance(current, dict) or not _fully_on(current, environment):
            break
        reached = entry.get("date") if isinstance(entry.get("date"), int) else reached
    if reached is not None:
        return _iso_ms(reached)
    # No entry (the audit log is kept for a limited time): the environment's last change
    # is the latest it can have happened.
    env = (flag.get("environments") or {}).get(environment) or {}
    return _iso_ms(env.get("lastModified"))


def export_flags(session: Session, policy: Policy, project: str | None) -> dict[str, Any]:
    """Every flag of the LaunchDarkly project, with what the lifecycle audit needs.

    ``{"project", "flags": [...], "warnings": [...]}``; each flag has ``key``, ``kind``
    (the policy's catalog wins, else LaunchDarkly's tags, else `release` for a temporary
    flag), ``kind_source``, ``owner``, ``maintainer``, ``archived``, ``temporary``,
    ``tags``, ``created_at``, ``ga_at``, ``experiment_ended_at``, ``last_reviewed_at``
    (ISO 8601 or null), ``code_references`` (empty: filled from the repository by the
    caller), ``stage`` and ``environments`` (per key: ``on``, ``rollout_percent``,
    ``status``, ``last_requested``).
    """
    client = flags_client(session, policy, project)
    flags = client.list_flags(archived=True)
    ga_env = policy.feature_flags.stages.environment
    env_keys = sorted({e for f in flags for e in (f.get("environments") or {})})
    statuses = {e: client.flag_statuses(e) for e in env_keys}
    catalog = {e.key: e for e in policy.feature_flags.catalog}
    warnings: list[str] = []
    out: list[dict[str, Any]] = []
    for flag in sorted(flags, key=lambda f: str(f.get("key"))):
        key = str(flag.get("key"))
        kind, source = kind_of(policy, key, flag)
        tagged_kinds = sorted({t for t in flag.get("tags") or [] if t in KINDS})
        tagged = kind_from_tags(flag)
        if len(tagged_kinds) > 1:
            warnings.append(
                f"flag `{key}`: its LaunchDarkly tags name more than one kind "
                f"({', '.join(tagged_kinds)}); keep one."
            )
        if source == "catalog" and tagged_kinds and tagged != kind:
            warnings.append(
                f"flag `{key}`: the policy's catalog says `{kind}`, its LaunchDarkly tags say "
                f"`{tagged}`; the catalog wins. Fix the tag in LaunchDarkly or the entry in "
                "`feature_flags.catalog`."
            )
        if kind is None:
            warnings.append(
                f"flag `{key}`: no kind (not in `feature_flags.catalog`, no tag "
                f"{'/'.join(KINDS)}, not temporary); add it to the catalog."
            )
        entry = catalog.get(key)
        reviewed, problem = _last_reviewed(flag, policy)
        if problem:
            warnings.append(problem)
        environments: dict[str, Any] = {}
        for env_key, env in sorted((flag.get("environments") or {}).items()):
            status = statuses.get(env_key, {}).get(key) or {}
            environments[env_key] = {
                "on": bool(env.get("on")),
                "rollout_percent": rollout_percent(flag, env_key),
                "status": status.get("name"),
                "last_requested": status.get("lastRequested"),
            }
        ga_status = environments.get(ga_env, {}).get("status")
        out.append(
            {
                "key": key,
                "name": flag.get("name"),
                "kind": kind,
                "kind_source": source,
                "owner": entry.owner if entry else None,
                "maintainer": (flag.get("_maintainer") or {}).get("email"),
                "archived": bool(flag.get("archived")),
                "temporary": bool(flag.get("temporary")),
                "tags": list(flag.get("tags") or []),
                "created_at": _iso_ms(flag.get("creationDate")),
                "ga_at": ga_at(client, flag, ga_env, ga_status),
                "experiment_ended_at": _midnight(entry.experiment_ends, policy)
                if entry and entry.experiment_ends
                else None,
                "last_reviewed_at": reviewed,
                "code_references": [],
                "stage": stage_of(flag, policy).label,
                "environments": environments,
            }
        )
    found = {f["key"] for f in out}
    for key in catalog:
        if key not in found:
            warnings.append(
                f"flag `{key}` is in `feature_flags.catalog` but not in LaunchDarkly project "
                f"`{client.project}`; remove the entry once the flag is deleted."
            )
    return {"project": client.project, "flags": out, "warnings": warnings}


# -- advance -------------------------------------------------------------------------------------


@dataclass
class EnvironmentChange:
    environment: str
    instructions: list[dict[str, Any]]
    before: list[str]
    after: list[str]
    version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "instructions": self.instructions,
            "before": self.before,
            "after": self.after,
            "version": self.version,
        }


@dataclass
class AdvanceResult:
    flag: str
    project: str
    kind: str | None
    kind_source: str
    before: Stage
    target: Stage
    after: Stage
    changes: list[EnvironmentChange]
    comment: str
    dry_run: bool
    conflicts: int = 0

    @property
    def changed(self) -> bool:
        return any(c.instructions for c in self.changes) and not self.dry_run

    @property
    def diff(self) -> str:
        before = [line for c in self.changes for line in c.before]
        after = [line for c in self.changes for line in c.after]
        return "\n".join(difflib.unified_diff(before, after, "before", "after", lineterm="", n=10))

    def to_dict(self) -> dict[str, Any]:
        return {
            "flag": self.flag,
            "project": self.project,
            "kind": self.kind,
            "kind_source": self.kind_source,
            "from": self.before.to_dict(),
            "to": self.target.to_dict(),
            "stage": self.after.to_dict(),
            "changed": self.changed,
            "dry_run": self.dry_run,
            "comment": self.comment,
            "conflicts": self.conflicts,
            "changes": [c.to_dict() for c in self.changes if c.instructions],
            "diff": self.diff,
        }


def target_stage(policy: Policy, to: str, percent: int | None, current: Stage) -> Stage:
    """The stage ``--to`` names; gradual without ``--percent`` is the policy's next step."""
    stages = policy.feature_flags.stages
    if percent is not None and to not in ("beta", "gradual"):
        raise ReleaseActionsError(
            f"`--percent` goes with `--to beta` or `--to gradual`, not `--to {to}`."
        )
    if to == "internal":
        # As `stage_of` reads it back: the internal rule's share, all of it unless a percent.
        return Stage("internal", _stage_serve(stages.internal).percent)
    if to == "beta":
        return Stage("beta", _stage_serve(stages.beta, percent).percent)
    if to == "ga":
        return Stage("ga", 100.0)
    if percent is not None:
        return Stage("gradual", float(percent))
    steps = sorted(stages.gradual)
    if not steps:
        raise ReleaseActionsError(
            "`feature_flags.stages.gradual` lists no percentages: pass `--percent N`."
        )
    done = current.percent if current.name == "gradual" and current.percent else 0.0
    later = [s for s in steps if s > done]
    if not later:
        raise ReleaseActionsError(
            f"The flag is at {current.label}, the last step of `feature_flags.stages.gradual` "
            f"({', '.join(map(str, steps))}).",
            hint="Advance it with `--to ga`, or give the percentage with `--percent N`.",
        )
    return Stage("gradual", float(later[0]))


def advance_comment(env: Mapping[str, str], key: str, target: Stage, reason: str | None) -> str:
    from release_actions.integrations.records import run_url

    text = f"release-actions flags advance {key} --to {target.label}"
    if reason:
        text += f": {reason}"
    url = run_url(env)
    return f"{text} ({url})" if url else text


def advance(
    session: Session,
    policy: Policy,
    key: str,
    to: str,
    *,
    percent: int | None = None,
    force: bool = False,
    reason: str | None = None,
    project: str | None = None,
    dry_run: bool = False,
) -> AdvanceResult:
    """Take flag ``key`` to stage ``to`` with one semantic patch per environment that differs.

    Idempotent: at the stage already, nothing is sent. Refused (exit 2) without ``force``:
    an ops or permission flag to gradual, and any move back to an earlier stage. A 409
    (the flag changed meanwhile) reads the flag again and recomputes, at most
    `CONFLICT_ATTEMPTS` times.
    """
    client = flags_client(session, policy, project)
    conflicts = 0
    patched: dict[str, EnvironmentChange] = {}
    first: Stage | None = None
    while True:
        flag = client.get_flag(key)
        current = stage_of(flag, policy)
        first = first or current
        target = target_stage(policy, to, percent, first)
        kind, source = kind_of(policy, key, flag)
        _check_allowed(key, kind, source, first, target, force)
        comment = advance_comment(session.env, key, target, reason)
        plans = [
            (env, instructions_for(flag, env, want, f"release-actions: {target.name} stage"))
            for env, want in desired(policy, target).items()
        ]
        try:
            for env, instructions in plans:
                if not instructions:
                    continue
                before = describe(flag, env)
                after_flag = apply_locally(flag, env, instructions)
                change = EnvironmentChange(env, instructions, before, describe(after_flag, env))
                if not dry_run:
                    from release_actions.integrations.launchdarkly import PatchConflictError

                    try:
                        flag = client.semantic_patch(key, env, instructions, comment=comment)
                    except PatchConflictError:
                        conflicts += 1
                        if conflicts >= CONFLICT_ATTEMPTS:
                            raise
                        session.note(
                            f"LaunchDarkly answered 409 for `{key}` in `{env}`; reading the "
                            "flag again"
                        )
                        raise _Again() from None
                    version = flag.get("_version")
                    change.version = version if isinstance(version, int) else None
                else:
                    flag = after_flag
                patched[env] = change
        except _Again:
            continue
        break
    order = [env for env, _ in plans]
    changes = [patched[e] for e in order if e in patched] or [
        EnvironmentChange(e, [], describe(flag, e), describe(flag, e)) for e in order
    ]
    return AdvanceResult(
        flag=key,
        project=client.project,
        kind=kind,
        kind_source=source,
        before=first,
        target=target,
        after=first if dry_run else stage_of(flag, policy),
        changes=changes,
        comment=comment,
        dry_run=dry_run,
        conflicts=conflicts,
    )


class _Again(Exception):
    """Internal: a 409 asks for the flag to be read again."""


def _check_allowed(
    key: str, kind: str | None, source: str, current: Stage, target: Stage, force: bool
) -> None:
    if force:
        return
    if target.name == "gradual" and kind in NOT_GRADUAL:
        where = {
            "catalog": "the policy's catalog",
            "tags": "its LaunchDarkly tags",
        }.get(source, source)
        raise ReleaseActionsError(
            f"Flag `{key}` is a `{kind}` flag ({where}): ops and permission flags are switched "
            "on or off, not rolled out by percentage (source §5.1), so `--to gradual` is refused.",
            hint="Use `--to ga` to switch it on for everyone, fix its kind in "
            "`feature_flags.catalog`, or pass `--force` to roll it out by percentage anyway.",
        )
    if target.rank < current.rank:
        raise ReleaseActionsError(
            f"Flag `{key}` is at {current.label}; `--to {target.label}` would move it back.",
            hint="To roll a flag back on purpose pass `--force`; to switch it off at once use "
            "`release-actions rollback --flags-only --flag KEY`.",
        )
