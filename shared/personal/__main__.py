"""`python -m shared.personal create-key FILE | rotate | status`: the master key.

- `create-key FILE`: a new master key file (0600); refuses to replace one.
- `rotate`: a new current master key in the deployment's key file, every subject
  key rewrapped with it, then the retired keys removed from the file. Run it with
  the services' settings (KHIDMA_MASTER_KEY_FILE, KHIDMA_STORE, …); the services
  read the file at start, so restart them afterwards. Interrupted, run it again.
- `status`: which master keys the file holds and which wrap subject keys.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shared.errors import Refused
from shared.personal.keyring import open_keyring
from shared.personal.master import MasterKeyProblem, MasterKeys
from shared.settings import ServiceSettings, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.personal", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-key", help="a new master key file")
    create.add_argument("file", type=Path)
    commands.add_parser("rotate", help="a new master key; every subject key rewrapped")
    commands.add_parser("status", help="the master keys and what they wrap")
    args = parser.parse_args(argv)
    try:
        if args.command == "create-key":
            keys = MasterKeys.create(args.file)
            print(f"created {args.file} (0600), master key {keys.current}")
            return 0
        settings = load_settings(ServiceSettings, service_name="keyring", nats_url="unused")
        if args.command == "rotate":
            return rotate(settings)
        keyring = open_keyring(settings)
        try:
            in_use = keyring.masters_in_use()
            for key_id in keyring.master.keys:
                marks = ["current"] if key_id == keyring.master.current else []
                marks += ["wraps subject keys"] if key_id in in_use else []
                print(f"{key_id}  {', '.join(marks) or 'retired'}")
            live = sum(1 for record in keyring.records() if record.destroyed_at is None)
            print(f"subject keys: {live} live, {len(keyring.records()) - live} destroyed")
        finally:
            keyring.close()
        return 0
    except (MasterKeyProblem, Refused) as problem:
        print(f"{problem.en}\n{problem.ar}", file=sys.stderr)
        return 1


def rotate(settings: ServiceSettings) -> int:
    old = MasterKeys.load(settings.master_key_path)
    # Check the old file against the keyring before anything changes.
    open_keyring(settings, old).close()
    rotated = old.with_new_current()
    rotated.write()  # the new key first: a crash leaves both keys in the file
    keyring = open_keyring(settings, rotated)
    try:
        count = keyring.rewrap(progress=lambda done: print(f"  rewrapped {done}", flush=True))
        retired = set(rotated.keys) - {rotated.current} - keyring.masters_in_use()
    finally:
        keyring.close()
    rotated.without(retired).write()
    print(
        f"master key {rotated.current} is current; {count} subject keys rewrapped; "
        f"retired {', '.join(sorted(retired)) or 'none'}. Restart the services."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
