"""The sidebar page Clockify shows in an iframe: status, API explorer and flow editor (docs/ui.md)."""
