pytest_plugins = ["clockify_core.testing.plugin"]
