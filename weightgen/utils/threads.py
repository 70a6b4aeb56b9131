"""torch's CPU threads for this process: what every entry point's ``num_threads`` sets."""

from __future__ import annotations

import torch


def use_threads(num_threads: int | None) -> None:
    """Run torch on ``num_threads`` CPU threads; None keeps torch's default (all cores).

    Fewer threads than cores when other jobs share the machine: oversubscribed OpenMP threads
    slow small convolutions down by an order of magnitude.
    """
    if num_threads:
        torch.set_num_threads(int(num_threads))
