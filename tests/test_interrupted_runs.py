"""A run stopped by SIGTERM or Ctrl-C exits non-zero and says so (issue 14, item 12).

Lightning ends ``fit`` on SIGTERM with a ``SystemExit`` without a code: the process exited 0
with nothing written and no word. ``weightgen.training.fit`` turns it into InterruptedRunError.
"""

from __future__ import annotations

import signal

import lightning as L
import pytest
import torch
from helpers import StopAtStep, compose_config
from torch import nn
from torch.utils.data import TensorDataset

from weightgen.errors import InterruptedRunError
from weightgen.training import fit, make_trainer


class TinyRegression(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(callbacks: list) -> L.Trainer:
    data = L.LightningDataModule.from_datasets(
        train_dataset=TensorDataset(torch.randn(32, 2), torch.randn(32, 1)), batch_size=4)
    trainer = make_trainer(compose_config(["trainer=cpu"]).trainer, 6, None, callbacks=callbacks)
    fit(trainer, TinyRegression(), data, "training the toy model")
    return trainer


@pytest.mark.parametrize(("stop", "cause"), [("sigterm", "SIGTERM"), ("ctrl_c", "Ctrl-C")])
def test_an_interrupted_fit_raises_and_says_so(stop, cause):
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with pytest.raises(InterruptedRunError, match=rf"training the toy model was interrupted "
                                                      rf"\({cause}\) at step 2 of 6.*rerun"):
            _fit([StopAtStep(stop)])
        # A later SIGTERM ends the process as usual, and Ctrl-C works again: Lightning ignores
        # Ctrl-C during its shutdown and puts both handlers back at teardown.
        assert signal.getsignal(signal.SIGTERM) == handlers[signal.SIGTERM]
        assert signal.getsignal(signal.SIGINT) == handlers[signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, handlers[signal.SIGINT])  # whatever the outcome, for the suite


def test_an_uninterrupted_fit_returns():
    assert _fit([]).global_step == 6
