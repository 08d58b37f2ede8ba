"""What both kinds of cluster file are held to, and the ``ray start`` command-line parsing they share."""

from __future__ import annotations

import shlex
from typing import Any, Mapping

from ipt_ray.config import TRIAL_SLOT

LOCAL_HOSTS = ("127.0.0.1", "localhost")


def declares_trial_slot(resources: Mapping[str, Any]) -> bool:
    """Whether a node's effective resources offer trials at least one ``trial_slot`` (a positive number)."""
    slots = resources.get(TRIAL_SLOT)
    return isinstance(slots, (int, float)) and not isinstance(slots, bool) and slots > 0


def shell_args(cmd: str) -> list[str]:
    """The words a shell makes of ``cmd``; whitespace-split where it is not valid shell."""
    try:
        return shlex.split(cmd)
    except ValueError:
        return cmd.split()


def option_value(args: list[str], name: str) -> str | None:
    """The value of ``--name=value`` or ``--name value`` among ``args``; None when absent."""
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg[len(name) + 1:]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None
