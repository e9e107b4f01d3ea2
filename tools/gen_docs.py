"""Regenerate the README's action tables and docs/policy.md; `--check` fails when they drift."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
POLICY_DOC = ROOT / "docs" / "policy.md"


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def action_tables(path: Path) -> str:
    doc = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    lines = ["| Input | Default | Description |", "|---|---|---|"]
    for name, spec in (doc.get("inputs") or {}).items():
        default = spec.get("default", "")
        shown = f"`{default}`" if default != "" else "*(empty)*"
        req = " **Required.**" if spec.get("required") else ""
        lines.append(f"| `{name}` | {_cell(shown)} | {_cell(spec.get('description', ''))}{req} |")
    lines += ["", "| Output | Description |", "|---|---|"]
    for name, spec in (doc.get("outputs") or {}).items():
        lines.append(f"| `{name}` | {_cell(spec.get('description', ''))} |")
    return "\n".join(lines)


def workflow_tables(path: Path) -> str:
    doc = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    call = (doc.get("on") or doc.get(True) or {}).get("workflow_call") or {}
    lines = ["| Input | Type | Default | Description |", "|---|---|---|---|"]
    for name, spec in (call.get("inputs") or {}).items():
        default = spec.get("default", "")
        shown = f"`{default}`" if default != "" else "*(empty)*"
        req = " **Required.**" if spec.get("required") else ""
        lines.append(f"| `{name}` | {spec.get('type', '')} | {_cell(shown)} | {_cell(spec.get('description', ''))}{req} |")
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


def render_readme(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        kind, rel = match.group(1), match.group(2)
        path = ROOT / rel
        body = action_tables(path) if kind == "action" else workflow_tables(path)
        return f"<!-- BEGIN {kind} {rel} -->\n{body}\n<!-- END {kind} {rel} -->"

    return re.sub(
        r"<!-- BEGIN (action|workflow) (\S+) -->.*?<!-- END \1 \2 -->", replace, text, flags=re.S
    )


def _walk(schema: dict[str, Any], defs: dict[str, Any], data: Any, prefix: str, rows: list[str]) -> None:
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
                    rows.append(f"| `{prefix}{key}.{name}` | | {_cell(rule.get('description', ''))} |")
                    _walk(item, defs, rule, f"{prefix}{key}.{name}.", rows)
            else:
                shown = _show(value)
                rows.append(f"| `{prefix}{key}` | {shown} | {_cell(desc)} |")


def _show(value: Any) -> str:
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
    _walk(schema, schema.get("$defs", {}), default_policy_data(), "", rows)
    return (
        "# Release policy reference\n\n"
        "<!-- Generated by `python tools/gen_docs.py`; do not edit by hand. -->\n\n"
        "A consuming repository puts its policy in `.github/release-policy.yml`. Every key is\n"
        "optional: the file is merged over these defaults, which are the numbers of the source\n"
        "document *Doc-QA-003 release management and rollback procedure*; the description of\n"
        "each key names the section (§) it comes from. A release type the file adds starts from\n"
        "`regular`.\n\n"
        "Lists: a list of named entries (`calendar.blocked_periods`,\n"
        "`calendar.high_traffic_periods`) merges with the defaults by `name`: an entry of the\n"
        "file replaces the default of the same name and a new name is added, so a company\n"
        "period never drops New Year, Golden Week or Obon. To replace such a list whole, name it\n"
        "in `replace:` (`replace: [calendar.blocked_periods]`). Every other list (release days,\n"
        "maintenance windows, approvers, required checks, kill-switch flags) replaces the\n"
        "default: a union of allow-lists would widen them unasked.\n\n"
        "`release-actions policy show` prints the effective policy,\n"
        "`release-actions policy validate` checks a file (errors name file, line and key), and\n"
        "`release-actions policy schema > .github/release-policy.schema.json` writes a JSON\n"
        "Schema for editors (first line of the policy file:\n"
        "`# yaml-language-server: $schema=./release-policy.schema.json`).\n\n"
        "| Key | Default | Meaning and source |\n|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if anything is out of date")
    args = parser.parse_args()
    stale = []
    for path, new in ((README, render_readme(README.read_text(encoding="utf-8"))),
                      (POLICY_DOC, render_policy_doc())):
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        if old != new:
            stale.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    if args.check and stale:
        print("Out of date (run `python tools/gen_docs.py`): " + ", ".join(str(p.relative_to(ROOT)) for p in stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
