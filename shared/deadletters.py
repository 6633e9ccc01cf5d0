"""The operators' command for dead letters: list them, show one, replay it.

    python -m shared.deadletters list [--service S] [--open] [--json]
    python -m shared.deadletters show KEY [--json]
    python -m shared.deadletters replay KEY [--json]
    python -m shared.deadletters resolve KEY --note "…" [--json]

A dead letter's KEY is `<service>:<stream sequence of the message set aside>`
(`list` shows them). `replay` publishes the message again on
`khidma.replay.<service>`, for that service alone: its tracking consumer handles
it under the original sequence, so what was applied already is skipped, never
applied twice, and the other services never see it again. Once it is applied the
service says so on `khidma.replayed.<service>` and intake lifts the hold of the
cases it concerns. `resolve` is for what no replay can mend (an event the outbox relay
set aside, a body that contradicts its subject, once its producer has published it
again rightly): it says so on the same subject, with the operator's note, and the
hold lifts as well. Connects with KHIDMA_NATS_URL / _USER / _PASSWORD (the admin).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from shared.dead_letter import (
    DEAD_LETTER,
    KEY_HEADER,
    REASON_HEADER,
    RESOLUTION_HEADER,
    RESOLVED,
    SEQUENCE_HEADER,
    SERVICE_HEADER,
    SUBJECT_HEADER,
    DeadLetter,
    read_dead_letter,
)
from shared.subjects import DEAD_LETTERS, REPLAYED, STREAM_NAME, replay_subject, replayed_subject

OPEN, REPLAYED_STATE = "open", "replayed"
STATE_LABELS = {
    OPEN: ("open: waiting for an operator", "مفتوحة: بانتظار أحد المشغّلين"),
    REPLAYED_STATE: ("replayed and applied", "أُعيدت وطُبّقت"),
    RESOLVED: ("resolved by an operator", "عالجها أحد المشغّلين"),
}


class CommandError(Exception):
    """What the operator asked cannot be done: said in English and Arabic."""

    def __init__(self, code: str, en: str, ar: str):
        super().__init__(en)
        self.code, self.en, self.ar = code, en, ar


@dataclass
class Entry:
    """One dead letter with its history: each time it was set aside, each replay applied."""

    letters: list[DeadLetter] = field(default_factory=list)
    replays: list[DeadLetter] = field(default_factory=list)

    @property
    def latest(self) -> DeadLetter:
        return self.letters[-1]

    @property
    def state(self) -> str:
        if not self.replays or self.replays[-1].sequence < self.latest.sequence:
            return OPEN
        return RESOLVED if self.replays[-1].resolution == RESOLVED else REPLAYED_STATE

    def as_dict(self, *, full: bool = False) -> dict[str, Any]:
        en, ar = STATE_LABELS[self.state]
        shown = {
            **self.latest.summary(),
            "state": self.state,
            "state_label": {"en": en, "ar": ar},
            "times_set_aside": len(self.letters),
            "replays_applied": len(self.replays),
        }
        if full:
            shown["reasons"] = [letter.reason for letter in self.letters]
            shown["notes"] = [n.reason for n in self.replays if n.resolution == RESOLVED]
            shown["body"] = self.latest.body() or self.latest.data.decode("utf-8", "replace")
        return shown


async def read_messages(js: JetStreamContext, subject_filter: str) -> list[DeadLetter]:
    """Every dead letter (or replay notice) the stream holds on a filter, in order."""
    found: list[DeadLetter] = []
    sequence = 1
    while True:
        try:
            raw = await js.get_msg(STREAM_NAME, seq=sequence, subject=subject_filter, next=True)
        except NotFoundError:
            return found
        letter = read_dead_letter(raw.subject or "", raw.data or b"", raw.headers, raw.seq or 0)
        if letter is not None:
            found.append(letter)
        sequence = (raw.seq or sequence) + 1


async def entries(js: JetStreamContext, service: str | None = None) -> dict[str, Entry]:
    """The dead letters by key, oldest first, with the replays applied since."""
    which = service or "*"
    by_key: dict[str, Entry] = {}
    for letter in await read_messages(js, f"{DEAD_LETTERS}.{which}"):
        by_key.setdefault(letter.key, Entry()).letters.append(letter)
    for notice in await read_messages(js, f"{REPLAYED}.{which}"):
        if notice.key in by_key:
            by_key[notice.key].replays.append(notice)
    return by_key


async def find(js: JetStreamContext, key: str) -> Entry:
    entry = (await entries(js, key.split(":", 1)[0])).get(key)
    if entry is None:
        raise CommandError(
            "dead_letter_not_found",
            f"No dead letter {key} (see `list`).",
            f"لا توجد رسالة مُنحّاة بالمفتاح {key} (راجع الأمر list).",
        )
    return entry


async def replay(js: JetStreamContext, key: str) -> dict[str, Any]:
    """Sends the dead letter again to the one service that set it aside."""
    entry = await find(js, key)
    letter = entry.latest
    if letter.kind != DEAD_LETTER or letter.original_sequence is None:
        raise CommandError(
            "not_replayable",
            f"{key} was set aside by the outbox relay, not by a consumer: it has no "
            "message to replay; fix the event in the service's store.",
            f"{key} نحّاه ناقل الأحداث الصادرة لا مستهلكٌ، فليس له رسالة تُعاد؛ "
            "أصلِح الحدث في مخزن الخدمة.",
        )
    ack = await js.publish(
        replay_subject(letter.service),
        letter.data,
        headers={
            SUBJECT_HEADER: letter.original_subject or "",
            SEQUENCE_HEADER: str(letter.original_sequence),
            # The same dead letter replayed twice in a row is one replay.
            "Nats-Msg-Id": f"replay:{key}:{letter.sequence}",
        },
    )
    return {
        "key": key,
        "service": letter.service,
        "replay_sequence": ack.seq,
        "duplicate": bool(ack.duplicate),
        "message": {
            "en": f"Replayed {key} to {letter.service}; `list` shows it replayed once applied.",
            "ar": f"أُعيدت {key} إلى {letter.service}؛ يظهرها الأمر list مُعادةً بعد تطبيقها.",
        },
    }


async def resolve(js: JetStreamContext, key: str, note: str) -> dict[str, Any]:
    """Says that an operator settled the dead letter without a replay: its holds lift."""
    if not note.strip():
        raise CommandError(
            "note_required",
            "Say how it was resolved (--note).",
            "اذكر كيف عولجت (--note).",
        )
    letter = (await find(js, key)).latest
    await js.publish(
        replayed_subject(letter.service),
        letter.data,
        headers={
            KEY_HEADER: key,
            RESOLUTION_HEADER: RESOLVED,
            REASON_HEADER: " ".join(note.split())[:1000],
            SERVICE_HEADER: letter.service,
            SUBJECT_HEADER: letter.original_subject or "",
            "Nats-Msg-Id": f"resolved:{key}:{letter.sequence}",
        },
    )
    return {
        "key": key,
        "service": letter.service,
        "message": {
            "en": f"Resolved {key}; the cases it held are released.",
            "ar": f"عولجت {key}؛ ورُفع الإيقاف عن الطلبات التي أوقفتها.",
        },
    }


def _text_list(shown: list[dict[str, Any]]) -> str:
    if not shown:
        return "No dead letters. / لا توجد رسائل مُنحّاة."
    lines = ["key / المفتاح | state / الحالة | event / الحدث | cases / الطلبات | reason / السبب"]
    for item in shown:
        label = item["state_label"]
        lines.append(
            f"{item['key']} | {label['en']} / {label['ar']} | {item['event_type'] or '-'} | "
            f"{', '.join(item['case_ids']) or '-'} | {item['reason']}"
        )
    return "\n".join(lines)


def _text_show(item: dict[str, Any]) -> str:
    label = item["state_label"]
    lines = [
        f"key / المفتاح: {item['key']}",
        f"service / الخدمة: {item['service']}",
        f"state / الحالة: {label['en']} / {label['ar']}",
        f"subject / الموضوع: {item['original_subject'] or '-'}",
        f"cases / الطلبات: {', '.join(item['case_ids']) or '-'}",
        f"set aside / مرات التنحية: {item['times_set_aside']}",
        f"replays applied / مرات الإعادة المطبّقة: {item['replays_applied']}",
        "reasons / الأسباب:",
        *[f"  - {reason}" for reason in item["reasons"]],
        *(
            ["notes / الملاحظات:", *[f"  - {note}" for note in item["notes"]]]
            if item["notes"]
            else []
        ),
        "body / المحتوى:",
        json.dumps(item["body"], ensure_ascii=False, indent=2),
    ]
    return "\n".join(lines)


async def run(args: argparse.Namespace, js: JetStreamContext) -> tuple[Any, str]:
    """What the command answers: the data (for --json) and its bilingual text."""
    if args.command == "list":
        shown = [e.as_dict() for e in (await entries(js, args.service)).values()]
        if args.open:
            shown = [item for item in shown if item["state"] == OPEN]
        return shown, _text_list(shown)
    if args.command == "show":
        item = (await find(js, args.key)).as_dict(full=True)
        return item, _text_show(item)
    if args.command == "resolve":
        result = await resolve(js, args.key, args.note)
    else:
        result = await replay(js, args.key)
    return result, f"{result['message']['en']}\n{result['message']['ar']}"


async def _main(args: argparse.Namespace) -> tuple[Any, str]:
    from shared.settings import ServiceSettings, load_settings

    overrides: dict[str, Any] = {"service_name": "deadletters"}
    if args.url:
        overrides["nats_url"] = args.url
    settings = load_settings(ServiceSettings, **overrides)
    connection = await nats.connect(
        settings.nats_servers,
        user=settings.nats_user,
        password=settings.nats_password,
        name="khidma-deadletters",
        connect_timeout=5,
    )
    try:
        return await run(args, connection.jetstream(timeout=5))
    finally:
        await connection.close()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m shared.deadletters",
        description="Lists, shows and replays the dead letters on the KHIDMA stream.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the NATS server (default: KHIDMA_NATS_URL)")
    common.add_argument("--json", action="store_true", help="answer in JSON")
    commands = top.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", parents=[common], help="the dead letters, their state")
    listing.add_argument("--service", help="only this service's")
    listing.add_argument("--open", action="store_true", help="only those not replayed")
    show = commands.add_parser("show", parents=[common], help="one, its reasons and body")
    show.add_argument("key")
    again = commands.add_parser("replay", parents=[common], help="send it again to its service")
    again.add_argument("key")
    settle = commands.add_parser(
        "resolve", parents=[common], help="settled without a replay: lift its holds"
    )
    settle.add_argument("key")
    settle.add_argument("--note", required=True, help="how it was resolved (kept on the stream)")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        data, text = asyncio.run(_main(args))
    except CommandError as error:
        if args.json:
            print(
                json.dumps(
                    {"error": error.code, "message": {"en": error.en, "ar": error.ar}},
                    ensure_ascii=False,
                )
            )
        else:
            print(f"{error.en}\n{error.ar}", file=sys.stderr)
        return 1
    print(json.dumps(data, ensure_ascii=False, indent=2) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
