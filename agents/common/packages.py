"""``--gym-packages``: the user's modules that register their own tasks, imported once."""

from __future__ import annotations

import importlib
from collections.abc import Sequence


class GymPackageError(ValueError):
    """A ``--gym-packages`` module that cannot be imported; the message says why."""


def import_gym_packages(names: Sequence[str]) -> None:
    """Imports each module (they call ``lr_gym.register_task``), in order.

    Raises:
        GymPackageError: A module is missing or fails at import; the message names it
            and the fix.
    """
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            raise GymPackageError(
                f"--gym-packages {name}: no module named {err.name!r}; install it or put "
                "its folder on PYTHONPATH (it must be importable in worker processes too)."
            ) from err
        except Exception as err:  # noqa: BLE001 - the user's code may raise anything
            raise GymPackageError(f"--gym-packages {name}: importing it failed: "
                                  f"{type(err).__name__}: {err}") from err
