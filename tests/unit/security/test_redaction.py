"""No credential in any log: URL passwords and secret settings are masked and redacted everywhere."""

from __future__ import annotations

import functools
import io
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from release_actions.gha import Runtime
from tests.conftest import CliResult, RunCli
from tests.integration.deploys import Stack, start_kubernetes

SECRET = "s3cr3t"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two attempts without sleeping: the retry's warning is logged, in milliseconds."""
    from release_actions.metrics import prometheus, retry

    monkeypatch.setattr(
        prometheus,
        "RetryPolicy",
        functools.partial(retry.RetryPolicy, attempts=2, sleep=lambda _s: None),
    )


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "release-policy.yml"
    path.write_text(
        "metrics:\n"
        "  provider: prometheus\n"
        "  prometheus:\n"
        f"    url: http://alice:{SECRET}@127.0.0.1:{closed_port()}\n"
    )
    return path


@pytest.fixture
def stack() -> Iterator[Stack]:
    s = Stack()
    yield s
    s.close()


def everything(r: CliResult, capsys: pytest.CaptureFixture[str]) -> str:
    """What the job would see: both streams, outputs, summary, and what bypassed the runtime."""
    captured = capsys.readouterr()
    output = r.output_file.read_text("utf-8") if r.output_file.exists() else ""
    return "\n".join([r.stdout, r.stderr, output, r.summary, captured.out, captured.err])


def masked_first(stdout: str, value: str) -> None:
    lines = stdout.splitlines()
    assert f"::add-mask::{value}" in lines, stdout
    first = lines.index(f"::add-mask::{value}")
    assert all(value not in line for line in lines[:first])


def test_policy_url_password_never_reaches_any_log(
    run_cli: RunCli,
    policy: Path,
    quick_retries: None,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The health check fails: the analysis says so at once, naming the masked address.
    r = run_cli("canary", "analyze", "--provider", "prometheus", "--policy", str(policy))
    assert r.code == 1, r.stdout + r.stderr
    masked_first(r.stdout, SECRET)
    seen = everything(r, capsys)
    assert "at http://alice:***@127.0.0.1" in seen and "health check" in seen
    assert SECRET not in seen.replace(f"::add-mask::{SECRET}", "")
    assert all(SECRET not in rec.getMessage() for rec in caplog.records)

    # The health check answers but the queries fail (a query frontend whose store is down):
    # every query is retried, and the retry's warning names the URL, masked.
    from release_actions.metrics.prometheus import PrometheusProvider

    monkeypatch.setattr(PrometheusProvider, "is_online", lambda self: True)
    caplog.clear()
    r = run_cli("canary", "analyze", "--provider", "prometheus", "--policy", str(policy))
    assert r.code in (1, 2), r.stdout + r.stderr
    masked_first(r.stdout, SECRET)
    seen = everything(r, capsys)
    assert "cannot connect to http://alice:***@127.0.0.1" in seen
    # The retry's warning: shown through the runtime, and redacted for every other handler.
    retries = [rec.getMessage() for rec in caplog.records if "retrying" in rec.getMessage()]
    assert retries and all(SECRET not in m for m in retries)
    assert "retrying" in r.stderr
    assert SECRET not in seen.replace(f"::add-mask::{SECRET}", "")
    assert SECRET not in r.outputs.get("reason", "") and r.outputs.get("reason")


def test_url_from_the_environment_and_a_flag_is_masked(
    run_cli: RunCli, quick_retries: None, capsys: pytest.CaptureFixture[str]
) -> None:
    port = closed_port()
    for how in (
        {"env": {"PROMETHEUS_URL": f"http://bob:{SECRET}@127.0.0.1:{port}"}, "args": []},
        {"env": {}, "args": ["--provider-setting", f"url=http://bob:{SECRET}@127.0.0.1:{port}"]},
    ):
        r = run_cli(
            "canary",
            "analyze",
            "--provider",
            "prometheus",
            *how["args"],  # type: ignore[misc]
            env=how["env"],  # type: ignore[arg-type]
        )
        masked_first(r.stdout, SECRET)
        assert SECRET not in everything(r, capsys).replace(f"::add-mask::{SECRET}", "")


def test_canary_run_on_kubernetes_masks_the_url_password_and_the_bearer_token(
    run_cli: RunCli,
    policy: Path,
    quick_retries: None,
    stack: Stack,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deploy = start_kubernetes(stack, tmp_path, istio=False)
    r = run_cli(
        "canary",
        "run",
        *deploy.args,
        "--version",
        "v1.3.0",
        "--policy",
        str(policy),
        "--provider-setting",
        "bearer_token=tok123",
        env={**deploy.env, "HOME": str(tmp_path)},
    )
    assert r.code == 2, r.stdout + r.stderr
    masked_first(r.stdout, SECRET)
    masked_first(r.stdout, "tok123")
    seen = everything(r, capsys)
    for value in (SECRET, "tok123"):
        assert value not in seen.replace(f"::add-mask::{value}", "")


def test_provider_setting_secrets_are_masked_and_plain_settings_are_not(
    run_cli: RunCli, quick_retries: None, capsys: pytest.CaptureFixture[str]
) -> None:
    r = run_cli(
        "canary",
        "analyze",
        "--provider",
        "prometheus",
        "--provider-setting",
        f"url=http://127.0.0.1:{closed_port()}",
        "--provider-setting",
        "bearer_token=tok123",
        "--provider-setting",
        "service=checkout-api",
    )
    masked_first(r.stdout, "tok123")
    assert "::add-mask::checkout-api" not in r.stdout
    assert "tok123" not in everything(r, capsys).replace("::add-mask::tok123", "")


def runtime(tmp_path: Path, env: dict[str, str] | None = None) -> tuple[Runtime, io.StringIO]:
    buf = io.StringIO()
    full = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        **(env or {}),
    }
    return Runtime(env=full, out=buf, err=buf), buf


def test_every_writer_of_the_runtime_redacts(tmp_path: Path) -> None:
    rt, buf = runtime(tmp_path)
    rt.mask("hunter22")
    rt.set_output("reason", "login hunter22 failed at https://u:pw-1@example.com/x")
    rt.summary("# hunter22")
    rt.annotate("error", "bad hunter22", title="t hunter22")
    with rt.group("step hunter22"):
        print("plain hunter22", file=rt.out)
        print("split", "hunter22", file=rt.err)
    rt.echo_untrusted("fenced hunter22")
    rt.flush()
    written = buf.getvalue().replace("::add-mask::hunter22", "")
    written += (tmp_path / "output").read_text() + (tmp_path / "summary").read_text()
    assert "hunter22" not in written and "pw-1" not in written
    assert "https://u:***@example.com/x" in written


def test_secret_environment_values_are_redacted_from_the_start(tmp_path: Path) -> None:
    rt, buf = runtime(tmp_path, {"DD_API_KEY": "dd-key-0123", "SLACK_BOT_TOKEN": "xoxb-1234"})
    print("keys dd-key-0123 xoxb-1234", file=rt.out)
    assert buf.getvalue() == "keys *** ***\n"


def test_short_values_are_masked_but_not_redacted(tmp_path: Path) -> None:
    """The runner gets every mask; the tool's own text is not shredded by a 1-character token."""
    rt, buf = runtime(tmp_path)
    rt.mask("t")
    print("token", file=rt.out)
    assert buf.getvalue() == "::add-mask::t\ntoken\n"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://alice:s3cr3t@host:9090/x", "http://alice:***@host:9090/x"),
        ("git https://ghp_abc@github.com/o/r", "git https://***@github.com/o/r"),
        ("'http://a:p@ss@h/'", "'http://a:***@h/'"),
        ("http://host:9090/a@b", "http://host:9090/a@b"),
        ("mail bob@example.com", "mail bob@example.com"),
    ],
)
def test_urls_lose_their_user_info(text: str, shown: str) -> None:
    from release_actions.gha import redact_urls

    assert redact_urls(text) == shown


