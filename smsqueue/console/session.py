"""The console's sign-in state: the session cookie, the key it carries, CSRF tokens, the operator's zone.

The session is Flask's signed cookie, named and scoped to /console (the API never sees it), HttpOnly,
SameSite=Strict, and Secure whenever the request came over https. It holds the API key encrypted with
the service's secret key (crypto.encrypt): the cookie alone, read from a log or a disk, yields no key.
Every request decrypts it and checks it again through `auth.lookup`, as the API does, so a revoked key
stops working (within auth's cache time) even for a session signed in before.

CSRF: a random token kept in the session, sent in every form as an itsdangerous-signed, timed copy
(the scheme Flask-WTF uses, without its form library: the console's few forms are hand-written and
itsdangerous already comes with Flask). A POST whose token is missing, stale or not this session's is
refused with 400 before the view runs. SameSite=Strict alone would stop most cross-site posts; the token
also stops those from a sibling subdomain and from browsers that ignore SameSite.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import timedelta
from zoneinfo import ZoneInfo, available_timezones

from cryptography.fernet import InvalidToken
from flask import Flask, request, session
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadData, URLSafeTimedSerializer

from smsqueue import auth
from smsqueue.config import settings
from smsqueue.crypto import decrypt, encrypt
from smsqueue.rules import audit

COOKIE_NAME = "smsqueue_console"
COOKIE_PATH = "/console"
IDLE_LIFETIME = timedelta(hours=8)  # the cookie's own expiry, renewed by each request
MAX_SESSION_SECONDS = 24 * 3600  # a sign-in lasts at most this long, however busy
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
DEFAULT_ZONE = "Europe/Moscow"
# Offered first at sign-in: Russia's zones, west to east, and UTC.
RUSSIAN_ZONES = (
    "Europe/Kaliningrad",
    "Europe/Moscow",
    "Europe/Samara",
    "Asia/Yekaterinburg",
    "Asia/Omsk",
    "Asia/Novosibirsk",
    "Asia/Krasnoyarsk",
    "Asia/Irkutsk",
    "Asia/Yakutsk",
    "Asia/Vladivostok",
    "Asia/Magadan",
    "Asia/Kamchatka",
    "UTC",
)


def _derive(secret_key: str) -> str:
    """The cookie-signing key: derived from SMSQUEUE_SECRET_KEY, never that key itself, so a signature
    reveals nothing about what encrypts the provider secrets."""
    return hmac.new(secret_key.encode(), b"smsqueue console session v1", hashlib.sha256).hexdigest()


def configure(app: Flask) -> None:
    keys = [k.strip() for k in settings().secret_key.split(",") if k.strip()]
    app.config["SECRET_KEY"] = _derive(keys[0])
    # SMSQUEUE_SECRET_KEY lists older keys after the first (rotation): sessions they signed stay valid.
    app.config["SECRET_KEY_FALLBACKS"] = [_derive(k) for k in keys[1:]]
    app.config["PERMANENT_SESSION_LIFETIME"] = IDLE_LIFETIME
    app.session_interface = ConsoleSessionInterface()


class ConsoleSessionInterface(SecureCookieSessionInterface):
    def get_cookie_name(self, app: Flask) -> str:
        return COOKIE_NAME

    def get_cookie_path(self, app: Flask) -> str:
        return COOKIE_PATH

    def get_cookie_httponly(self, app: Flask) -> bool:
        return True

    def get_cookie_samesite(self, app: Flask) -> str:
        return "Strict"

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure


# --- sign-in ------------------------------------------------------------------------------------------


def sign_in(key: str, zone: str) -> auth.Principal | None:
    """Check the key as the API does; on success start a new session holding it (encrypted)."""
    principal = auth.lookup(key)
    if principal is None:
        return None
    session.clear()  # nothing of a session from before the sign-in carries over
    session.permanent = True
    session["key"] = encrypt(key)
    session["since"] = int(time.time())
    session["tz"] = zone
    session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return principal


def sign_out() -> None:
    session.clear()


def has_key() -> bool:
    return "key" in session


def current_principal() -> auth.Principal | None:
    """The signed-in key's principal, checked again now; None (and the session ended) when it is gone."""
    sealed = session.get("key")
    if not isinstance(sealed, str):
        return None
    since = session.get("since")
    if not isinstance(since, int) or time.time() - since > MAX_SESSION_SECONDS:
        session.clear()
        return None
    try:
        key = decrypt(sealed)
    except InvalidToken:  # sealed with a secret key no longer configured
        session.clear()
        return None
    principal = auth.lookup(key)
    if principal is None:
        session.clear()
    else:  # what the operator changes is recorded in the audit log as this key's
        audit.set_actor(principal.key_id, principal.name)
    return principal


# --- the operator's zone ------------------------------------------------------------------------------


def valid_zone(name: str) -> bool:
    return name in _zones()


_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones()) | {"UTC"}
    return _ZONES


def all_zones() -> list[str]:
    return sorted(_zones())


def zone() -> ZoneInfo:
    name = session.get("tz")
    return ZoneInfo(name if isinstance(name, str) and valid_zone(name) else DEFAULT_ZONE)


def set_zone(name: str) -> None:
    session["tz"] = name


# --- CSRF ---------------------------------------------------------------------------------------------


def _serializer() -> URLSafeTimedSerializer:
    from flask import current_app

    return URLSafeTimedSerializer(current_app.secret_key or "", salt="smsqueue-console-csrf")


def csrf_token() -> str:
    """The token for a form of this session (one is made for a visitor not signed in yet: the sign-in
    form is protected too)."""
    raw = session.get(CSRF_FIELD)
    if not isinstance(raw, str):
        raw = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return _serializer().dumps(raw)


def csrf_ok() -> bool:
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    raw = session.get(CSRF_FIELD)
    if not sent or not isinstance(raw, str):
        return False
    try:
        value = _serializer().loads(sent, max_age=MAX_SESSION_SECONDS)
    except BadData:
        return False
    return isinstance(value, str) and hmac.compare_digest(value, raw)
