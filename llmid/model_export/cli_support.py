"""What every `llmid train ...` / `llmid eval ...` subcommand module shares: the group it registers on, the torch
check, and the command line recorded in a model card."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from llmid.errors import ConfigError


def subcommands(sub: Any, name: str, help_text: str, description: str) -> Any:
    """The subparsers action of the top-level group `name` (e.g. `train`), created if no one made it yet."""
    group = sub.choices.get(name)
    if group is None:
        group = sub.add_parser(name, help=help_text, description=description)
        action = group.add_subparsers(dest=f"{name}_command", metavar="WHAT")
        action.required = True
        return action
    for act in group._actions:  # noqa: SLF001 - argparse keeps its subparsers action here
        if isinstance(act, argparse._SubParsersAction):  # noqa: SLF001
            return act
    return group.add_subparsers(dest=f"{name}_command", metavar="WHAT", required=True)


def require_torch() -> None:
    """Training is the only part that needs torch (the [train] extra): say so instead of a traceback."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ConfigError("Training needs the [train] extra (torch): pip install 'llmid[train]'.") from None


def recorded_command(default: str) -> str:
    """The command line as the user typed it (for the model card), or `default` when called another way."""
    if sys.argv[1:2] == ["train"]:
        return "llmid " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    return default
