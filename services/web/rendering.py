"""Pages from Jinja2 templates (autoescaped; a missing field reads as empty), in the reader's language.

Every template gets `t(key)` (the catalogue's text), `pick(value)` (a service's
bilingual value), `lang`/`dir`, the session and its CSRF token, and filters for
what must read the same in both directions: `ltr` (numbers, IDs, phones and
references, isolated left-to-right) and `when` (a date in Hijri and Gregorian
side by side, in Riyadh's day).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import ChainableUndefined, pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from services.web.i18n import Catalogue, pick
from services.web.session import Session
from shared.dates import RIYADH, arabic_digits, day_in_words

TEMPLATES = Path(__file__).parent / "templates"


def _moment(value: Any) -> datetime | date | None:
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, str) and value:
        try:
            if len(value) == 10:
                return date.fromisoformat(value)
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


@pass_context
def when(context: Context, value: Any, with_time: bool = False) -> Markup:
    """A date in both calendars; with its time of day in Riyadh when asked."""
    moment = _moment(value)
    if moment is None:
        return Markup("—") if not value else escape(value)
    lang = context.get("lang", "ar")
    if isinstance(moment, datetime) and moment.tzinfo is None:
        return escape(value)
    # Beyond the Hijri table the words are the Gregorian date alone (shared.dates).
    text = day_in_words(moment, lang if lang in ("ar", "en") else "ar")
    if with_time and isinstance(moment, datetime):
        clock = moment.astimezone(RIYADH).strftime("%H:%M")
        text = f"{text} {arabic_digits(clock) if lang == 'ar' else clock}"
    stamp = moment.isoformat()
    return Markup('<time datetime="{}">{}</time>').format(stamp, text)


def ltr(value: Any) -> Markup:
    """A number, ID, phone or reference kept left-to-right inside Arabic text."""
    return Markup('<bdi dir="ltr">{}</bdi>').format("" if value is None else value)


# Query parameters a page never writes back into itself: a form link's sealed
# prefill is the applicant's data (sealed, but a copy in the page is one more).
UNREPEATED = frozenset({"prefill"})


def address_to_return(request: Request) -> str:
    """The page's path and query, to come back to (after choosing the language)."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in UNREPEATED]
    return request.url.path + ("?" + urlencode(kept) if kept else "")


def returning_to(request: Request, target: str) -> str:
    """`target` (a page's `address_to_return`) with what it left out given back, from
    the page the browser says it comes from (its Referer, sent to this site only,
    `Referrer-Policy: same-origin`): a reader who switches the language of a form
    opened from a channel's link keeps what the link filled in. Without a Referer,
    or from another page, the target as it is."""
    referer = urlsplit(request.headers.get("referer", ""))
    wanted = urlsplit(target)
    if referer.netloc != request.url.netloc or referer.path != wanted.path:
        return target
    given = [(k, v) for k, v in parse_qsl(referer.query) if k in UNREPEATED]
    if not given:
        return target
    kept = [(k, v) for k, v in parse_qsl(wanted.query) if k not in UNREPEATED]
    return wanted.path + "?" + urlencode(kept + given)


class Renderer:
    def __init__(self, catalogue: Catalogue, folder: Path = TEMPLATES):
        self.catalogue = catalogue
        self.templates = Jinja2Templates(directory=str(folder))
        environment = self.templates.env
        # A field a service leaves out reads as empty, never as a 500 page.
        environment.undefined = ChainableUndefined
        environment.autoescape = True
        environment.filters["when"] = when
        environment.filters["ltr"] = ltr

    def context(self, request: Request, **values: Any) -> dict[str, Any]:
        session: Session = request.state.session
        lang = session.lang
        flash = session.flash
        if flash:  # shown once: the next page no longer has it
            request.state.session = session.with_flash(None)
        navigation = getattr(request.app.state, "navigation", [])
        associations = request.app.state.associations
        menu = [link for link in navigation if link.offered_to(session, associations)]
        here = request.url.path
        # The menu's current entry: the longest path the page's starts with.
        current = max(
            (link.path for link in menu if here == link.path or here.startswith(link.path + "/")),
            key=len,
            default=None,
        )

        def t(key: str, **parts: Any) -> str:
            return self.catalogue.text(key, lang, **parts)

        return {
            "request": request,
            "session": session,
            "lang": lang,
            "dir": "rtl" if lang == "ar" else "ltr",
            "t": t,
            "pick": lambda value: pick(value, lang),
            "csrf": session.csrf,
            "flash": flash,
            "menu": menu if session.signed_in else [],
            "current_menu": current,
            "refresh": request.app.state.settings.refresh_seconds,
            "return_to": address_to_return(request),
            **values,
        }

    def page(
        self, request: Request, template: str, status: int = 200, **values: Any
    ) -> HTMLResponse:
        return self.templates.TemplateResponse(
            request, template, self.context(request, **values), status_code=status
        )
