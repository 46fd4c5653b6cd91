"""Crash one workflow at one step, or list its steps: for reproducing a failure by hand.

    PYTHONPATH=src .venv/bin/python tests/reliability/crash_one.py reshard-in            # its steps
    PYTHONPATH=src .venv/bin/python tests/reliability/crash_one.py reshard-in "LABEL#n"  # one crash
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

from crashflows import BY_NAME  # noqa: E402
from crashsteps import Step, crash_at, enumerate_steps  # noqa: E402


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in BY_NAME:
        print(f"usage: crash_one.py {{{','.join(BY_NAME)}}} [LABEL#n]")
        return 2
    workflow = BY_NAME[sys.argv[1]]
    root = Path(tempfile.mkdtemp(prefix="cachefleet-crash-"))
    try:
        if len(sys.argv) == 2:
            for step in enumerate_steps(root, workflow):
                print(step.crash_after)
            return 0
        outcome = crash_at(root, workflow, Step.parse(sys.argv[2]))
        print(outcome.summary())
        return 0 if outcome.ok else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
