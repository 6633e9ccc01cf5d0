"""The administrator: users and their roles (identity's `/users`), and the member
registry (verification's `/members`). A national id is personal data: the browser
posts it to this app, which asks the service, so it is never in a URL it keeps."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from services.web.associations import client_term
from services.web.backends import ServiceRefused
from services.web.dependencies import Form, Pages, Services, keep, signed_in_with
from services.web.pages import NavLink
from services.web.paging import Page, Paging
from services.web.session import Session
from shared.roles import ADMIN, ROLES

router = APIRouter()
NAV = [
    NavLink("/admin/users", "admin.nav_users", (ADMIN,), 90),
    NavLink("/admin/members", "admin.nav_members", (ADMIN,), 91),
]
Admin = Annotated[Session, Depends(signed_in_with(ADMIN))]
NO_STORE = {"Cache-Control": "no-store"}
FIRST_PAGE = Paging()


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def field(form: dict[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


async def users_page(
    request: Request,
    pages: Pages,
    services: Services,
    session: Session,
    paging: Paging = FIRST_PAGE,
    **values: Any,
) -> HTMLResponse:
    """The users, the latest registered first, a page at a time."""
    everyone = await services.json("identity", "GET", "/users", token=session.token)
    users, has_next = paging.window(
        list(reversed(everyone))[paging.offset : paging.offset + paging.ask]
    )
    associations = await request.app.state.associations.named(session.associations_with(ADMIN))
    values.setdefault("refusal", None)
    values.setdefault("typed", {})
    return pages.page(
        request,
        "admin/users.html",
        status=values.pop("status", 200),
        users=users,
        paging=paging,
        has_next=has_next,
        associations=associations,
        roles=ROLES,
        **values,
    )


@router.get("/admin/users", response_class=HTMLResponse)
async def users(
    request: Request, pages: Pages, services: Services, session: Admin, paging: Page
) -> HTMLResponse:
    return await users_page(request, pages, services, session, paging)


@router.post("/admin/users", response_class=HTMLResponse)
async def register_user(
    request: Request, pages: Pages, services: Services, session: Admin, form: Form
) -> HTMLResponse:
    """Registers the user; the one-time password is shown on this answer, once."""
    association, role = field(form, "association_id"), field(form, "role")
    body = {
        "username": field(form, "username"),
        "display_name": field(form, "display_name"),
        "roles": {association: [role]} if association and role else {},
    }
    try:
        created = await services.json("identity", "POST", "/users", token=session.token, json=body)
    except ServiceRefused as refused:
        if refused.status >= 500 or refused.status == 401:
            raise
        return await users_page(
            request, pages, services, session, status=400, refusal=refused, typed=form
        )
    response = pages.page(request, "admin/created.html", created=created)
    response.headers.update(NO_STORE)
    return response


async def user_command(
    request: Request, services: Services, session: Session, method: str, path: str, **sent: Any
) -> Response | None:
    """Sends the command; None when done, else the refusal to show."""
    try:
        await services.json("identity", method, path, token=session.token, **sent)
    except ServiceRefused as refused:
        if refused.status >= 500 or refused.status == 401:
            raise
        keep(request, session.with_flash({**refused.message, "kind": "error"}))
        return redirect("/admin/users")
    return None


@router.post("/admin/users/{username}/roles")
async def grant(
    request: Request, username: str, services: Services, session: Admin, form: Form
) -> Response:
    body = {"role": field(form, "role"), "association_id": field(form, "association_id")}
    path = f"/users/{quote(username, safe='')}/roles"
    refused = await user_command(request, services, session, "POST", path, json=body)
    if refused:
        return refused
    keep(request, session.with_flash({"key": "admin.granted"}))
    return redirect("/admin/users")


@router.post("/admin/users/{username}/revoke")
async def revoke(
    request: Request, username: str, services: Services, session: Admin, form: Form
) -> Response:
    association, role = (
        quote(field(form, "association_id"), safe=""),
        quote(field(form, "role"), safe=""),
    )
    path = f"/users/{quote(username, safe='')}/roles/{association}/{role}"
    reason = field(form, "reason")
    refused = await user_command(
        request, services, session, "DELETE", path, params={"reason": reason} if reason else {}
    )
    if refused:
        return refused
    keep(request, session.with_flash({"key": "admin.revoked"}))
    return redirect("/admin/users")


@router.post("/admin/users/{username}/disable")
async def disable(
    request: Request, username: str, services: Services, session: Admin, form: Form
) -> Response:
    path = f"/users/{quote(username, safe='')}/disable"
    body = {"reason": field(form, "reason") or None}
    refused = await user_command(request, services, session, "POST", path, json=body)
    if refused:
        return refused
    keep(request, session.with_flash({"key": "admin.disabled_done"}))
    return redirect("/admin/users")


# The member registry -------------------------------------------------------------------


async def members_page(
    request: Request, pages: Pages, session: Session, **values: Any
) -> HTMLResponse:
    associations = await request.app.state.associations.named(session.associations_with(ADMIN))
    chosen = values.get("association") or (
        associations[0]["association_id"] if associations else ""
    )
    found = next((a for a in associations if a["association_id"] == chosen), None)
    for name in ("member", "refusal", "lookup_refusal", "register_refusal", "import_refusal"):
        values.setdefault(name, None)
    values.setdefault("typed", {})
    response = pages.page(
        request,
        "admin/members.html",
        status=values.pop("status", 200),
        associations=associations,
        association=chosen,
        clients=client_term(found, session.lang, plural=True),
        **{k: v for k, v in values.items() if k != "association"},
    )
    response.headers.update(NO_STORE)
    return response


@router.get("/admin/members", response_class=HTMLResponse)
async def members(
    request: Request, pages: Pages, session: Admin, association: str = ""
) -> HTMLResponse:
    return await members_page(request, pages, session, association=association)


def member_path(form: dict[str, Any]) -> str:
    association = quote(field(form, "association_id"), safe="")
    return f"/members/{association}/{quote(field(form, 'national_id'), safe='')}"


@router.post("/admin/members/lookup", response_class=HTMLResponse)
async def lookup(
    request: Request, pages: Pages, services: Services, session: Admin, form: Form
) -> HTMLResponse:
    """The member of this national id (posted, never in the URL), the read logged."""
    association = field(form, "association_id")
    try:
        member = await services.json("verification", "GET", member_path(form), token=session.token)
    except ServiceRefused as refused:
        if refused.status >= 500 or refused.status == 401:
            raise
        return await members_page(
            request,
            pages,
            session,
            status=refused.status,
            association=association,
            lookup_refusal=refused,
        )
    return await members_page(request, pages, session, association=association, member=member)


@router.post("/admin/members", response_class=HTMLResponse)
async def register_member(
    request: Request, pages: Pages, services: Services, session: Admin, form: Form
) -> Response:
    association = field(form, "association_id")
    entry = {k: field(form, k) for k in ("name", "joined_on", "status", "status_since")}
    try:
        member = await services.json(
            "verification", "PUT", member_path(form), token=session.token, json=entry
        )
    except ServiceRefused as refused:
        if refused.status >= 500 or refused.status == 401:
            raise
        typed = {k: v for k, v in form.items() if k != "national_id"}
        return await members_page(
            request,
            pages,
            session,
            status=400,
            association=association,
            register_refusal=refused,
            typed=typed,
        )
    keep(request, session.with_flash({"key": "admin.member_saved"}))
    return await members_page(request, pages, session, association=association, member=member)


@router.post("/admin/members/import", response_class=HTMLResponse)
async def import_members(
    request: Request, pages: Pages, services: Services, session: Admin, form: Form
) -> Response:
    association = field(form, "association_id")
    upload = form.get("file")
    content = await upload.read() if isinstance(upload, UploadFile) else b""
    try:
        report = await services.json(
            "verification",
            "POST",
            "/members/import",
            token=session.token,
            params={"association_id": association},
            content=content,
            headers={"Content-Type": "text/csv"},
        )
    except ServiceRefused as refused:
        if refused.status >= 500 or refused.status == 401:
            raise
        return await members_page(
            request, pages, session, status=400, association=association, import_refusal=refused
        )
    text = request.app.state.renderer.catalogue.text
    flash = {lang: text("admin.imported", lang, **report) for lang in ("ar", "en")}
    keep(request, session.with_flash(flash))
    return redirect(f"/admin/members?association={quote(association, safe='')}")
