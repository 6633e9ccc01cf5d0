"""Waiting on conditions, reading the stream: helpers shared by the tests."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T], timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> T:
    """Polls `condition` until it returns something truthy; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except Exception as error:  # the condition may fail until it holds
            last_error = error
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what or condition}; last error: {last_error!r}"
    )


async def async_wait_for(
    condition: Callable[[], Awaitable[T]], timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> T:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = await condition()
            if result:
                return result
        except Exception as error:
            last_error = error
        await asyncio.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what or condition}; last error: {last_error!r}"
    )


async def stream_messages(nats_url: str, subject_filter: str) -> list[dict[str, Any]]:
    """Every message the KHIDMA stream holds on a subject filter, in stream order."""
    connection = await nats.connect(nats_url)
    try:
        js = connection.jetstream()
        info = await js.stream_info("KHIDMA")
        if not info.state.messages:
            return []
        subscription = await js.subscribe(
            subject_filter,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        messages: list[dict[str, Any]] = []
        while True:
            try:
                message = await subscription.next_msg(timeout=0.5)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                break
            messages.append(
                {
                    "subject": message.subject,
                    "sequence": message.metadata.sequence.stream,
                    "headers": dict(message.headers or {}),
                    "data": message.data,
                    "event": _json_or_none(message.data),
                }
            )
        await subscription.unsubscribe()
        return messages
    finally:
        await connection.close()


def stream_messages_sync(nats_url: str, subject_filter: str) -> list[dict[str, Any]]:
    return asyncio.run(stream_messages(nats_url, subject_filter))


def _json_or_none(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def survey_token(outbox: Path, case_id: object, timeout: float = 15.0) -> str:
    """The survey token in the link the case's applicant was sent (the logged outbox):
    the only place a token is shown, as the applicant holds it."""
    from services.surveys.outbound import invitation_links, token_of_link

    link = wait_for(
        lambda: invitation_links(outbox).get(str(case_id)),
        timeout=timeout,
        what=f"the invitation of {case_id} in {outbox}",
    )
    return token_of_link(link)


def master_key_file() -> Path:
    """An operator's master key file for compose's secret (`python -m shared.personal
    create-key`), made once per test process."""
    from shared.personal.master import MasterKeys

    path = Path(tempfile.gettempdir()) / f"khidma-compose-master-{os.getpid()}.json"
    return MasterKeys.ensure(path).path


def channel_clients_file() -> Path:
    """An operator's channel clients file for compose's secret: no channel of its own
    (the JSON endpoint and batches submit with their caller's token)."""
    path = Path(tempfile.gettempdir()) / f"khidma-compose-channels-{os.getpid()}.json"
    if not path.exists():
        path.write_text("{}\n")
        path.chmod(0o600)
    return path


def form_link_key_file() -> Path:
    """An operator's form link key file for compose's secret, made once per test process."""
    from shared.form_link import ensure_key

    # In a folder of its own: ensure_key makes the key's folder 0700.
    path = Path(tempfile.gettempdir()) / f"khidma-compose-form-link-{os.getpid()}" / "form-link.key"
    ensure_key(path)
    return path


def session_key_file() -> Path:
    """An operator's web session key file for compose's secret (`openssl rand -base64
    32`), made once per test process."""
    import base64

    path = Path(tempfile.gettempdir()) / f"khidma-compose-session-{os.getpid()}.key"
    if not path.exists():
        path.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
        path.chmod(0o600)
    return path


def compose_key_files() -> dict[str, str]:
    """The files an operator's .env names for compose's secrets: the master key, the
    web session key, the channels' clients and the form link key."""
    return {
        "KHIDMA_MASTER_KEY_FILE": str(master_key_file()),
        "KHIDMA_WEB_SESSION_KEY_FILE": str(session_key_file()),
        "KHIDMA_CHANNEL_CLIENTS_FILE": str(channel_clients_file()),
        "KHIDMA_FORM_LINK_KEY_FILE": str(form_link_key_file()),
    }
