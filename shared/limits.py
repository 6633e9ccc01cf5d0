"""Request-size and rate limits of the public endpoints, per client.

Who the client is: a caller with a bearer token is its token (a machine client, a
signed-in officer), with a budget of its own (`client_per_minute`); anyone else is
their address, with the smaller public budget (`public_per_minute`: the applicant's
status, the survey form, the eligibility question, the web's public pages). Behind
a reverse proxy, or when the web application asks a service on an applicant's
behalf, the address is the `X-Forwarded-For` that a trusted proxy
(`trusted_proxies`) sets; from anyone else that header is ignored, so it cannot be
used to dodge the limit.

The budget is a token bucket per client, in the process's memory: each instance of
a scaled-out service counts its own callers (a limit against floods, not a quota).
Going over is a 429 with `Retry-After`, in both languages. A body over
`max_body_bytes` is a 413 before it is read whole.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import Refused

# Clients remembered at once: the oldest is forgotten first (a full bucket again).
MAX_CLIENTS = 100_000


class LimitSettings(BaseSettings):
    """`KHIDMA_LIMITS_*`: the budgets per client and the largest body taken."""

    # Empty values (compose's `${X:-}` of an unset variable) are the defaults.
    model_config = SettingsConfigDict(
        env_prefix="KHIDMA_LIMITS_", extra="ignore", env_ignore_empty=True
    )

    # An address without a token: an applicant, a visitor (0: no limit).
    public_per_minute: int = Field(default=120, ge=0)
    public_burst: int = Field(default=30, ge=1)
    # A caller with a token: adapters, officers (0: no limit). A flood guard well
    # above what one adapter sends at the system's capacity.
    client_per_minute: int = Field(default=600_000, ge=0)
    client_burst: int = Field(default=10_000, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Addresses or networks (CIDR) whose X-Forwarded-For names the client.
    trusted_proxies: list[str] = Field(default_factory=list)


class TooManyRequests(Refused):
    """Over the client's budget: try again after `retry_after` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(
            "too_many_requests",
            f"Too many requests from this client: try again in {retry_after} s.",
            f"طلبات كثيرة من هذا العميل: أعد المحاولة بعد {retry_after} ثانية.",
        )
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """A bucket per key: `per_minute` tokens a minute, at most `burst` saved up."""

    def __init__(
        self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str) -> float:
        """0 when the request may go; else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        bucket = self._buckets.pop(key, None) or _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        self._buckets[key] = bucket
        while len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate


class Limiter:
    def __init__(self, settings: LimitSettings, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.public = TokenBuckets(settings.public_per_minute, settings.public_burst, clock)
        self.clients = TokenBuckets(settings.client_per_minute, settings.client_burst, clock)
        self._proxies = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str:
        """The caller's address: a trusted proxy's word for it, else the peer's."""
        address = peer or "unknown"
        if forwarded_for and self._trusted(address):
            # The right-most address not a proxy of ours is the client.
            for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
                address = hop
                if not self._trusted(hop):
                    break
        return address

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._proxies)

    def check(self, request: Request) -> None:
        """Raises TooManyRequests when the request's client is over its budget."""
        authorization = request.headers.get("authorization", "")
        if authorization.lower().startswith("bearer ") and len(authorization) > 7:
            digest = hashlib.sha256(authorization[7:].encode()).hexdigest()[:24]
            wait = self.clients.take("token:" + digest)
        else:
            peer = request.client.host if request.client else None
            address = self.client_address(peer, request.headers.get("x-forwarded-for"))
            wait = self.public.take("address:" + address)
        if wait > 0:
            raise TooManyRequests(max(1, math.ceil(wait)))


def limiter_of(app: Any) -> Limiter:
    found: Limiter | None = getattr(app.state, "limiter", None)
    if found is None:
        found = app.state.limiter = Limiter(LimitSettings())
    return found


async def _rate_limited(request: Request) -> None:
    limiter_of(request.app).check(request)


# On a public route: `dependencies=[RateLimited], responses=LIMITED`.
RateLimited = Depends(_rate_limited)
RateLimit = Annotated[None, RateLimited]

# What a limited route may answer besides its own (the OpenAPI documents say so).
LIMITED: dict[int | str, dict[str, Any]] = {
    413: {"description": "The body is larger than KHIDMA_LIMITS_MAX_BODY_BYTES."},
    429: {
        "description": "Over the client's budget (KHIDMA_LIMITS_*): try again after "
        "the seconds of the Retry-After header.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
}


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {
            "error": "request_too_large",
            "message": {
                "en": f"The request's body is larger than {limit} bytes.",
                "ar": f"حجم محتوى الطلب أكبر من {limit} بايت.",
            },
        },
        status_code=413,
    )


class BodySizeLimit:
    """ASGI middleware: a body over `limit` bytes is a 413, refused from its
    Content-Length or, when it has none, once the bytes read pass the limit (the app
    is then handed an ended body, and its answer replaced by the 413)."""

    def __init__(self, app: Any, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(self.limit)(scope, receive, send)
            return
        seen = 0
        over = False

        async def counted_receive() -> Any:
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    over = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        answered = False

        async def watched_send(message: dict[str, Any]) -> None:
            nonlocal answered
            if not over:
                await send(message)
            elif not answered:
                answered = True
                await _too_large(self.limit)(scope, receive, send)

        await self.app(scope, counted_receive, watched_send)
