"""Export a concept editor (adapter merged, text baked in) to ONNX and TorchScript.

What works on torch 2.13 CPU (measured): the legacy TorchScript-based ONNX exporter
(``dynamo=False``) exports the generator as is, ``scaled_dot_product_attention`` with its bool
text mask included, with dynamic batch, height and width. The default dynamo exporter needs
``onnxscript`` (the ``export`` extra), which the core install does not have. ``torch.jit.trace``
gives a TorchScript module that also generalises over batch and size.

Each export is checked before it is written: onnxruntime's (or the loaded TorchScript module's)
output must match eager torch within ``tolerance`` (max absolute difference on [-1,1] outputs) on
square and non-square random images; a mismatch is an error and no file is written.

The exported graphs take ``image`` float32 [B,3,H,W] in [-1,1] with H and W multiples of 4 and
return ``edited`` of the same shape; pad and tile as ``weightgen.editor.sizing`` does.
"""

from __future__ import annotations

import io
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from weightgen.editor.concept_editor import ConceptEditor, load_editor
from weightgen.editor.model_folder import ONNX_FILE, TORCHSCRIPT_FILE, read_card, update_card
from weightgen.errors import ConfigError, MissingDependencyError, OutputNotWritableError
from weightgen.utils.io import atomic_write_bytes, sha256_bytes
from weightgen.utils.paths import unwritable_reason

ONNX_OPSET = 17
DEFAULT_TOLERANCE = 1e-4
FORMATS = ("onnx", "torchscript")
Runner = Callable[[np.ndarray], np.ndarray]


def _example(size: int, batch: int = 1, width: int | None = None, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, width or size, generator=generator) * 2 - 1


