"""A batch's rows through a stand-in intake: bounded concurrency, each row's outcome,
the rows' order kept, a row whose submission fails left for the next upload."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from services.channels.adapters.batches import BatchSettings, process
from services.channels.intake import IntakeRefused
from shared.auth import Principal
from shared.policy_loader import load_packs

pytestmark = pytest.mark.unit

POLICIES = Path(__file__).resolve().parent.parent.parent / "policies"
IDS = ["1748526058", "1747938098", "1275253092", "1318561006", "1831671621", "1859820829"]


class StandInIntake:
    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.seen: dict[str, int] = {}

    def serves(self, channel: str) -> bool:
        return channel == "branch_office"

    async def submit(self, submission: dict[str, Any]) -> dict[str, Any]:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            national_id = submission["applicant"]["national_id"]
            if national_id == IDS[3]:
                raise httpx.ConnectError("intake is down")
            if national_id == IDS[4]:
                raise IntakeRefused(422, "service_not_found", "No such service.", "لا خدمة.")
            ref = submission["channel_ref"]
            duplicate = ref in self.seen
            self.seen.setdefault(ref, len(self.seen) + 1)
            return {
                "case_ref": f"TXT-1448-{self.seen[ref]:06d}",
                "duplicate": duplicate,
                "access_code": None if duplicate else f"code-{self.seen[ref]}",
                "complete": True,
                "missing": [],
            }
        finally:
            self.in_flight -= 1


def app_with(intake: StandInIntake, concurrency: int) -> Any:
    state = SimpleNamespace(
        packs=load_packs(POLICIES),
        intake=intake,
        batch_settings=BatchSettings(concurrency=concurrency),
    )
    return SimpleNamespace(state=state)


def representative(*associations: str) -> Principal:
    return Principal(
        subject="rep-1",
        name="Rep",
        kind="machine",
        roles={a: frozenset({"channel:branch_office"}) for a in associations},
        issuer="tests",
    )


def batch(count: int) -> bytes:
    lines = ["service_code,national_id,name,level"]
    lines += [f"sewing-training,{IDS[i % len(IDS)]},اسم {i},beginner" for i in range(count)]
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode()


async def test_rows_go_at_most_concurrency_at_a_time_and_keep_their_order():
    intake = StandInIntake()
    kind, results = await process(
        app_with(intake, 3), representative("textile-coop"), batch(30),
        association_id="textile-coop", batch_id=None,
    )  # fmt: skip
    assert kind == "csv"
    assert [r["row"] for r in results] == list(range(2, 32))
    assert intake.most == 3


async def test_each_row_gets_its_outcome_and_the_same_batch_again_nothing_new():
    intake = StandInIntake()
    app, who = app_with(intake, 4), representative("textile-coop")
    _, first = await process(app, who, batch(6), association_id="textile-coop", batch_id=None)
    by_row = {r["row"]: r for r in first}
    assert by_row[2]["outcome"] == "received" and by_row[2]["access_code"]
    assert by_row[5]["outcome"] == "failed" and by_row[5]["reason_ar"]  # intake unreachable
    assert by_row[6]["outcome"] == "refused" and by_row[6]["error"] == "service_not_found"
    assert by_row[6]["reason_en"] == "No such service." and by_row[6]["reason_ar"] == "لا خدمة."
    _, again = await process(app, who, batch(6), association_id="textile-coop", batch_id=None)
    again_by_row = {r["row"]: r for r in again}
    assert again_by_row[2]["outcome"] == "already_received"
    assert again_by_row[2]["case_ref"] == by_row[2]["case_ref"]
    assert again_by_row[2]["access_code"] is None
    assert len(intake.seen) == 4


async def test_rows_outside_the_uploaders_associations_or_the_packs_are_refused():
    intake = StandInIntake()
    _, elsewhere = await process(
        app_with(intake, 2), representative("health-coop"), batch(1),
        association_id="textile-coop", batch_id=None,
    )  # fmt: skip
    assert elsewhere[0]["error"] == "forbidden"
    _, not_enabled = await process(
        app_with(intake, 2), representative("sidr"), batch(1),
        association_id="sidr", batch_id=None,
    )  # fmt: skip
    assert not_enabled[0]["error"] == "channel_not_enabled"
    assert intake.seen == {}
