"""The frame wire format (pattern_lab/runs/wire.py): what the worker writes is
what the page's script and the web processes read."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pattern_lab.runs import keys, wire
from pattern_lab.runs.frames import FrameBuilder, node_actions
from simulations import get_lab

ROOT = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")


def lab_frames(slug: str = "leader-election", victim: str = "n5") -> list[str]:
    """Real frames of a run: the first delta and full, a crash, a few quiet ones."""
    cls = get_lab(slug)
    lab = cls({}, 1)
    builder = FrameBuilder("r1", node_actions(cls))
    out = []
    for t, action in ((0, None), (300, ("crash", [victim])), (900, None)):
        lab.run_until(t)
        if action:
            lab.apply(*action)
        _, delta, full = builder.build(lab, lab.drain(), {"speed": 2, "frozen": t == 900})
        out += [delta, full]
    return out


def test_a_frame_is_a_json_header_line_then_the_fragments():
    message = wire.encode({"seq": 7, "prev": 5, "kind": "delta", "t": 1200.5}, '<div id="x">a\nb</div>')
    header, body = wire.decode(message)
    assert header == {"seq": 7, "prev": 5, "kind": "delta", "t": 1200.5}
    assert body == '<div id="x">a\nb</div>'
    assert wire.head(message.encode()[:20]) is None  # a cut-off header is not read as one
    assert wire.decode('<div id="flash-r1" role="alert">no</div>') == (None, '<div id="flash-r1" role="alert">no</div>')
    assert "<" not in message.partition("\n")[0]
    assert "<" not in wire.encode({"kind": "</script>"}, "").partition("\n")[0]
    assert wire.head(wire.encode({"kind": "</script>"}, "")) == {"kind": "</script>"}


def test_the_builders_frames_carry_seq_prev_and_kind_in_their_header():
    delta, full, *rest = lab_frames()
    d, f = wire.head(delta), wire.head(full)
    assert (d["kind"], f["kind"]) == ("delta", "full")
    assert d["seq"] == f["seq"] and d["prev"] == f["prev"] == 0
    crash_delta = wire.head(rest[0])
    assert crash_delta["prev"] == d["seq"] and crash_delta["seq"] > d["seq"]
    assert wire.head(rest[-1])["frozen"] is True and wire.head(rest[-1])["speed"] == 2
    # The body is what htmx swaps: elements only, beginning with the meta element.
    assert wire.decode(rest[0])[1].startswith('<div id="meta-r1" hx-swap-oob="true"')


def test_redis_framing_round_trips_as_text_and_bytes():
    message = lab_frames()[0]
    packed = wire.pack(42, message)
    assert wire.unpack(packed) == (42, message)
    assert wire.unpack(packed.encode()) == (42, message.encode())


@pytest.mark.skipif(NODE is None, reason="node is not installed (needed to run static/js/wire.js)")
def test_the_pages_parser_reads_what_the_python_encoder_writes(tmp_path):
    """static/js/wire.js, run by node, on real frames and on messages that are not frames."""
    (tmp_path / "wire.mjs").write_text((ROOT / "static/js/wire.js").read_text())
    (tmp_path / "run.mjs").write_text(
        'import { parseHead } from "./wire.mjs";\n'
        'import { readFileSync } from "node:fs";\n'
        'const messages = JSON.parse(readFileSync(0, "utf8"));\n'
        "process.stdout.write(JSON.stringify(messages.map(parseHead)));\n")
    messages = lab_frames() + lab_frames("circuit-breaker", "C") + [
        '<div id="flash-r1" hx-swap-oob="true" class="flash bad" role="alert">That message was not understood</div>',
        wire.encode({"seq": 3, "prev": 2, "kind": "delta", "t": 0.5, "wall": 1.5e12, "frozen": False, "speed": 0.25,
                     "note": "</div>"}, "<p>é ✓</p>"),
        '{"seq": 1',  # cut short: no header line
        "",
    ]
    out = subprocess.run([NODE, str(tmp_path / "run.mjs")], input=json.dumps(messages), capture_output=True,
                         text=True, timeout=60, check=True)
    parsed = json.loads(out.stdout)
    assert parsed == [wire.head(m) for m in messages]
    assert [p["kind"] for p in parsed[:2]] == ["delta", "full"] and parsed[-4] is None
    assert parsed[-2] is None and parsed[-1] is None
    assert parsed[-3]["note"] == "</div>"


@pytest.fixture
def redis_client(tmp_path):
    """A private redis-server on a unix socket, for the scripts in keys.py."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    sock = tmp_path / "redis.sock"
    proc = subprocess.Popen([binary, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path), "--loglevel", "warning"])
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
        client = redis.Redis(unix_socket_path=str(sock))
        yield client
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_what_the_publish_script_stores_and_publishes_decodes_with_the_wire_module(redis_client):
    r = redis_client
    rid = "r1"
    delta, full = lab_frames()[2:4]
    seq = wire.head(delta)["seq"]
    publish = r.register_script(keys.PUBLISH)
    sub = r.pubsub(ignore_subscribe_messages=True)
    sub.subscribe(keys.frames(rid))
    frame_keys = [keys.lease(rid), keys.full(rid), keys.pos(rid), keys.frames(rid), keys.ok(rid)]

    def publish_frame(token):
        return publish(keys=frame_keys, args=[token, wire.pack(seq, delta), wire.pack(seq, full), f"300 {seq}",
                                              keys.FRAME_TTL_S, "1"])

    r.set(keys.lease(rid), "7")
    assert publish_frame("6") == 0  # a fenced-off actor publishes nothing
    assert r.get(keys.full(rid)) is None
    assert publish_frame("7") == 1
    message = None
    deadline = time.monotonic() + 5
    while message is None and time.monotonic() < deadline:
        message = sub.get_message(timeout=0.5)
    sub.close()
    assert message is not None, "nothing was published"
    got_seq, got = wire.unpack(message["data"])
    assert got_seq == seq and wire.decode(got.decode()) == wire.decode(delta)
    stored_seq, stored = wire.unpack(r.get(keys.full(rid)).decode())
    assert stored_seq == seq and wire.head(stored)["kind"] == "full" and stored == full
