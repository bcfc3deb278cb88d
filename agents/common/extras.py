"""The extra a command needs: one clear line, not a traceback, when it is not installed.

``pip install -e .`` installs the runtime only (:mod:`lr_gym.control`); the commands
that train and evaluate need their extras (pyproject.toml).
"""

from __future__ import annotations

import importlib.util

EXTRAS: dict[str, dict[str, str]] = {
    "train": {"gymnasium": "gymnasium", "stable_baselines3": "stable-baselines3",
              "yaml": "pyyaml", "sklearn": "scikit-learn", "tqdm": "tqdm", "rich": "rich"},
    "eval": {"gymnasium": "gymnasium", "yaml": "pyyaml", "sklearn": "scikit-learn",
             "tqdm": "tqdm", "schedulefree": "schedulefree", "dadaptation": "dadaptation",
             "rliable": "rliable", "matplotlib": "matplotlib", "pandas": "pandas"},
}
"""Each extra's modules a command imports, with the package that installs each."""


def missing(extra: str) -> list[str]:
    """The packages of ``extra`` whose module cannot be found."""
    return [dist for module, dist in EXTRAS[extra].items()
            if importlib.util.find_spec(module) is None]


def require(extra: str, command: str) -> None:
    """Exits with one line naming the extra to install if any of its packages is missing.

    Raises:
        SystemExit: ``extra`` is not (fully) installed.
    """
    if gone := missing(extra):
        raise SystemExit(f"{command} needs the [{extra}] extra ({', '.join(gone)} not "
                         f"installed): pip install -e \".[{extra}]\"")
