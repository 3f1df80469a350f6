"""What a batch reports: one result per job, the summary (text, ``--json``, exit code) and
the progress bar."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from .errors import EXIT_EXISTS, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK

# Job statuses, in the order the summary counts them:
#   done       the outputs are in place (written now, or a killed run's checked and adopted)
#   skipped    already done by an earlier run for exactly these settings; nothing to do
#   exists     nothing written: a file this run did not make sits at an output's or sidecar's name
#   failed     the job failed (reason and message say why)
#   cancelled  interrupted (Ctrl-C) before it finished
STATUSES = ("done", "skipped", "exists", "failed", "cancelled")


@dataclass
class JobResult:
    input: str
    status: str  # one of STATUSES
    reason: str = ""
    message: str = ""
    outputs: list[str] = field(default_factory=list)
    sidecars: list[str] = field(default_factory=list)
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = {"input": self.input, "status": self.status, "outputs": self.outputs, "sidecars": self.sidecars,
                "seconds": round(self.seconds, 3)}
        if self.reason:
            data["reason"] = self.reason
        if self.message:
            data["message"] = self.message
        if self.details:
            data["details"] = self.details
        return data


@dataclass
class Summary:
    jobs: list[JobResult]
    output_dir: str
    manifest: str
    engine: dict[str, Any]
    interrupted: bool = False
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for job in self.jobs if job.status == status)

    @property
    def exit_code(self) -> int:
        """130 interrupted, else 1 if any job failed, else 4 if any input got nothing
        because its output names were taken, else 0."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.count("failed"):
            return EXIT_FAILED
        return EXIT_EXISTS if self.count("exists") else EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            **{status: self.count(status) for status in STATUSES}, "interrupted": self.interrupted,
            "exit_code": self.exit_code, "seconds": round(self.seconds, 3), "output_dir": self.output_dir,
            "manifest": self.manifest, "engine": self.engine, "jobs": [job.as_dict() for job in self.jobs],
        }

    def text(self) -> str:
        counts = ", ".join(f"{status} {self.count(status)}" for status in STATUSES[:4])
        lines = [counts + (f", cancelled {self.count('cancelled')} (interrupted)" if self.interrupted else "")
                 + f" in {self.seconds:.1f} s; outputs in {self.output_dir}"]
        for job in self.jobs:
            if job.status in ("failed", "skipped", "exists", "cancelled") or job.reason:
                lines.append(f"  {job.status:9} {job.input}: {job.reason}: {job.message}")
        return "\n".join(lines)


def error_summary(message: str, exit_code: int, output_dir: str) -> dict[str, Any]:
    """The ``--json`` summary when the batch could not start (bad usage, output folder,
    unreachable server): the same keys as a summary, no jobs, plus ``error``."""
    return {"error": message, **{status: 0 for status in STATUSES}, "interrupted": False, "exit_code": exit_code,
            "seconds": 0.0, "output_dir": output_dir, "manifest": None, "engine": None, "jobs": []}


class ProgressBar:
    """tqdm bar on stderr plus one line per finished image (status, name, seconds)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.done = 0
        self._bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True, leave=False)

    def status(self, name: str, state: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"{name}: {state}")

    def finished(self, job_input: str, result: JobResult) -> None:
        self.done += 1
        if not self.enabled:
            return
        from pathlib import Path

        detail = result.outputs[0] if result.status in ("done", "skipped") and result.outputs else result.message
        detail = (detail or "").splitlines()[0] if detail else ""  # the whole message is in the summary
        line = f"[{self.done}/{self.total}] {result.status:8} {Path(job_input).name} ({result.seconds:.1f} s) {detail or ''}"
        if self._bar is None:
            print(line.rstrip(), file=sys.stderr, flush=True)
            return
        self._bar.write(line.rstrip(), file=sys.stderr)
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
