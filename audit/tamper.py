"""Tamper evidence: verify each service's hash chain, export and check checkpoints.

`python -m audit verify [--service S ...] [--checkpoint FILE] [--json]`
recomputes every service's chain from its stored events (page by page) and
names the first place where it breaks:

- altered:   an event's content no longer matches its chain entry, or a chain
             entry does not follow the one before it (the chain was rewritten),
             or the history up to a checkpoint hashes differently;
- deleted:   a chained notification id has no event any more, or events were
             deleted together with their chain entries (the notification ids
             have a gap where the chain stops linking);
- inserted:  an event has no chain entry (written around the recorder, or its
             entry removed from the chain);
- reordered: an event holds content that the chain recorded at another position;
- truncated: the chain goes on after the last event (the tail was cut), or the
             history is shorter than a checkpoint.

`python -m audit checkpoint [--out FILE] [--service S ...]` verifies the chains
and writes a dated JSON file with each service's head (notification id, hash,
count) for the board's records. A later `verify --checkpoint FILE` proves the
history up to each head is unchanged and detects truncation after it, even when
the tail was cut from the events and the chain together.

A service whose store is not found is NOT verified: `verify` says so and exits
1, unless `--allow-missing` (a service not deployed yet) or a checkpoint that
recorded that store as empty.

Exit code: 0 when everything verifies, 1 on any break or unverified store,
2 on a bad argument.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment

from audit.settings import AuditSettings, load_audit_settings
from audit.stores import SERVICES, store_env
from shared.chain import (
    CHAIN_VERSION,
    GENESIS,
    ChainEntry,
    ChainReader,
    StoredRow,
    content_hash,
    link_hash,
)
from shared.dates import both_calendars

CHECKPOINT_FORMAT = "khidma-audit-checkpoint/1"

ALTERED = "altered"
DELETED = "deleted"
INSERTED = "inserted"
REORDERED = "reordered"
TRUNCATED = "truncated"

KIND_NAMES = {
    ALTERED: {"en": "altered", "ar": "تعديل"},
    DELETED: {"en": "deleted", "ar": "حذف"},
    INSERTED: {"en": "inserted", "ar": "إدراج"},
    REORDERED: {"en": "reordered", "ar": "إعادة ترتيب"},
    TRUNCATED: {"en": "truncated", "ar": "بتر"},
}


@dataclass(frozen=True)
class ChainBreak:
    """Where and how a chain breaks, with a message in Arabic and English."""

    kind: str
    notification_id: int
    message: dict[str, str]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceCheckpoint:
    head_notification_id: int
    head_hash: str
    count: int

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServiceCheckpoint:
        return cls(
            head_notification_id=int(data["head_notification_id"]),
            head_hash=str(data["head_hash"]),
            count=int(data["count"]),
        )


@dataclass
class VerifyResult:
    """The outcome of verifying one store's chain."""

    service: str
    ok: bool
    events: int = 0
    head_notification_id: int = 0
    head_hash: str = GENESIS.hex()
    breaks: list[ChainBreak] = field(default_factory=list)
    store_found: bool = True
    checkpoint: ServiceCheckpoint | None = None
    checkpoint_ok: bool | None = None

    @property
    def first_break(self) -> ChainBreak | None:
        return self.breaks[0] if self.breaks else None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checkpoint"] = asdict(self.checkpoint) if self.checkpoint else None
        return data

    def lines(self) -> list[str]:
        """What a person reads: one line per language, per finding."""
        name = self.service or "store"
        if not self.store_found and self.ok:
            return [
                f"{name}: no store (nothing to verify; allowed)",
                f"{name}: لا يوجد مخزن (لا شيء للتحقق منه؛ مسموح)",
            ]
        if not self.store_found and not self.breaks:
            return [
                (
                    f"{name}: NOT VERIFIED — no store was found; a missing store proves nothing "
                    f"(--allow-missing if the service is not deployed)"
                ),
                (
                    f"{name}: لم يُتحقق منها — لم يوجد المخزن، وغيابه لا يثبت سلامته "
                    f"(استعمل --allow-missing إن لم تُنشر الخدمة بعد)"
                ),
            ]
        if self.ok:
            suffix_en = suffix_ar = ""
            if self.checkpoint is not None:
                suffix_en = (
                    f"; unchanged up to the checkpoint's head "
                    f"{self.checkpoint.head_notification_id}"
                )
                suffix_ar = f"؛ لم يتغير حتى رأس نقطة التحقق {self.checkpoint.head_notification_id}"
            return [
                (
                    f"{name}: OK — {self.events} events chained, head "
                    f"{self.head_notification_id} {self.head_hash[:16]}…{suffix_en}"
                ),
                (
                    f"{name}: سليمة — {self.events} حدثًا في السلسلة، الرأس "
                    f"{self.head_notification_id} {self.head_hash[:16]}…{suffix_ar}"
                ),
            ]
        lines = []
        for found in self.breaks:
            kind = KIND_NAMES.get(found.kind, {"en": found.kind, "ar": found.kind})
            lines.append(
                f"{name}: BROKEN at {found.notification_id} ({kind['en']}): {found.message['en']}"
            )
            lines.append(
                f"{name}: مكسورة عند {found.notification_id} ({kind['ar']}): {found.message['ar']}"
            )
        return lines


