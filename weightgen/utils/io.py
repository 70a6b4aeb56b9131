"""Atomic, verifiable file I/O: artifacts are never half-written and a bad file is never zeros."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from weightgen.errors import CorruptFileError

PathLike = str | os.PathLike


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers see old or new, never half.

    The file gets the usual permissions (0o666 less the umask), not mkstemp's private 0o600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save_figure(figure, path: PathLike, dpi: int = 120) -> None:
    """A matplotlib figure as PNG, written atomically like every other artifact."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_write_jsonl(path: PathLike, rows: Iterable[Mapping]) -> None:
    atomic_write_text(path, "".join(json.dumps(dict(r), sort_keys=True) + "\n" for r in rows))


def read_jsonl(path: PathLike) -> list[dict]:
    """Read a JSONL file; a malformed line is an error that names the file and line."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise CorruptFileError(
                    f"{path}:{number}: not valid JSON ({err.msg}); fix or delete that line"
                ) from err
    return rows


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_save_safetensors(
    tensors: Mapping[str, torch.Tensor], path: PathLike, metadata: Mapping[str, str] | None = None
) -> str:
    """Save tensors atomically; returns the file's sha256 so a manifest can record it."""
    data = save(
        {k: v.detach().contiguous().cpu() for k, v in tensors.items()},
        metadata=dict(metadata) if metadata else None,
    )
    atomic_write_bytes(path, data)
    return sha256_bytes(data)


def load_safetensors(path: PathLike, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Load a safetensors file, verifying its checksum; any damage is an error naming the path."""
    path = Path(path)
    if not path.is_file():
        raise CorruptFileError(f"{path}: file is missing; rebuild it (the build resumes)")
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise CorruptFileError(
                f"{path}: sha256 {actual[:12]}... does not match the manifest's "
                f"{expected_sha256[:12]}...; the file is corrupted: delete it and rerun the build"
            )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CorruptFileError(
            f"{path}: not a readable safetensors file ({err}); delete it and rerun the build"
        ) from err
