"""API Studio: Mirror a Clockify workspace's reference data and time entries, automate with no-code flows, and explore the API read-only."""