def _break(kind: str, nid: int, en: str, ar: str, **details: Any) -> ChainBreak:
    return ChainBreak(kind=kind, notification_id=nid, message={"en": en, "ar": ar}, details=details)


def _open_factory(env: Mapping[str, str], service: str) -> InfrastructureFactory:
    # Reading only: never create tables. The application name decides the
    # PostgreSQL table names (<service>_events, <service>_chain).
    settings = dict(env)
    settings["CREATE_TABLE"] = "n"
    return InfrastructureFactory.construct(Environment(name=service, env=settings))


def _service_name(env: Mapping[str, str], service: str | None) -> str:
    if service:
        return service
    schema = env.get("POSTGRES_SCHEMA", "")
    for name in SERVICES:
        if schema.endswith(name):
            return name
    return schema


def _sqlite_missing(env: Mapping[str, str]) -> bool:
    if env.get("PERSISTENCE_MODULE") != "eventsourcing.sqlite":
        return False
    name = env.get("SQLITE_DBNAME", "")
    if name == ":memory:" or name.startswith("file:"):
        return False
    return not Path(name).exists()


def verify_store(
    env: Mapping[str, str],
    *,
    service: str | None = None,
    checkpoint: ServiceCheckpoint | Mapping[str, Any] | None = None,
    page_size: int = 1000,
    progress: bool | None = False,
    allow_missing: bool = False,
) -> VerifyResult:
    """Recomputes one store's chain from its events and compares, page by page.

    `env` is the store's eventsourcing environment (audit.stores.store_env);
    `service` is the application's name (needed for PostgreSQL's table names;
    guessed from POSTGRES_SCHEMA when omitted). With `checkpoint`, also proves
    the history up to the checkpoint's head is the one the checkpoint recorded.
    Reports the first break of the chain and, separately, a checkpoint mismatch.
    A store that is not found is not verified (`ok` False) unless `allow_missing`
    or the checkpoint recorded it empty.
    """
    name = _service_name(env, service)
    if checkpoint is not None and not isinstance(checkpoint, ServiceCheckpoint):
        checkpoint = ServiceCheckpoint.from_dict(checkpoint)
    result = VerifyResult(service=name, ok=True, checkpoint=checkpoint)
    if _sqlite_missing(env):
        result.store_found = False
        _check_checkpoint(result, checkpoint, None, last_id=0, beyond_head=False)
    else:
        factory = _open_factory(env, name)
        try:
            reader = ChainReader(factory)
            if not reader.has_events():
                result.store_found = False
            _walk(reader, result, checkpoint, page_size=page_size, progress=progress)
        finally:
            factory.close()
    result.ok = not result.breaks
    if (
        not result.store_found
        and not result.breaks
        and not allow_missing
        and not result.checkpoint_ok
    ):
        # Nothing to read is not proof of anything: a deleted file looks the same.
        result.ok = False
    return result


