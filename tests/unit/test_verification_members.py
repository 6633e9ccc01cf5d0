"""Members of the general assembly: the registry import and the standing history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from services.verification.application import VerificationApplication
from services.verification.domain import Standing
from services.verification.members import Member, read_registry
from shared.errors import NotFound, Refused
from shared.http import refusal_status
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from tests.unit.verification_keys import sealer_in

pytestmark = pytest.mark.unit

PACKS = load_packs(DEFAULT_POLICIES_DIR)
AISHA = "1000000008"
OMAR = "2000000006"
SARA = "1012345672"
HEADER = "national_id,name,joined_on,status,status_since\n"
TODAY = date(2026, 1, 1)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[VerificationApplication]:
    with sealer_in(tmp_path) as sealer:
        yield VerificationApplication(
            env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, packs=PACKS, sealer=sealer
        )


def member(**overrides: object) -> Member:
    values: dict[str, object] = dict(
        association_id="sidr",
        national_id=AISHA,
        subject_index="index-of-aisha",
        personal_key="sk-aisha",
        name="Aisha",
        joined_on=date(2020, 1, 1),
        status="good",
        status_since=date(2020, 1, 1),
    )
    values.update(overrides)
    return Member.register(**values)  # type: ignore[arg-type]


# The standing history -----------------------------------------------------------------


def test_a_member_is_in_good_standing_from_joining() -> None:
    aisha = member()
    assert aisha.standing_on(date(2019, 12, 31)) == Standing()
    assert aisha.standing_on(date(2020, 1, 1)) == Standing("good", date(2020, 1, 1))


def test_standing_changes_take_effect_on_their_date() -> None:
    aisha = member(status="suspended", status_since=date(2024, 6, 1))
    assert aisha.standing_on(date(2024, 5, 31)).status == "good"
    assert aisha.standing_on(date(2024, 6, 1)).status == "suspended"
    assert aisha.apply_registry_row(name="Aisha", status="good", status_since=date(2025, 1, 1))
    assert aisha.apply_registry_row(name="Aisha", status="left", status_since=date(2026, 1, 1))
    assert [type(e).__name__ for e in aisha.collect_events()] == [
        "Registered",
        "StandingChanged",
        "Left",
    ]
    assert aisha.standing_on(date(2024, 12, 31)).status == "suspended"
    assert aisha.standing_on(date(2025, 6, 1)) == Standing("good", date(2025, 1, 1))
    assert aisha.standing_on(date(2026, 1, 1)).status == "left"
    assert aisha.status == "left"


def test_the_same_row_again_changes_nothing() -> None:
    aisha = member(status="suspended", status_since=date(2024, 6, 1))
    assert not aisha.apply_registry_row(
        name="Aisha", status="suspended", status_since=date(2024, 6, 1)
    )
    assert len(aisha.collect_events()) == 1


# Reading the CSV ------------------------------------------------------------------------


def test_good_lines_are_kept_and_bad_lines_reported_with_their_line_number() -> None:
    rows, problems = read_registry(
        HEADER
        + f"{AISHA},Aisha,2020-01-01,good,2020-01-01\n"
        + "1000000001,Bad Id,2020-01-01,good,2020-01-01\n"
        + f"{OMAR},Omar,01/05/2019,good,2019-05-01\n"
        + f"{SARA},Sara,2020-01-01,expelled,2020-01-01\n"
        + f"{SARA},Sara,2020-01-01,good,2019-01-01\n"
        + f"{SARA},,2020-01-01,good,2020-01-01\n"
        + f"{SARA},Sara,2020-01-01\n"
        + "\n"
        + f"{AISHA},Aisha again,2020-01-01,good,2020-01-01\n"
        + f"{SARA},\"Sara, Al-Harbi\",2021-03-01,Suspended,2022-01-01\n",
        today=TODAY,
    )
    assert [(r.line, r.national_id, r.name, r.status) for r in rows] == [
        (2, AISHA, "Aisha", "good"),
        (11, SARA, "Sara, Al-Harbi", "suspended"),
    ]
    assert [p.line for p in problems] == [3, 4, 5, 6, 7, 8, 10]
    for problem in problems:
        assert problem.en and problem.ar
    assert "national_id" in problems[0].en
    assert "joined_on" in problems[1].en
    assert "status" in problems[2].en
    assert "line 2" in problems[6].en


@pytest.mark.parametrize("text", ["", "id,name\n1000000008,Aisha\n"])
def test_a_registry_without_the_header_is_refused_as_a_whole(text: str) -> None:
    with pytest.raises(Refused) as refused:
        read_registry(text, today=TODAY)
    assert refusal_status(refused.value) == 422
    assert "national_id,name,joined_on,status,status_since" in refused.value.en


def test_a_byte_order_mark_and_spaces_are_tolerated() -> None:
    rows, problems = read_registry(
        "\ufeff" + HEADER + f" {AISHA} , Aisha ,2020-01-01, good ,2020-01-01\n", today=TODAY
    )
    assert problems == []
    assert rows[0].national_id == AISHA and rows[0].name == "Aisha"


# The import through the application -------------------------------------------------------


def test_import_counts_imported_updated_unchanged_and_is_idempotent(
    app: VerificationApplication,
) -> None:
    first = HEADER + f"{AISHA},Aisha,2020-01-01,good,2020-01-01\n{OMAR},Omar,2019-05-01,good,2019-05-01\n"
    assert app.import_members("sidr", first) == {
        "association_id": "sidr",
        "imported": 2,
        "updated": 0,
        "unchanged": 0,
        "errors": [],
    }
    assert app.import_members("sidr", first)["unchanged"] == 2
    position = app.max_notification_id()
    assert app.import_members("sidr", first)["imported"] == 0
    assert app.max_notification_id() == position  # nothing recorded again

    second = HEADER + (
        f"{AISHA},Aisha,2020-01-01,suspended,2025-02-15\n"
        f"{OMAR},Omar,2019-05-01,good,2019-05-01\n"
        f"{SARA},Sara,2021-01-01,good,2021-01-01\n"
        "123,Nobody,2021-01-01,good,2021-01-01\n"
    )
    report = app.import_members("sidr", second)
    assert (report["imported"], report["updated"], report["unchanged"]) == (1, 1, 1)
    assert report["errors"][0]["line"] == 5
    assert report["errors"][0]["problem"]["ar"] and report["errors"][0]["problem"]["en"]


def test_members_are_per_association(app: VerificationApplication) -> None:
    app.import_members("sidr", HEADER + f"{AISHA},Aisha,2020-01-01,good,2020-01-01\n")
    assert app.member("sidr", AISHA)["status"] == "good"
    with pytest.raises(NotFound) as not_found:
        app.member("health-coop", AISHA)
    assert not_found.value.code == "member_not_found"


def test_an_unknown_association_is_not_found(app: VerificationApplication) -> None:
    with pytest.raises(NotFound) as not_found:
        app.import_members("nowhere", HEADER)
    assert not_found.value.code == "association_not_found"
    assert not_found.value.ar


def test_the_member_shows_the_history_in_both_calendars(app: VerificationApplication) -> None:
    app.import_members("sidr", HEADER + f"{AISHA},Aisha,2020-01-01,suspended,2025-02-15\n")
    app.import_members("sidr", HEADER + f"{AISHA},Aisha,2020-01-01,good,2025-09-01\n")
    shown = app.member("sidr", AISHA)
    assert shown["status"] == "good"
    assert shown["status_since"] == "2025-09-01"
    assert shown["joined_on_display"]["hijri"] == "1441-05-06"
    assert [(h["status"], h["since"]) for h in shown["history"]] == [
        ("good", "2020-01-01"),
        ("suspended", "2025-02-15"),
        ("good", "2025-09-01"),
    ]
    for entry in shown["history"]:
        assert entry["since_display"]["ar"] and entry["since_display"]["en"]
        assert entry["since_display"]["hijri"]


def test_one_member_can_be_registered_and_their_standing_changed(
    app: VerificationApplication,
) -> None:
    shown = app.register_member(
        "sidr", OMAR, name="Omar", joined_on="2019-05-01", status="good", status_since="2019-05-01"
    )
    assert shown["status"] == "good"
    shown = app.register_member(
        "sidr", OMAR, name="Omar", joined_on="2019-05-01", status="suspended", status_since="2025-01-01"
    )
    assert [h["status"] for h in shown["history"]] == ["good", "suspended"]
    with pytest.raises(Refused) as refused:
        app.register_member(
            "sidr", OMAR, name="Omar", joined_on="2019-05-01", status="good", status_since="1.1.2025"
        )
    assert refusal_status(refused.value) == 422 and refused.value.code == "invalid_member"
    assert refused.value.ar


# Dates that cannot be real, and dates stored before they were refused ----------------------


@pytest.mark.parametrize(
    ("joined_on", "status_since", "words"),
    [
        ("1441-05-20", "2020-01-01", "Hijri"),  # typed in Hijri, read as the year 1441
        ("2099-01-01", "2099-01-01", "has not come yet"),
        ("2020-01-01", "2099-01-01", "years ahead"),
        ("1899-12-31", "2020-01-01", "before 1900-01-01"),
    ],
)
def test_a_member_whose_dates_cannot_be_real_is_refused_in_both_languages(
    app: VerificationApplication, joined_on: str, status_since: str, words: str
) -> None:
    with pytest.raises(Refused) as refused:
        app.register_member(
            "sidr", OMAR, name="Omar", joined_on=joined_on, status="good", status_since=status_since
        )
    assert refusal_status(refused.value) == 422
    assert words in refused.value.en and refused.value.ar != refused.value.en
    assert app.max_notification_id() in (0, None)  # nothing recorded


def test_a_hijri_date_marked_as_such_is_recorded_as_its_gregorian_day(
    app: VerificationApplication,
) -> None:
    shown = app.register_member(
        "sidr", OMAR, name="Omar", joined_on="1441-05-20h", status="good", status_since="1441-05-20 هـ"
    )
    assert shown["joined_on"] == "2020-01-15"
    assert shown["joined_on_display"]["hijri"] == "1441-05-20"


def test_a_member_stored_with_dates_beyond_the_hijri_table_is_still_read_and_judged(
    app: VerificationApplication,
) -> None:
    # As an earlier version recorded them: a Hijri date read as the Gregorian year
    # 1441, and a change of standing in 2099.
    keys = app.subject_keys
    stored = member(
        subject_index=keys.subject_index("sidr", AISHA),
        personal_key=keys.key_for("sidr", AISHA),
        joined_on=date(1441, 5, 20),
        status="suspended",
        status_since=date(2099, 1, 1),
    )
    app.save(stored)
    shown = app.member("sidr", AISHA)
    assert shown["joined_on"] == "1441-05-20"
    assert shown["joined_on_display"]["hijri"] is None
    assert "1441" in shown["joined_on_display"]["en"]
    assert shown["status_since_display"] == {
        "gregorian": "2099-01-01",
        "hijri": None,
        "ar": "١ يناير ٢٠٩٩ م",
        "en": "1 January 2099",
    }
    assert app.repository.get(stored.id).standing_on(date(2025, 3, 1)).status == "good"
