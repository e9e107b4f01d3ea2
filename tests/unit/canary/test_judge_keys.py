"""The policy's record of which analysis keys each judge reads matches the judges' code."""

from __future__ import annotations

import inspect
import re

import pytest

from release_actions.canary.judge import JUDGES
from release_actions.core.policy import ANALYSIS_KEYS_COMMON, ANALYSIS_KEYS_READ, AnalysisPolicy

ACCESS = re.compile(r"\b(?:p|policy|self\.policy|analysis)\.(\w+)")


def _read(source: str) -> set[str]:
    return {m for m in ACCESS.findall(source) if m in AnalysisPolicy.model_fields}


@pytest.mark.parametrize("name", sorted(JUDGES))
def test_a_judge_reads_exactly_the_keys_the_policy_says(name: str) -> None:
    read = _read(inspect.getsource(JUDGES[name]))
    declared = ANALYSIS_KEYS_READ[name]
    assert read - ANALYSIS_KEYS_COMMON <= declared, f"{name} reads undeclared keys"
    # The cadence comes through AnalysisPolicy.cadence(), not an attribute in the class.
    assert declared - {"sequential_interval_seconds"} <= read, f"{name} no longer reads them"


def test_the_argo_target_reads_the_keys_the_policy_says() -> None:
    from release_actions.targets import argo

    assert _read(inspect.getsource(argo)) == ANALYSIS_KEYS_READ["argo"]
