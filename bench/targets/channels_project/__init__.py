"""Minimal Django Channels 4 project: a consumer that relays a group to its socket."""
