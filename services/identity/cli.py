"""`python -m services.identity COMMAND`: administration on the store directly.

Without a command, the service runs. The commands read the same `KHIDMA_*`
settings as the service (data folder, store, key file, policies) and record
who ran them as `cli:<login name>`; they work while the service runs (the
store serialises writes, the service reads new keys when it meets their ids).

    create-admin [--username admin] [--name NAME] [--association ID …]
    add-user USERNAME --name NAME [--role ASSOCIATION:ROLE …]
    reset-password USERNAME
    grant USERNAME ROLE ASSOCIATION
    revoke USERNAME ROLE ASSOCIATION [--reason TEXT]
    disable USERNAME [--reason TEXT]
    held USERNAME ROLE ASSOCIATION --at ISO-MOMENT
    users
    add-client CLIENT_ID --name NAME --association ID … --channel NAME …
    rotate-keys [--algorithm ES256|RS256] [--retire KID]
    keys

One-time passwords and client secrets are printed once, on standard output,
and recorded nowhere but as their Argon2 hash.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services.identity.application import IdentityApplication
from services.identity.keys import ALGORITHMS
from services.identity.main import IdentitySettings, open_identity
from shared.errors import Refused
from shared.roles import ROLES
from shared.settings import load_settings


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 — no login name (a container without one)
        return "cli"


def _print(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _roles(values: Sequence[str]) -> dict[str, list[str]]:
    roles: dict[str, list[str]] = {}
    for value in values:
        association_id, colon, role = value.partition(":")
        if not colon:
            raise SystemExit(f"--role {value!r}: write ASSOCIATION:ROLE, e.g. sidr:verifier")
        roles.setdefault(association_id, []).append(role)
    return roles


def _sign_in_hint(app: IdentityApplication, username: str, password: str) -> str:
    issuer = app.tokens.issuer
    return (
        f"One-time password for {username} (shown once / تظهر مرة واحدة): {password}\n"
        f"Choose your own password first / اختر كلمة مرورك أولًا:\n"
        f"  curl -X POST {issuer}/account/password -H 'Content-Type: application/json' \\\n"
        f'    -d \'{{"username": "{username}", "current_password": "{password}", '
        f'"new_password": "…"}}\'\n'
        f"then sign in / ثم سجّل الدخول:\n"
        f"  curl -X POST {issuer}/oauth/token -d grant_type=password "
        f"-d username={username} --data-urlencode password=…"
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m services.identity",
        description="Khidma identity: without a command, the service runs; the commands "
        "administer users, roles, machine clients and signing keys on the store.",
    )
    commands = top.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the service (the default)")

    p = commands.add_parser("create-admin", help="the first administrator, one-time password")
    p.add_argument("--username", default="admin")
    p.add_argument("--name", default="Administrator / المسؤول")
    p.add_argument("--association", action="append", default=[], help="default: every association")

    p = commands.add_parser("add-user", help="a user with a one-time password")
    p.add_argument("username")
    p.add_argument("--name", required=True)
    p.add_argument("--role", action="append", default=[], metavar="ASSOCIATION:ROLE")

    p = commands.add_parser("reset-password", help="a new one-time password")
    p.add_argument("username")

    for name in ("grant", "revoke"):
        p = commands.add_parser(name, help=f"{name} a role in an association")
        p.add_argument("username")
        p.add_argument("role", choices=ROLES)
        p.add_argument("association")
        if name == "revoke":
            p.add_argument("--reason")

    p = commands.add_parser("disable", help="disable a user: no more tokens")
    p.add_argument("username")
    p.add_argument("--reason")

    p = commands.add_parser("held", help="did the user hold the role at that moment?")
    p.add_argument("username")
    p.add_argument("role", choices=ROLES)
    p.add_argument("association")
    p.add_argument("--at", required=True, type=datetime.fromisoformat)

    commands.add_parser("users", help="every user and their roles")

    p = commands.add_parser("add-client", help="a machine client (adapter); prints its secret")
    p.add_argument("client_id")
    p.add_argument("--name", required=True)
    p.add_argument("--association", action="append", required=True)
    p.add_argument("--channel", action="append", required=True)

    p = commands.add_parser("rotate-keys", help="a new signing key (or retire an old one)")
    p.add_argument("--algorithm", choices=ALGORITHMS, default=None)
    p.add_argument("--retire", metavar="KID", help="retire this key instead of adding one")

    commands.add_parser("keys", help="the signing keys")
    return top


def run(args: argparse.Namespace, settings: IdentitySettings) -> int:
    app = open_identity(settings)
    by = cli_actor()
    try:
        command = args.command
        if command == "create-admin":
            user = app.create_admin(
                args.username, args.name, by=by, associations=args.association or None
            )
            print(_sign_in_hint(app, user["username"], user["one_time_password"]))
        elif command == "add-user":
            user = app.register_user(args.username, args.name, by=by, roles=_roles(args.role))
            print(_sign_in_hint(app, user["username"], user["one_time_password"]))
        elif command == "reset-password":
            print(_sign_in_hint(app, args.username, app.reset_password(args.username, by=by)))
        elif command == "grant":
            _print(app.grant(args.username, args.role, args.association, by=by))
        elif command == "revoke":
            _print(
                app.revoke(args.username, args.role, args.association, by=by, reason=args.reason)
            )
        elif command == "disable":
            _print(app.disable(args.username, by=by, reason=args.reason))
        elif command == "held":
            at = args.at
            if at.tzinfo is None:
                raise SystemExit("--at needs a time zone, e.g. 2025-03-01T09:00:00+03:00")
            held = app.held_role(args.username, args.role, args.association, at)
            print("held" if held else "not held")
            return 0 if held else 1
        elif command == "users":
            _print(app.users())
        elif command == "add-client":
            client = app.register_client(
                args.client_id,
                args.name,
                associations=args.association,
                channels=args.channel,
                by=by,
            )
            print(
                f"Client {client['client_id']}: secret (shown once / يظهر مرة واحدة): "
                f"{client['client_secret']}"
            )
        elif command == "rotate-keys":
            if args.retire:
                app.retire_key(args.retire, by=by)
                print(f"retired {args.retire}")
            else:
                algorithm = args.algorithm or settings.signing_algorithm
                print(f"signing with {app.rotate_keys(algorithm=algorithm, by=by)}")
        elif command == "keys":
            _print(app.keys())
        return 0
    except Refused as refusal:
        print(f"{refusal.code}: {refusal.en}\n{refusal.ar}", file=sys.stderr)
        return 1
    finally:
        app.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command in (None, "serve"):
        from services.identity.main import main as serve

        serve()
        return 0
    return run(args, load_settings(IdentitySettings))
