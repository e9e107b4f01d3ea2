"""The installed kubectl aimed at a Kubernetes fake, for tests that check the fake or a rollback against it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.kubernetes import KubernetesFake

REVISION = "deployment.kubernetes.io/revision"


class Kubectl:
    """The installed kubectl aimed at one fake, with a HOME and cache of its own."""

    def __init__(self, fake: KubernetesFake, home: Path) -> None:
        self.fake = fake
        self.home = home
        self.kubeconfig = fake.write_kubeconfig(home / "kubeconfig")
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "KUBECONFIG": str(self.kubeconfig),
        }

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["kubectl", f"--cache-dir={self.home / 'cache'}", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if ok and result.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)


def revisions(fake: KubernetesFake, namespace: str, name: str) -> dict[str, int]:
    """Image -> revision of the ReplicaSets a Deployment owns."""
    owner = fake.get("deployments", namespace, name)
    out = {}
    for rs in fake.list("replicasets", namespace):
        refs = rs["metadata"].get("ownerReferences") or []
        if any(r["uid"] == owner["metadata"]["uid"] and r["controller"] for r in refs):
            out[rs["spec"]["template"]["spec"]["containers"][0]["image"]] = int(
                rs["metadata"]["annotations"][REVISION]
            )
    return out


def deployment_history(k: Kubectl, images: list[str], *, limit: int | None = None) -> None:
    k("create", "deployment", "web", f"--image={images[0]}", "--replicas=2")
    if limit is not None:
        k("patch", "deployment/web", "-p", json.dumps({"spec": {"revisionHistoryLimit": limit}}))
    for image in images[1:]:
        k("set", "image", "deployment/web", f"nginx={image}")
