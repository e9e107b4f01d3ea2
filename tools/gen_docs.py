"""Regenerate the generated parts of the docs from their sources; `--check` fails when they drift.

- docs/actions.md: each composite action's inputs and outputs, from its action.yml;
- docs/workflows.md: each reusable workflow's job graph (Mermaid, from `needs:`), its jobs'
  permissions, and its inputs, secrets and outputs, from the workflow YAML;
- docs/commands.md: the command reference, from the click command tree;
- docs/policy.md: the whole page, from the policy model and its defaults.

Generated blocks sit between `<!-- BEGIN kind source -->` and `<!-- END kind source -->`
markers in otherwise hand-written pages. A source without its block (a new action, a new
reusable workflow) is appended to its page, and `--check` reports it.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
ACTIONS_DOC = DOCS / "actions.md"
WORKFLOWS_DOC = DOCS / "workflows.md"
COMMANDS_DOC = DOCS / "commands.md"
POLICY_DOC = DOCS / "policy.md"
# Where editors find the policy's JSON Schema (the committed copy of `policy schema`).
POLICY_SCHEMA_PATH = "schema/policy.schema.json"
PERMISSION_RANK = {"none": 0, "read": 1, "write": 2}


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


# --- actions and workflows: inputs, outputs, secrets -------------------------------------


def action_tables(path: Path) -> str:
    doc = _load(path)
    name = path.parent.name
    lines = [
        _cell(doc.get("description", "")),
        "",
        f"`uses: triptrip/release-actions/actions/{name}@v1`",
        "",
        "| Input | Default | Description |",
        "|---|---|---|",
    ]
    for name, spec in (doc.get("inputs") or {}).items():
        default = spec.get("default", "")
        shown = f"`{default}`" if default != "" else "*(empty)*"
        req = " **Required.**" if spec.get("required") else ""
        lines.append(f"| `{name}` | {_cell(shown)} | {_cell(spec.get('description', ''))}{req} |")
    lines += ["", "| Output | Description |", "|---|---|"]
    for name, spec in (doc.get("outputs") or {}).items():
        lines.append(f"| `{name}` | {_cell(spec.get('description', ''))} |")
    return "\n".join(lines)


def action_index(_path: Path) -> str:
    lines = ["| Action | What it does |", "|---|---|"]
    for path in composite_actions():
        doc = _load(path)
        name = path.parent.name
        first = re.split(r"(?<=\.)\s", " ".join(str(doc.get("description", "")).split()))[0]
        lines.append(f"| [`{name}`](#{_anchor(name)}) | {_cell(first)} |")
    return "\n".join(lines)


def _workflow_call(doc: dict[str, Any]) -> dict[str, Any] | None:
    # YAML 1.1 reads the key `on` as True.
    on = doc.get("on", doc.get(True)) or {}
    if not isinstance(on, dict) or "workflow_call" not in on:
        return None
    return on["workflow_call"] or {}


def workflow_tables(path: Path) -> str:
    call = _workflow_call(_load(path)) or {}
    lines = ["| Input | Type | Default | Description |", "|---|---|---|---|"]
    for name, spec in (call.get("inputs") or {}).items():
        default = spec.get("default", "")
        shown = f"`{default}`" if default != "" else "*(empty)*"
        req = " **Required.**" if spec.get("required") else ""
        lines.append(
            f"| `{name}` | {spec.get('type', '')} | {_cell(shown)} | "
            f"{_cell(spec.get('description', ''))}{req} |"
        )
    if call.get("secrets"):
        lines += ["", "| Secret | Description |", "|---|---|"]
        for name, spec in call["secrets"].items():
            req = " **Required.**" if (spec or {}).get("required") else ""
            lines.append(f"| `{name}` | {_cell((spec or {}).get('description', ''))}{req} |")
    if call.get("outputs"):
        lines += ["", "| Output | Description |", "|---|---|"]
        for name, spec in call["outputs"].items():
            lines.append(f"| `{name}` | {_cell(spec.get('description', ''))} |")
    return "\n".join(lines)


# --- workflows: the job graph ---------------------------------------------------------------


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


def _reduced_edges(jobs: dict[str, Any]) -> list[tuple[str, str]]:
    """`needs` edges without those another path already implies (a transitive reduction)."""
    needs = {name: set(_needs(job)) for name, job in jobs.items()}

    def ancestors(name: str) -> set[str]:
        seen: set[str] = set()
        stack = list(needs.get(name, ()))
        while stack:
            up = stack.pop()
            if up not in seen:
                seen.add(up)
                stack.extend(needs.get(up, ()))
        return seen

    edges = []
    for name in jobs:
        for up in _needs(jobs[name]):
            implied = any(up in ancestors(other) for other in needs[name] if other != up)
            if not implied:
                edges.append((up, name))
    return edges


def _environment(job: dict[str, Any]) -> str:
    env = job.get("environment")
    if isinstance(env, dict):
        env = env.get("name")
    return "" if env is None else str(env)


def _env_label(env: str) -> str:
    match = re.fullmatch(r"\$\{\{\s*needs\.([\w-]+)\.outputs\.[\w-]+\s*\}\}", env)
    if match:
        return f"environment chosen by {match.group(1)}"
    return f"environment {env}" if "${{" not in env else "environment set at run time"


def _input_condition(job: dict[str, Any]) -> str | None:
    """The input a job is switched by, when its `if:` is exactly one boolean input."""
    cond = str(job.get("if") or "").strip()
    match = re.fullmatch(r"(?:\$\{\{\s*)?inputs\.([\w-]+)(?:\s*\}\})?", cond)
    return match.group(1) if match else None


def _node_id(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def workflow_graph(path: Path) -> str:
    doc = _load(path)
    jobs: dict[str, Any] = doc.get("jobs") or {}
    lines = ["```mermaid", "flowchart LR"]
    for name, job in jobs.items():
        label = [_mermaid_text(str(job.get("name") or name))]
        if job.get("name") and job["name"] != name:
            label.append(f"job {name}")
        env = _environment(job)
        if env:
            label.append(_mermaid_text(_env_label(env)))
        switch = _input_condition(job)
        if switch:
            label.append(f"only with input {switch}")
        shape = ('(["', '"])') if env else ('["', '"]')
        lines.append(f"  {_node_id(name)}{shape[0]}{'<br/>'.join(label)}{shape[1]}")
    for up, down in _reduced_edges(jobs):
        lines.append(f"  {_node_id(up)} --> {_node_id(down)}")
    lines.append("```")
    lines += [
        "",
        "| Job | Needs | Runs when | Environment | Permissions | Timeout |",
        "|---|---|---|---|---|---|",
    ]
    union: dict[str, str] = {}
    for name, job in jobs.items():
        perms = job.get("permissions")
        if isinstance(perms, dict):
            shown = ", ".join(f"`{k}: {v}`" for k, v in perms.items()) or "none"
            for key, level in perms.items():
                if PERMISSION_RANK.get(level, 0) > PERMISSION_RANK.get(union.get(key, "none"), 0):
                    union[key] = level
        else:
            shown = f"`{perms}`" if perms else "*(the workflow's)*"
        needs = ", ".join(f"`{n}`" for n in _needs(job)) or "*(none)*"
        cond = job.get("if")
        when = f"`{_cell(cond)}`" if cond else ("its needs succeeded" if _needs(job) else "always")
        env = _environment(job)
        timeout = job.get("timeout-minutes")
        lines.append(
            f"| `{name}` ({_cell(job.get('name') or name)}) | {needs} | {when} | "
            f"{f'`{_cell(env)}`' if env else ''} | {shown} | "
            f"{f'{timeout} min' if timeout else ''} |"
        )
    if union:
        lines += [
            "",
            "The calling job grants what these jobs ask for together (a called workflow's "
            "jobs can only narrow the caller's permissions, never widen them):",
            "",
            "```yaml",
            "permissions:",
            *(f"  {key}: {union[key]}" for key in sorted(union)),
            "```",
        ]
    return "\n".join(lines)


def reusable_workflows() -> list[Path]:
    return [
        p
        for p in sorted((ROOT / ".github" / "workflows").glob("*.yml"))
        if _workflow_call(_load(p)) is not None
    ]


def composite_actions() -> list[Path]:
    return sorted(
        p for p in (ROOT / "actions").glob("*/action.yml") if not p.parent.name.startswith("_")
    )


# --- the command reference -------------------------------------------------------------------


def _unset(value: Any) -> bool:
    return value is None or type(value).__name__ == "Sentinel" or repr(value).endswith("UNSET")


def _param_type(param: Any) -> str:
    import click

    kind = param.type
    if isinstance(param, click.Option) and param.count:
        text = "count"
    elif isinstance(param, click.Option) and param.is_flag:
        text = "flag"
    elif isinstance(kind, click.Choice):
        text = " \\| ".join(f"`{c}`" for c in kind.choices)
    else:
        text = param.metavar or kind.name.upper().replace(" RANGE", "")
        describe = getattr(kind, "_describe_range", None)
        if describe is not None and (kind.min is not None or kind.max is not None):
            text += f" ({describe()})"
        text = f"`{text}`" if not text.startswith("`") else text
    if param.multiple:
        text += ", repeatable"
    return text


def _param_default(param: Any) -> str:
    import click

    if isinstance(param, click.Option) and param.is_flag and param.secondary_opts:
        return f"`{param.opts[0] if param.default else param.secondary_opts[0]}`"
    default = param.default
    if callable(default):
        return "*(computed)*"
    if isinstance(param, click.Option) and isinstance(param.show_default, str):
        return _cell(param.show_default)
    if _unset(default) or default is False or default == () or default == "":
        return ""
    if (
        isinstance(param, click.Option)
        and (param.is_flag or param.count)
        and not param.show_default
    ):
        return ""
    if isinstance(default, list | tuple):
        return ", ".join(f"`{_cell(v)}`" for v in default)
    return f"`{_cell(default)}`"


def _help_text(text: str | None) -> str:
    text = inspect.cleandoc(text or "").split("\f")[0]
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    out = []
    for para in paragraphs:
        lines = para.splitlines()
        if lines and lines[0].strip() == "\b":
            out.append("\n".join(f"    {line}" for line in lines[1:]))
        else:
            out.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(out)


def _anchor(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def _commands(cmd: Any, ctx: Any) -> Iterator[tuple[Any, Any]]:
    import click

    yield cmd, ctx
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield from _commands(sub, click.Context(sub, info_name=name, parent=ctx))


def command_reference() -> str:
    import click

    sys.path.insert(0, str(ROOT / "scripts"))
    from release_actions.cli import cli

    root_ctx = click.Context(cli, info_name="release-actions")
    tree = list(_commands(cli, root_ctx))
    out: list[str] = ["| Command | What it does |", "|---|---|"]
    for cmd, ctx in tree[1:]:
        title = ctx.command_path
        out.append(f"| [`{title}`](#{_anchor(title)}) | {_cell(cmd.get_short_help_str(1000))} |")
    for cmd, ctx in tree:
        depth = ctx.command_path.count(" ")
        title = f"`{ctx.command_path}`" + ("" if depth else ": global options")
        out += ["", f"{'#' * min(max(depth, 1) + 1, 6)} {title}", ""]
        help_text = _help_text(cmd.help)
        if help_text:
            out += [help_text, ""]
        usage = " ".join(cmd.collect_usage_pieces(ctx))
        out += ["```text", f"{ctx.command_path} {usage}".rstrip(), "```"]
        args = [p for p in cmd.params if isinstance(p, click.Argument)]
        if args:
            out += [""]
            for arg in args:
                kind = _param_type(arg).replace(" \\| ", ", ")
                need = "required" if arg.required else "optional"
                default = _param_default(arg)
                extra = f", default {default}" if default else ""
                out.append(f"- `{arg.human_readable_name}`: {kind}, {need}{extra}.")
        options = [
            p
            for p in cmd.params
            if isinstance(p, click.Option) and not p.hidden and p.name != "help"
        ]
        if options:
            out += ["", "| Option | Type | Default | Description |", "|---|---|---|---|"]
            for opt in options:
                names = " / ".join(f"`{n}`" for n in [*opt.opts, *opt.secondary_opts])
                req = " **Required.**" if opt.required else ""
                env = f" Environment: `{opt.envvar}`." if isinstance(opt.envvar, str) else ""
                out.append(
                    f"| {names} | {_param_type(opt)} | {_param_default(opt)} | "
                    f"{_cell(opt.help or '')}{req}{env} |"
                )
        if isinstance(cmd, click.Group) and depth:
            subs = [
                (n, c)
                for n in cmd.list_commands(ctx)
                if (c := cmd.get_command(ctx, n)) is not None and not c.hidden
            ]
            if subs:
                out += ["", "| Subcommand | What it does |", "|---|---|"]
                for name, sub in subs:
                    title = f"{ctx.command_path} {name}"
                    out.append(
                        f"| [`{name}`](#{_anchor(title)}) | {_cell(sub.get_short_help_str(1000))} |"
                    )
    return "\n".join(out)


# --- generated blocks in hand-written pages ---------------------------------------------------

Renderer = Callable[[Path], str]
RENDERERS: dict[str, Renderer] = {
    "action": action_tables,
    "action-index": action_index,
    "workflow": workflow_tables,
    "jobs": workflow_graph,
    "commands": lambda _path: command_reference(),
}
BLOCK = re.compile(r"<!-- BEGIN ([\w-]+) (\S+) -->.*?<!-- END \1 \2 -->", re.S)


def _block(kind: str, rel: str) -> str:
    body = RENDERERS[kind](ROOT / rel)
    return f"<!-- BEGIN {kind} {rel} -->\n{body}\n<!-- END {kind} {rel} -->"


def render_blocks(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        kind, rel = match.group(1), match.group(2)
        return _block(kind, rel) if kind in RENDERERS else match.group(0)

    return BLOCK.sub(replace, text)


# Kept for callers of the old name: the README may hold blocks too.
render_readme = render_blocks


def _missing(text: str, wanted: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    have = {(m.group(1), m.group(2)) for m in BLOCK.finditer(text)}
    return [w for w in wanted if (w[0], w[1]) not in have]


def expected_blocks() -> dict[Path, list[tuple[str, str, str]]]:
    """Each page's blocks: (kind, source, heading to add it under when it is missing)."""
    actions = []
    for path in composite_actions():
        rel = path.relative_to(ROOT).as_posix()
        actions.append(("action", rel, f"## `{path.parent.name}`"))
    actions.append(("action-index", "actions", "## Index"))
    workflows = []
    for path in reusable_workflows():
        rel = path.relative_to(ROOT).as_posix()
        workflows.append(("jobs", rel, f"## `{path.name}`\n\n### Jobs"))
        workflows.append(("workflow", rel, "### Inputs, secrets and outputs"))
    return {
        ACTIONS_DOC: actions,
        WORKFLOWS_DOC: workflows,
        COMMANDS_DOC: [("commands", "release-actions", "## All commands")],
    }


