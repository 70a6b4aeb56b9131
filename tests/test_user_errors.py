"""User errors end in one line and exit status 1; nothing is written (issue 14, items 6-8).

The console scripts run for real in a subprocess: Hydra's own handling (its traceback printer,
the run folder it makes before the task) is part of what is under test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import compose_config
from hydra.utils import instantiate

from weightgen.cli.run_folder import RunFolderCheck, make_run_folder
from weightgen.cli.user_errors import user_errors_reported
from weightgen.errors import ConfigError, MissingInputError, OutputExistsError
from weightgen.stages.generate import checked_out_file, generate_adapter_file
from weightgen.stages.workspace import Workspace

BIN = Path(sys.executable).parent
TOP_LEVEL_CONFIGS = ("weightgen", "generate", "apply", "export", "finetune", "new_concept")


def run_cli(script: str, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / script), *args], cwd=cwd, capture_output=True, text=True,
                          env=os.environ | {"OMP_NUM_THREADS": "1"} | env, timeout=300)


def generate_into_a_folder(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    out = tmp_path / "existing"
    out.mkdir(exist_ok=True)
    return run_cli("weightgen-generate", "prompt=a sepia photo", f"out={out}",
                   f"paths.artifacts={tmp_path / 'artifacts'}", "logger=none", *extra,
                   cwd=tmp_path)


@pytest.mark.slow  # a console script in a subprocess
def test_a_user_error_is_one_line_on_stderr_and_exit_status_1(tmp_path):
    """Item 8 (and 7: out= an existing folder was a raw IsADirectoryError)."""
    done = generate_into_a_folder(tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: out={tmp_path / 'existing'} is a folder; give the adapter file's path, e.g. "
        f"out={tmp_path / 'existing' / 'adapter.safetensors'}"
    ]
    assert list((tmp_path / "existing").iterdir()) == []  # nothing written into it


def test_debug_true_shows_the_traceback(tmp_path, monkeypatch, capsys):
    """The command's own main in this process (the console script's wiring is the test above)."""
    from weightgen.cli.generate import main

    (tmp_path / "existing").mkdir()
    monkeypatch.setattr(sys, "argv", ["weightgen-generate", "prompt=a sepia photo",
                                      f"out={tmp_path / 'existing'}",
                                      f"paths.artifacts={tmp_path / 'artifacts'}", "logger=none",
                                      "debug=true"])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ConfigError" in err
    assert "is a folder; give the adapter file's path" in err


def test_hydra_full_error_lets_the_error_through(monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigError, match="bad"), user_errors_reported(debug=False):
        raise ConfigError("bad")


def test_a_config_value_refused_inside_hydra_instantiate_is_one_line_too(capsys):
    """Hydra wraps a constructor's error in InstantiationException; the user error is reported."""
    tokenizer = {"_target_": "weightgen.weights.tokenizer.BlockTokenizer", "block_size": -1}
    with pytest.raises(SystemExit) as stop, user_errors_reported(debug=False):
        instantiate(tokenizer)
    assert stop.value.code == 1
    assert capsys.readouterr().err == "error: tokenizer.block_size must be a positive int, got -1\n"


def test_other_exceptions_keep_their_traceback():
    with pytest.raises(KeyError), user_errors_reported(debug=False):
        raise KeyError("a bug, not a user error")


@pytest.mark.parametrize("name", TOP_LEVEL_CONFIGS)
def test_every_top_level_config_has_the_debug_switch_off(name):
    assert compose_config([], name).debug is False
    assert compose_config(["debug=true"], name).debug is True


