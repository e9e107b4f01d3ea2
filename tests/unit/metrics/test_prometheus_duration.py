"""Prometheus durations as the server writes them in its configuration (`15s`, `1m30s`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from release_actions.metrics.prometheus import parse_duration

UNITS = {"y": 31536000, "w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}


@given(st.lists(st.tuples(st.integers(1, 10_000), st.sampled_from(list(UNITS))), min_size=1))
def test_every_part_counts_once(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{u}" for n, u in parts)
    assert parse_duration(text) == pytest.approx(sum(n * UNITS[u] for n, u in parts))


@pytest.mark.parametrize(("text", "seconds"), [("15s", 15), ("1m30s", 90), ("500ms", 0.5)])
def test_what_prometheus_writes(text: str, seconds: float) -> None:
    assert parse_duration(f" {text}\n") == seconds


@given(st.text(alphabet="0123456789smhdwy .-+", max_size=12))
def test_anything_else_is_refused_not_guessed(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError:
        return
    # Accepted text is a run of number-unit pairs and nothing else.
    assert value > 0 or text.strip().startswith("0")
    assert " " not in text.strip() and "." not in text and "-" not in text and "+" not in text


@pytest.mark.parametrize("text", ["", "15", "s", "1m 30s", "1.5m", "-1s", "15sx", "1M"])
def test_malformed_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        parse_duration(text)