def render_page(path: Path, wanted: list[tuple[str, str, str]]) -> tuple[str, list[str]]:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    missing = _missing(text, wanted)
    for kind, rel, heading in missing:
        text = (
            text.rstrip("\n")
            + f"\n\n{heading}\n\n<!-- BEGIN {kind} {rel} -->\n<!-- END {kind} {rel} -->\n"
        )
    notes = [
        f"{path.relative_to(ROOT)} had no `{kind}` block for {rel}" for kind, rel, _ in missing
    ]
    return render_blocks(text), notes


# --- docs/policy.md ------------------------------------------------------------------------


def _walk(
    schema: dict[str, Any], defs: dict[str, Any], data: Any, prefix: str, rows: list[str]
) -> None:
    if "$ref" in schema:
        schema = defs[schema["$ref"].split("/")[-1]]
    props = schema.get("properties")
    if props and isinstance(data, dict):
        for key, sub in props.items():
            value = data.get(key)
            target = sub
            if "$ref" in sub:
                target = defs[sub["$ref"].split("/")[-1]]
            desc = sub.get("description") or target.get("description", "")
            if isinstance(value, dict) and "properties" in target:
                rows.append(f"| `{prefix}{key}` | | {_cell(desc)} |")
                _walk(target, defs, value, f"{prefix}{key}.", rows)
            elif isinstance(value, dict) and key == "release_types":
                for name, rule in value.items():
                    item = defs["ReleaseTypePolicy"]
                    rows.append(
                        f"| `{prefix}{key}.{name}` | | {_cell(rule.get('description', ''))} |"
                    )
                    _walk(item, defs, rule, f"{prefix}{key}.{name}.", rows)
            else:
                shown = _show(value)
                rows.append(f"| `{prefix}{key}` | {shown} | {_cell(desc)} |")


