"""A local provider that speaks a real aggregator's wire format, so the whole pipeline runs over HTTP.

Used by tests (in-process), benchmarks and `make run` (as a process):

    sim = Simulator(kind="smsc")          # binds 127.0.0.1 on a free port
    sim.start()
    ...  # point a provider's base_url at sim.url
    sim.received()                        # every accepted send, in order
    sim.set_behaviour(fail_http=500, fail_http_times=2)
    sim.stop()

    smsqueue simulator --kind smsc --port 9001 [--delivery-delay 0.5 --report-url URL ...]

What it does with a message: records it (see `SimMessage`), answers like the provider, reports it in
progress until `delivery_delay` seconds have passed, then delivered (or, for a share of
`undelivered_share`, undelivered), and, when a report URL is set, pushes the provider's own delivery
report there from a background thread (a failed push is counted, never raised).

Credentials: any are accepted unless `login`/`password`/`apikey` are given; then wrong ones get the
provider's bad-login answer. IQSMS pushes no reports: its statuses wait in a status queue instead.

The modules, in the order a request meets them:
- `server`: the HTTP server (threading HTTP/1.1, one write per answer); knows nothing of providers;
- `provider`: `Simulator`, routing a request to the `/_sim/` endpoints or to its dialect;
- `control`: the `/_sim/` endpoints (messages, stats, reset, behaviour);
- `dialects/`: one module per provider wire format (`smsc`, `smsru`, `smsaero`, `smstraffic`, `iqsms`),
  registered in `dialects.DIALECTS`; a dialect with a reserve endpoint (SMS Traffic) answers its paths
  under `/reserve` too, on the same state;
- `state`: the messages taken, money spent, request counts and the behaviour in force;
- `behaviour`: the behaviour knobs and their checks;
- `report_pusher`: delivery reports pushed when messages become final;
- `wire`: request and answer shapes shared by dialects;
- `cli`: `smsqueue simulator` options and running in the foreground.
"""

from __future__ import annotations

from smsqueue.providers.simulator.behaviour import Behaviour
from smsqueue.providers.simulator.cli import behaviour_from_args, build_parser, main
from smsqueue.providers.simulator.provider import Simulator
from smsqueue.providers.simulator.state import SimMessage

__all__ = [
    "Behaviour",
    "SimMessage",
    "Simulator",
    "behaviour_from_args",
    "build_parser",
    "main",
]
