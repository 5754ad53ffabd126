"""Servers under test. Kept import-free: the peers' own virtualenvs import from here."""
