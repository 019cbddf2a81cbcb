"""The frame wire format: the one module that writes and reads it.

A frame, as a browser receives it, is one websocket text message: its header
as one line of JSON, then the body, the HTML fragments htmx swaps out of band
by id::

    {"seq":812,"prev":809,"kind":"delta","t":40512.0,"wall":1764490000123.4,"frozen":false,"speed":1}
    <div id="meta-…" hx-swap-oob="true" …>…</div><div id="cluster-…" hx-swap-oob="true">…

The header says which event the frame ends on (`seq`), which frame it follows
(`prev`), whether it replaces everything (`kind` "full") or adds to the last
one ("delta"), the simulated time `t`, the wall clock when it was rendered
(`wall`, ms since the epoch) and the clock in force (`frozen`, `speed`).
static/js/wire.js reads it (`parseHead`) before htmx swaps anything; htmx
itself sees a text node before the first element and ignores it (the ws
extension swaps only the message's elements).  The header is one line and
holds no "<", so nothing in it can be taken for markup.  A message that does
not start with "{" is not a frame (an error shown to one socket, say).

Between the worker and the web processes a frame travels through Redis as
"<seq>|<message>" (`pack` / `unpack`): on the pub/sub channel frames:<id> and
in the key run:<id>:full (keys.PUBLISH stores and publishes these strings as
they are, inside the lease check).  The seq in front lets a web process
decide what to do with a frame without reading its JSON."""

from __future__ import annotations

import json

SEP = "|"          # between the seq and the message, over Redis
_SEP_B = SEP.encode()
NEWLINE = "\n"     # ends the header line


def encode(header: dict, body: str) -> str:
    """The websocket message of a frame."""
    line = json.dumps(header, separators=(",", ":"))
    if "<" in line:  # only numbers and short words go in a header; never markup
        line = line.replace("<", "\\u003c")
    return line + NEWLINE + body


def head(message: str | bytes) -> dict | None:
    """A message's header, or None if it is not a frame.  Reads the first
    line only (a bench viewer hands in just the message's first bytes)."""
    if not message or message[0] not in ("{", 123):
        return None
    end = message.find(NEWLINE if isinstance(message, str) else b"\n")
    if end < 0:
        return None
    try:
        value = json.loads(message[:end])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def decode(message: str) -> tuple[dict | None, str]:
    """(header, body) of a message; (None, message) if it is not a frame."""
    header = head(message)
    if header is None:
        return None, message
    return header, message[message.index(NEWLINE) + 1:]


def pack(seq: int, message: str) -> str:
    """A frame as it travels over Redis."""
    return f"{int(seq)}{SEP}{message}"


def unpack(data: bytes | str) -> tuple[int, bytes | str]:
    """(seq, message) of what pack() wrote; the message stays bytes if it came as bytes."""
    cut = data.index(_SEP_B if isinstance(data, bytes) else SEP)
    return int(data[:cut]), data[cut + 1:]
