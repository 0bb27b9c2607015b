"""Clockify Add-on: The reference Clockify add-on: full lifecycle, all events and scopes, hardened verification and a complete workspace mirror."""
