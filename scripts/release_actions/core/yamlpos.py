"""YAML loading that remembers the line of every key, so errors can name file, line and key."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from release_actions.errors import PolicyError, PolicyIssue

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

Loc = tuple[str | int, ...]


@dataclass
class Located:
    """Plain data (dicts, lists, scalars) plus the 1-based line of each path in it."""

    data: Any
    path: str
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int | None:
        """The line of ``loc``, or of its nearest ancestor that the file spells out."""
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.lines:
                return self.lines[loc[:n]]
        return None


MAX_YAML_BYTES = 1024 * 1024
"""A policy, scenario or environments file larger than this is refused: they are a few KB,
and whoever can push a tag must not be able to keep the release job parsing for minutes."""

MAX_YAML_NODES = 100_000
"""Values after aliases are expanded: a YAML alias bomb (nine levels of nine) is 387 million."""


def _too_big(path: str, size: int) -> PolicyError:
    return PolicyError(
        f"{path} is {size:,} bytes; the limit is 1 MiB for a policy, scenario or "
        "environments file.",
        hint="Keep it to its settings; nothing in it needs to be large.",
        file=path,
    )


def load_yaml(text: str, path: str) -> Located:
    # ruamel.yaml speaks YAML 1.2: `on`/`no` stay strings and `10:00` is not the
    # sexagesimal 600 that PyYAML would make of a release time.
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.reader import ReaderError

    size = len(text.encode("utf-8"))
    if size > MAX_YAML_BYTES:
        raise _too_big(path, size)
    yaml = YAML(typ="rt")
    try:
        doc = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "not valid YAML"
        raise PolicyError(
            f"{path} is not valid YAML",
            [PolicyIssue(path, line, "(document)", str(problem).strip())],
        ) from exc
    except ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise PolicyError(
            f"{path} is not valid YAML",
            [PolicyIssue(path, line, "(document)", f"character {exc.character!r} is not allowed")],
        ) from exc
    except YAMLError as exc:  # anything else the loader refuses
        raise PolicyError(
            f"{path} is not valid YAML", [PolicyIssue(path, None, "(document)", str(exc))]
        ) from exc
    located = Located(None, path, {(): 1})
    budget = [MAX_YAML_NODES]
    try:
        located.data = _plain(doc, (), located.lines, budget)
    except _Expansion:
        raise PolicyError(
            f"{path} is too large once its aliases are expanded",
            [
                PolicyIssue(
                    path,
                    None,
                    "(document)",
                    f"its aliases expand to more than {MAX_YAML_NODES:,} values (a YAML "
                    "alias bomb?); write the values out, or use fewer aliases",
                )
            ],
        ) from None
    return located


class _Expansion(Exception):
    """Raised when the plain data would hold more values than MAX_YAML_NODES."""


def load_yaml_file(path: Path) -> Located:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_YAML_BYTES + 1)
            if len(raw) > MAX_YAML_BYTES:
                raise _too_big(str(path), path.stat().st_size)
    except OSError as exc:
        raise PolicyError(
            f"Cannot read {path}: {exc.strerror}.",
            hint="Pass --policy PATH, or create .github/release-policy.yml "
            "(`release-actions policy show --defaults` prints a complete one).",
            file=str(path),
        ) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PolicyError(
            f"{path} is not UTF-8 text",
            [PolicyIssue(str(path), line, "(document)", f"byte {exc.start} cannot be decoded")],
        ) from exc
    return load_yaml(text, str(path))


def _plain(node: Any, loc: Loc, lines: dict[Loc, int], budget: list[int]) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    budget[0] -= 1
    if budget[0] < 0:
        raise _Expansion
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key, value in node.items():
            child = (*loc, str(key))
            try:
                lines[child] = node.lc.key(key)[0] + 1
            except (KeyError, TypeError, AttributeError):
                lines[child] = lines.get(loc, 1)
            out[str(key)] = _plain(value, child, lines, budget)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, value in enumerate(node):
            child = (*loc, i)
            try:
                lines[child] = node.lc.item(i)[0] + 1
            except (KeyError, TypeError, AttributeError):
                lines[child] = lines.get(loc, 1)
            items.append(_plain(value, child, lines, budget))
        return items
    if isinstance(node, str):
        return str(node)  # ruamel's scalar string subclasses carry style we do not want
    return node


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """`did you mean 'steps'?` for the choice nearest ``word``, or nothing when none is near."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def _models(annotation: Any) -> list[Any]:
    """The pydantic models inside a field's type: `X`, `X | None`, `list[X]`, `dict[str, X]`."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType, list, typing.Annotated):
        return [m for a in args[:1] if origin is typing.Annotated for m in _models(a)] or [
            m for a in args for m in _models(a)
        ]
    if origin is dict and len(args) == 2:
        return [("*", m) for m in _models(args[1])]
    return []


def keys_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys that ``model`` allows at ``loc`` (the location of a mapping in its data)."""
    current: list[Any] = [model]
    for part in loc:
        if isinstance(part, int) or not current:
            continue  # a list index: the items are the same models
        nxt: list[Any] = []
        for m in current:
            if isinstance(m, tuple):  # inside a dict of models: any key selects the model
                nxt.append(m[1])
            elif isinstance(part, str) and part in m.model_fields:
                nxt.extend(_models(m.model_fields[part].annotation))
        current = nxt
    return sorted({k for m in current if not isinstance(m, tuple) for k in m.model_fields})


def _unknown_key(loc: Loc, model: type[BaseModel] | None, hint: str) -> str:
    if model is None or not loc:
        return f"unknown key ({hint})" if hint else "unknown key"
    valid = keys_at(model, loc[:-1])
    near = did_you_mean(loc[-1], valid)
    if near:
        return f"unknown key: {near}"
    if valid and len(valid) <= 8:
        return "unknown key: the keys here are " + ", ".join(f"`{k}`" for k in valid)
    return f"unknown key ({hint})" if hint else "unknown key"


def validation_issues(
    exc: ValidationError,
    located: Located,
    unknown_key_hint: str,
    where: Callable[[Loc], Loc] | None = None,
    model: type[BaseModel] | None = None,
) -> list[PolicyIssue]:
    """pydantic's errors as issues that name file, line and dotted key, sorted by line.

    ``where`` maps a location in the validated data back to the file's, where merging with
    defaults moved entries (a list merged by name). With the ``model`` that was validated,
    an unknown key or value says the nearest valid one (`did you mean 'steps'?`).
    """
    issues = []
    for err in exc.errors():
        # Union members show up as pseudo-keys like "list[RolloutStep]"; they are not keys.
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        model_loc = loc
        if where is not None:
            loc = where(loc)
        key = ".".join(str(p) for p in loc) or "(document)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = _unknown_key(model_loc, model, unknown_key_hint)
        elif err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        elif "input" in err and err["type"] != "missing":
            msg = f"{msg} (got {err['input']!r})"
            if err["type"] in ("literal_error", "enum") and isinstance(err["input"], str):
                expected = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected")))
                near = did_you_mean(err["input"], expected)
                msg += f"; {near}" if near else ""
        issues.append(PolicyIssue(located.path, located.line_of(loc), key, msg))
    issues.sort(key=lambda i: (i.line or 0, i.key))
    return issues
