"""Small-group suppression of survey results: one rule for the surveys' results and the board report.

A group of answers smaller than `MINIMUM_GROUP_SIZE` is never shown, so that no
one can read an individual applicant's rating from it (or an officer's, from a
group they served alone). Hiding it is not enough when the reader knows the
total the groups add up to: the total minus the shown groups is the sum of the
hidden ones. So while the hidden groups of a breakdown hold fewer than
`MINIMUM_GROUP_SIZE` answers, the smallest shown group is hidden with them.

Pure functions over counts (group -> answers), no infrastructure: the surveys'
domain (its results by service, channel, stage and association) and the audit's
figures (the board report's satisfaction by service and by channel) both call
them; the wording of the reasons lives here too, in both languages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

#: the smallest group of answers whose figures may be shown
MINIMUM_GROUP_SIZE = 5

# Why a group is hidden (stable codes; `suppression_reason` gives the words).
TOO_FEW_ANSWERS = "too_few_answers"
PROTECTS_A_SMALLER_GROUP = "protects_a_smaller_group"
HIDDEN_IN_AN_ASSOCIATION = "hidden_in_an_association"


def suppression_reason(code: str, minimum: int = MINIMUM_GROUP_SIZE) -> dict[str, str]:
    """Why a group's figures are not shown, in both languages."""
    texts = {
        TOO_FEW_ANSWERS: (
            (
                f"Fewer than {minimum} answers: not shown, so that no one's rating can be "
                "read from it."
            ),
            f"أقل من {minimum} إجابات: لا تُعرض حتى لا يُستدل منها على تقييم أحد.",
        ),
        PROTECTS_A_SMALLER_GROUP: (
            (
                "Hidden as well, so that a smaller hidden group cannot be worked out by "
                "subtracting the shown groups from the total."
            ),
            "أُخفيت كذلك حتى لا تُستنتج مجموعة مخفية أصغر بطرح المجموعات المعروضة من المجموع.",
        ),
        HIDDEN_IN_AN_ASSOCIATION: (
            (
                "Hidden because this group is hidden in one association's results: the sum "
                "over associations would reveal it."
            ),
            "أُخفيت لأن هذه المجموعة مخفية في نتائج إحدى الجمعيات، ومجموعها عبر الجمعيات يكشفها.",
        ),
    }
    en, ar = texts[code]
    return {"code": code, "en": en, "ar": ar}


def too_few(count: int, minimum: int = MINIMUM_GROUP_SIZE) -> bool:
    """A group with some answers, but fewer than may be shown (an empty group shows nothing)."""
    return 0 < count < minimum


def hidden_groups(
    counts: Mapping[str, int],
    minimum: int = MINIMUM_GROUP_SIZE,
    hidden_elsewhere: Iterable[str] = (),
    *,
    total_known: bool = True,
) -> dict[str, str]:
    """The groups of one breakdown not to show, each with the code of its reason.

    `counts` holds every group of the breakdown (their sum is the total);
    `hidden_elsewhere` the groups that must be hidden whatever their count. When
    the reader cannot know the total (`total_known=False`), nothing can be
    worked out by subtraction and only the groups themselves are checked.
    """
    hidden: dict[str, str] = {}
    for value, count in counts.items():
        if too_few(count, minimum):
            hidden[value] = TOO_FEW_ANSWERS
    for value in hidden_elsewhere:
        if value in counts:
            hidden.setdefault(value, HIDDEN_IN_AN_ASSOCIATION)
    if not total_known:
        return hidden
    hidden_answers = sum(counts[value] for value in hidden)
    # Smallest first, then by name, so that the same figures always hide the same groups.
    shown = sorted(
        (count, value) for value, count in counts.items() if value not in hidden and count
    )
    while too_few(hidden_answers, minimum) and shown:
        count, value = shown.pop(0)
        hidden[value] = PROTECTS_A_SMALLER_GROUP
        hidden_answers += count
    return hidden


def hidden_in_breakdowns(
    breakdowns: Sequence[Mapping[str, int]], minimum: int = MINIMUM_GROUP_SIZE
) -> list[dict[str, str]]:
    """Each breakdown's hidden groups, for breakdowns of the same answers shown side by side.

    The breakdowns (by service, by channel) split the same answers, so when one
    of them hides nothing, a reader knows the total of every one of them, and
    each is then protected against subtraction (`hidden_groups`).
    """
    alone = [hidden_groups(counts, minimum, total_known=False) for counts in breakdowns]
    total_known = any(not hidden for hidden in alone)
    return [hidden_groups(counts, minimum, total_known=total_known) for counts in breakdowns]