# The ways a chain breaks, as the walk classifies them: the kind of break, then the
# English and the Arabic message, formatted with the finding's facts.
BREAK_MESSAGES: dict[str, tuple[str, str, str]] = {
    "unchained": (
        INSERTED,
        "the store has events but no hash chain; event {nid} is not chained",
        "المخزن فيه أحداث بلا سلسلة بصمات؛ الحدث {nid} غير مسلسل",
    ),
    "inserted": (
        INSERTED,
        (
            "event {nid} has no chain entry: it was inserted around the "
            "recorder (or its chain entry was removed)"
        ),
        "الحدث {nid} ليس له مدخل في السلسلة: أُدرج من خارج المسجِّل (أو حُذف مدخله من السلسلة)",
    ),
    "truncated": (
        TRUNCATED,
        (
            "the events end before the chain: {missing} chained event(s) "
            "from {nid} on are missing (the tail was cut)"
        ),
        (
            "الأحداث تنتهي قبل السلسلة: {missing} من الأحداث المسلسلة "
            "ابتداءً من {nid} مفقودة (بُتر آخر السجل)"
        ),
    ),
    "deleted": (
        DELETED,
        "event {nid} is in the chain but no longer in the store: deleted",
        "الحدث {nid} موجود في السلسلة وليس في المخزن: حُذف",
    ),
    "reordered": (
        REORDERED,
        (
            "event {nid} holds the content the chain recorded at "
            "{recorded_at}: the events were reordered"
        ),
        "الحدث {nid} يحمل المحتوى المسجَّل في السلسلة عند {recorded_at}: تغيّر ترتيب الأحداث",
    ),
    "altered": (
        ALTERED,
        "event {nid} was changed: its content no longer matches its chain entry",
        "الحدث {nid} عُدِّل: لم يعد محتواه يطابق مدخله في السلسلة",
    ),
    "deleted_with_chain": (
        DELETED,
        (
            "event(s) {span} were deleted together with their chain entries: "
            "chain entry {nid} follows an entry that is no longer there"
        ),
        (
            "حُذف الحدث أو الأحداث {span} مع مدخلاتها في السلسلة: "
            "مدخل السلسلة {nid} يتبع مدخلًا لم يعد موجودًا"
        ),
    ),
    "relinked": (
        ALTERED,
        (
            "chain entry {nid} does not follow the entry before it "
            "({after}): the chain was rewritten at or before {nid}"
        ),
        (
            "مدخل السلسلة {nid} لا يتصل بالمدخل الذي قبله "
            "({after_ar}): أُعيدت كتابة السلسلة عند {nid} أو قبله"
        ),
    ),
}


@dataclass(frozen=True)
class _Finding:
    """A break found by the walk: its case (a key of BREAK_MESSAGES) and what shows it."""

    case: str
    nid: int  # the notification id the break is reported at
    details: dict[str, Any] = field(default_factory=dict)  # recorded with the break
    words: dict[str, Any] = field(default_factory=dict)  # only for the message

    def as_break(self) -> ChainBreak:
        kind, en, ar = BREAK_MESSAGES[self.case]
        facts = {"nid": self.nid, **self.words, **self.details}
        return _break(kind, self.nid, en.format(**facts), ar.format(**facts), **self.details)


def _classify(
    reader: ChainReader,
    ev: StoredRow | None,
    ch: ChainEntry | None,
    rest_of_chain: Iterator[ChainEntry],
    *,
    has_chain: bool,
    previous: bytes,
    last_id: int,
) -> _Finding | bytes:
    """One step of the walk: the break at the next event or chain entry, or, when
    the event is the one its chain entry recorded and links to the one before, the
    chain's hash up to it."""
    if ev is not None and (ch is None or ev.notification_id < ch.notification_id):
        return _Finding("inserted" if has_chain else "unchained", ev.notification_id)
    if ch is not None and (ev is None or ch.notification_id < ev.notification_id):
        if ev is None:
            missing = 1 + sum(1 for _ in rest_of_chain)
            details = {"missing": missing, "last_event": last_id}
            return _Finding("truncated", ch.notification_id, details)
        return _Finding("deleted", ch.notification_id)
    assert ev is not None and ch is not None
    nid = ev.notification_id
    content = content_hash(reader.originator(ev), ev.originator_version, ev.topic, ev.state).hex()
    if content != ch.content_hash:
        elsewhere = [i for i in reader.chain_ids_with_content(content) if i != nid]
        event = {
            "originator_id": str(ev.originator_id),
            "originator_version": ev.originator_version,
        }
        if elsewhere:
            return _Finding("reordered", nid, {"recorded_at": elsewhere[0], **event})
        return _Finding("altered", nid, {**event, "topic": ev.topic})
    expected = link_hash(previous, nid, bytes.fromhex(content))
    if ch.prev_hash == previous.hex() and ch.hash == expected.hex():
        return expected
    if nid > last_id + 1:
        # The ids jump where the chain stops linking: the events between were
        # deleted together with their chain entries.
        first, last = last_id + 1, nid - 1
        span = str(first) if first == last else f"{first}–{last}"
        details = {"missing_from": first, "missing_to": last, "with_chain": True}
        return _Finding("deleted_with_chain", first, details, {"span": span, "nid": nid})
    words = {"after": last_id or "start", "after_ar": last_id or "البداية"}
    return _Finding("relinked", nid, {"link": True}, words)


