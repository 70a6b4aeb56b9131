"""weightgen-new-concept: a prompt in, a model folder (a small, exportable image editor) out.

    weightgen-new-concept prompt="sepia photo slightly blurred" \
        recipe='[{op: sepia}, {op: blur, sigma: 1.0}]' out=models/sepia-blur

Pairs come from ``recipe=``, ``editor=instruct_pix2pix`` or ``pairs=<folder>`` (see
``weightgen.stages.new_concept``); the adapter starts from ``init=`` (``auto``: the prompt and
the concept's own pairs for a generator trained with example pairs, the prompt alone otherwise).
Prints a JSON summary: the init, PSNR of the base, the generated adapter and the fine-tuned one,
seconds, exports and the files written; then the zero-shot PSNR of the init beside the cheap
ones (mean, nearest, standard).

Config groups it reads: data, editor, text_encoder, gan, adapter, tokenizer, denoiser,
diffusion (sampling), trainer, paths; its own keys are in conf/new_concept.yaml.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from weightgen.cli.app import entry_point, print_json

if TYPE_CHECKING:
    from weightgen.stages.workspace import Workspace


def present(ws: Workspace, summary: dict) -> None:
    """The JSON summary, then the table of starts the user reads last."""
    from weightgen.stages.new_concept_init import comparison_lines

    print_json(ws, summary)
    print("\n".join(comparison_lines(summary["init"], summary["zero_shot_psnr_by_init"])))


main = entry_point("weightgen.stages.new_concept:new_concept", __name__,
                   config_name="new_concept", present=present)
