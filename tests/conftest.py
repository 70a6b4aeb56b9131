"""Shared test set-up: one torch thread (tiny tensors; no oversubscription when jobs share cores),
and the fixtures several test files use."""

import os

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import torch  # noqa: E402

torch.set_num_threads(1)

import shutil  # noqa: E402

import pytest  # noqa: E402
from helpers import photos_loaded_once, run_workspace, tiny_workspace  # noqa: E402

# Fixtures that build a trained toy run (pairs, base, adapters, weight generator): tens of seconds
# once, so every test that uses one is `slow` (`make test-fast` leaves them out). The store alone
# (`tiny_store`) takes a few seconds and serves fast tests too.
SLOW_FIXTURES = {"tiny_run", "flow_run"}
# The weight generator with example pairs of ``examples_run``.
EXAMPLES = ["diffusion.examples.k=2", "diffusion.examples.bank=4", "diffusion.steps=20",
            "diffusion.val_every=20"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def photos_once():
    """The bundled photos decoded once for every Workspace of a test (each load takes 2-3 s)."""
    with photos_loaded_once():
        yield


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Built once per session: the tiny config's pairs, base and adapters (``weightgen-dataset``,
    ``builder.stage=all``), the one build every toy run of the suite starts from.

    ``{"artifacts": Path, "dataset": summary}``. Tests must not write into it: copy the folder
    (``shutil.copytree``) to change or extend it.
    """
    from weightgen.stages.dataset import build_weight_dataset

    artifacts = tmp_path_factory.mktemp("tiny_store")
    with photos_loaded_once():
        dataset = build_weight_dataset(tiny_workspace(artifacts))
    return {"artifacts": artifacts, "dataset": dataset}


@pytest.fixture(scope="session")
def tiny_run(tiny_store: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Built once per session: a copy of ``tiny_store`` with a trained weight generator.

    ``{"artifacts": Path, "dataset": summary, "generator": summary}``. Tests must not write into
    it: point ``paths.bench_dir`` / ``paths.generator_dir`` / ``out`` elsewhere.
    """
    from weightgen.stages.train_generator import train_weight_generator

    artifacts = tmp_path_factory.mktemp("tiny_trained_run")
    shutil.copytree(tiny_store["artifacts"], artifacts, dirs_exist_ok=True)
    generator = train_weight_generator(run_workspace(artifacts))
    return {"artifacts": artifacts, "dataset": tiny_store["dataset"], "generator": generator}


@pytest.fixture(scope="session")
def examples_run(tiny_run, tmp_path_factory) -> dict:
    """A generator with example pairs trained on the tiny run, in its own folder (its bench
    writes under it): what the examples inits, their controls and the choice on the pairs read."""
    from weightgen.stages.train_generator import train_weight_generator

    folder = tmp_path_factory.mktemp("examples_generator")
    overrides = [*EXAMPLES, f"paths.generator_dir={folder}",
                 f"paths.bench_dir={folder / 'bench'}"]
    ws = run_workspace(tiny_run["artifacts"], *overrides)
    summary = train_weight_generator(ws)
    return {"artifacts": tiny_run["artifacts"], "folder": folder, "overrides": overrides,
            "ws": ws, "summary": summary}
