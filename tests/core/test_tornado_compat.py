"""The Tornado compatibility module: its checks find what a Tornado lacks, and importing fails clearly."""

from __future__ import annotations

import subprocess
import sys

import pytest
import tornado

from ws4redis_tornado.compat import tornado as compat
from ws4redis_tornado.protocol import StrictProtocol


class Stream:
    """Stands for a Tornado class: sets one attribute in a method, has one method."""

    def __init__(self) -> None:
        self.socket = None

    def _read_bytes(self, n: int) -> bytes:
        return b""


def build(handler: object, mask_outgoing: bool) -> None:
    """Stands for a Tornado constructor."""


def test_the_installed_tornado_has_everything_the_project_relies_on():
    assert compat.missing_in_tornado() == []


def test_an_attribute_that_no_method_uses_is_missing():
    assert compat.missing_attributes(Stream, ["socket", "_read_bytes", "_write_buffer"]) == ["Stream._write_buffer"]


def test_a_missing_method_and_a_missing_parameter_are_named():
    assert compat.missing_methods(Stream, ["_read_bytes", "_receive_frame"]) == ["Stream._receive_frame()"]
    assert compat.missing_parameters(build, ["handler", "params"]) == ["build(params=...)"]


def test_require_raises_an_import_error_naming_what_is_missing_and_the_tornado_it_was_written_for():
    compat.require([])
    with pytest.raises(ImportError) as raised:
        compat.require(compat.missing_attributes(Stream, ["_write_buffer"]))
    message = str(raised.value)
    assert "Stream._write_buffer" in message
    assert "written for Tornado 6.5.2 to 6.6" in message
    assert f"installed Tornado {tornado.version}" in message


@pytest.mark.parametrize(
    ("removal", "named"),
    [
        ("del tornado.websocket.WebSocketProtocol13._read_bytes", "WebSocketProtocol13._read_bytes()"),
        ("del tornado.websocket._WebSocketParams", "tornado.websocket._WebSocketParams"),
        ("del tornado.websocket._DecompressTooLargeError", "tornado.websocket._DecompressTooLargeError"),
        (
            "del tornado.websocket.WebSocketProtocol13._parse_extensions_header",
            "WebSocketProtocol13._parse_extensions_header()",
        ),
    ],
)
def test_importing_the_package_fails_clearly_on_a_tornado_without_a_private_name(removal, named):
    code = f"import tornado.websocket\n{removal}\nimport ws4redis_tornado"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ImportError: ws4redis-tornado was written for Tornado 6.5.2 to 6.6")
    assert named in last_line


def test_every_private_hook_strict_protocol_overrides_is_checked():
    methods = {name for name, value in vars(StrictProtocol).items() if callable(value)}
    overridden = {name for name in methods if name.startswith("_") and not name.startswith("__")}
    assert overridden <= set(compat.PROTOCOL_HOOKS)