def _walk(
    reader: ChainReader,
    result: VerifyResult,
    checkpoint: ServiceCheckpoint | None,
    *,
    page_size: int,
    progress: bool | None,
) -> None:
    # The walk covers the history as it stood when it began: both tables are
    # bounded by the highest id seen then, so events a service records during
    # the walk (always with higher ids, event and chain entry in one
    # transaction) are not mistaken for a mismatch.
    has_chain = reader.has_chain()
    stop = max(reader.max_chain_id(), reader.max_notification_id())
    bar = _progress_bar(stop, result.service, progress)
    events: Iterator[StoredRow] = reader.events(page_size, stop)
    chain: Iterator[ChainEntry] = reader.chain(page_size, stop)
    ev = next(events, None)
    ch = next(chain, None)
    previous = GENESIS
    count = 0
    last_id = 0
    at_head: tuple[str, int] | None = None
    head_id = checkpoint.head_notification_id if checkpoint else None
    beyond_head = False
    try:
        while ev is not None or ch is not None:
            step = _classify(
                reader, ev, ch, chain, has_chain=has_chain, previous=previous, last_id=last_id
            )
            if isinstance(step, _Finding):
                result.breaks.append(step.as_break())
                break
            assert ev is not None  # a linked step is an event with its chain entry
            previous = step
            count += 1
            last_id = ev.notification_id
            if head_id is not None:
                if last_id == head_id:
                    at_head = (previous.hex(), count)
                elif last_id > head_id:
                    beyond_head = True
            if bar is not None:
                bar.update(1)
            ev = next(events, None)
            ch = next(chain, None)
    finally:
        if bar is not None:
            bar.close()
    result.events = count
    result.head_notification_id = last_id
    result.head_hash = previous.hex()
    if result.breaks and head_id is not None and at_head is None:
        # The chain broke before the checkpoint's head: that break is the finding.
        result.checkpoint_ok = False
        return
    _check_checkpoint(result, checkpoint, at_head, last_id=last_id, beyond_head=beyond_head)


def _check_checkpoint(
    result: VerifyResult,
    checkpoint: ServiceCheckpoint | None,
    at_head: tuple[str, int] | None,
    *,
    last_id: int,
    beyond_head: bool,
) -> None:
    if checkpoint is None:
        return
    head = checkpoint.head_notification_id
    if head == 0 and checkpoint.count == 0:
        result.checkpoint_ok = True
        return
    if at_head is None:
        if beyond_head:
            result.breaks.append(
                _break(
                    DELETED,
                    head,
                    f"the checkpoint's head event {head} is no longer in the history",
                    f"حدث رأس نقطة التحقق {head} لم يعد في السجل",
                )
            )
        else:
            result.breaks.append(
                _break(
                    TRUNCATED,
                    head,
                    f"the history ends at {last_id} but the checkpoint reaches {head} "
                    f"({checkpoint.count} events): truncated after the checkpoint",
                    f"ينتهي السجل عند {last_id} بينما تبلغ نقطة التحقق {head} "
                    f"({checkpoint.count} حدثًا): بُتر السجل بعد نقطة التحقق",
                    last_event=last_id,
                )
            )
        result.checkpoint_ok = False
    elif at_head[0] != checkpoint.head_hash or at_head[1] != checkpoint.count:
        result.breaks.append(
            _break(
                ALTERED,
                head,
                f"the chain hash at the checkpoint's head {head} differs from the "
                f"checkpoint: the history up to the checkpoint was changed",
                f"بصمة السلسلة عند رأس نقطة التحقق {head} تختلف عما سجلته نقطة التحقق: "
                f"تغيّر السجل حتى نقطة التحقق",
                expected_hash=checkpoint.head_hash,
                found_hash=at_head[0],
                expected_count=checkpoint.count,
                found_count=at_head[1],
            )
        )
        result.checkpoint_ok = False
    else:
        result.checkpoint_ok = True
    result.ok = not result.breaks


