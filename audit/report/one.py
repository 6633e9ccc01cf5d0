"""The board report of one association, as HTML: what `GET /report` answers.

The same figures and exceptions as `python -m audit report`, counted from the
stream (and the stores beside it), for the one association the auditor asked
for: the other associations' events, exceptions and erasures are left out.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from audit.compliance import CheckContext, checks_not_run
from audit.figures import compute_figures, count_erasures
from audit.personal import keyring_erasures
from audit.replay import available_services
from audit.report.build import compliance_exceptions, stream_events, write_report
from audit.report.exceptions import EvidenceTimelines
from audit.roles import load_role_history, stores_read
from shared.policy_loader import load_packs


def association_report(
    settings: Any, association_id: str, start: date, end: date, lang: str = "ar"
) -> str:
    """The report's HTML for the period [start, end], as of now (at the latest its end)."""
    packs = {k: v for k, v in load_packs(settings.policies_dir).items() if k == association_id}
    credentials = {"user": settings.nats_user, "password": settings.nats_password}
    events = (
        event
        for event in stream_events(settings.nats_url, **credentials)
        if getattr(event, "association_id", None) == association_id
    )
    figures = compute_figures(events, start=start, end=end, packs=packs, as_of=datetime.now(UTC))
    erasures = keyring_erasures(settings)
    count_erasures(
        figures,
        None if erasures is None else [e for e in erasures if e.association_id == association_id],
    )
    stores = available_services(settings)
    roles = load_role_history(settings)
    evidence = EvidenceTimelines()
    found = compliance_exceptions(
        settings.nats_url,
        figures,
        settings=settings if stores else None,
        context=CheckContext(packs=packs, roles=roles),
        evidence=evidence,
        associations={association_id},
        **credentials,
    )
    exceptions: Iterator[Any] = (e for e in found if e.association_id == association_id)
    with tempfile.TemporaryDirectory(prefix="khidma-report-") as folder:
        files = write_report(
            figures,
            exceptions,
            out_dir=folder,
            lang=lang,
            packs=packs,
            checks_not_run=checks_not_run(stores_read(stores, roles), packs=packs),
            evidence=evidence,
        )
        return files.html.read_text(encoding="utf-8")
