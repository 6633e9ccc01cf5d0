"""`KHIDMA_WHATSAPP_*`: the app's secrets, which association each number serves, and
where the Cloud API is."""

from __future__ import annotations

import re
import sys
from typing import NoReturn

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

GRAPH_API = "https://graph.facebook.com"
GRAPH_API_VERSION = "v21.0"


class WhatsAppSettings(BaseSettings):
    """The WhatsApp Business adapter's configuration.

    - `KHIDMA_WHATSAPP_APP_SECRET`: the Meta app's secret, which signs every webhook
      POST (`X-Hub-Signature-256`). Without it the webhook takes nothing.
    - `KHIDMA_WHATSAPP_VERIFY_TOKEN`: the token typed in Meta's webhook settings,
      checked by the GET handshake.
    - `KHIDMA_WHATSAPP_NUMBERS`: JSON, each business number's `phone_number_id` (the
      Cloud API's `value.metadata.phone_number_id`) to the association it serves.
    - `KHIDMA_WHATSAPP_ACCESS_TOKEN`, `KHIDMA_WHATSAPP_API_BASE_URL`,
      `KHIDMA_WHATSAPP_API_VERSION`: how replies reach the Cloud API. Without the
      token, replies go to the logged outbox.
    """

    # Empty values (compose's `${X:-}` of an unset variable) are the defaults.
    model_config = SettingsConfigDict(
        env_prefix="KHIDMA_WHATSAPP_", extra="ignore", env_ignore_empty=True
    )

    app_secret: SecretStr = SecretStr("")
    verify_token: SecretStr = SecretStr("")
    numbers: dict[str, str] = Field(default_factory=dict)
    access_token: SecretStr = SecretStr("")
    api_base_url: str = GRAPH_API
    api_version: str = Field(default=GRAPH_API_VERSION, pattern=r"^v[0-9]+\.[0-9]+$")

    @property
    def receives(self) -> bool:
        """Whether the webhook can take messages (it can check their signature)."""
        return bool(self.app_secret.get_secret_value())

    @property
    def sends(self) -> bool:
        """Whether replies go to the Cloud API (else to the logged outbox)."""
        return bool(self.access_token.get_secret_value())


def load_whatsapp_settings(packs: dict[str, object]) -> WhatsAppSettings:
    """The settings, or a stop at start naming what is wrong, in both languages
    (exit code 2, as a broken policy pack)."""
    try:
        settings = WhatsAppSettings()
    except SettingsError as error:  # a value that is not JSON where JSON is expected
        named = re.search(r'field "(\w+)"', str(error))
        variable = f"KHIDMA_WHATSAPP_{named.group(1).upper()}" if named else "KHIDMA_WHATSAPP_*"
        _stop(f"{variable} is not valid JSON", f"قيمة {variable} ليست JSON صالحًا")
    except ValidationError as error:
        problems = "; ".join(
            f"KHIDMA_WHATSAPP_{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        _stop(f"invalid WhatsApp settings: {problems}", f"إعدادات واتساب غير صالحة: {problems}")
    unknown = sorted(set(settings.numbers.values()) - set(packs))
    if unknown:
        names = ", ".join(unknown)
        _stop(
            f"KHIDMA_WHATSAPP_NUMBERS names associations that have no policy pack: {names}",
            f"يذكر KHIDMA_WHATSAPP_NUMBERS جمعيات ليس لها سياسة: {names}",
        )
    return settings


def _stop(en: str, ar: str) -> NoReturn:
    print(f"channels: {en} / {ar}", file=sys.stderr)
    raise SystemExit(2)