def _progress_bar(total: int, service: str, progress: bool | None) -> Any:
    """A progress bar on stderr: True always, None only on a terminal, False never."""
    if progress is False:
        return None
    from tqdm import tqdm

    # Drawn only once the walk takes more than a moment.
    return tqdm(
        total=total,
        desc=f"verify {service}",
        unit="ev",
        disable=None if progress is None else False,
        delay=0.5,
        file=sys.stderr,
    )


# ------------------------------------------------------------ several stores


def _selected(services: Sequence[str] | None) -> list[str]:
    return list(services) if services else list(SERVICES)


def verify_services(
    settings: AuditSettings,
    services: Sequence[str] | None = None,
    *,
    checkpoint: Mapping[str, Any] | None = None,
    progress: bool | None = False,
    allow_missing: bool = False,
) -> list[VerifyResult]:
    """Verifies the named services' stores (all four by default)."""
    heads = (checkpoint or {}).get("services", {}) if checkpoint else {}
    results = []
    for service in _selected(services):
        results.append(
            verify_store(
                store_env(service, settings),
                service=service,
                checkpoint=heads.get(service) if checkpoint else None,
                progress=progress,
                allow_missing=allow_missing,
            )
        )
    return results


class ChainBroken(Exception):
    """A checkpoint was refused because a chain does not verify."""

    def __init__(self, results: list[VerifyResult]):
        super().__init__("; ".join(line for r in results if not r.ok for line in r.lines()))
        self.results = results


def build_checkpoint(
    settings: AuditSettings,
    services: Sequence[str] | None = None,
    *,
    now: datetime | None = None,
    progress: bool | None = False,
) -> dict[str, Any]:
    """Verifies the chains and returns the checkpoint of their heads.

    Raises ChainBroken rather than certify a chain that does not verify.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    # A store not found is recorded as empty (head 0): a later verify with this
    # checkpoint then knows it was absent then, and notices if it has changed.
    results = verify_services(settings, services, progress=progress, allow_missing=True)
    if any(not r.ok for r in results):
        raise ChainBroken(results)
    return {
        "format": CHECKPOINT_FORMAT,
        "chain": CHAIN_VERSION,
        "created_at": moment.isoformat().replace("+00:00", "Z"),
        "created_at_calendars": both_calendars(moment),
        "store": settings.store,
        "services": {
            r.service: {
                "head_notification_id": r.head_notification_id,
                "head_hash": r.head_hash,
                "count": r.events,
            }
            for r in results
        },
    }


def default_checkpoint_path(settings: AuditSettings, moment: datetime) -> Path:
    stamp = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return settings.data_dir / "checkpoints" / f"checkpoint-{stamp}.json"


def export_checkpoint(
    settings: AuditSettings,
    out: Path | str | None = None,
    *,
    services: Sequence[str] | None = None,
    now: datetime | None = None,
    progress: bool | None = False,
) -> Path:
    """Writes the dated checkpoint file (JSON) and returns its path."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    checkpoint = build_checkpoint(settings, services, now=moment, progress=progress)
    path = Path(out) if out else default_checkpoint_path(settings, moment)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(checkpoint, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


class CheckpointError(ValueError):
    pass


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Reads a checkpoint file, checking its format."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a {CHECKPOINT_FORMAT} file")
    if data.get("chain") != CHAIN_VERSION:
        raise CheckpointError(f"{path}: chain version {data.get('chain')!r} is not {CHAIN_VERSION}")
    try:
        for head in data["services"].values():
            ServiceCheckpoint.from_dict(head)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"{path}: malformed services section: {error}") from error
    return data


