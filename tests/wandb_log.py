"""Read a W&B offline run (``run-*.wandb``) back with the W&B SDK's own record schema.

The file is a LevelDB-style log (a 7-byte ``:W&B`` header, then 32 KiB blocks of framed
chunks) of ``wandb.proto.wandb_internal_pb2.Record`` messages; current SDKs write it from
their Go core and ship no Python reader, so the framing is undone here and every record is
parsed with the SDK's protobuf classes.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32768
HEADER = struct.Struct("<4sHB")  # ident, magic, version
CHUNK = struct.Struct("<IHB")  # crc32c, length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[pb.Record]:
    """The log's whole records; one W&B's core is still writing is left for the next read."""
    data = path.read_bytes()
    ident, magic, _ = HEADER.unpack_from(data, 0)
    assert ident == b":W&B" and magic == 0xBEE1, "not a W&B transaction log"
    pos, out, parts = HEADER.size, [], b""
    while pos + CHUNK.size <= len(data):
        room = BLOCK - pos % BLOCK
        if room < CHUNK.size:  # block trailer: zero padding
            pos += room
            continue
        _, length, kind = CHUNK.unpack_from(data, pos)
        if kind == 0 and length == 0:
            pos += room
            continue
        if pos + CHUNK.size + length > len(data):
            break  # the writer is still on this chunk: the records before it are whole
        payload = data[pos + CHUNK.size : pos + CHUNK.size + length]
        pos += CHUNK.size + length
        parts = payload if kind in (FULL, FIRST) else parts + payload
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(parts)
            out.append(record)
            parts = b""
    return out


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


@dataclass
class OfflineRun:
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    name: str = ""


def read_offline_run(run_dir: Path) -> OfflineRun:
    (log,) = run_dir.glob("run-*.wandb")
    run = OfflineRun()
    for r in records(log):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            run.group, run.job_type, run.tags, run.name = (
                r.run.run_group,
                r.run.job_type,
                list(r.run.tags),
                r.run.display_name,
            )
            for item in r.run.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in r.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            run.history.append({_key(i): json.loads(i.value_json) for i in r.history.item})
        elif kind == "summary":
            for item in r.summary.update:
                run.summary[_key(item)] = json.loads(item.value_json)
    return run
