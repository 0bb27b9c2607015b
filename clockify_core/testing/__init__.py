"""Test support for the platform and for add-on developers: real databases, Redis, the simulator.

Load with ``pytest_plugins = ["clockify_core.testing.plugin"]``.
"""

# Its public surface is its modules (imported one by one, so loading the plugin stays light):
# ``addon`` (installed_addon, AddonHarness), ``databases``, ``processes``, ``faults``, ``logs``.
__all__ = ["addon", "apps", "balancer", "databases", "faults", "logs", "loopback", "plugin", "processes", "proxy"]
