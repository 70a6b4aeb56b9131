"""The deployable editor: model folder contract, apply to files, size policy, exports."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from weightgen.editor import (
    apply_editor,
    export_model_folder,
    load_editor,
    onnx_runner,
    torchscript_runner,
    write_model_folder,
)
from weightgen.editor.model_folder import REQUIRED_CARD_FIELDS
from weightgen.editor.sizing import apply_any_size, apply_padded, apply_tiled
from weightgen.errors import ConfigError
from weightgen.gan.adapters import LoRAAdapter
from weightgen.gan.generator import E2GANGenerator
from weightgen.utils.io import CorruptFileError, sha256_file

KWARGS = {"ngf": 4, "text_dim": 8, "heads": 2}


def _card() -> dict:
    return {
        "prompt": "a sepia photo",
        "concept_id": "sepia",
        "image_size": 64,
        "seed": 0,
        "data": {"source": "bundled", "pairs": 8},
        "metrics": {"before": {"psnr": 15.0}, "after": {"psnr": 22.0}},
        "seconds": 1.5,
        "provenance": {"base": "base.safetensors", "weight_generator": "gen.ckpt"},
    }


def _text() -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.randn(6, 8, generator=torch.Generator().manual_seed(1))
    return tokens, torch.tensor([True, True, True, False, False, False])


def _generator() -> E2GANGenerator:
    torch.manual_seed(0)
    return E2GANGenerator(**KWARGS).eval()


@pytest.fixture
def model_dir(tmp_path):
    generator = _generator()
    tokens, mask = _text()
    return write_model_folder(
        tmp_path / "model", KWARGS, generator.state_dict(), None, tokens, mask, _card()
    )


def _images(n=2, size=16, seed=0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _save_png(path, height, width, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


def test_load_editor_reproduces_generator_with_its_text(model_dir):
    editor = load_editor(model_dir)
    tokens, mask = _text()
    x = _images()
    with torch.no_grad():
        expected = _generator()(x, tokens[None].expand(2, -1, -1), mask[None].expand(2, -1))
    torch.testing.assert_close(editor.edit_tensor(x), expected)
    uint8 = editor.edit(np.zeros((16, 20, 3), np.uint8))
    assert uint8.shape == (16, 20, 3) and uint8.dtype == np.uint8
    assert editor.prompt == "a sepia photo"


def test_merged_lora_matches_base_plus_adapter(tmp_path):
    adapter = LoRAAdapter(rank=2)
    adapted = adapter.attach(_generator())
    with torch.no_grad():
        for name, param in adapted.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    tokens, mask = _text()
    x = _images()
    with torch.no_grad():
        with_adapter = adapted(x, tokens[None].expand(2, -1, -1), mask[None].expand(2, -1))
    assert not torch.allclose(
        with_adapter,
        _generator()(x, tokens[None].expand(2, -1, -1), mask[None].expand(2, -1)),
        atol=1e-3,
    )
    folder = write_model_folder(
        tmp_path / "m",
        KWARGS,
        adapter.merged_state_dict(adapted),
        adapter.state(adapted),
        tokens,
        mask,
        _card(),
    )
    merged = load_editor(folder).edit_tensor(x)
    torch.testing.assert_close(merged, with_adapter, atol=1e-5, rtol=1e-4)
    assert (folder / "adapter.safetensors").is_file()


def test_model_card_records_contract_fields_and_file_hashes(model_dir):
    card = json.loads((model_dir / "model_card.json").read_text())
    assert set(REQUIRED_CARD_FIELDS) <= set(card)
    assert card["generator_kwargs"] == KWARGS and card["format_version"] == 1
    assert set(card["files"]) == {"generator.safetensors", "text.safetensors"}
    for name, digest in card["files"].items():
        assert sha256_file(model_dir / name) == digest


def test_damaged_or_missing_files_are_named(model_dir):
    path = model_dir / "generator.safetensors"
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
    with pytest.raises(CorruptFileError, match="generator.safetensors.*does not match"):
        load_editor(model_dir)
    path.write_bytes(original)
    (model_dir / "text.safetensors").unlink()
    with pytest.raises(CorruptFileError, match="text.safetensors is missing"):
        load_editor(model_dir)
    (model_dir / "model_card.json").unlink()
    with pytest.raises(CorruptFileError, match="model_card.json is missing"):
        load_editor(model_dir)


def test_write_refuses_bad_input_and_nonempty_folder(model_dir):
    state, (tokens, mask) = _generator().state_dict(), _text()
    with pytest.raises(FileExistsError, match="not empty"):
        write_model_folder(model_dir, KWARGS, state, None, tokens, mask, _card())
    with pytest.raises(ValueError, match="prompt is empty"):
        write_model_folder(
            model_dir.parent / "x", KWARGS, state, None, tokens, mask, {**_card(), "prompt": " "}
        )
    with pytest.raises(ValueError, match="lacks \\['seed'\\]"):
        card = {k: v for k, v in _card().items() if k != "seed"}
        write_model_folder(model_dir.parent / "x", KWARGS, state, None, tokens, mask, card)
    with pytest.raises(ValueError, match="do not fit"):
        write_model_folder(
            model_dir.parent / "x", {**KWARGS, "ngf": 8}, state, None, tokens, mask, _card()
        )
    assert not (model_dir.parent / "x").exists()
    (model_dir / "model.onnx").write_bytes(b"stale export of the old model")
    write_model_folder(model_dir, KWARGS, state, None, tokens, mask, _card(), overwrite=True)
    assert not (model_dir / "model.onnx").exists()
    load_editor(model_dir)


def test_padding_and_tiling_preserve_size_and_blend_exactly():
    x = _images(n=1, size=40)[..., :37, :30]
    identity = lambda t: t  # noqa: E731
    torch.testing.assert_close(apply_padded(identity, x, 4), x)
    padded = apply_padded(lambda t: torch.full_like(t, t.shape[-1] % 4 + t.shape[-2] % 4), x, 4)
    assert torch.all(padded == 0)  # the function only ever saw multiples of 4
    torch.testing.assert_close(apply_tiled(lambda t: 2 * t, x, tile=16, overlap=4), 2 * x)


def test_tiled_edit_equals_whole_edit_when_one_tile_covers(model_dir):
    editor = load_editor(model_dir)
    x = _images(n=1, size=24)
    whole = editor.edit_tensor(x)
    torch.testing.assert_close(editor.edit_tensor(x, tile=32, overlap=8), whole)
    tiled = editor.edit_tensor(x, tile=12, overlap=4)
    assert tiled.shape == x.shape and not torch.allclose(tiled, whole)
    with pytest.raises(ValueError, match="multiple of the generator stride"):
        apply_any_size(lambda t: t, x, 4, tile=10)


def test_apply_edits_good_files_and_reports_bad_ones(model_dir, tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "edited"
    photos.mkdir()
    _save_png(photos / "a.png", 21, 30)
    _save_png(photos / "b.jpg", 16, 16, seed=1)
    (photos / "broken.png").write_bytes(b"\x89PNG not really")
    (photos / "notes.txt").write_text("not an image")
    editor = load_editor(model_dir)
    report = apply_editor(editor, photos, out, progress=False)
    assert sorted(p.name for p in report.edited) == ["a.png", "b.jpg"]
    assert sorted(p.name for p in report.failed) == ["broken.png", "notes.txt"]
    assert "not a readable image" in report.failed[photos / "broken.png"]
    edited_a = np.asarray(Image.open(out / "a.png"))
    expected = editor.edit(np.asarray(Image.open(photos / "a.png").convert("RGB")))
    np.testing.assert_array_equal(edited_a, expected)
    assert Image.open(out / "b.png").size == (16, 16)
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]

    with pytest.raises(FileExistsError, match="overwrite=true"):
        apply_editor(editor, photos, out, progress=False)
    assert len(apply_editor(editor, photos, out, overwrite=True, progress=False).edited) == 2
    small = apply_editor(editor, photos / "a.png", tmp_path / "small", max_side=12, progress=False)
    assert Image.open(small.edited[photos / "a.png"]).size == (12, 8)


def test_apply_refuses_outputs_that_could_overwrite_inputs(model_dir, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    _save_png(photos / "a.png", 8, 8)
    before = (photos / "a.png").read_bytes()
    editor = load_editor(model_dir)
    for output in (photos, photos / "out"):
        with pytest.raises(ValueError, match="inside it"):
            apply_editor(editor, photos, output, progress=False)
    with pytest.raises(ValueError, match="would overwrite the input"):
        apply_editor(editor, photos / "a.png", photos, overwrite=True, progress=False)
    assert sorted(p.name for p in photos.iterdir()) == ["a.png"]
    assert (photos / "a.png").read_bytes() == before
    with pytest.raises(FileNotFoundError, match="does not exist"):
        apply_editor(editor, tmp_path / "nope", tmp_path / "o", progress=False)


def test_export_parity_and_latency_in_card(model_dir):
    card = export_model_folder(model_dir, sizes=(16, 32), repeats=1)
    editor = load_editor(model_dir)
    x = _images(n=2, size=24, seed=3)[..., :20]  # another size than traced at, non-square
    expected = editor.edit_tensor(x).numpy()
    for runtime, run in (
        ("onnx", onnx_runner(model_dir / "model.onnx", threads=1)),
        ("torchscript", torchscript_runner(model_dir / "model.torchscript.pt")),
    ):
        entry = card["exports"][runtime]
        assert sha256_file(model_dir / entry["file"]) == entry["sha256"]
        assert entry["max_abs_diff_vs_torch"] <= entry["tolerance"] == 1e-4
        assert np.abs(run(x.numpy()) - expected).max() <= 1e-4
    seconds = card["latency"]["seconds_per_image"]
    assert set(seconds) == {"torch", "onnxruntime", "torchscript"}
    assert all(set(v) == {"16x16", "32x32"} and min(v.values()) > 0 for v in seconds.values())
    assert json.loads((model_dir / "model_card.json").read_text())["latency"] == card["latency"]
    load_editor(model_dir)  # exports are beside the core files, which still verify


def test_apply_cli_reports_and_exits_nonzero_when_nothing_edited(
    model_dir, tmp_path, monkeypatch, capsys
):
    from weightgen.cli.apply import main

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "junk.jpg").write_bytes(b"junk")
    argv = [
        "weightgen-apply",
        f"model={model_dir}",
        f"input={photos}",
        f"output={tmp_path / 'out'}",
        "progress=false",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    assert "junk.jpg" in capsys.readouterr().out
    _save_png(photos / "ok.png", 8, 12)
    main()
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{\n") :])
    assert summary["edited"] == 1 and list(summary["failed"]) == [str(photos / "junk.jpg")]
    assert (tmp_path / "out" / "ok.png").is_file()


def test_apply_skips_and_reports_images_too_small_to_edit(model_dir, tmp_path):
    """Issue 14, item 5: a 4x4 image aborted the batch with a torch ValueError."""
    photos, out = tmp_path / "photos", tmp_path / "edited"
    photos.mkdir()
    _save_png(photos / "a.png", 8, 8)
    _save_png(photos / "b_tiny.png", 4, 4)
    _save_png(photos / "c_tiny.png", 2, 3)
    _save_png(photos / "d.png", 4, 5)  # one side over 4 px is enough
    report = apply_editor(load_editor(model_dir), photos, out, progress=False)
    assert sorted(p.name for p in report.edited) == ["a.png", "d.png"]
    assert sorted(p.name for p in report.failed) == ["b_tiny.png", "c_tiny.png"]
    assert "4x4 px is too small to edit" in report.failed[photos / "b_tiny.png"]
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "d.png"]


def test_a_tile_of_the_stride_is_refused(model_dir):
    with pytest.raises(ConfigError, match="tile=4 must be a multiple of the generator stride 4 "
                                          "larger than 4"):
        load_editor(model_dir).edit(np.zeros((16, 16, 3), np.uint8), tile=4)


def test_apply_refuses_an_output_below_a_file(model_dir, tmp_path):
    (tmp_path / "photos").mkdir()
    _save_png(tmp_path / "photos" / "a.png", 8, 8)
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(ConfigError, match="taken is a file, not a folder"):
        apply_editor(load_editor(model_dir), tmp_path / "photos", tmp_path / "taken" / "out",
                     progress=False)
    assert (tmp_path / "taken").read_text() == "mine"


def test_apply_never_writes_into_the_model_folder(model_dir, tmp_path, monkeypatch, capsys):
    """Issue 21: an input named like a model file (before_after.png) with overwrite=true would
    have replaced the folder's own file."""
    from weightgen.cli.apply import main

    (tmp_path / "photos").mkdir()
    _save_png(tmp_path / "photos" / "before_after.png", 8, 8)
    before = {path.name: path.read_bytes() for path in model_dir.iterdir()}
    for output in (model_dir, model_dir / "edited"):
        monkeypatch.setattr(sys, "argv", ["weightgen-apply", f"model={model_dir}",
                                          f"input={tmp_path / 'photos'}", f"output={output}",
                                          "overwrite=true", "progress=false"])
        with pytest.raises(SystemExit) as stop:
            main()
        assert stop.value.code == 1
        assert capsys.readouterr().err == (f"error: output={output} is the model folder or inside "
                                           f"it: its files are the editor's own; choose another "
                                           f"output folder\n")
    assert {path.name: path.read_bytes() for path in model_dir.iterdir()} == before
