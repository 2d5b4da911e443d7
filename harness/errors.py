"""Errors the harness reports to a user, each carrying where it came from.

Bad input never surfaces as a bare traceback: the CLI and the pytest plugin catch
:class:`HarnessError` and print its message, which names the file, the key path
and what was expected.
"""

from __future__ import annotations

__all__ = ["HarnessError", "SuiteError", "MeasurementError", "UnsupportedError", "CaseSetupError"]


class HarnessError(Exception):
    """Base class of every error the harness reports to a user (exit code 2)."""


class SuiteError(HarnessError):
    """A suite file is malformed: ``file: key.path: message``."""

    def __init__(self, file: str, key: str, message: str):
        self.file, self.key, self.message = str(file), key, message
        where = f"{self.file}: {key}" if key else self.file
        super().__init__(f"{where}: {message}")


class MeasurementError(HarnessError):
    """A measurement could not be trusted (for example, Lanczos did not converge)."""


class UnsupportedError(MeasurementError):
    """A measure asked of a problem or update rule that lacks what it needs (a matrix, a
    held-out set, a layered model, an exposed direction): the suite cannot run as written. It
    is bad input (exit 2), not a failed claim."""


class CaseSetupError(HarnessError):
    """A case whose problem, update rule or measures cannot be set up as its suite asks:
    ``file: key: message`` (exit 2), like a malformed suite, though found only when the case starts."""

    def __init__(self, file: str, key: str, message: str):
        self.file, self.key, self.message = str(file), key, message
        super().__init__(f"{self.file}: {key}: {message}")