# ----------------------------------------------------------------------- CLI


def register_commands(subparsers: Any) -> None:
    """Adds `verify` and `checkpoint` to the audit command line."""
    verify = subparsers.add_parser(
        "verify",
        help="verify each service's hash chain / التحقق من سلسلة البصمات لكل خدمة",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument(
        "--service",
        action="append",
        choices=SERVICES,
        dest="services",
        help="a service to verify (repeatable; default: all four)",
    )
    verify.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="a checkpoint file: also prove the history up to it is unchanged",
    )
    verify.add_argument("--json", action="store_true", help="print the results as JSON")
    verify.add_argument(
        "--allow-missing",
        action="store_true",
        help="a store that is not found passes (a service not deployed); by default it is unverified",
    )
    _progress_option(verify)
    verify.set_defaults(func=run_verify)

    checkpoint = subparsers.add_parser(
        "checkpoint",
        help="export the chain heads as a dated checkpoint / تصدير نقطة تحقق مؤرخة",
    )
    checkpoint.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write it (default: <data_dir>/checkpoints/checkpoint-<UTC>.json)",
    )
    checkpoint.add_argument(
        "--service",
        action="append",
        choices=SERVICES,
        dest="services",
        help="a service to include (repeatable; default: all four)",
    )
    _progress_option(checkpoint)
    checkpoint.set_defaults(func=run_checkpoint)


def _progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )


def _print_lines(lines: Iterable[str], stream: Any = None) -> None:
    for line in lines:
        print(line, file=stream or sys.stdout)


def run_verify(args: argparse.Namespace, settings: AuditSettings | None = None) -> int:
    settings = settings or load_audit_settings()
    checkpoint = None
    if args.checkpoint is not None:
        try:
            checkpoint = load_checkpoint(args.checkpoint)
        except CheckpointError as error:
            _print_lines(
                [f"checkpoint: {error}", f"نقطة التحقق غير صالحة: {args.checkpoint}"], sys.stderr
            )
            return 2
        if checkpoint.get("store") not in (None, settings.store):
            print(
                f"note: the checkpoint was taken on a {checkpoint['store']} store / "
                f"ملاحظة: أُخذت نقطة التحقق من مخزن {checkpoint['store']}",
                file=sys.stderr,
            )
    services = args.services
    if checkpoint is not None and not services:
        services = [s for s in SERVICES if s in checkpoint["services"]] or None
    results = verify_services(
        settings,
        services,
        checkpoint=checkpoint,
        progress=getattr(args, "progress", None),
        allow_missing=getattr(args, "allow_missing", False),
    )
    if getattr(args, "json", False):
        print(
            json.dumps(
                {"ok": all(r.ok for r in results), "results": [r.as_dict() for r in results]},
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        if checkpoint is not None:
            when = checkpoint.get("created_at_calendars", {})
            _print_lines(
                [
                    f"checkpoint of {when.get('en', checkpoint.get('created_at'))}",
                    f"نقطة التحقق المؤرخة {when.get('ar', checkpoint.get('created_at'))}",
                ]
            )
        for result in results:
            _print_lines(result.lines())
    return 0 if all(r.ok for r in results) else 1


def run_checkpoint(args: argparse.Namespace, settings: AuditSettings | None = None) -> int:
    settings = settings or load_audit_settings()
    try:
        path = export_checkpoint(
            settings, args.out, services=args.services, progress=getattr(args, "progress", None)
        )
    except ChainBroken as error:
        for result in error.results:
            _print_lines(result.lines(), sys.stderr)
        _print_lines(
            [
                "no checkpoint written: a chain does not verify",
                "لم تُكتب نقطة التحقق: إحدى السلاسل لا تتحقق",
            ],
            sys.stderr,
        )
        return 1
    data = json.loads(path.read_text(encoding="utf-8"))
    _print_lines(
        [
            f"checkpoint written to {path} ({data['created_at_calendars']['en']})",
            f"كُتبت نقطة التحقق في {path} ({data['created_at_calendars']['ar']})",
        ]
    )
    for service, head in data["services"].items():
        print(
            f"  {service}: head {head['head_notification_id']} "
            f"{head['head_hash'][:16]}… count {head['count']}"
        )
    return 0
