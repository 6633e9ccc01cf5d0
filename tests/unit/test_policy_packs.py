from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.policy import BoardApproval, eligibility_failures
from shared.policy_loader import PolicyError, load_pack, load_packs

pytestmark = pytest.mark.unit

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture(scope="module")
def packs():
    return load_packs(POLICIES)


def test_the_five_seed_associations_have_a_pack(packs):
    assert sorted(packs) == ["dumat-bees", "elites", "health-coop", "sidr", "textile-coop"]
    for pack in packs.values():
        assert pack.name.ar and pack.name.en
        assert pack.decision_window_days == 14  # "not less than two weeks" in every seed


def test_each_pack_enables_the_channels_its_policy_lists(packs):
    # Seeds 001 and 002 list eight channels, 004 six; 000 and 003 list seven (no branch office).
    assert len(packs["health-coop"].channels) == 8
    assert len(packs["textile-coop"].channels) == 8
    assert len(packs["elites"].channels) == 6
    assert "help_request" not in packs["elites"].channels
    assert "branch_office" not in packs["sidr"].channels
    assert "branch_office" not in packs["dumat-bees"].channels


def test_each_pack_calls_its_clients_as_its_policy_does(packs):
    assert packs["sidr"].clients.kind == "member"
    assert packs["textile-coop"].clients.kind == "beneficiary"
    assert packs["elites"].clients.kind == "user"


def test_board_approvals_keep_the_written_date_and_derive_the_other_calendar(packs):
    health = packs["health-coop"].board_approval
    assert health.meeting == "8"
    assert health.date_as_written == "الاثنين 17/7/1442هجري"
    assert health.gregorian.isoformat() == "2021-03-01"  # a Monday, as the policy says
    elites = packs["elites"].board_approval
    assert elites.hijri == "1445-01-07"
    textile = packs["textile-coop"].board_approval
    assert textile.calendar == "gregorian" and textile.gregorian.isoformat() == "2023-10-10"
    assert packs["sidr"].board_approval is None  # seed 000 states no approval


def test_a_broken_pack_names_the_file_the_key_and_the_problem(tmp_path):
    text = (POLICIES / "sidr.toml").read_text(encoding="utf-8")
    broken = tmp_path / "sidr.toml"
    broken.write_text(text.replace('"website"]', '"website", "carrier_pigeon"]'), encoding="utf-8")
    with pytest.raises(PolicyError) as error:
        load_pack(broken)
    message = str(error.value)
    assert str(broken) in message and "channels" in message and "carrier_pigeon" in message


def test_a_committee_quorum_larger_than_its_members_is_refused(tmp_path):
    text = (POLICIES / "sidr.toml").read_text(encoding="utf-8")
    broken = tmp_path / "sidr.toml"
    broken.write_text(text.replace("quorum = 3", "quorum = 9"), encoding="utf-8")
    with pytest.raises(PolicyError, match="committee: quorum 9 is more than"):
        load_pack(broken)


def test_a_pack_must_be_named_after_its_association(tmp_path):
    misnamed = tmp_path / "other.toml"
    misnamed.write_text((POLICIES / "sidr.toml").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(PolicyError, match="must match the file name"):
        load_pack(misnamed)


def test_invalid_toml_is_reported_with_the_file(tmp_path):
    bad = tmp_path / "x.toml"
    bad.write_text("association_id = ", encoding="utf-8")
    with pytest.raises(PolicyError, match="x.toml: cannot read"):
        load_pack(bad)


def test_an_empty_policies_folder_is_refused(tmp_path):
    with pytest.raises(PolicyError, match="no policy pack"):
        load_packs(tmp_path)


def test_eligibility_rules_of_a_service(packs):
    scholarship = packs["elites"].service("scholarship")
    assert eligibility_failures(scholarship, {"gpa": 4.7}) == []
    (failed,) = eligibility_failures(scholarship, {"gpa": "4.2"})
    assert failed.reason.ar and failed.reason.en
    assert eligibility_failures(scholarship, {}) == [failed]  # missing counts as failing
    training = packs["textile-coop"].service("sewing-training")
    assert eligibility_failures(training, {"level": "beginner"}) == []
    assert len(eligibility_failures(training, {"level": "expert"})) == 1
    seedlings = packs["sidr"].service("seedlings")
    assert len(eligibility_failures(seedlings, {"seedling_count": 0})) == 1
    assert len(eligibility_failures(seedlings, {"seedling_count": "many"})) == 1


@pytest.mark.parametrize(
    "approval",
    [
        {"calendar": "gregorian", "gregorian": "1445-03-01"},  # a Hijri year in the Gregorian key
        {"calendar": "hijri", "hijri": "1501-01-01"},
    ],
)
def test_a_board_date_outside_the_hijri_table_is_a_clear_problem_not_a_crash(approval):
    with pytest.raises(ValidationError) as refused:
        BoardApproval.model_validate(
            {"body": {"ar": "مجلس الإدارة", "en": "The board"}, "date_as_written": "x", **approval}
        )
    assert "Umm al-Qura table" in str(refused.value)
