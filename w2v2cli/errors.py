"""One exception family for every error a user can cause.

The CLI entry point catches `W2V2Error`, prints its message and hint, and exits non-zero;
tracebacks are shown only with `--debug`. Messages name the file, line or key at fault.
"""

from __future__ import annotations


class W2V2Error(Exception):
    """Base class: a user-facing error with an optional hint on how to fix it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # the hint travels with the message in logs and tests
        return self.message if not self.hint else f"{self.message}\nhint: {self.hint}"


class ConfigError(W2V2Error):
    """A bad configuration file, key or value."""

    exit_code = 2


class AudioError(W2V2Error):
    """An audio file that cannot be read or is unusable; the message names the file."""


class ManifestError(W2V2Error):
    """A manifest, label file or corpus layout that is inconsistent; names file and line."""


class CheckpointError(W2V2Error):
    """A checkpoint that cannot be loaded, converted or saved."""


class DataError(W2V2Error):
    """Training or evaluation data that cannot be used (empty manifest, bad labels, ...)."""


class TrainingError(W2V2Error):
    """Training cannot continue (repeated non-finite losses, ...)."""


class ToolMissingError(W2V2Error):
    """An external program (lmplz, sclite, espeak-ng ...) is not installed."""
