"""Keeping the runner's child processes alive, and never leaving them behind.

A child that dies is started again after a growing pause (1, 2, 4 … s, capped); one
that keeps failing (`max_failures` within `window` seconds) is left stopped, said so
on the console, while the others run on. Every child is armed to die with the runner
(`die_with_parent`), so a `kill -9` of the runner leaves no orphan.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that has the kernel SIGKILL the child when its parent dies.

    Chosen over a pipe the children watch: the kernel delivers it even when the
    parent is killed with -9, and it needs no code in the children (one is the
    nats-server binary). Its one trap: Linux sends it when the *thread* that started
    the child ends, so every child is started from a thread that lives as long as
    the system (the caller's, or the supervisor's own). Elsewhere than Linux: None.
    """
    if not sys.platform.startswith("linux"):
        return None
    # Loaded before the fork: the child only makes the call.
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the prctl took effect
            os._exit(1)

    return arm


@dataclass
class RestartPolicy:
    """When to start a dead child again, and when to give up on it."""

    first_delay: float = 1.0
    max_delay: float = 30.0
    max_failures: int = 5
    window: float = 60.0
    failures: list[float] = field(default_factory=list)

    def next_delay(self, now: float) -> float | None:
        """Records a failure at `now`; the pause before the next start, or None when
        the child failed `max_failures` times within the window (give up)."""
        self.failures = [moment for moment in self.failures if now - moment < self.window]
        self.failures.append(now)
        if len(self.failures) >= self.max_failures:
            return None
        return float(min(self.first_delay * 2 ** (len(self.failures) - 1), self.max_delay))


class Child(Protocol):
    """A supervised process (a ServiceProcess, the embedded NatsServer)."""

    def exit_code(self) -> int | None:
        """The code it exited with, or None while it runs or after a deliberate stop."""

    def start(self) -> object:
        """Starts it again and waits until it is ready; raises when it does not start."""


def bilingual(en: str, ar: str) -> str:
    return f"{en} / {ar}"


@dataclass
class Supervisor:
    children: Mapping[str, Child]
    policy: Callable[[], RestartPolicy] = RestartPolicy
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)
    interval: float = 0.2
    policies: dict[str, RestartPolicy] = field(default_factory=dict)
    # When each dead child is due to start again (monotonic time).
    due: dict[str, float] = field(default_factory=dict)
    given_up: set[str] = field(default_factory=set)
    restarts: dict[str, int] = field(default_factory=dict)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Supervisor:
        # One long-lived thread makes every restart: a child dies with the thread that
        # started it (die_with_parent), so never a short-lived one.
        self._thread = threading.Thread(target=self._loop, name="khidma-supervisor", daemon=True)
        self._thread.start()
        return self

    def halt(self) -> None:
        """No more restarts from now on (safe in a signal handler: it does not wait)."""
        self._stopping.set()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread:
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            self.check(time.monotonic())

    def check(self, now: float) -> None:
        if self._stopping.is_set():
            return
        for name, child in self.children.items():
            if name in self.given_up:
                continue
            if name in self.due:
                if now >= self.due[name]:
                    self._restart(name, child, now)
                continue
            code = child.exit_code()
            if code is not None:
                self._failed(name, f"exited with code {code}", f"خرجت بالرمز {code}", now)

    def _failed(self, name: str, why_en: str, why_ar: str, now: float) -> None:
        policy = self.policies.setdefault(name, self.policy())
        delay = policy.next_delay(now)
        if delay is None:
            self.given_up.add(name)
            self.due.pop(name, None)
            self.say(
                bilingual(
                    f"{name} {why_en}: it failed {policy.max_failures} times within "
                    f"{policy.window:.0f}s, so it is left stopped; the others run on "
                    f"(see {name}.log)",
                    f"{name} {why_ar}: فشلت {policy.max_failures} مرات خلال "
                    f"{policy.window:.0f} ثانية، فتُركت متوقفة؛ وبقية الخدمات تعمل "
                    f"(انظر {name}.log)",
                )
            )
            return
        self.due[name] = now + delay
        self.say(
            bilingual(
                f"{name} {why_en}: restarting it in {delay:g}s",
                f"{name} {why_ar}: ستُعاد بعد {delay:g} ثانية",
            )
        )

    def _restart(self, name: str, child: Child, now: float) -> None:
        del self.due[name]
        try:
            child.start()
        except (RuntimeError, TimeoutError, OSError) as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            self._failed(name, f"did not start ({first})", "لم تبدأ", now)
            return
        self.restarts[name] = self.restarts.get(name, 0) + 1
        self.say(bilingual(f"{name} restarted and ready", f"أعيد تشغيل {name} وهي جاهزة"))
