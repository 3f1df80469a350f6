"""A fork server for the fault-injection tests (tests/test_runner_faults.py).

Started once as a subprocess, it imports the runner's CLI (torch and the pack with it) and
then forks one child per request that runs ``portrait-polish`` (``cli.main``) as a process
of its own, so a test can kill it (SIGKILL, SIGINT) at any moment without paying Python's
and torch's start-up for every round.

Protocol, JSON lines: a request ``{"argv": [...], "stdout": path, "stderr": path}`` on stdin;
the answers ``{"pid": N}`` once the child runs and ``{"pid": N, "returncode": rc}`` when it
has ended (``rc < 0``: killed by signal ``-rc``, as in ``subprocess``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback

from portrait_polish.runner import cli


def _child(request: dict) -> int:
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a fresh process
    try:
        code = cli.main(request["argv"])
    except BaseException:  # noqa: BLE001 - anything escaping the CLI is a finding
        traceback.print_exc()
        code = 199
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # signals are for the children
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            os._exit(_child(request))
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"pid": pid, "returncode": code}), flush=True)


if __name__ == "__main__":
    main()
