"""The screens, one module per area: each has a `router` and its `NAV` links.

Areas are found here by their modules, so that adding one is adding its file
(with its templates folder and its messages file).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from types import ModuleType

from fastapi import APIRouter, Depends, FastAPI

from services.web.associations import Associations
from services.web.dependencies import csrf_protected
from services.web.session import Session


@dataclass(frozen=True)
class NavLink:
    """A link of the staff's menu, shown to whoever holds one of `roles`; with a
    `channel`, only where they hold it in an association whose pack enables it."""

    path: str
    label: str  # a catalogue key
    roles: tuple[str, ...]
    order: int = 100
    channel: str | None = None

    def offered_to(self, session: Session, associations: Associations) -> bool:
        if self.channel is None:
            return any(session.holds(role) for role in self.roles)
        held = session.associations_with(*self.roles)
        return bool(associations.enabling(self.channel, held))


def areas() -> list[ModuleType]:
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if isinstance(getattr(module, "router", None), APIRouter):
            found.append(module)
    return found


def navigation(modules: list[ModuleType]) -> list[NavLink]:
    links = [link for module in modules for link in getattr(module, "NAV", ())]
    return sorted(links, key=lambda link: (link.order, link.path))


def include(app: FastAPI) -> list[NavLink]:
    """Every area's routes, each POST checked for its CSRF token; returns the menu."""
    modules = areas()
    for module in modules:
        app.include_router(module.router, dependencies=[Depends(csrf_protected)])
    return navigation(modules)
