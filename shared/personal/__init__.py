"""Personal data under the PDPL: encrypted with a key per data subject, erasable by key.

- `master`: the master keys (a key file), which wrap every subject key, and the
  blind-index key.
- `keyring`: the subject keys, wrapped, in one table every service can reach
  (SQLite beside the stores, or a PostgreSQL schema); destroying one erases its
  subject's data everywhere at once (crypto-shredding).
- `sealing`: AES-GCM sealing of a JSON value under a subject key; an erased
  subject's values open as `ERASED`.
- `mapper`: the event-store mapper that seals the personal attributes an event
  declares before anything is written, and opens them on reading.

See docs/decisions.md, "Personal data: a key per data subject".
"""

from shared.personal.keyring import SubjectKeyring, open_keyring
from shared.personal.master import MasterKeyProblem, MasterKeys
from shared.personal.sealing import ERASED, Sealer, is_erased, is_sealed

__all__ = [
    "ERASED",
    "MasterKeyProblem",
    "MasterKeys",
    "Sealer",
    "SubjectKeyring",
    "is_erased",
    "is_sealed",
    "open_keyring",
]
