"""Injected 5xx, latency and dropped connections, reproducible under a seed."""

from __future__ import annotations

import time

import httpx
import pytest

from clockify_core.simulator import FaultSettings
from clockify_core.simulator.faults import FaultInjector
from clockify_core.simulator.testing import InProcessSimulator, ServedSimulator


def _sequence(seed: int, n: int = 200) -> list[str]:
    injector = FaultInjector(FaultSettings(error_rate=0.3, drop_rate=0.1, seed=seed))
    return [f"{d.action}:{d.status}" for d in (injector.decide() for _ in range(n))]


def test_same_seed_same_faults() -> None:
    a, b, c = _sequence(5), _sequence(5), _sequence(6)
    assert a == b
    assert a != c
    errors = sum(x.startswith("error") for x in a)
    drops = sum(x.startswith("drop") for x in a)
    assert 30 < errors < 90
    assert 5 < drops < 40
    assert {x for x in a if x.startswith("error")} <= {"error:500", "error:502", "error:503"}


async def _codes(simulator: InProcessSimulator, n: int) -> list[str]:
    client = simulator.owner_client()
    out = []
    for _ in range(n):
        try:
            out.append(str((await client.get("/api/v1/user")).status_code))
        except httpx.RemoteProtocolError:
            out.append("drop")
    return out


async def test_faults_in_process_are_deterministic(simulator: InProcessSimulator) -> None:
    control = simulator.client()
    settings = {"error_rate": 0.3, "drop_rate": 0.1, "seed": 42}
    await control.put("/__sim/rate-limit", json={"enabled": False})
    await control.put("/__sim/faults", json=settings)
    first = await _codes(simulator, 60)
    await control.put("/__sim/faults", json=settings)
    second = await _codes(simulator, 60)
    assert first == second
    assert {"200", "drop"} <= set(first)
    assert set(first) & {"500", "502", "503"}
    # The control surface is never faulted.
    assert [(await control.get("/__sim/stats")).status_code for _ in range(20)] == [200] * 20
    await control.put("/__sim/faults", json={})
    assert set(await _codes(simulator, 10)) == {"200"}


async def test_latency(simulator: InProcessSimulator) -> None:
    await simulator.client().put("/__sim/faults", json={"latency_ms": 60})
    client = simulator.owner_client()
    started = time.perf_counter()
    assert (await client.get("/api/v1/user")).status_code == 200
    assert time.perf_counter() - started >= 0.06


@pytest.mark.slow
def test_dropped_connection_over_a_socket(simulator_server: ServedSimulator) -> None:
    info = simulator_server.info()
    key = info["workspaces"][0]["ownerApiKey"]
    simulator_server.control.put("/__sim/faults", json={"drop_rate": 1.0}).raise_for_status()
    with httpx.Client(base_url=simulator_server.base_url, headers={"X-Api-Key": key}, trust_env=False) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/api/v1/user")
        simulator_server.control.put("/__sim/faults", json={"error_rate": 1.0, "error_statuses": [503]}).raise_for_status()
        assert client.get("/api/v1/user").status_code == 503
        simulator_server.control.put("/__sim/faults", json={}).raise_for_status()
        assert client.get("/api/v1/user").status_code == 200
