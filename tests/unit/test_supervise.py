"""The restart rule of the runner's supervisor: backoff, and giving up."""

from __future__ import annotations

import pytest

from khidma.supervise import RestartPolicy, Supervisor

pytestmark = pytest.mark.unit


def test_the_pause_doubles_from_one_second_up_to_its_cap() -> None:
    policy = RestartPolicy(first_delay=1, max_delay=4, max_failures=10, window=60)
    assert [policy.next_delay(float(t)) for t in range(5)] == [1, 2, 4, 4, 4]


def test_five_failures_within_a_minute_give_up_but_old_ones_are_forgotten() -> None:
    policy = RestartPolicy(max_failures=5, window=60)
    assert [policy.next_delay(t) for t in (0, 10, 20, 30)] == [1, 2, 4, 8]
    assert policy.next_delay(40) is None
    spread = RestartPolicy(max_failures=5, window=60)
    # one failure every 20 s: never five within a minute, and the pause stays short
    assert all(spread.next_delay(t * 20.0) is not None for t in range(20))
    assert spread.next_delay(400.0) == 4


class FakeChild:
    def __init__(self, starts_fail: bool = False) -> None:
        self.code: int | None = None
        self.starts = 0
        self.starts_fail = starts_fail

    def exit_code(self) -> int | None:
        return self.code

    def start(self) -> object:
        self.starts += 1
        if self.starts_fail:
            raise RuntimeError("exited during start-up:\nboom")
        self.code = None
        return self


def test_a_dead_child_is_started_again_when_due_and_said_in_both_languages() -> None:
    child, other = FakeChild(), FakeChild()
    said: list[str] = []
    supervisor = Supervisor({"intake": child, "web": other}, say=said.append)
    child.code = -9
    supervisor.check(100.0)
    assert child.starts == 0 and "restarting it in 1s" in said[-1] and "ستُعاد" in said[-1]
    supervisor.check(100.5)
    assert child.starts == 0  # not yet due
    supervisor.check(101.0)
    assert child.starts == 1 and supervisor.restarts == {"intake": 1}
    assert "restarted and ready" in said[-1] and "أعيد تشغيل" in said[-1]
    assert other.starts == 0


def test_a_child_that_fails_every_start_is_left_stopped_and_the_others_are_not() -> None:
    broken, other = FakeChild(starts_fail=True), FakeChild()
    said: list[str] = []
    supervisor = Supervisor(
        {"surveys": broken, "web": other},
        policy=lambda: RestartPolicy(max_failures=3),
        say=said.append,
    )
    broken.code = 1
    for now in range(0, 30):
        supervisor.check(float(now))
    assert broken.starts == 2  # the crash, then two failed starts: three failures
    assert supervisor.given_up == {"surveys"}
    assert "left stopped" in said[-1] and "تُركت متوقفة" in said[-1]
    other.code = -9
    supervisor.check(40.0)
    supervisor.check(41.0)
    assert other.starts == 1


def test_after_a_halt_nothing_is_restarted() -> None:
    # Ctrl-C reaches the children too: their exits are no crash to repair.
    child = FakeChild()
    said: list[str] = []
    supervisor = Supervisor({"intake": child}, say=said.append)
    supervisor.halt()
    child.code = -2
    for now in range(5):
        supervisor.check(float(now))
    assert child.starts == 0 and said == []
