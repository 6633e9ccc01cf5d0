"""The group commit every submission goes through, over HTTP and over NATS alike."""

from __future__ import annotations

from services.intake.application import IntakeApplication, SubmissionResult
from shared import metrics, tracing
from shared.group_commit import GroupCommit
from shared.store import StoreRunner
from shared.submissions import Submission

# A submission with its recorded actor.
SubmissionGroup = GroupCommit[tuple[Submission, dict[str, str]], SubmissionResult]


def submission_group(
    app: IntakeApplication, store: StoreRunner, *, max_batch: int = 64, max_wait: float = 0.002
) -> SubmissionGroup:
    """Concurrent submissions decided one after the other and recorded in one
    transaction (`IntakeApplication.submit_all`), at most `max_batch` at a time,
    gathered for at most `max_wait` seconds (docs/decisions.md, 34)."""
    sizes = metrics.GROUP_COMMIT_SIZE.labels("intake", "submissions")
    return GroupCommit(
        store, app.submit_all, max_batch=max_batch, max_wait=max_wait, on_batch=sizes.observe
    )


async def submit_through(
    group: SubmissionGroup, submission: Submission, actor: dict[str, str]
) -> SubmissionResult:
    """One submission through the group commit: its result, or its refusal raised."""
    result = await group.run((submission, actor))
    # Recorded by the batch's own task: the request's span joins the case's trace here.
    tracing.join_case(result.correlation_id, opened=not result.duplicate)
    return result
