"""One tqdm bar per fit that counts steps towards ``max_steps``.

Lightning's own bars count batches per epoch: a step-budgeted stage that loops over a small
data set shows hundreds of epochs ("Epoch 19/-2"), and its rich bar wraps the metrics over
several lines. This bar shows the stage's name, steps done of the budget and the metrics the
module logs with ``prog_bar=True``.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import ProgressBar
from tqdm.auto import tqdm


class StepProgressBar(ProgressBar):
    def __init__(self, description: str):
        super().__init__()
        self.description = description
        self._enabled = True
        self._bar: tqdm | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, pl_module) -> None:
        self._bar = tqdm(total=trainer.max_steps, desc=self.description, unit="step",
                         disable=not self._enabled, dynamic_ncols=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._bar.update(trainer.global_step - self._bar.n)
        metrics = {k: f"{float(v):.3g}" for k, v in trainer.progress_bar_metrics.items()}
        self._bar.set_postfix(metrics, refresh=False)

    def on_train_end(self, trainer, pl_module) -> None:
        self._bar.close()
