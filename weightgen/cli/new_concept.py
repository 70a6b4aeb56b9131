"""weightgen-new-concept: a prompt in, a model folder (a small, exportable image editor) out.

    weightgen-new-concept prompt="sepia photo slightly blurred" \
        recipe='[{op: sepia}, {op: blur, sigma: 1.0}]' out=models/sepia-blur

Pairs come from ``recipe=``, ``editor=instruct_pix2pix`` or ``pairs=<folder>`` (see
``weightgen.stages.new_concept``). Prints a JSON summary: PSNR of the base, the generated adapter
and the fine-tuned one, seconds, exports and the files written.

Config groups it reads: data, editor, text_encoder, gan, adapter, tokenizer, denoiser,
diffusion (sampling), trainer, paths; its own keys are in conf/new_concept.yaml.
"""

from weightgen.cli.app import entry_point
from weightgen.stages.new_concept import new_concept

main = entry_point(new_concept, __name__, config_name="new_concept")
