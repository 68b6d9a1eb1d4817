"""The OwnBackup API simulator: a stateful aiohttp.web server with fault injection.

It speaks every call of the vendor's published API reference (session and OAuth bearer
authentication, services, backups and their CSV downloads, exports and jobs, seeding,
automations, GDPR forget and rectify, the account event history) and can be told to fail
in the ways the real service fails (latency, 429 bursts, 5xx, dying sessions, refusals,
malformed answers, hanging answers).  Used by the tests, the demo, the benchmarks and by
users for their own staging:

    from gdpr_daemon.simulator import Simulator, SimulatorConfig, FaultConfig

    sim = Simulator(SimulatorConfig(email="dpo@example.com", password="..."))
    async with sim.serve(host="127.0.0.1", port=0) as url:
        ...

Control endpoints without authentication or faults, for tests and demos (details in
:mod:`gdpr_daemon.simulator.control`): ``GET/PUT/PATCH /_simulator/faults``,
``POST /_simulator/reset``, ``GET /_simulator/calls``, ``POST /_simulator/events``
(``{"count": N}``), ``GET /_simulator/stats``.

Modules: ``config`` (SimulatorConfig, ApiError, GdprCall), ``state`` (the account),
``auth`` (sessions and tokens), ``events`` (the event history), ``account`` and
``csvdata`` (the account's objects and files), ``faults`` (fault config and decisions),
``params`` (request bodies, error shape), ``validation`` (requests checked against the
OpenAPI document shipped in :mod:`gdpr_daemon.ownbackup`; ``validate_requests=False``
turns it off), ``handlers`` (API routes), ``control``
(``/_simulator/`` routes), ``app`` (middleware, application), ``server`` (the harness),
``cli`` (``gdpr-daemon simulate``).
"""

from gdpr_daemon.simulator.app import SimulatorStats, build_app
from gdpr_daemon.simulator.events import MALFORMED_KINDS, EventLog
from gdpr_daemon.simulator.faults import FaultConfig, FaultCounters, FaultDecision, decide
from gdpr_daemon.simulator.server import Simulator
from gdpr_daemon.simulator.state import (
    FIRST_SERVICE_ID,
    ApiError,
    GdprCall,
    SimulatorConfig,
    SimulatorState,
)

__all__ = [
    "FIRST_SERVICE_ID",
    "MALFORMED_KINDS",
    "ApiError",
    "EventLog",
    "FaultConfig",
    "FaultCounters",
    "FaultDecision",
    "GdprCall",
    "Simulator",
    "SimulatorConfig",
    "SimulatorState",
    "SimulatorStats",
    "build_app",
    "decide",
]
