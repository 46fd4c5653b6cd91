"""Per-resource workers, their outcomes, and the long steps they track.

The contract between the scheduler and a workflow pass:

- One worker per resource (``Target``): passes of one resource run one at a time, in order;
  different resources run in parallel. A change kicks the resource's worker; a kick while a
  pass runs makes exactly one more pass afterwards.
- A pass is short and idempotent. It returns when the resource has converged, raises
  ``Retry(delay, reason)`` when it made what progress it could (the pass runs again after
  ``delay``), or ``Failed(reason)`` when the work cannot finish: the scheduler then calls the
  ``fail`` hook once, which records the failed status and an event (``create-failed``, a
  reshard given up...). Deadlines live in the operation records (domain/operations.py); the
  pass raises ``Failed`` when one has passed.
- A transient engine error (``transient``) is retried after half a second; a store that cannot
  write (``StoreUnavailable``: locked, read-only, full), or a data disk that refuses a node's
  files (EROFS, ENOSPC, EDQUOT, EIO), after a growing delay of up to 5 s, with a warning and no
  traceback (it is the machine's fault, not a bug); any other
  exception is a bug: it is logged with its traceback and retried with a growing delay (up to
  30 s), never silently forever: the operation's deadline still ends it.
- Long steps (slot migration, drains) run as ``Tasks``: background tasks the pass starts and
  later only asks about, so that a pass never waits for them (a hung primary is still failed
  over while its slots move). A task's end kicks its resource.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from cachefleet.domain.errors import StoreUnavailable
from cachefleet.domain.resource import Resource

log = logging.getLogger(__name__)

TRANSIENT_DELAY = 0.5
FIRST_BUG_DELAY = 1.0
MAX_BUG_DELAY = 30.0
MAX_STORE_DELAY = 5.0  # a store that writes again is noticed this soon
# What a full or read-only data disk answers a node's files with (not a bug of ours).
DISK_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO})


@dataclass(frozen=True)
class Target:
    """A resource a worker reconciles: its kind's name, region and key."""

    kind: str
    region: str
    key: str

    @classmethod
    def of(cls, resource: Resource) -> Target:
        return cls(resource.KIND.name, resource.region, resource.key)


class Retry(Exception):
    """The pass made what progress it could; run it again after ``delay`` seconds."""

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason)
        self.delay = delay
        self.reason = reason