def _show(value: Any) -> str:
    if isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
        return "<br>".join(f"{k}: {_show(v)}" for k, v in value.items())
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            parts = []
            for item in value:
                if "start" in item and "name" in item:
                    parts.append(f"{item['name']} {item['start']}..{item['end']}")
                elif "day" in item:
                    parts.append(f"{item['day']} {item['start']}-{item['end']}")
                else:
                    parts.append(", ".join(f"{k}={v}" for k, v in item.items()))
            return _cell("; ".join(parts))
        return _cell(", ".join(f"`{v}`" for v in value) or "*(none)*")
    if value is None:
        return "*(none)*"
    return f"`{_cell(value)}`"


def render_policy_doc() -> str:
    sys.path.insert(0, str(ROOT / "scripts"))
    from release_actions.core.policy import Policy, default_policy_data

    schema = Policy.model_json_schema()
    rows: list[str] = []
    data = default_policy_data()
    # A section whose defaults live in its model (such as `mobile`) is shown from the model.
    full = Policy.model_validate(data).model_dump(mode="json")
    data.update({k: v for k, v in full.items() if k not in data})
    _walk(schema, schema.get("$defs", {}), data, "", rows)
    return (
        "# Release policy reference\n\n"
        "<!-- Generated by `python tools/gen_docs.py`; do not edit by hand. -->\n\n"
        "A consuming repository puts its policy in `.github/release-policy.yml`. Every key is\n"
        "optional: the file is merged over these defaults, which are the numbers of the source\n"
        "document *Doc-QA-003 release management and rollback procedure*; the description of\n"
        "each key names the section (§) it comes from. A release type the file adds starts from\n"
        "`regular`. [Getting started](getting-started.md#the-policy) shows a short policy;\n"
        "[the command reference](commands.md#release-actions-policy) has the `policy` commands.\n\n"
        "Lists: a list of named entries (`calendar.blocked_periods`,\n"
        "`calendar.high_traffic_periods`) merges with the defaults by `name`: an entry of the\n"
        "file replaces the default of the same name and a new name is added, so a company\n"
        "period never drops New Year, Golden Week or Obon. To replace such a list whole, name it\n"
        "in `replace:` (`replace: [calendar.blocked_periods]`). Every other list (release days,\n"
        "maintenance windows, approvers, required checks, kill-switch flags) replaces the\n"
        "default: a union of allow-lists would widen them unasked.\n\n"
        "`release-actions policy show` prints the effective policy,\n"
        "`release-actions policy validate` checks a file (errors name file, line and key), and\n"
        "`release-actions policy schema` prints its JSON Schema.\n\n"
        "## Editor support\n\n"
        f"The policy's JSON Schema is committed at [`{POLICY_SCHEMA_PATH}`]"
        f"(../{POLICY_SCHEMA_PATH}).\n"
        "Editors with the YAML language server (VS Code's YAML extension, Neovim, JetBrains)\n"
        "then complete keys, show each key's description and flag a wrong type as you type,\n"
        "when the policy file's first line names the schema:\n\n"
        "```yaml\n"
        "# yaml-language-server: $schema=https://raw.githubusercontent.com/triptrip/"
        f"release-actions/v1/{POLICY_SCHEMA_PATH}\n"
        "```\n\n"
        "To pin the schema to your copy of the tool instead, write it next to the policy with\n"
        "`release-actions policy schema > .github/release-policy.schema.json` and point at it:\n"
        "`# yaml-language-server: $schema=./release-policy.schema.json`.\n\n"
        "## Keys\n\n"
        "| Key | Default | Meaning and source |\n|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if anything is out of date")
    args = parser.parse_args()
    outputs: list[tuple[Path, str]] = []
    notes: list[str] = []
    for path, wanted in expected_blocks().items():
        text, missing = render_page(path, wanted)
        outputs.append((path, text))
        notes += missing
    outputs.append((README, render_blocks(README.read_text(encoding="utf-8"))))
    outputs.append((POLICY_DOC, render_policy_doc()))
    stale = []
    for path, new in outputs:
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        if old != new:
            stale.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    for note in notes:
        print(("" if args.check else "Added: ") + note)
    if args.check and stale:
        print(
            "Out of date (run `python tools/gen_docs.py`): "
            + ", ".join(str(p.relative_to(ROOT)) for p in stale)
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
