"""The receive path of a client frame, with Tornado's speedups and with wsaccel, side by side.

A frame a client sends is masked, and a text frame must be valid UTF-8. Tornado unmasks with its
C extension (``tornado.speedups.websocket_mask``) and validates by decoding (``bytes.decode``);
``wsaccel`` offers a C unmasker (``XorMaskerSimple``) and a UTF-8 validator. This measures each
step on messages of 100 B, 10 KiB and 1 MiB: CPU time per message (median of the repeats) and
the ratio wsaccel / Tornado, in one run.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

SIZES = (100, 10 * 1024, 1024 * 1024)
# Mostly ASCII JSON with some two-byte characters, as chat messages are.
_TEXT = '{"user":"zoë","text":"ça va? see you at the café","n":12345}'.encode()


def message(size: int) -> bytes:
    return (_TEXT * (size // len(_TEXT) + 1))[:size].rsplit(b"\xc3", 1)[0].ljust(size, b" ")


def per_call(function: Callable[[], object], *, budget: float = 0.2, repeats: int = 7) -> float:
    """Median seconds of CPU per call, each repeat running for about ``budget`` seconds."""
    calls = 1
    while True:
        started = time.process_time()
        for _ in range(calls):
            function()
        if time.process_time() - started >= budget / 10:
            break
        calls *= 4
    loops = max(1, int(calls * budget * 10 / max(time.process_time() - started, 1e-9) / 10))
    samples = []
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(loops):
            function()
        samples.append((time.process_time() - started) / loops)
    return statistics.median(samples)


def measure() -> list[dict[str, object]]:
    from tornado.speedups import websocket_mask
    from wsaccel.utf8validator import Utf8Validator
    from wsaccel.xormask import XorMaskerSimple

    mask = os.urandom(4)
    rows = []
    for size in SIZES:
        data = message(size)
        masked = websocket_mask(mask, data)
        assert XorMaskerSimple(mask).process(masked) == data
        valid, *_ = Utf8Validator().validate(data)
        assert valid
        tornado_unmask = per_call(lambda masked=masked: websocket_mask(mask, masked))
        wsaccel_unmask = per_call(lambda masked=masked: XorMaskerSimple(mask).process(masked))
        tornado_utf8 = per_call(lambda data=data: data.decode("utf-8"))
        wsaccel_utf8 = per_call(lambda data=data: Utf8Validator().validate(data))
        rows.append(
            {
                "size": size,
                "unmask": (tornado_unmask, wsaccel_unmask),
                "utf8": (tornado_utf8, wsaccel_utf8),
                "both": (tornado_unmask + tornado_utf8, wsaccel_unmask + wsaccel_utf8),
            }
        )
    return rows


def render(rows: list[dict[str, object]]) -> str:
    def us(seconds: float) -> str:
        return f"{seconds * 1e6:,.2f}"

    lines = [
        "| message | step | Tornado (us) | wsaccel (us) | wsaccel / Tornado |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        size = row["size"]
        label = f"{size:,} B" if size < 1024 else f"{size // 1024:,} KiB"
        for step, name in (("unmask", "unmask"), ("utf8", "UTF-8 check"), ("both", "both")):
            tornado, wsaccel = row[step]  # type: ignore[misc]
            lines.append(f"| {label} | {name} | {us(tornado)} | {us(wsaccel)} | x{wsaccel / tornado:.2f} |")
    return "\n".join(lines)


def cmd_receive(_args: object) -> None:
    try:
        rows = measure()
    except ImportError as exc:
        raise SystemExit(f"{exc.name} is needed: pip install -r bench/requirements.txt") from None
    print("### Receive path: Tornado's speedups vs wsaccel (CPU per message, median of 7)\n")
    print(render(rows))
