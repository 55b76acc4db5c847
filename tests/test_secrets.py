"""No provider secret and no callback token leaves where it belongs: not in any API answer (but the 201
that shows the callback token once), not in any log line of the web process (gunicorn as the Procfile
runs it, access log included) or of the worker and beat processes, not in the broker's messages, not in
an error's repr or traceback. Known secrets are planted and grepped for; each check also proves it
looked at something (the logs name the report URL, the broker holds the tasks)."""

from __future__ import annotations

import base64
import json
import secrets
import traceback
import uuid
from typing import Any

import pytest
import redis
import requests
from conftest import Proc, wait_for

from smsqueue.providers import client_for
from smsqueue.providers.base import OutgoingSMS, ProviderConfig, ProviderError
from smsqueue.providers.simulator import Simulator

PHONE = "+79161234567"


def planted(name: str) -> str:
    return f"{name}-{secrets.token_hex(8)}"


class Recorder:
    """Every answer of the API, kept for grepping."""

    def __init__(self, base: str, admin_key: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {admin_key}"
        self.answers: list[tuple[str, bytes]] = []

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self.session.request(method, self.base + path, timeout=30, **kwargs)
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.answers.append(
            (f"{method} {path} -> {response.status_code}", headers.encode() + response.content)
        )
        return response

    def text(self, skip: str = "") -> bytes:
        return b"\n".join(body for label, body in self.answers if label != skip)


def web_process(processes, **env: str) -> tuple[Proc, str]:
    """The web process as the Procfile runs it (gunicorn, access log on stdout)."""
    return processes.web(access_log=True, **env)


def assert_absent(haystack: bytes | str, *needles: str, where: str) -> None:
    text = haystack.encode() if isinstance(haystack, str) else haystack
    for needle in needles:
        assert needle.encode() not in text, f"{needle!r} found in {where}"


@pytest.mark.pipeline
def test_secrets_stay_out_of_answers_and_logs(factory, processes):
    password, api_key, aero_key, token = (
        planted("pw"),
        planted("apikey"),
        planted("aerokey"),
        planted("cbtok"),
    )
    all_secrets = (password, api_key, aero_key, token)
    web, url = web_process(processes, SMSQUEUE_LOG_LEVEL="DEBUG")
    api = Recorder(url, factory.key())
    with (
        Simulator(kind="smsc", login="acme", password=password, behaviour={"delivery_delay": 0.3}) as smsc,
        Simulator(kind="smsaero", login="a@b.ru", apikey=aero_key, behaviour={"delivery_delay": 0.3}) as aero,
    ):
        smsc_body = {
            "code": "smsc-main",
            "kind": "smsc",
            "settings": {"base_url": smsc.url, "login": "acme", "password": password},
            "callback_token": token,
        }
        created = api.call("POST", "/api/v1/providers", json=smsc_body)
        assert created.status_code == 201 and created.json()["callback_token"] == token
        aero_body = {
            "code": "aero",
            "kind": "smsaero",
            "settings": {"base_url": aero.url + "/v2", "email": "a@b.ru", "api_key": aero_key},
        }
        aero_token = api.call("POST", "/api/v1/providers", json=aero_body).json()["callback_token"]
        wrong = {
            "code": "wrong-login",
            "kind": "smsc",
            "settings": {"base_url": smsc.url, "login": "acme", "apikey": api_key},
        }
        assert api.call("POST", "/api/v1/providers", json=wrong).status_code == 201
        smsc.set_behaviour(report_url=f"{url}/api/v1/providers/smsc-main/dlr?token={token}")
        for code in ("smsc-main", "aero", "wrong-login"):
            assert api.call("GET", f"/api/v1/providers/{code}").status_code == 200
            api.call("GET", f"/api/v1/providers/{code}/balance")
        assert api.call("GET", "/api/v1/providers").status_code == 200
        patched = api.call("PATCH", "/api/v1/providers/smsc-main", json={"settings": {"password": password}})
        assert patched.status_code == 200
        assert api.call("PATCH", "/api/v1/providers/aero", json={"name": "Aero"}).status_code == 200
        for code in ("smsc-main", "aero", "wrong-login"):
            entity = {"code": f"e-{code}", "providers": [{"provider": code, "sender": "ACME"}]}
            entity.update(send_window={"from": "00:00", "to": "24:00"}, fz={"enabled": False})
            assert api.call("POST", "/api/v1/legal-entities", json=entity).status_code == 201
        # Reports with a wrong token and bodies nobody can read are logged too.
        assert (
            api.call("POST", f"/api/v1/providers/smsc-main/dlr?token={token}x", data={"id": "1"}).status_code
            == 403
        )
        assert (
            api.call("POST", f"/api/v1/providers/aero/dlr?token={aero_token}", data=b"[").status_code == 200
        )

        processes.worker(SMSQUEUE_PUBLIC_URL=url, SMSQUEUE_LOG_LEVEL="DEBUG")
        processes.beat(SMSQUEUE_LOG_LEVEL="DEBUG")
        ids = {}
        for code in ("smsc-main", "aero", "wrong-login"):
            r = api.call(
                "POST", "/api/v1/messages", json={"legal_entity": f"e-{code}", "to": PHONE, "text": "hi"}
            )
            assert r.status_code == 202
            ids[code] = r.json()["id"]

        def status(code: str) -> str:
            return api.call("GET", f"/api/v1/messages/{ids[code]}").json()["status"]

        wait_for(lambda: status("smsc-main") == "delivered", 30, 0.3, "the SMSC message delivered")
        wait_for(lambda: status("aero") == "delivered", 30, 0.3, "the SMS Aero message delivered")
        wait_for(lambda: status("wrong-login") == "failed", 30, 0.3, "the refused message failed")
        assert (smsc.stats()["reports_pushed"], aero.stats()["reports_pushed"]) == (1, 1)

    # Answers: only the creation's 201 shows the token it was given.
    assert_absent(api.text(), password, api_key, aero_key, where="API answers")
    assert_absent(api.text(skip="POST /api/v1/providers -> 201"), token, where="API answers but the 201s")
    # Logs: the web process saw the report URL (redacted), the workers made the calls.
    web_log = web.output()
    assert "/api/v1/providers/smsc-main/dlr?token=***" in web_log, web_log[-3000:]
    assert "/api/v1/providers/aero/dlr?token=***" in web_log
    assert_absent(web_log, *all_secrets, aero_token, where="the web process's log")
    logs = [proc.output() for proc in processes.procs if proc is not web]
    assert any("smsqueue.process_reports" in log for log in logs)
    assert any("smsqueue.send_messages" in log for log in logs)
    for log in logs:
        assert_absent(log, *all_secrets, aero_token, where="a worker or beat log")


def broker_dump(broker: redis.Redis) -> bytes:
    """Every value in the broker's database, with each task message's base64 body decoded."""
    parts: list[bytes] = []
    for key in broker.keys("*"):
        kind = broker.type(key)
        if kind == b"list":
            values = broker.lrange(key, 0, -1)
        elif kind == b"hash":
            values = list(broker.hgetall(key).values())
        elif kind == b"zset":
            values = broker.zrange(key, 0, -1)
        elif kind == b"set":
            values = list(broker.smembers(key))
        else:
            values = [broker.get(key) or b""]
        for value in values:
            parts.append(value)
            try:
                envelope = json.loads(value)
            except ValueError:
                continue
            if isinstance(envelope, list):  # unacked entries: [message, exchange, routing key]
                envelope = envelope[0] if envelope and isinstance(envelope[0], dict) else {}
            if isinstance(envelope, dict) and "body" in envelope:
                parts.append(base64.b64decode(envelope["body"]))
    return b"\n".join(parts)


def test_secrets_stay_out_of_the_broker(client, factory, processes, test_env):
    # No worker runs: the tasks stay in the broker, to be read raw.
    api_id = planted("apiid")
    provider = factory.provider(kind="smsru", settings={"api_id": api_id})
    entity = factory.entity(provider)
    r = client.post("/api/v1/messages", json={"to": PHONE, "text": "hi"}, headers=factory.headers(entity))
    assert r.status_code == 202
    report = {"data[0]": "sms_status\n000000-77\n103\n1700000000"}
    dlr = client.post(
        f"/api/v1/providers/{provider.code}/dlr?token={provider.plain_callback_token}", data=report
    )
    assert dlr.status_code == 200
    broker = redis.Redis.from_url(test_env["CELERY_BROKER_URL"])

    def both_queued() -> bytes:
        dump = broker_dump(broker)
        return dump if b"000000-77" in dump and b"smsqueue.send_messages" in dump else b""

    dump = wait_for(both_queued, 10, what="the send and report tasks in the broker")
    assert b"smsqueue.process_reports" in dump
    assert_absent(dump, api_id, provider.plain_callback_token, where="the broker")


def test_errors_and_values_carry_no_secret_in_repr_or_traceback():
    password, token = planted("pw"), planted("tok")
    report_url = f"http://127.0.0.1:1/api/v1/providers/p/dlr?token={token}"
    sms = OutgoingSMS(message_id=str(uuid.uuid4()), ref=7, to=PHONE, text="hi", report_url=report_url)
    failures: list[BaseException] = []
    cases = [
        ("smsc", {"login": "acme", "password": password}, {"login": "acme", "password": "right"}),
        ("smsru", {"api_id": password}, {"apikey": "right"}),
        ("smsaero", {"email": "a@b.ru", "api_key": password}, {"login": "a@b.ru", "apikey": "right"}),
    ]
    for kind, settings, accepted in cases:
        with Simulator(kind=kind, **accepted) as sim:
            base = sim.url + "/v2" if kind == "smsaero" else sim.url
            config = ProviderConfig("p", kind, {"base_url": base, **settings}, timeout=0.5)
            for call in (lambda c: c.send(sms), lambda c: c.balance()):
                with pytest.raises(ProviderError) as refused:
                    call(client_for(config))
                failures.append(refused.value)
            # Timed out after the request went out: the ambiguous error carries nothing either.
            sim.set_behaviour(delay_seconds=2, delay_times=1)
            with pytest.raises(ProviderError) as timed_out:
                client_for(ProviderConfig("p", kind, {"base_url": base, **settings}, timeout=0.3)).send(sms)
            failures.append(timed_out.value)
    http_json = ProviderConfig(
        "p", "http_json", {"url": "http://127.0.0.1:9/send", "token": f"Bearer {password}"}
    )
    with pytest.raises(ProviderError) as unreachable:
        client_for(http_json).send(sms)
    failures.append(unreachable.value)
    assert len(failures) == 10
    for exc in failures:
        text = repr(exc) + str(exc) + "".join(traceback.format_exception(exc))
        assert_absent(text, password, token, where=f"{type(exc).__name__}: {exc}")
    assert_absent(repr(sms) + repr(config), password, token, where="repr of values")
