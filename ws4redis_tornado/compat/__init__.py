"""The differences between the versions of our dependencies that we support, kept in one place.

Each module here names the versions it was written for and checks, when imported, that the
library provides what it relies on, so an unsupported version fails at import with a clear
message instead of an AttributeError at shutdown.
"""
