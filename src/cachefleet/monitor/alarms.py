"""Evaluates metric alarms continuously and delivers their actions.

After every sampling tick, each alarm whose period has just completed is evaluated (the
decision is the domain's, :meth:`CloudWatch.evaluate_alarm`). On a state change, every
action of the new state runs if the alarm's actions are enabled: an ``http://`` or
``https://`` action receives the alarm notification as a JSON POST (Cachefleet's stand-in
for an SNS topic); other ARNs are recorded as not deliverable here. Each delivery, good or
failed, is written to the alarm's history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

import aiohttp

from cachefleet.domain.alarms import notification
from cachefleet.domain.cloudwatch import CloudWatch, Transition
from cachefleet.domain.identifiers import account_id

log = logging.getLogger(__name__)

DELIVERY_ATTEMPTS = 3
DELIVERY_TIMEOUT = 5.0


class AlarmMonitor:
    """Evaluates every alarm after each sampling tick and delivers webhook notifications."""

    def __init__(self, cloudwatch: CloudWatch) -> None:
        self._cloudwatch = cloudwatch
        self._evaluated: dict[tuple[str, str], tuple[float, object]] = {}  # (region, name) -> (period end, config time)
        self._deliveries: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0
        self.failed = 0
        cloudwatch.on_transition = self.notify

    def on_tick(self, second: int) -> None:
        """Evaluates the alarms whose last period ended at or before ``second``."""
        seen: set[tuple[str, str]] = set()
        for alarm in self._cloudwatch.alarms():
            key: tuple[str, str] = (str(alarm.region), alarm.name)
            seen.add(key)
            end = math.floor(second / alarm.period) * alarm.period
            if self._evaluated.get(key) == (end, alarm.configuration_updated):
                continue
            self._evaluated[key] = (end, alarm.configuration_updated)
            try:
                self._cloudwatch.evaluate_alarm(alarm)
            except Exception:
                log.exception("evaluating alarm %s failed", alarm.name)
        for key in set(self._evaluated) - seen:
            del self._evaluated[key]

    def notify(self, transition: Transition) -> None:
        alarm = transition.alarm
        log.info("alarm %s: %s -> %s: %s", alarm.name, transition.old.value, alarm.state.value, alarm.state_reason)
        if not alarm.actions_enabled:
            return
        for action in alarm.actions_for(alarm.state):
            task = asyncio.get_running_loop().create_task(self._deliver(transition, action), name=f"alarm-action {alarm.name}")
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, transition: Transition, action: str) -> None:
        alarm = transition.alarm
        if not action.startswith(("http://", "https://")):
            self.failed += 1
            self._cloudwatch.record_action(
                alarm,
                f"Failed to execute action {action}. Received error: Cachefleet delivers only http(s):// webhook actions",
                {"actionState": "Failed", "notificationResource": action},
            )
            return
        body = notification(alarm, old=transition.old, account=account_id())
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT))
        error = ""
        started = time.monotonic()
        for attempt in range(DELIVERY_ATTEMPTS):
            try:
                async with self._session.post(
                    action, json=body, headers={"User-Agent": "Cachefleet-Alarms", "x-cachefleet-alarm": alarm.name}
                ) as response:
                    if response.status < 300:
                        self.delivered += 1
                        self._cloudwatch.record_action(
                            alarm,
                            f"Successfully executed action {action}",
                            {"actionState": "Succeeded", "notificationResource": action, "status": response.status,
                             "milliseconds": round((time.monotonic() - started) * 1000)},
                        )
                        return
                    error = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError, ValueError) as failure:
                error = str(failure) or type(failure).__name__
            await asyncio.sleep(0.5 * (attempt + 1))
        self.failed += 1
        log.warning("alarm %s: action %s failed: %s", alarm.name, action, error)
        self._cloudwatch.record_action(
            alarm,
            f"Failed to execute action {action}. Received error: {error}",
            {"actionState": "Failed", "notificationResource": action, "error": error},
        )

    async def stop(self) -> None:
        for task in list(self._deliveries):
            task.cancel()
        for task in list(self._deliveries):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()