def test_a_rollback_record_carries_no_credential(tmp_path: Path) -> None:
    """A record outlives the job: a reason quoting a URL with a password is redacted in it."""
    import json

    from release_actions.app.records import publish_record
    from release_actions.app.session import Session
    from release_actions.canary.model import RollbackRecord
    from release_actions.core.policy import default_policy
    from release_actions.gha import Runtime

    session = Session(Runtime(env={"PROMETHEUS_TOKEN": "tok-abcdef"}))
    record = RollbackRecord(
        id="RB-2026-001",
        timestamp="2026-12-01T10:00:00+09:00",
        deployment="api",
        from_version="v2",
        to_version="v1",
        trigger_type="automatic",
        reason="cannot connect to http://alice:s3cr3t@prom:9090 with tok-abcdef",
        metrics={},
        detection_seconds=1.0,
        rollback_seconds=1.0,
        changed=True,
        detail="",
    ).to_dict()
    path = tmp_path / "record.json"
    publish_record(
        session, default_policy(), record, store=None, unavailable="test", path=path,
        release="v2", target_name="simulated", environment="production",
    )  # fmt: skip
    text = path.read_text()
    assert "s3cr3t" not in text and "tok-abcdef" not in text
    assert "http://alice:***@prom:9090" in json.loads(text)["trigger"]["reason"]


def test_with_json_stdout_is_the_json_and_the_mask_goes_to_stderr(
    run_cli: RunCli, policy: Path, quick_retries: None
) -> None:
    """A script reads stdout as one JSON object; the runner reads the mask on either stream.

    Before, `::add-mask::` lines came first on stdout, so `json.loads(stdout)` failed in a job.
    """
    import json

    r = run_cli("canary", "analyze", "--provider", "prometheus", "--policy", str(policy), "--json")
    assert r.code == 1, r.stdout + r.stderr
    data = json.loads(r.stdout)
    assert data["ok"] is False and data["verdict"] == "error"
    masked_first(r.stderr, SECRET)
    assert "::add-mask::" not in r.stdout and SECRET not in r.stdout
