"""The harness: one :class:`Simulator` owns an account, its faults, its statistics and app.

::

    sim = Simulator(SimulatorConfig(services=6), faults=FaultConfig())
    async with sim.serve(host="127.0.0.1", port=0) as url:   # "http://127.0.0.1:41234"
        sim.faults = FaultConfig(rate_5xx=0.1)              # replace faults at any time
        sim.state.gdpr_calls; sim.state.services; sim.stats

``Simulator.app`` is the ``aiohttp.web.Application``, so ``aiohttp.test_utils`` can host it
too.  Time comes from ``clock`` (epoch seconds, default ``time.time``): pass a settable
clock to move jobs, seeds, backups and token expiry forward without sleeping.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from gdpr_daemon.logs import get_logger
from gdpr_daemon.simulator.app import SimulatorStats, build_app
from gdpr_daemon.simulator.faults import FaultConfig, FaultCounters, FaultDecision, decide
from gdpr_daemon.simulator.state import SimulatorConfig, SimulatorState

log = get_logger("gdpr_daemon.simulator")

DEFAULT_SHUTDOWN_TIMEOUT_S = 0.5


class Simulator:
    """A simulated OwnBackup account served over HTTP."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        faults: FaultConfig | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self.state = SimulatorState(self.config, clock or time.time)
        self.stats = SimulatorStats()
        self._initial_faults = faults if faults is not None else FaultConfig()
        self._rng = random.Random(self.config.seed)  # noqa: S311 - simulated data, not secrets
        self._faults = self._initial_faults
        self._counters = FaultCounters.start(self._faults)
        self.faults = self._initial_faults
        self._app: web.Application | None = None
        self.url: str | None = None

    @property
    def faults(self) -> FaultConfig:
        """The fault config in force; assigning one restarts its 429 burst (and reseeds)."""
        return self._faults

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        self._install(config, reseed=True, restart_burst=True)

    def update_faults(self, changes: Mapping[str, Any]) -> FaultConfig:
        """Change some fault fields (``ValueError`` if invalid).

        A 429 burst under way goes on unless ``burst_429`` is among the changes, and the
        generator is reseeded only when ``seed`` is.
        """
        config = self._faults.updated(changes)
        self._install(config, reseed="seed" in changes, restart_burst="burst_429" in changes)
        return config

    def _install(self, config: FaultConfig, *, reseed: bool, restart_burst: bool) -> None:
        if not isinstance(config, FaultConfig):
            raise TypeError("faults must be a FaultConfig")
        self._faults = config
        if restart_burst:
            self._counters = FaultCounters.start(config)
        if reseed and config.seed is not None:
            self._rng = random.Random(config.seed)  # noqa: S311 - simulated faults, not secrets

    @property
    def app(self) -> web.Application:
        """The aiohttp application (a fresh one after each :meth:`serve` has ended)."""
        if self._app is None:
            self._app = build_app(self)
        return self._app

    def decide_faults(self, *, service_id: int | None, gdpr: bool) -> FaultDecision:
        """The faults of the next API call (advances the generator and the 429 burst)."""
        decision, self._counters = decide(
            self._faults, self._rng, self._counters, service_id=service_id, gdpr=gdpr
        )
        return decision

    def reset(self) -> None:
        """The account as at start: state rebuilt, stats cleared, initial faults restored."""
        self.state.reset()
        self.stats.reset()
        self._rng = random.Random(self.config.seed)  # noqa: S311 - simulated data, not secrets
        self.faults = self._initial_faults

    @asynccontextmanager
    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT_S,
    ) -> AsyncIterator[str]:
        """Serve over HTTP until the block ends; yields the base URL (port 0: any free)."""
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=shutdown_timeout,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound_host, bound_port = runner.addresses[0][:2]
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            self.url = f"http://{shown}:{bound_port}"
            log.debug("simulator.listening", url=self.url)
            yield self.url
        finally:
            self.url = None
            await runner.cleanup()
            self._app = None
