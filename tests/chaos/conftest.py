"""Fixtures of the chaos tests (helpers in tests/chaos/support.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.chaos.support import ThreadedProxy


@pytest.fixture
def make_proxy() -> Iterator[Callable[[str, int], ThreadedProxy]]:
    proxies: list[ThreadedProxy] = []

    def make(host: str, port: int) -> ThreadedProxy:
        proxies.append(ThreadedProxy(host, port))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    figures = [
        (name, line)
        for outcome in ("passed", "failed")
        for report in terminalreporter.getreports(outcome)
        for name, line in report.user_properties
        if "tests/chaos/" in report.nodeid
    ]
    if figures:
        terminalreporter.section("chaos figures")
        for name, line in figures:
            terminalreporter.write_line(f"{name}: {line}")
