"""Frames and close codes: one definition, the values RFC 6455 and the project's clients expect."""

from __future__ import annotations

import pytest

from ws4redis_tornado import protocol, revocation, server
from ws4redis_tornado.frames import PING_FRAME, CloseCode, Opcode, close_frame_problem, encode_frame


def test_the_ping_frame_is_a_final_empty_unmasked_ping():
    assert PING_FRAME == b"\x89\x00"


def test_message_frames_carry_the_text_and_binary_opcodes():
    assert encode_frame(b"hi", binary=False)[0] == 0x80 | Opcode.TEXT
    assert encode_frame(b"hi", binary=True)[0] == 0x80 | Opcode.BINARY


def test_the_close_code_names_modules_export_are_the_close_code_members():
    assert protocol.CLOSE_GOING_AWAY is server.CLOSE_GOING_AWAY is CloseCode.GOING_AWAY == 1001
    assert protocol.CLOSE_POLICY_VIOLATION is CloseCode.POLICY_VIOLATION == 1008
    assert revocation.CLOSE_SIGNED_OUT is CloseCode.SIGNED_OUT == 4401
    assert revocation.CLOSE_ACCESS_CHANGED is CloseCode.ACCESS_CHANGED == 4403


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"", None),
        (b"\x03\xe8bye", None),
        (b"\x03", (1002, "a close frame cannot carry one byte")),
        (b"\x03\xed", (1002, "invalid close code 1005")),
        (b"\x03\xe8\xff", (1007, "invalid UTF-8 in the close reason")),
    ],
)
def test_a_malformed_close_frame_gets_the_code_rfc_6455_names(payload, problem):
    assert close_frame_problem(payload) == problem
