"""Photograph a real job summary: `rehearse`'s Markdown, rendered as GitHub does, by headless Chromium.

    python3 tools/screenshot_summary.py [--scenario error-spike] [--out docs/images/job-summary.png]

Runs `release-actions rehearse --scenario SCENARIO` from the checkout's .venv with
GITHUB_STEP_SUMMARY pointing at a scratch file, renders that Markdown in a page styled like
GitHub's job summary (marked for the Markdown, Mermaid for the chart; both from npm, kept in a
cache folder), measures the page and takes the screenshot at its height. Needs node/npm and
Chromium (Debian: `apt-get install chromium`). Not a test: rerun it when the summary changes.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NPM_PACKAGES = ("mermaid@11", "marked@15")
SCRIPTS = ("mermaid/dist/mermaid.min.js", "marked/lib/marked.umd.js")
CHROMIUMS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# GitHub's Markdown look, trimmed to what a job summary uses (after github-markdown-css, MIT).
CSS = """
body { margin: 0; background: #f6f8fa; font-family: -apple-system, BlinkMacSystemFont,
  "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif; font-size: 14px; line-height: 1.5;
  color: #1f2328; }
.frame { margin: 16px; background: #fff; border: 1px solid #d1d9e0; border-radius: 6px; }
.frame > header { padding: 12px 16px; border-bottom: 1px solid #d1d9e0; font-weight: 600;
  font-size: 14px; }
.frame > header span { color: #59636e; font-weight: 400; }
.markdown-body { padding: 16px 24px 8px; }
.markdown-body h2 { font-size: 1.5em; font-weight: 600; padding-bottom: .3em;
  border-bottom: 1px solid #d1d9e0b3; margin: 8px 0 16px; }
.markdown-body h3 { font-size: 1.25em; font-weight: 600; margin: 24px 0 16px; }
.markdown-body p, .markdown-body blockquote, .markdown-body table { margin: 0 0 16px; }
.markdown-body blockquote { padding: 0 1em; color: #59636e; border-left: .25em solid #d1d9e0; }
.markdown-body code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas,
  "Liberation Mono", monospace; font-size: 85%; padding: .2em .4em; background: #818b981f;
  border-radius: 6px; }
.markdown-body table { border-collapse: collapse; display: block; width: max-content;
  max-width: 100%; overflow: auto; }
.markdown-body th { font-weight: 600; }
.markdown-body th, .markdown-body td { padding: 6px 13px; border: 1px solid #d1d9e0; }
.markdown-body tr:nth-child(2n) { background: #f6f8fa; }
.markdown-body .mermaid { margin: 0 0 16px; padding: 8px; border: 1px solid #d1d9e0;
  border-radius: 6px; text-align: center; }
"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>rendering</title><style>{css}</style>
{scripts}</head>
<body><div class="frame"><header>{title} <span>summary</span></header>
<article class="markdown-body" id="out"></article></div>
<script id="md" type="text/markdown">{markdown}</script>
<script>
(async () => {{
  const md = document.getElementById("md").textContent;
  const out = document.getElementById("out");
  out.innerHTML = marked.parse(md);
  for (const code of out.querySelectorAll("pre > code.language-mermaid")) {{
    const div = document.createElement("div");
    div.className = "mermaid";
    div.textContent = code.textContent;
    code.parentElement.replaceWith(div);
  }}
  mermaid.initialize({{ startOnLoad: false, theme: "default", securityLevel: "strict" }});
  await mermaid.run({{ querySelector: ".mermaid" }});
  document.title = "height=" + Math.ceil(document.documentElement.scrollHeight);
}})().catch(e => {{ document.title = "error=" + e; }});
</script></body></html>
"""


def rehearse(scenario: str, work: Path) -> str:
    summary = work / "summary.md"
    summary.touch()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(work)),
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(work / "output"),
    }
    cli = ROOT / ".venv" / "bin" / "release-actions"
    command = (
        [str(cli)] if cli.exists() else ["bash", str(ROOT / "tools" / "venv.sh"), "release-actions"]
    )
    run = subprocess.run(
        [*command, "rehearse", "--scenario", scenario],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    text = summary.read_text(encoding="utf-8")
    if run.returncode not in (0, 1) or not text.strip():
        sys.exit(f"rehearse failed (exit {run.returncode}):\n{run.stdout}{run.stderr}")
    return text


def npm_scripts(folder: Path) -> list[Path]:
    paths = [folder / "node_modules" / s for s in SCRIPTS]
    if not all(p.exists() for p in paths):
        if shutil.which("npm") is None:
            sys.exit(
                "npm is needed once, to fetch mermaid and marked (Debian: apt-get install npm)"
            )
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder), *NPM_PACKAGES],
            check=True,
        )
    return paths


def chromium(
    args: argparse.Namespace, profile: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    browser = args.chromium or next((b for b in CHROMIUMS if shutil.which(b)), None)
    if browser is None:
        sys.exit("Chromium is needed (Debian: apt-get install chromium), or pass --chromium PATH")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--allow-file-access-from-files",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
    ]
    return subprocess.run(
        [browser, *flags, *extra], capture_output=True, text=True, timeout=180, check=False
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="error-spike")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "job-summary.png")
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument(
        "--npm-dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "release-actions-screenshot",
    )
    parser.add_argument("--chromium", help="the browser to run (default: the first on the PATH)")
    parser.add_argument("--keep-html", type=Path, help="also keep the page that was photographed")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        markdown = rehearse(args.scenario, work)
        scripts = "\n".join(
            f'<script src="{p.as_uri()}"></script>' for p in npm_scripts(args.npm_dir)
        )
        page = work / "summary.html"
        page.write_text(
            PAGE.format(
                css=CSS,
                scripts=scripts,
                title=html.escape(f"release-actions rehearse --scenario {args.scenario}"),
                # Nothing in the Markdown may close the script element that holds it.
                markdown=markdown.replace("</", "<\\/"),
            ),
            encoding="utf-8",
        )
        dom = chromium(
            args, work / "profile-1", f"--window-size={args.width},800", "--dump-dom", page.as_uri()
        )
        found = re.search(r"<title>(height|error)=([^<]*)</title>", dom.stdout)
        if not found or found.group(1) == "error":
            detail = (
                html.unescape(found.group(2)) if found else dom.stdout[-2000:] + dom.stderr[-2000:]
            )
            sys.exit(f"the page did not render: {detail}")
        height = int(found.group(2))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shot = chromium(
            args,
            work / "profile-2",
            f"--window-size={args.width},{height}",
            f"--screenshot={args.out.resolve()}",
            page.as_uri(),
        )
        if shot.returncode != 0 or not args.out.exists():
            sys.exit(f"the screenshot failed:\n{shot.stderr[-2000:]}")
        if args.keep_html:
            shutil.copy(page, args.keep_html)
    size = args.out.stat().st_size
    print(json.dumps({"out": str(args.out), "width": args.width, "height": height, "bytes": size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
