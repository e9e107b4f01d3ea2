"""`python -m release_actions` and the `release-actions` console script."""

from __future__ import annotations

import sys


def main() -> None:
    from release_actions.cli import main as run

    sys.exit(run())


if __name__ == "__main__":
    main()
