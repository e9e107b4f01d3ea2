"""Staging is not production: the starter release template under act with two fake clusters.

The consumer copies workflow-templates/release.yml as it is and names the two targets in
its policy (`deploy.kubernetes.context: production`, `deploy.environments.staging`). The
staging job must put the new version on the staging cluster at 100 %, and the production
job must roll it out on the production cluster as a canary in steps, judged, on simulated
traffic (a virtual clock, so the 17-minute rollout takes seconds) against the real target.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.act_harness import make_consumer, run_act
from tests.e2e.test_release_workflows import ALLOWED_AT, CHANGELOG, REPO, TOKEN, seed_tag, template
from tests.fakes.github import GitHubFake
from tests.fakes.kubernetes import KubernetesFake, document_objects
from tests.fakes.slack import SlackFake
from tests.integration.deploys import NAME, NS

pytestmark = pytest.mark.e2e

POLICY = f"""\
deploy:
  target: kubernetes
  kubernetes:
    context: production
    namespace: {NS}
    deployment: {NAME}
    istio: null
  environments:
    staging:
      kubernetes:
        context: staging
"""


@pytest.fixture
def clusters() -> Iterator[dict[str, KubernetesFake]]:
    fakes = {"staging": KubernetesFake(), "production": KubernetesFake()}
    for fake in fakes.values():
        fake.start()
        fake.add_namespace(NS)
        for obj in document_objects(NS, replicas=4, istio=False):
            fake.apply(obj)
        fake.wait_settled()
    yield fakes
    for fake in fakes.values():
        fake.stop()


@pytest.fixture
def github() -> Iterator[GitHubFake]:
    with GitHubFake(repos=(REPO,), token=TOKEN) as fake:
        yield fake


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


def kubeconfig(path: Path, fakes: dict[str, KubernetesFake]) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": {"server": f.url}} for n, f in fakes.items()],
        "users": [{"name": "ci", "user": {"token": "fake-token"}}],
        "contexts": [{"name": n, "context": {"cluster": n, "user": "ci"}} for n in fakes],
        # A current context that is neither: each job must name its own.
        "current-context": "production",
    }
    path.write_text(json.dumps(config))
    return path


def image(fake: KubernetesFake, name: str = NAME) -> str:
    dep: dict[str, Any] = fake.get("deployments", NS, name)
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


def canary_created(fake: KubernetesFake) -> bool:
    """Whether a canary Deployment was ever created (its POST names it in the body)."""
    return any(
        r.method == "POST"
        and r.path.endswith("/deployments")
        and f"{NAME}-canary" in json.dumps(r.body)
        for r in fake.requests
    )


def test_staging_deploys_to_staging_and_production_gets_the_canary(
    tmp_path: Path,
    clusters: dict[str, KubernetesFake],
    github: GitHubFake,
    slack: SlackFake,
) -> None:
    seed_tag(github, "v1.6.0")
    workflow = template(
        "release",
        {
            "policy": ".github/release-policy.yml",
            "metrics-provider": "simulated",
            "simulation-scenario": "healthy",
            "at": ALLOWED_AT,
        },
    )
    consumer = make_consumer(
        tmp_path,
        "release",
        repo=REPO,
        files={
            ".github/workflows/release.yml": workflow,
            ".github/release-policy.yml": POLICY.encode(),
            "CHANGELOG.md": CHANGELOG.format(version="1.6.0", body="- Sharing.").encode(),
        },
    )
    run = run_act(
        consumer,
        event_name="push",
        event={"ref": "refs/tags/v1.6.0", "repository": {"full_name": REPO}},
        workflow=".github/workflows/release.yml",
        env={
            "GITHUB_API_URL": github.url,
            "KUBECONFIG": str(kubeconfig(tmp_path / "kubeconfig", clusters)),
        },
        secrets={"GITHUB_TOKEN": TOKEN, "SLACK_WEBHOOK_URL": slack.webhook_url},
    )
    assert run.returncode == 0, run.log[-8000:]

    staging, production = clusters["staging"], clusters["production"]
    jobs: dict[str, list[str]] = {"Staging": [], "Production canary": []}
    for line in run.log.splitlines():
        for job, lines in jobs.items():
            if f"/{job} " in line:
                lines.append(line)
    # Staging: on the staging cluster, the new version at 100 % in one step, no analysis.
    assert image(staging).endswith(":v1.6.0")
    assert any("step 1/1: canary at 100%" in line for line in jobs["Staging"]), jobs["Staging"]
    assert not any("analysis)" in line for line in jobs["Staging"])
    # Production: on the production cluster, §4.4's four steps, each judged, then promoted.
    assert image(production).endswith(":v1.6.0")
    assert canary_created(production), "no canary Deployment on production"
    for n, weight in enumerate((5, 20, 50), start=1):
        assert any(
            f"step {n}/4: canary at {weight}%" in line and "analysis" in line
            for line in jobs["Production canary"]
        ), weight
    assert any("promoted v1.6.0: all 4 steps passed" in x for x in jobs["Production canary"])
