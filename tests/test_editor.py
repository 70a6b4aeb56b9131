"""The deployable editor: model folder contract, apply to files, size policy, exports."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from weightgen.cli.user_errors import user_errors_reported
from weightgen.editor import (
    apply_editor,
    export_model_folder,
    load_editor,
    onnx_runner,
    torchscript_runner,
    write_model_folder,
)
from weightgen.editor.model_folder import REQUIRED_CARD_FIELDS
from weightgen.editor.sizing import (
    AutoTile,
    apply_any_size,
    apply_padded,
    apply_tiled,
    attention_cost,
)
from weightgen.errors import ConfigError, OutputNotWritableError
from weightgen.gan.adapters import LoRAAdapter
from weightgen.gan.generator import E2GANGenerator
from weightgen.utils.io import CorruptFileError, sha256_file

KWARGS = {"ngf": 4, "text_dim": 8, "heads": 2}
# apply_editor's settings of conf/apply.yaml that the tests do not vary, without progress bars.
QUIET = {"alpha_background": "white", "progress": False}


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


@pytest.mark.parametrize(("change", "problem"), [
    ({"ngf": 8}, "'stem.0.weight' is (4, 3, 7, 7) in the weights but (8, 3, 7, 7) in the network"),
    ({"ngf": "4"}, "the argument 'ngf' of E2GANGenerator must be int, got '4'"),
    ({"_target_": "builtins.exec"}, "E2GANGenerator takes no argument '_target_'"),
])
def test_a_model_card_that_does_not_fit_its_weights_is_one_line_naming_it(model_dir, capsys,
                                                                          change, problem):
    """Issue 21: a card edited (or copied from another model) was a size-mismatch traceback."""
    path = model_dir / "model_card.json"
    card = json.loads(path.read_text())
    path.write_text(json.dumps(card | {"generator_kwargs": card["generator_kwargs"] | change}))
    with pytest.raises(SystemExit), user_errors_reported(debug=False):
        load_editor(model_dir)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: its generator_kwargs ")
    assert f"do not fit {model_dir / 'generator.safetensors'} (" in lines[0]
    assert problem in lines[0]
    assert lines[0].endswith("restore the folder, or write the model again with "
                             "weightgen-new-concept")


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
    report = apply_editor(editor, photos, out, **QUIET)
    assert sorted(p.name for p in report.edited) == ["a.png", "b.jpg"]
    assert sorted(p.name for p in report.failed) == ["broken.png", "notes.txt"]
    assert "not a readable image" in report.failed[photos / "broken.png"]
    edited_a = np.asarray(Image.open(out / "a.png"))
    expected = editor.edit(np.asarray(Image.open(photos / "a.png").convert("RGB")))
    np.testing.assert_array_equal(edited_a, expected)
    assert Image.open(out / "b.png").size == (16, 16)
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]

    with pytest.raises(FileExistsError, match="overwrite=true"):
        apply_editor(editor, photos, out, **QUIET)
    assert len(apply_editor(editor, photos, out, overwrite=True, **QUIET).edited) == 2
    small = apply_editor(editor, photos / "a.png", tmp_path / "small", max_side=12, **QUIET)
    assert Image.open(small.edited[photos / "a.png"]).size == (12, 8)


def test_apply_refuses_outputs_that_could_overwrite_inputs(model_dir, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    _save_png(photos / "a.png", 8, 8)
    before = (photos / "a.png").read_bytes()
    editor = load_editor(model_dir)
    for output in (photos, photos / "out"):
        with pytest.raises(ValueError, match="inside it"):
            apply_editor(editor, photos, output, **QUIET)
    with pytest.raises(ValueError, match="would overwrite the input"):
        apply_editor(editor, photos / "a.png", photos, overwrite=True, **QUIET)
    assert sorted(p.name for p in photos.iterdir()) == ["a.png"]
    assert (photos / "a.png").read_bytes() == before
    with pytest.raises(FileNotFoundError, match="does not exist"):
        apply_editor(editor, tmp_path / "nope", tmp_path / "o", **QUIET)


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
    report = apply_editor(load_editor(model_dir), photos, out, **QUIET)
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
                     **QUIET)
    assert (tmp_path / "taken").read_text() == "mine"


def test_apply_reads_16_bit_palette_and_transparent_images_right(model_dir, tmp_path, caplog):
    """Issue 21: a 16-bit PNG was edited clipped (99.8% white); alpha was dropped silently."""
    photos = tmp_path / "photos"
    photos.mkdir()
    deep = np.linspace(0, 65535, 12 * 16).round().astype(np.uint16).reshape(12, 16)
    Image.fromarray(deep).save(photos / "deep.png")
    Image.fromarray(np.zeros((12, 16), np.uint8), "P").save(photos / "flat.png")
    clear = np.zeros((12, 16, 4), np.uint8)  # fully transparent black
    Image.fromarray(clear).save(photos / "clear.png")
    editor = load_editor(model_dir)
    caplog.set_level(logging.WARNING)
    report = apply_editor(editor, photos, tmp_path / "out", **QUIET)
    assert len(report.edited) == 3 and not report.failed
    read_back = {name: np.asarray(Image.open(tmp_path / "out" / name)) for name in
                 ("deep.png", "flat.png", "clear.png")}
    grey = np.repeat(np.round(deep / 257).astype(np.uint8)[..., None], 3, axis=-1)
    np.testing.assert_array_equal(read_back["deep.png"], editor.edit(grey))
    np.testing.assert_array_equal(read_back["flat.png"], editor.edit(np.zeros((12, 16, 3), np.uint8)))
    white = np.full((12, 16, 3), 255, np.uint8)
    np.testing.assert_array_equal(read_back["clear.png"], editor.edit(white))
    assert ["composited on white" in r.getMessage() for r in caplog.records] == [True]

    refused = apply_editor(editor, photos, tmp_path / "refused",
                           **{**QUIET, "alpha_background": "refuse"})
    assert sorted(p.name for p in refused.edited) == ["deep.png", "flat.png"]
    assert "alpha_background=refuse" in refused.failed[photos / "clear.png"]


def test_attention_cost_grows_with_the_square_of_the_pixels():
    assert attention_cost(256, 256, 4) == 1
    assert attention_cost(512, 512, 4) == 16
    assert attention_cost(2000, 3000, 4) > 5000


def test_a_large_image_without_tile_is_tiled_automatically_and_says_so(model_dir, tmp_path,
                                                                        caplog):
    """Issue 21: a 3000x2000 photo ran whole for over 300 s with no word; here the threshold is
    small instead of the image large."""
    photos = tmp_path / "photos"
    photos.mkdir()
    _save_png(photos / "big.png", 40, 36)
    _save_png(photos / "big2.png", 36, 40, seed=1)
    _save_png(photos / "small.png", 16, 20, seed=2)
    editor = load_editor(model_dir)
    pixels = {p.name: np.asarray(Image.open(p)) for p in photos.iterdir()}
    caplog.set_level(logging.WARNING)
    auto = AutoTile(tile=16, above_px=24 * 24)
    apply_editor(editor, photos, tmp_path / "out", overlap=4, auto_tile=auto, **QUIET)
    edited = {name: np.asarray(Image.open(tmp_path / "out" / name)) for name in pixels}
    for name in ("big.png", "big2.png"):
        np.testing.assert_array_equal(edited[name], editor.edit(pixels[name], tile=16, overlap=4))
        assert not np.array_equal(edited[name], editor.edit(pixels[name]))
    np.testing.assert_array_equal(edited["small.png"], editor.edit(pixels["small.png"]))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "big.png is 36x40 px" in lines[0]
    assert "16 px tiles" in lines[0] and "tile=<px>" in lines[0]

    caplog.clear()
    chosen = apply_editor(editor, photos / "big.png", tmp_path / "chosen", tile=32, overlap=4,
                          auto_tile=auto, **QUIET)  # a tile given is the user's choice
    np.testing.assert_array_equal(np.asarray(Image.open(chosen.edited[photos / "big.png"])),
                                  editor.edit(pixels["big.png"], tile=32, overlap=4))
    whole = apply_editor(editor, photos / "big.png", tmp_path / "whole", **QUIET)  # auto off
    np.testing.assert_array_equal(np.asarray(Image.open(whole.edited[photos / "big.png"])),
                                  editor.edit(pixels["big.png"]))
    assert not caplog.records
    for auto, overlap, message in ((AutoTile(10, 100), 4, "auto_tile=10 must be a multiple"),
                                   (AutoTile(32, 100), 32, "larger than 4 and than tile_overlap=32"),
                                   (AutoTile(16, 0), 4, "auto_tile_above_px=0 must be a positive")):
        with pytest.raises(ConfigError, match=message):
            apply_editor(editor, photos, tmp_path / "x", overlap=overlap, auto_tile=auto, **QUIET)
    assert not (tmp_path / "x").exists()


def test_a_failed_apply_leaves_no_output_folder_behind(model_dir, tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "junk.jpg").write_bytes(b"junk")
    editor = load_editor(model_dir)
    report = apply_editor(editor, photos, tmp_path / "made" / "out", **QUIET)
    assert not report.edited and not (tmp_path / "made").exists()
    (tmp_path / "mine").mkdir()
    apply_editor(editor, photos, tmp_path / "mine", **QUIET)
    assert (tmp_path / "mine").is_dir()  # a folder the user had stays

    _save_png(photos / "a.png", 8, 8)
    monkeypatch.setattr(editor, "edit", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("x")))
    with pytest.raises(RuntimeError):
        apply_editor(editor, photos, tmp_path / "made" / "out", **QUIET)
    assert not (tmp_path / "made").exists()


def test_an_output_folder_that_cannot_be_made_is_refused_before_any_work(model_dir, tmp_path,
                                                                        monkeypatch, capsys):
    """Not even root can make a folder in /proc: the check tries instead of reading the bits."""
    from weightgen.cli.apply import main

    (tmp_path / "photos").mkdir()
    _save_png(tmp_path / "photos" / "a.png", 8, 8)
    editor = load_editor(model_dir)
    monkeypatch.setattr(editor, "edit", lambda *a, **k: pytest.fail("edited before the check"))
    with pytest.raises(OutputNotWritableError, match="output folder /proc/x/out is not writable: "
                                                     "cannot make /proc/x"):
        apply_editor(editor, tmp_path / "photos", "/proc/x/out", **QUIET)
    monkeypatch.setattr(sys, "argv", ["weightgen-apply", f"model={model_dir}",
                                      f"input={tmp_path / 'photos'}", "output=/proc/x/out"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err


def _read_only(folder):
    """``folder`` made read-only, or a skip where that does not stop this user (root)."""
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):
        folder.chmod(0o755)
        pytest.skip("this user (root) writes into a chmod 555 folder: no read-only case here")
    return folder


@pytest.mark.parametrize("output", ["locked", "locked/new"])
def test_apply_into_a_read_only_folder_is_one_line_naming_it(model_dir, tmp_path, monkeypatch,
                                                            capsys, output):
    from weightgen.cli.apply import main

    photos = tmp_path / "photos"
    photos.mkdir()
    _save_png(photos / "a.png", 8, 8)
    locked = tmp_path / "locked"
    locked.mkdir()
    _read_only(locked)
    try:
        with pytest.raises(OutputNotWritableError, match=f"output folder .*{output} is not "
                                                         f"writable: cannot (make|create)"):
            apply_editor(load_editor(model_dir), photos, tmp_path / output, **QUIET)
        monkeypatch.setattr(sys, "argv", ["weightgen-apply", f"model={model_dir}",
                                          f"input={photos}", f"output={tmp_path / output}"])
        with pytest.raises(SystemExit) as exit_info:
            main()
        err = capsys.readouterr().err
        assert exit_info.value.code == 1 and err.startswith("error: output folder")
        assert "chmod u+w" in err and "Traceback" not in err and len(err.splitlines()) == 1
    finally:
        locked.chmod(0o755)
    assert list(locked.iterdir()) == []


def test_export_into_a_read_only_model_folder_is_one_line_naming_it(model_dir, monkeypatch,
                                                                   capsys):
    from weightgen.cli.export import main

    card = (model_dir / "model_card.json").read_text()
    _read_only(model_dir)
    try:
        monkeypatch.setattr(sys, "argv", ["weightgen-export", f"model={model_dir}"])
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        model_dir.chmod(0o755)
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and len(err.splitlines()) == 1
    assert err.startswith(f"error: model folder {model_dir} is not writable") and "chmod" in err
    assert (model_dir / "model_card.json").read_text() == card


@pytest.mark.parametrize("command", ["apply", "export"])
def test_apply_and_export_set_num_threads(model_dir, tmp_path, monkeypatch, capsys, command):
    threads = torch.get_num_threads()
    (tmp_path / "photos").mkdir()
    _save_png(tmp_path / "photos" / "a.png", 8, 8)
    argv = {
        "apply": ["weightgen-apply", f"model={model_dir}", f"input={tmp_path / 'photos'}",
                  f"output={tmp_path / 'out'}", "progress=false"],
        "export": ["weightgen-export", f"model={model_dir}", "formats=[torchscript]",
                   "sizes=[16]", "repeats=1"],
    }[command]
    main = importlib.import_module(f"weightgen.cli.{command}").main
    try:
        monkeypatch.setattr(sys, "argv", [*argv, f"num_threads={threads + 1}"])
        main()
        assert torch.get_num_threads() == threads + 1
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setattr(sys, "argv", [*argv, "num_threads=0"])
    with pytest.raises(SystemExit):
        main()
    assert "error: num_threads=0 is not allowed" in capsys.readouterr().err


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
