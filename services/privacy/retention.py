"""The privacy service's scheduled job, on the injectable clock.

Each sweep first completes the erasures whose keys were not yet destroyed (a
crash between the two steps of an erasure), then erases, for retention, every
subject whose cases are all closed, the latest longer ago than the retention
of the association's policy pack, and none under a legal hold. The read models
find the candidates; the subject's aggregate decides.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from services.privacy.application import PrivacyApplication
from services.privacy.views import ERASURES, SUBJECTS
from shared.runtime import ServiceRuntime
from shared.views import ViewStore

log = logging.getLogger(__name__)

PAGE = 1000


def complete_pending(app: PrivacyApplication, views: ViewStore) -> int:
    """Completes the erasures requested whose keys were not destroyed yet."""
    done = 0
    for doc in views.find(ERASURES, status="requested", limit=PAGE):
        app.complete_erasure(UUID(doc["subject_id"]), doc["erasure_id"])
        log.info("completed the pending erasure %s", doc["erasure_id"])
        done += 1
    return done


def erase_expired(app: PrivacyApplication, views: ViewStore) -> list[str]:
    """Erases the subjects whose retention has passed; the ids of their erasures."""
    now = app.clock.now()
    erased = []
    offset = 0
    while True:
        page = views.find(SUBJECTS, limit=PAGE, offset=offset, retention_candidate=True)
        for doc in page:
            began = datetime.fromisoformat(doc["retention_from"])
            if now < began + timedelta(days=app.retention_days(doc["association_id"])):
                continue
            erasure_id = app.erase_for_retention(UUID(doc["subject_id"]))
            if erasure_id is not None:
                log.info("erased a data subject for retention (erasure %s)", erasure_id)
                erased.append(erasure_id)
        if len(page) < PAGE:
            return erased
        # The views do not move meanwhile: the projection runs on this same thread.
        offset += PAGE


def sweep(app: PrivacyApplication, views: ViewStore) -> int:
    """One run of the job: what it completed and erased."""
    return complete_pending(app, views) + len(erase_expired(app, views))


class PrivacyRuntime(ServiceRuntime[PrivacyApplication]):
    """The runtime plus its scheduled sweep, whose finished runs /ready counts."""

    sweeps = 0

    async def readiness(self) -> dict[str, Any]:
        report = await super().readiness()
        report["sweeps"] = self.sweeps
        return report

    async def sweep_forever(self, interval: float) -> None:
        """Sweeps at start (completing what a crash left pending), then every `interval`."""
        assert self.views is not None and self.projections is not None
        views, projections = self.views, self.projections
        while True:
            try:
                # On views that hold everything recorded so far (an erasure just
                # made must not look pending).
                await self.store.run(projections.catch_up)
                if await self.store.run(sweep, self.app, views):
                    self.recorded()
                self.sweeps += 1
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the privacy sweep failed; retrying at the next interval")
            await asyncio.sleep(interval)
