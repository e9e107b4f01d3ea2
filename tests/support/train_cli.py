"""Mount the `train` commands for tests where the CLI's `train` group does not have them yet.

Where the group (`release_actions.cli.COMMANDS["train"]`) already has a command, it wins and
nothing is added; without the group, a test-only one is mounted on the root group.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from release_actions.cli import cli


def _commands() -> list[click.Command]:
    from release_actions.cli import train_plan, train_ship

    return [
        train_plan.plan_command,
        train_plan.freeze_check_command,
        train_ship.due_command,
        train_ship.schedule_command,
        train_ship.stage_command,
        train_ship.ship_command,
    ]


@contextmanager
def mounted() -> Iterator[None]:
    ctx = click.Context(cli)
    group = cli.get_command(ctx, "train")
    own = group is None
    if group is None:
        group = click.Group("train", help="The release train (test mount).")
        cli.add_command(group)
    assert isinstance(group, click.Group)
    added = [c for c in _commands() if c.name not in group.commands]
    for command in added:
        group.add_command(command)
    try:
        yield
    finally:
        for command in added:
            group.commands.pop(str(command.name), None)
        if own:
            cli.commands.pop("train", None)
