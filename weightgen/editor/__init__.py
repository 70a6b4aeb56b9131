"""The deployable editor: a model folder per concept, applied to images, exported to ONNX."""

from weightgen.editor.apply_files import ApplyReport, apply_editor
from weightgen.editor.concept_editor import BakedTextGenerator, ConceptEditor, load_editor
from weightgen.editor.export import (
    export_model_folder,
    export_onnx,
    export_torchscript,
    onnx_runner,
    torchscript_runner,
)
from weightgen.editor.model_folder import read_model_folder, write_model_folder

__all__ = [
    "ApplyReport",
    "BakedTextGenerator",
    "ConceptEditor",
    "apply_editor",
    "export_model_folder",
    "export_onnx",
    "export_torchscript",
    "load_editor",
    "onnx_runner",
    "read_model_folder",
    "torchscript_runner",
    "write_model_folder",
]
