"""Read offline W&B runs back (what `wandb sync` would upload) to check what a stage logged.

An offline run keeps everything in ``run-<id>.wandb``: protobuf ``Record`` messages
(``wandb.proto``) in LevelDB's log format, after a 7-byte W&B header. wandb 0.2x+ writes it from
its Go core and ships no Python reader, so the format's ~20 lines are here.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import wandb
from wandb.proto import wandb_internal_pb2

WANDB_HEADER = 7          # ":W&B", magic (2 bytes), version (1 byte)
BLOCK = 32768             # LevelDB log block
CHUNK_HEADER = 7          # crc32c (4), length (2), type (1)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path):
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    position, chunks = WANDB_HEADER, []
    while position + CHUNK_HEADER <= len(data):
        left_in_block = BLOCK - position % BLOCK
        if left_in_block < CHUNK_HEADER:  # block trailer: zero padding
            position += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + CHUNK_HEADER])
        position += CHUNK_HEADER
        chunks.append(data[position : position + length])
        position += length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(chunks))
            chunks = []
            yield record


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


@dataclass
class OfflineRun:
    folder: Path
    name: str = ""
    group: str = ""
    job_type: str = ""
    config: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)  # key -> last logged value (media: its fields)
    summary: dict = field(default_factory=dict)

    def media(self, key: str) -> list[Path]:
        """The files of the image(s) or table last logged under ``key``."""
        value = self.history[key]
        names = value["filenames"] if "filenames" in value else [value["path"]]
        return [self.folder / "files" / name for name in names]


def read_run(folder: Path) -> OfflineRun:
    run = OfflineRun(folder)
    for record in records(next(folder.glob("run-*.wandb"))):
        kind = record.WhichOneof("record_type")
        if kind == "run":  # the first holds the run's identity; later ones only what changed
            run.name = run.name or record.run.display_name
            run.group = run.group or record.run.run_group
            run.job_type = run.job_type or record.run.job_type
            run.config |= {i.key: json.loads(i.value_json) for i in record.run.config.update}
        elif kind == "history":
            for item in record.history.item:
                value = json.loads(item.value_json)
                if len(item.nested_key) > 1:  # a field of a media value (image, table)
                    media = run.history.setdefault("/".join(item.nested_key[:-1]), {})
                    media[item.nested_key[-1]] = value
                else:
                    run.history[_key(item)] = value
        elif kind == "summary":
            run.summary |= {_key(i): json.loads(i.value_json) for i in record.summary.update}
    return run


def offline_runs(logs_dir: Path) -> list[OfflineRun]:
    """Every offline run under a run's logs folder, oldest first.

    A finished run's last records are written by W&B's service process; shutting it down
    (``wandb.teardown``) waits until they are on disk.
    """
    wandb.teardown()
    return [read_run(folder) for folder in sorted((Path(logs_dir) / "wandb").glob("offline-run-*"))]
