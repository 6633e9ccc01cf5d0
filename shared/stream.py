"""The one place that declares the KHIDMA stream and the services' durable consumers.

With NATS users (docker-compose.yml), an operator's one-shot step declares them
with the admin credentials before any service starts:

    python -m shared.stream declare      # the compose service `nats-init`

and the services' own users may only read them (deploy/nats/auth.conf): a
service can neither change the stream kept for audit nor create or widen a
consumer to read events it does not consume. Without users (`make run`, most
tests) a service still declares whatever is missing itself. Either way a
service first asks whether the stream and its durable are there as this
version wants them, and writes only when they are not; a locked-down user's
write is refused by the server, and the service stops with an error naming
the init step.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import nats
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from shared.consumer import TrackingConsumer, durable_consumer_config
from shared.subjects import STREAM_NAME, STREAM_SUBJECTS

log = logging.getLogger(__name__)

T = TypeVar("T")

INIT_STEP = "python -m shared.stream declare (docker compose: the nats-init service)"
SERVICES: tuple[str, ...] = ("intake", "verification", "committee", "surveys", "privacy")


def inbox_prefix(service: str) -> str:
    """The prefix of a service's inboxes: the only subjects its user may subscribe to
    (besides intake's submissions), so that no service sees another's answers."""
    return f"_INBOX_{service}"


class NotDeclared(RuntimeError):
    """The stream or a durable is missing or differs, and this user may not declare it."""

    def __init__(self, what: str, what_ar: str):
        super().__init__(
            f"{what}, and this NATS user may not declare it (the server refused or did not "
            f"answer): run the init step with the admin credentials first, {INIT_STEP}, "
            "with the same KHIDMA_STREAM_REPLICAS, KHIDMA_ACK_WAIT_SECONDS and "
            f"KHIDMA_CONSUMER_BATCH. / {what_ar}، ولا يملك مستخدم NATS هذا صلاحية "
            f"إنشائه أو تعديله: شغّل خطوة التهيئة بصلاحيات المشرف أولًا ({INIT_STEP})."
        )
        self.what = what


async def _declaring(write: Awaitable[T], what: str, what_ar: str) -> T:
    """Runs a JetStream API write. A user without the right has its request dropped
    by the server (the permissions violation goes to the connection's error
    callback, never as an answer), so the request times out."""
    try:
        return await write
    except (TimeoutError, NatsTimeoutError) as error:
        raise NotDeclared(what, what_ar) from error


def stream_config(replicas: int = 1, duplicate_window_seconds: int = 600) -> StreamConfig:
    # Kept for audit: no age or size limit; the duplicate window drops a
    # re-published event (same Nats-Msg-Id) inside it.
    return StreamConfig(
        name=STREAM_NAME,
        subjects=list(STREAM_SUBJECTS),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=0,
        num_replicas=replicas,
        duplicate_window=float(duplicate_window_seconds),
    )


async def ensure_stream(
    js: JetStreamContext, replicas: int = 1, duplicate_window_seconds: int = 600
) -> None:
    """Creates the stream, or brings its subjects and windows to the expected ones."""
    wanted = stream_config(replicas, duplicate_window_seconds)
    try:
        info = await js.stream_info(STREAM_NAME)
    except NotFoundError:
        await _declaring(
            js.add_stream(wanted),
            f"the stream {STREAM_NAME} is missing",
            f"المجرى {STREAM_NAME} غير موجود",
        )
        log.info("created stream %s", STREAM_NAME)
        return
    current = info.config
    if (
        sorted(current.subjects or []) != sorted(wanted.subjects or [])
        or (current.duplicate_window or 0) != wanted.duplicate_window
        or (current.num_replicas or 1) != wanted.num_replicas
    ):
        await _declaring(
            js.update_stream(wanted),
            f"the stream {STREAM_NAME} differs from this version's configuration",
            f"إعدادات المجرى {STREAM_NAME} تختلف عمّا يتوقعه هذا الإصدار",
        )
        log.warning("updated stream %s to the expected configuration", STREAM_NAME)


def _consumer_differences(current: ConsumerConfig, wanted: ConsumerConfig) -> list[str]:
    differences = []
    if sorted(current.filter_subjects or []) != sorted(wanted.filter_subjects or []):
        differences.append("filter_subjects")
    for name in ("ack_wait", "max_ack_pending", "max_deliver", "ack_policy"):
        if getattr(current, name) != getattr(wanted, name):
            differences.append(name)
    return differences


async def ensure_durable(js: JetStreamContext, wanted: ConsumerConfig) -> None:
    """Creates a durable consumer or brings it to `wanted`; writes only when needed.

    The server keeps an existing durable's old filters unless it is recreated,
    so a changed filter would otherwise be silently ignored.
    """
    durable = str(wanted.durable_name)
    try:
        info = await js.consumer_info(STREAM_NAME, durable)
    except NotFoundError:
        await _declaring(
            js.add_consumer(STREAM_NAME, wanted),
            f"the durable consumer {durable} is missing",
            f"المستهلك الدائم {durable} غير موجود",
        )
        log.info("created consumer %s", durable)
        return
    differences = _consumer_differences(info.config, wanted)
    if not differences:
        return
    what = (
        f"the durable consumer {durable} differs from this version's ({', '.join(differences)})",
        f"إعدادات المستهلك الدائم {durable} تختلف عمّا يتوقعه هذا الإصدار",
    )
    info = await _declaring(js.add_consumer(STREAM_NAME, wanted), *what)
    if sorted(info.config.filter_subjects or []) != sorted(wanted.filter_subjects or []):
        log.warning("recreating consumer %s with new filters", durable)
        await _declaring(js.delete_consumer(STREAM_NAME, durable), *what)
        await _declaring(js.add_consumer(STREAM_NAME, wanted), *what)
    else:
        log.warning("updated consumer %s (%s)", durable, ", ".join(differences))


class DeclaredTrackingConsumer(TrackingConsumer):
    """The tracking consumer, whose durable the init step may have declared already:
    it asks before it writes, so that a service's locked-down user never needs to."""

    async def ensure_consumer(self) -> None:
        await ensure_durable(self.js, self.consumer_config())


def service_durables(ack_wait: float = 30.0, batch_size: int = 64) -> dict[str, ConsumerConfig]:
    """Each service's durable consumer, configured as the service configures it."""
    from shared.asyncapi import CONSUMERS, WATCHES_DEAD_LETTERS  # who consumes what

    return {
        service: durable_consumer_config(
            service,
            CONSUMERS[service],
            ack_wait,
            batch_size,
            watches_dead_letters=service in WATCHES_DEAD_LETTERS,
        )
        for service in SERVICES
    }


async def declare_everything(
    js: JetStreamContext,
    replicas: int = 1,
    duplicate_window_seconds: int = 600,
    ack_wait: float = 30.0,
    batch_size: int = 64,
) -> None:
    """The init step: the stream, then every service's durable consumer."""
    await ensure_stream(js, replicas, duplicate_window_seconds)
    for config in service_durables(ack_wait, batch_size).values():
        await ensure_durable(js, config)


async def declare(settings: Any, wait_seconds: float) -> None:
    """Connects with the settings' (admin) credentials and declares everything,
    retrying until `wait_seconds` pass (a cluster elects its JetStream leader first)."""
    connection = await nats.connect(
        settings.nats_servers,
        user=settings.nats_user,
        password=settings.nats_password,
        name="khidma-nats-init",
        # Given a service's user by mistake, it still hears the answers, and says
        # what it was not allowed to declare.
        inbox_prefix=inbox_prefix(settings.nats_user) if settings.nats_user else "_INBOX",
        connect_timeout=5,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
    )
    try:
        js = connection.jetstream(timeout=5)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                await declare_everything(
                    js,
                    settings.stream_replicas,
                    settings.duplicate_window_seconds,
                    settings.ack_wait_seconds,
                    settings.consumer_batch,
                )
                return
            except Exception as error:
                if time.monotonic() >= deadline:
                    raise
                log.warning("could not declare yet (%r); retrying", error)
                await asyncio.sleep(1.0)
    finally:
        await connection.close()


def main(argv: list[str] | None = None) -> int:
    from shared.logging import configure_logging
    from shared.settings import ServiceSettings, load_settings

    parser = argparse.ArgumentParser(
        prog="python -m shared.stream",
        description="Declares the KHIDMA stream and the services' durable consumers "
        "(with the admin's NATS credentials: KHIDMA_NATS_URL, KHIDMA_NATS_USER, "
        "KHIDMA_NATS_PASSWORD).",
    )
    parser.add_argument("command", choices=["declare"])
    parser.add_argument(
        "--wait", type=float, default=60.0, help="seconds to keep retrying (default 60)"
    )
    args = parser.parse_args(argv)
    settings = load_settings(ServiceSettings, service_name="nats-init")
    configure_logging("nats-init", settings.log_level)
    try:
        asyncio.run(declare(settings, args.wait))
    except Exception as error:  # noqa: BLE001 — any failure ends the one-shot job with a message
        log.error("could not declare the stream and the consumers: %r", error)
        print(
            f"nats-init: could not declare the stream and the consumers: {error!r}\n"
            "nats-init: تعذّر إنشاء المجرى والمستهلكين؛ تحقّق من عنوان NATS وصلاحيات المشرف.",
            file=sys.stderr,
        )
        return 1
    log.info("declared stream %s and the durable consumers %s", STREAM_NAME, ", ".join(SERVICES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
