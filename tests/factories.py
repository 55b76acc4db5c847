"""Rows for tests, made through the same services the product uses (secrets encrypted, caches told)."""

from __future__ import annotations

import itertools
from typing import Any

from smsqueue.auth import ADMIN, ENTITY, create_key
from smsqueue.db import session_scope
from smsqueue.models import LegalEntity, Provider
from smsqueue.rules import admin

_counter = itertools.count(1)

# Open all day with the 230-FZ rules off, so that pipeline tests pass at any hour of the day; tests of
# the rules set what they test.
PERMISSIVE = {"send_window_from": "00:00", "send_window_to": "24:00", "fz_enabled": False}


class Factory:
    def provider(
        self,
        base_url: str = "http://127.0.0.1:9",
        *,
        kind: str = "smsc",
        code: str | None = None,
        settings: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Provider:
        code = code or f"{kind}-{next(_counter)}"
        if settings is None:
            settings = {
                "smsc": {"base_url": base_url, "login": "acme", "password": "s3cret-password"},
                "smsru": {"base_url": base_url, "api_id": "s3cret-api-id"},
                "smsaero": {"base_url": base_url, "email": "acme@example.com", "api_key": "s3cret-api-key"},
                "http_json": {"url": base_url + "/send", "token": "Bearer s3cret-token"},
                "smstraffic": {
                    "base_url": base_url,
                    "reserve_url": base_url + "/reserve",
                    "login": "acme",
                    "password": "s3cret-password",
                },
                "iqsms": {"base_url": base_url, "login": "acme", "password": "s3cret-password"},
            }[kind]
        fields.setdefault("timeout_seconds", 3.0)
        with session_scope() as session:
            provider, token = admin.create_provider(
                session, code=code, kind=kind, settings=settings, **fields
            )
        provider.plain_callback_token = token  # type: ignore[attr-defined]
        return provider

    def entity(
        self, *providers: Provider, code: str | None = None, sender: str | None = "ACME", **fields: Any
    ) -> LegalEntity:
        code = code or f"entity-{next(_counter)}"
        with session_scope() as session:
            entity, secret = admin.create_entity(session, code=code, **{**PERMISSIVE, **fields})
            for priority, provider in enumerate(providers, start=1):
                admin.link_provider(
                    session, entity, session.merge(provider), priority=priority, sender=sender
                )
        entity.plain_webhook_secret = secret  # type: ignore[attr-defined]
        return entity

    def key(self, *entities: LegalEntity | str) -> str:
        codes = [e if isinstance(e, str) else e.code for e in entities]
        with session_scope() as session:
            return create_key(session, ENTITY if codes else ADMIN, codes)

    def headers(self, *entities: LegalEntity | str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key(*entities)}"}
