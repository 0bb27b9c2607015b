"""Test support for the platform and for add-on developers: real databases, Redis, the simulator.

Load with ``pytest_plugins = ["clockify_core.testing.plugin"]``.
"""
