"""Per-concept adapters on a frozen base generator: what the weight data set is made of.

Two kinds share one interface, so the builder, the weight generator and the fine-tuner never ask
which one they hold:

* ``LoRAAdapter`` (the paper's): peft LoRA on the "crucial" layers (down/up-sampling convs and the
  Transformer's projections by default). Stored weights are the LoRA A/B matrices.
* ``FullDeltaAdapter``: every targeted base weight trains; stored weights are the deltas from the
  base. It reaches pix2pix quality where small LoRAs did not (docs/ARCHITECTURE.md section 6).

Both start from the same initialisation for every concept (``init_seed``), so all adapters live in
one coordinate system; ``standard_state`` is that initialisation (it reproduces the base output).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from peft import LoraConfig, inject_adapter_in_model
from torch import nn

from weightgen.errors import ConfigError

_PEFT_ADAPTER = "default"


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(re.fullmatch(p, name) for p in patterns)


class Adapter(ABC):
    """Attaches to a generator, exposes its trainable weights as a flat ``dict`` and back."""

    kind: str

    def __init__(self, init_seed: int = 0):
        self.init_seed = init_seed
        self._standard: dict[str, torch.Tensor] | None = None

    def attach(self, generator: nn.Module) -> nn.Module:
        """Freeze the base, add the adapter (seeded), and remember its standard initialisation."""
        generator.requires_grad_(False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.init_seed)
            generator = self._attach(generator)
        self._standard = {k: v.clone() for k, v in self.state(generator).items()}
        if not self._standard:
            raise ConfigError(
                f"{self.kind} adapter matched no layer of the generator: check adapter.targets "
                f"against the generator's module names (e.g. stem, down1, transformer.self_attn.q)"
            )
        return generator

    @abstractmethod
    def _attach(self, generator: nn.Module) -> nn.Module: ...

    @abstractmethod
    def state(self, generator: nn.Module) -> dict[str, torch.Tensor]:
        """The adapter's weights, detached copies on the CPU, keyed by stable names: data that is
        stored, tokenised and compared wherever the generator trains (a GPU too)."""

    @abstractmethod
    def load_state(self, generator: nn.Module, state: dict[str, torch.Tensor]) -> None: ...

    @abstractmethod
    def merged_state_dict(self, generator: nn.Module) -> dict[str, torch.Tensor]:
        """Plain generator weights with the adapter folded in (no adapter at inference), on the
        CPU."""

    def standard_state(self) -> dict[str, torch.Tensor]:
        if self._standard is None:
            raise RuntimeError("attach the adapter to a generator before asking for its state")
        return {k: v.clone() for k, v in self._standard.items()}

    def trainable_parameters(self, generator: nn.Module) -> list[nn.Parameter]:
        return [p for p in generator.parameters() if p.requires_grad]

    def check_keys(self, state: dict[str, torch.Tensor]) -> None:
        """A state for another adapter layout is an error naming both sides."""
        expected = self.standard_state()
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        if missing or extra:
            raise ConfigError(
                f"adapter weights do not fit this {self.kind} adapter: missing {missing[:3]}, "
                f"unexpected {extra[:3]}; were they made for another adapter config?"
            )
        for key, value in expected.items():
            if state[key].shape != value.shape:
                raise ConfigError(
                    f"adapter tensor {key}: shape {tuple(state[key].shape)} but this adapter "
                    f"has {tuple(value.shape)}; were they made for another adapter config?"
                )


class LoRAAdapter(Adapter):
    """peft LoRA on the named layers; ``rank_pattern`` maps a layer regex to its own rank."""

    kind = "lora"

    def __init__(
        self,
        rank: int = 8,
        alpha: float | None = None,
        targets: Sequence[str] = (
            r"stem\.0", r"down1\.0", r"down2\.0", r"up2\.1", r"up1\.1", r"head", r"transformer\..*"
        ),
        rank_pattern: dict[str, int] | None = None,
        init_seed: int = 0,
    ):
        super().__init__(init_seed)
        self.rank = rank
        self.alpha = alpha if alpha is not None else rank
        self.targets = list(targets)
        self.rank_pattern = dict(rank_pattern or {})

    def _attach(self, generator: nn.Module) -> nn.Module:
        names = [
            n for n, m in generator.named_modules()
            if isinstance(m, nn.Conv2d | nn.Linear) and _matches(n, self.targets)
        ]
        if not names:
            return generator
        config = LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha,
            target_modules=names,
            rank_pattern=self.rank_pattern,
            init_lora_weights=True,
        )
        return inject_adapter_in_model(config, generator)

    def state(self, generator: nn.Module) -> dict[str, torch.Tensor]:
        return {
            name.replace(f".{_PEFT_ADAPTER}", ""): p.detach().to("cpu", copy=True)
            for name, p in generator.named_parameters()
            if "lora_" in name
        }

    def load_state(self, generator: nn.Module, state: dict[str, torch.Tensor]) -> None:
        self.check_keys(state)
        params = dict(generator.named_parameters())
        with torch.no_grad():
            for key, value in state.items():
                target = key.replace(".lora_A.", f".lora_A.{_PEFT_ADAPTER}.").replace(
                    ".lora_B.", f".lora_B.{_PEFT_ADAPTER}."
                )
                params[target].copy_(value)

    def merged_state_dict(self, generator: nn.Module) -> dict[str, torch.Tensor]:
        merged = {}
        lora_layers = {n: m for n, m in generator.named_modules() if hasattr(m, "get_delta_weight")}
        for name, tensor in generator.state_dict().items():
            if "lora_" in name:
                continue
            plain = name.replace(".base_layer.", ".")
            owner = name.rsplit(".base_layer.", 1)[0] if ".base_layer." in name else None
            if owner in lora_layers and name.endswith(".base_layer.weight"):
                tensor = tensor + lora_layers[owner].get_delta_weight(_PEFT_ADAPTER)
            merged[plain] = tensor.detach().to("cpu", copy=True)
        return merged


class FullDeltaAdapter(Adapter):
    """All targeted base weights train; the adapter is their difference from the base."""

    kind = "full"

    def __init__(self, targets: Sequence[str] = (r".*",), init_seed: int = 0):
        super().__init__(init_seed)
        self.targets = list(targets)
        self._base: dict[str, torch.Tensor] = {}

    def _attach(self, generator: nn.Module) -> nn.Module:
        for name, p in generator.named_parameters():
            if _matches(name, self.targets):
                self._base[name] = p.detach().to("cpu", copy=True)
                p.requires_grad_(True)
        return generator

    def state(self, generator: nn.Module) -> dict[str, torch.Tensor]:
        params = dict(generator.named_parameters())  # the base copies stay on the CPU
        return {name: params[name].detach().cpu() - base for name, base in self._base.items()}

    def load_state(self, generator: nn.Module, state: dict[str, torch.Tensor]) -> None:
        self.check_keys(state)
        params = dict(generator.named_parameters())
        with torch.no_grad():
            for name, delta in state.items():
                params[name].copy_(self._base[name] + delta.cpu())

    def merged_state_dict(self, generator: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in generator.state_dict().items()}


def count_parameters(state: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() for t in state.values())
