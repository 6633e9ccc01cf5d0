"""The documentation pages in a real browser with no internet: intake's app under
uvicorn on a free port, `/docs` and `/asyncapi` opened by Debian's headless
Chromium with every host but 127.0.0.1 unresolvable. The DOM holds what the
scripts rendered (Swagger UI's operations, the AsyncAPI viewer's channels), and
Chromium's network log shows each request of the page went to the app."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from khidma.nats_server import free_port
from tests.helpers import async_wait_for
from tests.in_process import InProcessService

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="no Chromium (Debian's package chromium)"
    ),
]

Start = Callable[..., Awaitable[InProcessService]]

# As root, headless, and quiet: none of Chromium's own background requests, and no
# host but this machine's resolvable (the page has no internet, whatever the machine has).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    # Time for the scripts to run and fetch the OpenAPI document before the dump.
    "--virtual-time-budget=15000",
)


@pytest.fixture
async def served(in_process: Start) -> AsyncIterator[str]:
    """Intake's app (its real routes, on SQLite, without NATS) under uvicorn: its base URL."""
    intake = await in_process("intake")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            intake.api,
            host="127.0.0.1",
            port=port,
            lifespan="off",  # the in_process fixture has started the runtime
            access_log=False,
            log_config=None,
        )
    )
    serving = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await async_wait_for(started, timeout=20, what="uvicorn to listen")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def chromium(tmp_path: Path, url: str, *args: str) -> tuple[str, set[str]]:
    """Opens `url` in a fresh profile: (what Chromium printed, the URLs the page requested)."""
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    netlog = profile.with_suffix(".netlog.json")
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={profile}",
        f"--log-net-log={netlog}",
        *args,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, f"chromium exited {process.returncode}"
    return out.decode(), requested_by_pages(json.loads(netlog.read_text()))


def requested_by_pages(log: dict[str, Any]) -> set[str]:
    """The URLs that a page asked for (a request whose initiator is an origin),
    apart from the browser's own (those have no initiator)."""
    return {
        event["params"]["url"]
        for event in log["events"]
        if "url" in event.get("params", {})
        and str(event["params"].get("initiator", "")).startswith("http")
    }


async def test_docs_renders_swagger_ui_with_no_internet(served: str, tmp_path: Path) -> None:
    dom, requested = await chromium(tmp_path, f"{served}/docs", "--dump-dom")
    # Swagger UI ran: the title and the operations are elements its scripts made.
    assert 'class="swagger-ui"' in dom
    assert '<h1 class="title">Khidma intake<span>' in dom
    assert 'class="opblock opblock-post' in dom and 'data-path="/submissions"' in dom
    assert dom.count('class="opblock opblock-') >= 10
    assert requested >= {
        f"{served}/docs/assets/swagger-ui-bundle.js",
        f"{served}/docs/assets/swagger-ui.css",
        f"{served}/openapi.json",
    }
    assert all(url.startswith(served + "/") for url in requested), requested

    picture = tmp_path / "docs.png"
    await chromium(tmp_path, f"{served}/docs", f"--screenshot={picture}", "--window-size=1280,900")
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 20_000


async def test_the_asyncapi_page_renders_the_viewer_with_no_internet(
    served: str, tmp_path: Path
) -> None:
    dom, requested = await chromium(tmp_path, f"{served}/asyncapi", "--dump-dom")
    # The viewer ran: the document's title, servers and operations as elements it made
    # (the page itself holds only the document, as JSON in a script).
    assert '<h1 class="text-2xl font-light">Khidma intake events' in dom
    assert 'id="servers"' in dom and 'id="operations"' in dom
    assert 'id="operation-receive-DataVerified (consumed by intake, durable intake)"' in dom
    assert requested >= {
        f"{served}/docs/assets/asyncapi-standalone.js",
        f"{served}/docs/assets/asyncapi.css",
    }
    assert all(url.startswith(served + "/") for url in requested), requested
