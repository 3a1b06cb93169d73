"""labrunner's errors: every one derives from :class:`LabrunnerError`, which the command line
turns into one clear line and exit status 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LabrunnerError(Exception):
    """The base class of every error labrunner raises on purpose; its message is one line
    that names the problem and where it is."""


class UsageError(LabrunnerError):
    """Bad input from the user: a config key, a file, a lab name, a device.

    The message is one line that names the problem and where it is.
    """


class PluginError(LabrunnerError):
    """A plugin that cannot be used; it is reported by name and skipped."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` on one line, even when the exception's ``str()`` raises."""
    try:
        message = str(exc)
    except Exception as inner:
        message = f"<str() of the exception raised {type(inner).__name__}>"
    message = " ".join(message.split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
