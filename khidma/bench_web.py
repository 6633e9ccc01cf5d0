"""How fast a list page of the web application renders over 100,000 cases (issue 11).

One real case goes through the embedded system, so that intake's read model holds
a document of the real shape; the system stops, the document is copied to
N cases (each its own id, reference and moment) in intake's read model, and the
system starts again on the same folder. The front desk then signs in to the web
application, as a browser would (the form and its CSRF token), and asks for the
cases list's first, middle and last pages, timing each request end to end: the
web application, its call to intake, intake's query, and the template.

`make bench` prints the figures; `python -m khidma.bench_web --cases 100000` alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx

from khidma.run import EmbeddedSystem
from khidma.signin import STAFF, embedded_staff
from khidma.simulate import CaseDriver, Endpoints
from services.intake.views import CASES
from shared.roles import FRONT_DESK
from shared.views import indexed_values

LIST_PATH = "/desk"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _one_real_case(system: EmbeddedSystem) -> None:
    async def drive() -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            staff = embedded_staff(system.data_dir, system.services["identity"].url, client)
            endpoints = Endpoints.from_mapping(system.endpoints())
            run = await CaseDriver(client, endpoints, staff=staff).run("approved")
            if run.error:
                raise RuntimeError(f"the real case failed: {run.error}")

    asyncio.run(drive())


def _copy_cases(views: Path, count: int) -> None:
    """`count` cases in intake's read model, copies of the one real document."""
    with sqlite3.connect(views) as connection:
        (doc,) = connection.execute("SELECT doc FROM docs WHERE view=?", (CASES,)).fetchone()
        template = json.loads(doc)
        rows = []
        for number in range(count):
            case_id = str(uuid4())
            copy = {
                **template,
                "case_id": case_id,
                "case_ref": f"{template['case_ref'][:4]}B{number:07d}",
                "sort_key": f"{template['sort_key'][:10]}T{number:09d}",
            }
            rows.append(
                (CASES, case_id, json.dumps(copy, ensure_ascii=False), *indexed_values(copy))
            )
        connection.executemany(
            "INSERT INTO docs (view, key, doc, sort_key, association_id, status) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )


def _signed_in(client: httpx.Client, web: str, username: str, password: str) -> None:
    page = client.get(f"{web}/signin")
    csrf = _CSRF.search(page.text)
    if not csrf:
        raise RuntimeError("the sign-in page has no CSRF token")
    answer = client.post(
        f"{web}/signin",
        data={"username": username, "password": password, "csrf_token": csrf.group(1)},
    )
    if answer.status_code != 303:
        raise RuntimeError(f"the front desk could not sign in: {answer.status_code}")


def _timed(client: httpx.Client, url: str, times: int) -> list[float]:
    durations = []
    for _ in range(times):
        started = time.perf_counter()
        response = client.get(url)
        durations.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
    return sorted(durations)


def measure(cases: int = 100_000, requests: int = 20, path: str = LIST_PATH) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="khidma-bench-web-") as folder:
        data = Path(folder)
        with EmbeddedSystem(data, fixed_ports=False) as system:
            _one_real_case(system)
        _copy_cases(data / "intake-views.sqlite", cases - 1)
        with EmbeddedSystem(data, fixed_ports=False) as system:
            staff = embedded_staff(data, system.services["identity"].url, httpx.AsyncClient())
            web = system.services["web"].url
            with httpx.Client(timeout=60, follow_redirects=False) as client:
                _signed_in(client, web, STAFF[FRONT_DESK], staff.passwords[STAFF[FRONT_DESK]])
                last = max(cases // 25, 1)
                pages = {"first": 1, "middle": max(last // 2, 1), "last": last}
                figures = {
                    name: _timed(client, f"{web}{path}?page={number}", requests)
                    for name, number in pages.items()
                }
            # The API call the page makes, alone: what of the time is intake's.
            headers = asyncio.run(staff.headers(FRONT_DESK))
            with httpx.Client(timeout=60, headers=headers) as api:
                intake = system.services["intake"].url
                figures["intake API, first"] = _timed(api, f"{intake}/cases?limit=26", requests)
                figures["intake API, last"] = _timed(
                    api, f"{intake}/cases?limit=26&offset={(last - 1) * 25}", requests
                )
    return {
        "cases": cases,
        "path": path,
        "pages": {
            name: {"p50_ms": d[len(d) // 2] * 1000, "max_ms": d[-1] * 1000}
            for name, d in figures.items()
        },
    }


def report_lines(result: dict[str, Any]) -> list[str]:
    lines = [f"web list page ({result['path']}) over {result['cases']:,} cases (p50 / max):"]
    for name, figure in result["pages"].items():
        lines.append(f"  {name:18} {figure['p50_ms']:7.1f} ms / {figure['max_ms']:7.1f} ms")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--path", default=LIST_PATH)
    args = parser.parse_args(argv)
    print("\n".join(report_lines(measure(args.cases, args.requests, args.path))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
