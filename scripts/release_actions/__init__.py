"""Release management and automatic rollback, shipped as GitHub Actions."""

from __future__ import annotations

import functools


@functools.cache
def version() -> str:
    """This release's version, from the package's metadata (which setuptools-scm took from the
    release tag), or ``0.0.0+unknown`` for a source tree that was never installed."""
    # importlib.metadata is half of the CLI's import time: loaded only when a version is asked.
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("release-actions")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def __getattr__(name: str) -> str:
    # `release_actions.__version__` stays the public name; it is looked up on first use.
    if name == "__version__":
        return version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