def test_an_artifacts_root_that_is_a_file_is_one_clear_error(tmp_path):
    """Item 6: WEIGHTGEN_ARTIFACTS=<a file> was a raw NotADirectoryError."""
    root = tmp_path / "not-a-folder"
    root.write_text("mine")
    done = run_cli("weightgen-pairs", "logger=none", cwd=tmp_path, WEIGHTGEN_ARTIFACTS=str(root))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: the artifacts root {root} (WEIGHTGEN_ARTIFACTS")
    assert f"{root} is a file, not a folder" in line
    assert "point WEIGHTGEN_ARTIFACTS (or paths.artifacts=...) at a writable folder" in line
    assert root.read_text() == "mine"


def test_an_artifacts_root_where_no_folder_can_be_made_names_the_fix(tmp_path):
    """Item 6: WEIGHTGEN_ARTIFACTS=/proc/x gave nine chained tracebacks."""
    with pytest.raises(ConfigError, match=r"the artifacts root /proc/x .*making it failed .*"
                                          r"point WEIGHTGEN_ARTIFACTS"):
        make_run_folder("/proc/x/run", "/proc/x")
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(ConfigError, match=rf"paths.run_dir={blocked / 'run'} cannot be made: "
                                          rf"{blocked} is a file.*point paths.run_dir at"):
        make_run_folder(blocked / "run", tmp_path / "artifacts")
    assert make_run_folder(tmp_path / "artifacts" / "run", tmp_path / "artifacts").is_dir()


def test_a_multirun_checks_the_artifacts_root_before_its_jobs(tmp_path, capsys):
    root = tmp_path / "file"
    root.write_text("")
    cfg = compose_config([f"paths.artifacts={root}"])
    with pytest.raises(SystemExit) as stop:
        RunFolderCheck().on_multirun_start(cfg)
    assert stop.value.code == 1
    assert "is a file, not a folder" in capsys.readouterr().err


def test_generate_checks_out_before_any_work(tmp_path):
    """Item 7: out= is checked before the generator is loaded (there is none here)."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=rf"out={blocker / 'a.safetensors'}: .* is a file"):
        checked_out_file(blocker / "a.safetensors", False, {})
    cfg = compose_config([f"paths.artifacts={tmp_path}", "prompt=x", f"out={tmp_path}"], "generate")
    with pytest.raises(ConfigError, match="is a folder"):
        generate_adapter_file(Workspace(cfg))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def generate_workspace(artifacts: Path, out: Path, *overrides: str) -> Workspace:
    return Workspace(compose_config([f"paths.artifacts={artifacts}", "prompt=x", f"out={out}",
                                     *overrides], "generate"))


def test_generate_refuses_an_existing_out_unless_overwrite_is_true(tmp_path):
    """Issue 21: out= an existing file was overwritten without a word."""
    out = tmp_path / "mine.safetensors"
    out.write_bytes(b"the user's own file")
    ws = generate_workspace(tmp_path / "artifacts", out)
    with pytest.raises(OutputExistsError, match=rf"out={out} exists already; nothing was written: "
                                                r"pass overwrite=true to replace it"):
        generate_adapter_file(ws)
    # With overwrite=true the check passes: the next step (loading the generator) is what fails.
    with pytest.raises(MissingInputError, match="no weight generator"):
        generate_adapter_file(generate_workspace(tmp_path / "artifacts", out, "overwrite=true"))
    assert out.read_bytes() == b"the user's own file"


@pytest.mark.parametrize(("inside", "key"), [("base/generator.safetensors", "paths.base_dir"),
                                             ("generator/denoiser.safetensors",
                                              "paths.generator_dir"),
                                             ("weights/new.safetensors", "paths.weights_dir"),
                                             ("adapter.safetensors", "paths.run_dir")])
def test_generate_never_writes_into_the_runs_own_folders(tmp_path, inside, key):
    """Not even with overwrite=true, nor through ``..`` or a link to the run folder."""
    artifacts = tmp_path / "artifacts"
    run_file = artifacts / "default" / inside
    run_file.parent.mkdir(parents=True)
    run_file.write_bytes(b"the run's artifact")
    (tmp_path / "link").symlink_to(artifacts / "default")
    for out in (run_file, tmp_path / "x" / ".." / "artifacts" / "default" / inside,
                tmp_path / "link" / inside):
        ws = generate_workspace(artifacts, out, "overwrite=true")
        with pytest.raises(ConfigError) as err:
            generate_adapter_file(ws)
        assert str(err.value).startswith(f"out={out} is inside the run's {key} (")
        assert "never an output, not even with overwrite=true" in str(err.value)
    assert run_file.read_bytes() == b"the run's artifact"
