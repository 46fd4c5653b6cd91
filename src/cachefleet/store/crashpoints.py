"""Test-only crash injection at the store's commit path: labels of commits, and the hook.

TEST-ONLY. Every persisted step of a workflow is one committed store transaction; this module
names each commit by what it wrote (``label``) so a test can list the steps of a workflow and
kill the control plane right after any one of them, then check that a restart converges.

Two environment variables, read once when the store opens; with neither set the store keeps no
hook at all (``from_environment`` returns None) and commits cost nothing extra:

- ``CACHEFLEET_STEP_LOG=FILE`` appends the label of every commit to FILE, one a line;
- ``CACHEFLEET_CRASH_AFTER="<label>[#n]"`` SIGKILLs this process right after the n-th commit
  (default 1) whose label is exactly ``<label>``.

Never set them in production: the second one kills the control plane on purpose.
"""

from __future__ import annotations

import enum
import os
import re
import signal
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

STEP_LOG = "CACHEFLEET_STEP_LOG"
CRASH_AFTER = "CACHEFLEET_CRASH_AFTER"

_WORDS = re.compile(r"[A-Za-z][A-Za-z:'-]*")


def step_text(text: str) -> str:
    """``text`` up to its first word holding a number or an id ("moving slots (12)" -> "moving
    slots", "failing over 0002" -> "failing over"), so that labels are stable from run to run."""
    words = []
    for word in text.split():
        if not _WORDS.fullmatch(word):
            break
        words.append(word)
    return " ".join(words).rstrip(":")


def _value(value: Any) -> str:
    return str(value.value) if isinstance(value, enum.Enum) else str(value)


def record_label(record: Any, *, deleted: bool = False) -> str:
    """"ReplicationGroup available", "CacheCluster creating", "Operation RESHARD moving slots",
    "Operation CREATE deleted": the record's kind, then its operation kind, status or step."""
    parts = [record.KIND.name]
    kind = getattr(record, "kind", None)
    if isinstance(kind, enum.Enum):
        parts.append(kind.name)
    if deleted:
        parts.append("deleted")
    else:
        for attribute in ("status", "step"):
            value = getattr(record, attribute, None)
            if value is not None and step_text(_value(value)):
                parts.append(step_text(_value(value)))
    return " ".join(parts)


def label(puts: Iterable[Any], deletes: Iterable[Any], events: Iterable[Any]) -> str:
    """One commit's label: its records' labels, sorted and joined by " + "; a commit of events
    only is named by its first event's message ("Event Cache cluster created")."""
    names = sorted({record_label(r) for r in puts} | {record_label(r, deleted=True) for r in deletes})
    if names:
        return " + ".join(names)
    messages = [step_text(event.message) for event in events]
    return f"Event {messages[0]}" if messages else "Event"


class CrashHook:
    """Counts commits by label; logs them and kills this process where the environment says."""

    def __init__(self, *, log_path: Path | None, crash_label: str | None, crash_count: int) -> None:
        self.log_path = log_path
        self.crash_label = crash_label
        self.crash_count = crash_count
        self.seen: Counter[str] = Counter()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> CrashHook | None:
        log_path = environ.get(STEP_LOG) or None
        crash = environ.get(CRASH_AFTER) or None
        if log_path is None and crash is None:
            return None
        count = 1
        if crash is not None and re.search(r"#\d+$", crash):
            crash, _, number = crash.rpartition("#")
            count = int(number)
        return cls(log_path=Path(log_path) if log_path else None, crash_label=crash, crash_count=count)

    def committed(self, puts: Iterable[Any], deletes: Iterable[Any], events: Iterable[Any]) -> None:
        name = label(puts, deletes, events)
        self.seen[name] += 1
        if self.log_path is not None:
            with open(self.log_path, "a") as out:
                out.write(name + "\n")
        if name == self.crash_label and self.seen[name] == self.crash_count:
            os.kill(os.getpid(), signal.SIGKILL)