class Failed(Exception):
    """The work cannot finish: end it in a failed status, with ``reason`` in the event."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Pass = Callable[[Target], Awaitable[None]]
FailHook = Callable[[Target, str], Awaitable[None]]


class Scheduler:
    """Runs one worker per resource and turns pass outcomes into reruns, failures and backoff (see the module docstring)."""

    def __init__(
        self,
        *,
        run: Pass,
        fail: FailHook,
        transient: tuple[type[Exception], ...] = (),
        resync: Callable[[], Iterable[Target]] = lambda: (),
        resync_interval: float = 2.0,
    ) -> None:
        self._run = run
        self._fail = fail
        self._transient = transient
        self._resync = resync
        self._resync_interval = resync_interval
        self._dirty: set[Target] = set()
        self._workers: dict[Target, asyncio.Task[None]] = {}
        self._timers: dict[Target, asyncio.TimerHandle] = {}
        self._bug_delays: dict[Target, float] = {}
        self._reasons: dict[Target, str] = {}
        self._resync_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.tasks = Tasks(on_done=self.kick)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        for target in self._resync():
            self.kick(target)
        self._resync_task = asyncio.create_task(self._resync_loop(), name="scheduler-resync")

    async def stop(self) -> None:
        self._stopping = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        await self.tasks.stop()
        tasks = list(self._workers.values())
        if self._resync_task is not None:
            tasks.append(self._resync_task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def busy(self) -> int:
        """Resources being reconciled right now."""
        return len(self._workers)

    async def idle(self) -> None:
        """Waits until no worker is busy (used by tests and benchmarks)."""
        while self._workers:
            await asyncio.gather(*self._workers.values(), return_exceptions=True)

    def last_reason(self, target: Target) -> str:
        """Why the resource's last pass asked to run again (for a failure's event)."""
        return self._reasons.get(target, "")

    # ------------------------------------------------------------------ kicking
    def kick(self, target: Target) -> None:
        if self._stopping:
            return
        self._dirty.add(target)
        if target not in self._workers:
            self._workers[target] = asyncio.create_task(self._work(target), name=f"reconcile {target.key}")

    def later(self, target: Target, delay: float) -> None:
        """Kicks ``target`` after ``delay`` seconds. One timer per target: the sooner wins (the pass
        it starts asks again for whatever it still waits for)."""
        if self._stopping:
            return
        loop = asyncio.get_running_loop()
        previous = self._timers.get(target)
        if previous is not None:
            if previous.when() <= loop.time() + delay:
                return
            previous.cancel()

        def fire() -> None:
            self._timers.pop(target, None)
            self.kick(target)

        self._timers[target] = loop.call_later(delay, fire)

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self._resync_interval)
            for target in self._resync():
                if target not in self._timers:
                    self.kick(target)

    async def _work(self, target: Target) -> None:
        try:
            while target in self._dirty:
                self._dirty.discard(target)
                try:
                    await self._run(target)
                except Retry as retry:
                    if retry.reason:
                        self._reasons[target] = retry.reason
                        log.info("%s: %s; again in %.3f s", target.key, retry.reason, retry.delay)
                    self._bug_delays.pop(target, None)
                    self.later(target, retry.delay)
                    continue
                except Failed as failed:
                    log.warning("%s: %s", target.key, failed.reason)
                    self._bug_delays.pop(target, None)
                    await self._fail(target, failed.reason)
                    continue
                except asyncio.CancelledError:
                    raise
                except StoreUnavailable as error:
                    self._machine_fault(target, error.message, "the store cannot write")
                    continue
                except self._transient as error:
                    self._reasons[target] = str(error)
                    log.warning("%s: %s; again in %.1f s", target.key, error, TRANSIENT_DELAY)
                    self.later(target, TRANSIENT_DELAY)
                    continue
                except OSError as error:
                    if error.errno not in DISK_ERRNOS:
                        self._bug(target, error)
                        continue
                    # The data disk refuses a node's files (read-only, full): the machine's fault, as above.
                    self._machine_fault(target, str(error), f"the data directory cannot be written ({error})")
                    continue
                except Exception as error:  # noqa: BLE001 - a bug; logged, retried with backoff
                    self._bug(target, error)
                    continue
                self._bug_delays.pop(target, None)
                self._reasons.pop(target, None)
        finally:
            self._workers.pop(target, None)

    def _machine_fault(self, target: Target, reason: str, said: str) -> None:
        """The machine refused the pass (the store, the data disk): a warning, 1 s doubling to 5 s."""
        delay = self._bug_delays.get(target, FIRST_BUG_DELAY)
        self._bug_delays[target] = min(delay * 2, MAX_STORE_DELAY)
        self._reasons[target] = reason
        log.warning("%s: %s; again in %.0f s", target.key, said, delay)
        self.later(target, delay)

    def _bug(self, target: Target, error: Exception) -> None:
        delay = self._bug_delays.get(target, FIRST_BUG_DELAY)
        self._bug_delays[target] = min(delay * 2, MAX_BUG_DELAY)
        self._reasons[target] = f"{type(error).__name__}: {error}"
        log.error("reconciling %s failed; again in %.0f s", target.key, delay, exc_info=error)
        self.later(target, delay)


class Tasks:
    """Long steps of a resource's work, run in the background and asked about by its passes.

    A task is known by (target, name). ``start`` runs it once; ``busy`` says whether it still
    runs; ``take`` returns how the finished one ended (None: done, or the exception it raised)
    and forgets it. The end of a task kicks its target.
    """

    def __init__(self, *, on_done: Callable[[Target], None]) -> None:
        self._on_done = on_done
        self._tasks: dict[tuple[Target, str], asyncio.Task[Any]] = {}

    def start(self, target: Target, name: str, step: Coroutine[Any, Any, Any]) -> None:
        """Runs ``step`` unless that task still runs (a finished one's outcome is dropped)."""
        key = (target, name)
        running = self._tasks.get(key)
        if running is not None and not running.done():
            step.close()
            return
        task = asyncio.create_task(step, name=f"{name} {target.key}")
        self._tasks[key] = task
        task.add_done_callback(lambda _: self._on_done(target))

    def busy(self, target: Target, name: str) -> bool:
        task = self._tasks.get((target, name))
        return task is not None and not task.done()

    def running(self, target: Target) -> list[str]:
        return [name for (t, name), task in self._tasks.items() if t == target and not task.done()]

    def take(self, target: Target, name: str) -> BaseException | None:
        """How the finished task ended (None if it succeeded or never ran); it is forgotten."""
        task = self._tasks.get((target, name))
        if task is None or not task.done():
            return None
        del self._tasks[(target, name)]
        if task.cancelled():
            return asyncio.CancelledError()
        return task.exception()

    async def cancel(self, target: Target, name: str | None = None) -> None:
        """Stops the target's tasks (all of them, or the one named) and waits for them to end."""
        keys = [key for key in self._tasks if key[0] == target and (name is None or key[1] == name)]
        for key in keys:
            self._tasks[key].cancel()
        for key in keys:
            task = self._tasks.pop(key)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
