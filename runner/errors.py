"""Errors the runner reports to people and scripts (each carries an exit code)."""

from __future__ import annotations

# Exit codes a script can rely on (also listed in the README's "Headless runner").
EXIT_OK = 0  # every job done, or skipped because an earlier run did it with these settings
EXIT_FAILED = 1  # at least one job failed (the summary says which and why); wins over 4
EXIT_USAGE = 2  # bad workflow, bad --set, missing inputs, unusable output folder: nothing ran
EXIT_SERVER = 3  # the ComfyUI server could not be reached, is not ComfyUI, or lacks what the workflow needs
EXIT_EXISTS = 4  # for some inputs nothing was written: files this run did not make hold their output names
EXIT_INTERRUPTED = 130  # Ctrl-C: running prompts cancelled, manifest consistent


# JobFailed.reason for an input that does not decode completely (the same in both engines).
UNREADABLE_INPUT = "unreadable_input"
# JobFailed.reason for an input above the pixel limit (PORTRAIT_POLISH_MAX_MEGAPIXELS).
TOO_LARGE = "too_large"


class RunnerError(Exception):
    """Base class: a message meant for a person, plus the exit code it maps to."""

    exit_code = EXIT_USAGE


class WorkflowError(RunnerError):
    """The workflow file cannot be read or converted (malformed JSON, unknown nodes, ...)."""


class ParameterError(RunnerError):
    """A ``--set`` or CSV override does not fit the node's declared inputs."""


class InputError(RunnerError):
    """An input image, folder or CSV is missing or unreadable."""


class OutputError(RunnerError):
    """The output folder is a file, cannot be created or cannot be written, or another run
    is writing into it."""


class ServerUnavailable(RunnerError):
    """The ComfyUI server cannot be reached (after retries) or lacks required nodes."""

    exit_code = EXIT_SERVER


class JobFailed(RunnerError):
    """One job (one input image) failed; ``reason`` is a short machine-readable tag."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, reason: str = "error", details: dict | None = None, transient: bool = False):
        super().__init__(message)
        self.reason = reason
        self.details = details or {}
        self.transient = transient


class TransientServerError(RunnerError):
    """Connection refused, timeouts, 5xx: worth retrying with backoff."""

    exit_code = EXIT_SERVER


class Cancelled(RunnerError):
    """The batch was interrupted (Ctrl-C)."""

    exit_code = EXIT_INTERRUPTED