@contextmanager
def _tracing(editor: ConceptEditor):
    """The editor's network on the CPU, without the warnings every trace of it raises needlessly.

    The stride check becomes a trace-time constant (the exported graphs document the
    multiple-of-4 rule instead), instance norm is exported "in training mode" (it keeps no
    running statistics, so both modes compute the same), and the legacy exporter announces its
    deprecation.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*instance_norm.*")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        try:
            yield editor.module().cpu()
        finally:
            editor.module().to(editor.device)


def torch_runner(editor: ConceptEditor) -> Runner:
    def run(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return editor.module()(torch.from_numpy(images).to(editor.device)).cpu().numpy()

    return run


def onnx_runner(model: bytes | str | Path, threads: int | None = None) -> Runner:
    """An onnxruntime CPU session over the model (bytes or path) as a numpy -> numpy function."""
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise MissingDependencyError(
            "onnxruntime is not installed; `make install` adds it (the export extra)"
        ) from err

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return lambda images: session.run(None, {"image": images})[0]


def torchscript_runner(model: bytes | str | Path) -> Runner:
    source = io.BytesIO(model) if isinstance(model, bytes) else str(model)
    module = torch.jit.load(source, map_location="cpu").eval()

    def run(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(images)).numpy()

    return run


def parity_error(reference: Runner, candidate: Runner, size: int) -> float:
    """Max |difference| over a batch of two square images and one image twice as wide."""
    inputs = [_example(size, batch=2), _example(size, width=2 * size, seed=1)]
    return max(float(np.abs(reference(x.numpy()) - candidate(x.numpy())).max()) for x in inputs)


def _checked(data: bytes, path: Path, error: float, tolerance: float, fmt: str) -> str:
    if not error <= tolerance:
        raise RuntimeError(
            f"{fmt} export differs from torch by {error:.2e} > tolerance {tolerance:.0e}; "
            f"nothing written to {path}"
        )
    atomic_write_bytes(path, data)
    return sha256_bytes(data)


def export_onnx(
    editor: ConceptEditor,
    path: str | Path,
    size: int = 64,
    tolerance: float = DEFAULT_TOLERANCE,
    opset: int = ONNX_OPSET,
) -> dict:
    """Export to ONNX (traced at ``size``, dynamic batch/height/width), check parity, write."""
    buffer = io.BytesIO()
    with _tracing(editor) as module:
        torch.onnx.export(
            module,
            (_example(size),),
            buffer,
            dynamo=False,
            input_names=["image"],
            output_names=["edited"],
            dynamic_axes={
                name: {0: "batch", 2: "height", 3: "width"} for name in ("image", "edited")
            },
            opset_version=opset,
        )
    data = buffer.getvalue()
    error = parity_error(torch_runner(editor), onnx_runner(data), size)
    sha = _checked(data, Path(path), error, tolerance, "ONNX")
    return {
        "file": Path(path).name,
        "sha256": sha,
        "opset": opset,
        "traced_at": size,
        "max_abs_diff_vs_torch": error,
        "tolerance": tolerance,
    }


def export_torchscript(
    editor: ConceptEditor, path: str | Path, size: int = 64, tolerance: float = DEFAULT_TOLERANCE
) -> dict:
    """Export with ``torch.jit.trace`` at ``size``, check parity, write."""
    buffer = io.BytesIO()
    with _tracing(editor) as module:
        torch.jit.save(torch.jit.trace(module, (_example(size),)), buffer)
    data = buffer.getvalue()
    error = parity_error(torch_runner(editor), torchscript_runner(data), size)
    sha = _checked(data, Path(path), error, tolerance, "TorchScript")
    return {
        "file": Path(path).name,
        "sha256": sha,
        "traced_at": size,
        "max_abs_diff_vs_torch": error,
        "tolerance": tolerance,
    }


def seconds_per_image(
    runners: dict[str, Runner], sizes: Sequence[int], repeats: int = 5
) -> dict[str, dict[str, float]]:
    """Median seconds for one [1,3,s,s] image per runtime and size, after one warm-up each.

    Runtimes take turns within every repeat, so load from other processes on a shared machine
    falls on all of them alike instead of on whichever happened to run then.
    """
    times: dict[str, dict[str, list[float]]] = {name: {} for name in runners}
    for size in sizes:
        image = _example(size).numpy()
        for run in runners.values():
            run(image)
        for _ in range(repeats):
            for name, run in runners.items():
                start = time.perf_counter()
                run(image)
                times[name].setdefault(f"{size}x{size}", []).append(time.perf_counter() - start)
    return {
        name: {key: statistics.median(values) for key, values in per_size.items()}
        for name, per_size in times.items()
    }


def cpu_description() -> str:
    """The CPU model name (Linux), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def export_model_folder(
    folder: str | Path,
    formats: Sequence[str] = FORMATS,
    sizes: Sequence[int] = (64, 256),
    tolerance: float = DEFAULT_TOLERANCE,
    repeats: int = 5,
    threads: int | None = None,
) -> dict:
    """Export a verified model folder, measure latency per image, record both in its card.

    ``sizes[0]`` is the size traced at and checked for parity; latency is measured at every size
    for eager torch and each exported format, batch 1, all on ``threads`` CPU threads (default:
    torch's current setting). The card's ``latency`` is replaced, so its numbers always come from
    one measurement on one machine. A folder this user cannot write to is refused before any
    export (``OutputNotWritableError``).
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ConfigError(f"formats={list(formats)}: choose from {list(FORMATS)}")
    bad_sizes = [s for s in sizes if s <= 0 or s % 4]
    if bad_sizes or not sizes:
        raise ConfigError(f"sizes={list(sizes)}: need positive multiples of the generator stride 4")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads={threads}: need at least 1 (or null for torch's default)")
    folder = Path(folder)
    editor = load_editor(folder)
    reason = unwritable_reason(folder)
    if reason is not None:
        raise OutputNotWritableError(
            f"model folder {folder} is not writable: {reason}; the exports and the updated "
            f"model card are written into it: make it writable (e.g. chmod u+w on it), or "
            f"copy the folder somewhere you can write to and export the copy"
        )
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads or previous_threads)
    try:
        exports, runners = {}, {"torch": torch_runner(editor)}
        if "onnx" in formats:
            exports["onnx"] = export_onnx(editor, folder / ONNX_FILE, sizes[0], tolerance)
            runners["onnxruntime"] = onnx_runner(folder / ONNX_FILE)
        if "torchscript" in formats:
            exports["torchscript"] = export_torchscript(
                editor, folder / TORCHSCRIPT_FILE, sizes[0], tolerance
            )
            runners["torchscript"] = torchscript_runner(folder / TORCHSCRIPT_FILE)
        latency = {
            "cpu": cpu_description(),
            "threads": torch.get_num_threads(),
            "batch": 1,
            "seconds_per_image": seconds_per_image(runners, sizes, repeats),
        }
    finally:
        torch.set_num_threads(previous_threads)
    exports = {**read_card(folder).get("exports", {}), **exports}
    return update_card(folder, exports=exports, latency=latency)
