#!/usr/bin/env python3
"""Writes the seed inputs of each fuzz target into fuzz/corpus/<target>/ (run from the repo
root; `fuzz/run.sh` minimises the corpus afterwards). Needs only Python 3 and PyYAML."""

import hashlib
import json
import pathlib
import re
import struct

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def mp(v):
    """A minimal MessagePack encoder: maps, arrays, str, bin, ints, floats, bool, nil."""
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        if v >= 0:
            for tag, fmt, top in ((0xCC, ">B", 1 << 8), (0xCD, ">H", 1 << 16),
                                  (0xCE, ">I", 1 << 32), (0xCF, ">Q", 1 << 64)):
                if v < top:
                    return bytes([tag]) + struct.pack(fmt, v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, bytes):
        return b"\xc4" + bytes([len(v)]) + v
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        if len(b) < 256:
            return b"\xd9" + bytes([len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(v, (list, tuple)):
        return bytes([0x90 | len(v)]) + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        return bytes([0x80 | len(v)]) + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)


EVENT = {
    "version": 1, "coordinator_id": "default", "instance_id": "pod-1",
    "epoch": 1_700_000_000_000_000, "seq": 42, "timestamp_ms": 1_700_000_000_123,
    "level": "hard", "queue_depth": 950, "capacity": 1000, "reason": "level_change",
}


def events():
    """Valid events, then one edge case per validation rule."""
    full = dict(EVENT, heartbeat_ms=250, leaving=True)
    minimal = {k: v for k, v in EVENT.items() if k != "reason"}
    yield full
    yield minimal
    yield dict(EVENT, level="SOFT")
    yield dict(EVENT, level="ok", reason=None)
    yield dict(EVENT, budget_rows_per_sec=12.5, extra={"nested": [1, [2, {"a": None}]]})
    yield dict(EVENT, epoch=2**64 - 1, seq=2**64 - 1, queue_depth=2**64 - 1, capacity=0)
    yield dict(EVENT, coordinator_id="x" * 128, instance_id="é" * 64)
    yield dict(EVENT, reason="r" * 256)
    for bad in ({"version": 2}, {"version": 0}, {"level": "medium"}, {"level": ""},
                {"coordinator_id": "a.b"}, {"instance_id": "a b"}, {"coordinator_id": ""},
                {"instance_id": "x" * 129}, {"coordinator_id": ">"}, {"seq": 0},
                {"reason": "r" * 257}, {"epoch": -1}, {"seq": 1.5}, {"heartbeat_ms": 2**32},
                {"leaving": 1}, {"level": b"ok"}):
        yield dict(EVENT, **bad)


def write(target, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)


def feedback_decode():
    for e in events():
        write("feedback_decode", mp(e))
    write("feedback_decode", mp(list(EVENT.values())))  # positional (array) form
    valid = mp(EVENT)
    for data in (b"", b"\xc1", b"\x80", b"\x90", valid[:40], valid + b"\x00", b"\x91" * 64):
        write("feedback_decode", data)


SEEDS = [
    {"coordinator_id": "default", "queue_size": 800, "capacity": 1000, "level": "SOFT",
     "ts": 1_700_000_000.1234, "source": "store-py", "extra": 1},
    {"coordinator_id": "default", "queue_size": 0, "capacity": 10, "level": "ok", "ts": None,
     "reason": "level_change"},
    {"coordinator_id": "default", "queue_size": 1, "capacity": 2, "level": "HARD", "ts": 1e300},
    {"coordinator_id": "default", "queue_size": 1, "capacity": 2, "level": "ok", "ts": -1.0},
    {"coordinator_id": "a.b", "queue_size": 1, "capacity": 2, "level": "ok"},
    {"coordinator_id": "default", "queue_size": -1, "capacity": 2, "level": "ok"},
    {"coordinator_id": "default", "queue_size": 1, "capacity": 2, "level": "ok", "source": ""},
]


def http_body():
    for ct in ("application/msgpack", "application/x-msgpack"):
        for e in list(events())[:4]:
            write("http_body", ct.encode() + b"\n" + mp(e))
    full = json.dumps(dict(EVENT, heartbeat_ms=250)).encode()
    for ct in ("application/json", "Application/JSON; charset=utf-8"):
        write("http_body", ct.encode() + b"\n" + full)
        for s in SEEDS:
            write("http_body", ct.encode() + b"\n" + json.dumps(s).encode())
    for body in (b'{"version":1,"coordinator_id":"default","queue_size":1,"capacity":2,"level":"OK"}',
                 b'{"version":null}', b"[]", b"nope", b"", b'{"a":' * 40, b"\xff"):
        write("http_body", b"application/json\n" + body)
    write("http_body", b"text/plain\n" + full)
    write("http_body", full)  # no Content-Type at all
    write("http_body", b"application/msgpack\n" + full)


def settings_texts():
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        yield path.read_text()
    for path in sorted((ROOT / "deploy").glob("*/configmap.yaml")):
        for text in yaml.safe_load(path.read_text()).get("data", {}).values():
            yield text
    reference = (ROOT / "docs" / "configuration.md").read_text()
    config = reference.split("## A file with every default", 1)[1]
    yield re.search(r"```yaml\n(.*?)```", config, re.S).group(1)
    yield "feedback:\n  provider_name: ibkr\nrate_coordinator:\n  providers:\n    ibkr: {capacity: 100, refill_rate: 60, cooldown_sec: 300}\n#env\nMDP_FB_ENABLE_FEEDBACK=false\nMDP_RATE_IBKR_CAPACITY=250\nMDS_HIGH_WATERMARK=1500\nMDS_CAPACITY=2000\nMDP_FB_FLEET__FALLBACK={scale: 0.5}\nBACKFLOW_NATS__SERVERS=[nats://a:4222]\n"
    yield "#env\nMDP_RATE_POLYGON_REFILL_RATE=5\nMDP_FB_PROVIDER_NAME=polygon\n"
    yield "#env\nMDP_BOGUS=1\n"
    yield ""
    yield "coordinator: {capacity: 10, high_watermark: 8, low_watermark: 0.5}\n"
    yield "coordinator: {capacity: 1, high_watermark: 1.0, low_watermark: 0}\n"
    yield "rate_coordinator:\n  providers:\n    p: {refill_rate: .inf, cooldown_sec: .nan}\n"
    yield "rate_coordinator:\n  providers:\n    p: {refill_rate: 1e-300, cooldown_sec: 1e300, breaker_timeout_sec: 0}\n"
    yield "a: &x [1, 2]\nb: *x\n"
    yield "feedback: {unknown_key: 1}\n"
    yield "- not\n- a mapping\n"


def settings_yaml():
    for text in settings_texts():
        write("settings_yaml", text.encode())


if __name__ == "__main__":
    feedback_decode()
    http_body()
    settings_yaml()
