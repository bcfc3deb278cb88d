"""One ``--help`` style for the command-line tools."""

from __future__ import annotations

import argparse


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help, unless the help already names it.

    argparse's ``ArgumentDefaultsHelpFormatter`` appends it blindly, which printed
    "(default: from the hyperparameter file). (default: None)".
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text.lower()
            or action.default in (None, argparse.SUPPRESS, [])
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"
