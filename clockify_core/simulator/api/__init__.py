"""Routers for the Clockify API surfaces the simulator serves."""
