"""Adapters <-> equal-sized weight blocks: the token space the weight diffusion model works in.

An adapter is ``dict[str, Tensor]`` (LoRA factors or full weight deltas). The tokenizer fixes,
from the training adapters, three things that every later stage relies on:

1. **Flattening order.** Tensors in ``sorted(names)`` order, each flattened row-major
   (``tensor.reshape(-1)``). Sorting makes the order independent of dict insertion order, so two
   runs that saved their tensors differently still agree on which scalar is at which position.
2. **Normalisation** (``normalization``), statistics computed once in :meth:`BlockTokenizer.fit`
   over the training adapters, so every concept is scaled the same way:

   - ``none``: raw values. For a baseline and for adapters already on a unit scale.
   - ``per_tensor``: each tensor divided by its RMS over all training adapters (the std about
     zero). The mean is *not* subtracted: weight deltas are centred near zero anyway, zero stays
     zero (a padded or untouched weight stays exactly zero) and the sign keeps its meaning. It
     only equalises scales, so a LoRA ``A`` (large) and ``B`` (small) weigh the same in the loss.
     This is what G.pt / p-diff style weight diffusion does per layer.
   - ``per_element``: every scalar z-scored by its own mean and std across training adapters.
     This removes the *shared* mean delta (what all concepts learn in common), leaving only what
     differs between concepts; the prototype's generator collapsed to that mean delta. A scalar
     that barely varies is not blown up: its std is floored at ``min_std_ratio`` times its
     tensor's RMS per-element std (and a tensor constant across all training adapters gets
     scale 1).
3. **Grouping into blocks** (``grouping``), all blocks ``block_size`` long:

   - ``sequential``: the paper's plain rule (the best of its three): concatenate all tensors
     into one vector, cut it into consecutive blocks and zero-pad the tail of the last one.
     Fewest blocks, but a block may hold the end of one tensor and the start of the next.
   - ``layer_aligned``: every tensor is zero-padded to a whole number of blocks, so no block
     spans two tensors. Costs some padding blocks; in exchange each block (and its index
     embedding) belongs to exactly one layer, which can make the block index more informative.

4. **Basis** (``basis``), what the tokens hold:

   - ``none``: the (normalised) weights themselves, placed by ``grouping``.
   - ``pca``: the coordinates of the normalised adapter in the principal-component basis of the
     training adapters (at most ``basis_rank`` components; all with nonzero variance by
     default), each divided by its component's std so every coordinate has unit variance over
     the training set (whitened). ``grouping`` does not apply: the coordinates are cut into
     blocks in order, largest component first. With a few dozen training adapters the whole
     adapter becomes one short vector (one block), which a small denoiser can fit in minutes on
     a CPU, where the full weight space (hundreds of blocks per adapter) needs far more steps
     than a CPU allows. The price: every generated adapter lies in the span of the training
     adapters (plus their mean), and the basis is stored with the tokenizer
     (``rank x num_values`` floats).

Exactness (``basis: none``): ``detokenize(tokenize(w))`` returns ``w`` bit for bit (``torch.equal``). Tokens are
float64 and the normalisation is ``t = x / scale - shift`` with ``shift = mean / scale``
(scale first, then shift, inverted as ``(t + shift) * scale``): each float64 step errs by at most
2**-53 relative, far below float32's resolution, so the final cast to float32 lands exactly on
``w``; zero comes back exactly because ``t + shift`` cancels exactly. With ``none`` and
``per_tensor`` this holds for every finite float32 value. With ``per_element`` it holds for every
value except nonzero values more than 2**27 times smaller in magnitude than their element's
training mean: after the mean is subtracted, no float64 token can carry their bits (they come back
within 2**-52 of that mean). Callers cast tokens to float32 for the network themselves.
Under ``basis: pca`` the round trip is the orthogonal projection onto the training adapters'
affine span: the training adapters themselves come back to float32 rounding when no component is
dropped, anything else comes back projected.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from weightgen.errors import ConfigError

log = logging.getLogger(__name__)

GROUPINGS = ("sequential", "layer_aligned")
NORMALIZATIONS = ("none", "per_tensor", "per_element")
BASES = ("none", "pca")
PCA_KEYS = ("pca_mean", "pca_components", "pca_scale")
# Principal components with a singular value below this fraction of the largest are dropped:
# they are float noise (e.g. the rank lost to centring), and whitening would blow them up.
PCA_RELATIVE_TOLERANCE = 1e-6

Adapter = Mapping[str, Tensor]


class BlockTokenizer:
    """Cuts adapters into ``[num_blocks, block_size]`` float64 tokens and puts them back together.

    Construct with the rules, then :meth:`fit` on the training adapters (fixes the layout and the
    normalisation statistics); afterwards :meth:`tokenize` / :meth:`detokenize` work on any adapter
    with the same tensor names and shapes. Persist with :meth:`config` + :meth:`state_dict` and
    restore with :meth:`from_state`.
    """

    def __init__(
        self,
        block_size: int = 256,
        grouping: str = "sequential",
        normalization: str = "per_tensor",
        min_std_ratio: float = 1e-3,
        basis: str = "none",
        basis_rank: int | None = None,
    ) -> None:
        if not isinstance(block_size, int) or block_size < 1:
            raise ConfigError(f"tokenizer.block_size must be a positive int, got {block_size!r}")
        if grouping not in GROUPINGS:
            raise ConfigError(f"tokenizer.grouping must be one of {GROUPINGS}, got {grouping!r}")
        if normalization not in NORMALIZATIONS:
            raise ConfigError(
                f"tokenizer.normalization must be one of {NORMALIZATIONS}, got {normalization!r}"
            )
        if not min_std_ratio >= 0.0:
            raise ConfigError(f"tokenizer.min_std_ratio must be >= 0, got {min_std_ratio!r}")
        if basis not in BASES:
            raise ConfigError(f"tokenizer.basis must be one of {BASES}, got {basis!r}")
        if basis_rank is not None and (not isinstance(basis_rank, int) or basis_rank < 1):
            raise ConfigError(
                f"tokenizer.basis_rank must be a positive int or null, got {basis_rank!r}"
            )
        self.block_size = block_size
        self.grouping = grouping
        self.normalization = normalization
        self.min_std_ratio = float(min_std_ratio)
        self.basis = basis
        self.basis_rank = basis_rank
        self._layout: list[tuple[str, tuple[int, ...]]] | None = None
        self._stats: dict[str, Tensor] = {}
        # The decoding statistics as float32 per device (detokenize_differentiable), made once.
        self._float32_stats: dict[torch.device, dict[str, Tensor]] = {}

    # ------------------------------------------------------------------ layout
    @property
    def is_fitted(self) -> bool:
        return self._layout is not None

    @property
    def layout(self) -> list[tuple[str, tuple[int, ...]]]:
        """Tensor names and shapes in flattening order (sorted names)."""
        return list(self._require_layout())

    @property
    def num_values(self) -> int:
        """Number of real (non-padding) scalars in one adapter."""
        return sum(math.prod(shape) for _, shape in self._require_layout())

    @property
    def num_blocks(self) -> int:
        if self.basis == "pca":
            return -(-self.num_coefficients // self.block_size)
        return self._plan()[1]

    @property
    def num_coefficients(self) -> int:
        """Number of real (non-padding) token values: PCA components, or :attr:`num_values`."""
        if self.basis == "pca":
            self._require_layout()
            return self._stats["pca_scale"].numel()
        return self.num_values

    def block_tensor_ids(self) -> Tensor:
        """For each block, the position in :attr:`layout` of the tensor its first value belongs to.

        Under ``layer_aligned`` this is the block's only tensor; under ``sequential`` a block may
        continue into later tensors. Under ``basis: pca`` blocks hold coefficients, which belong to
        no tensor: asking is an error.
        """
        if self.basis == "pca":
            raise ValueError("under tokenizer.basis=pca blocks hold PCA coefficients, not one tensor's values")
        offsets, num_blocks = self._plan()
        starts = torch.tensor([offset for offset, _ in offsets], dtype=torch.long)
        block_starts = torch.arange(num_blocks, dtype=torch.long) * self.block_size
        return torch.searchsorted(starts, block_starts, right=True) - 1

    def _require_layout(self) -> list[tuple[str, tuple[int, ...]]]:
        if self._layout is None:
            raise ValueError(
                "BlockTokenizer is not fitted: call fit(train_adapters) or from_state()"
            )
        return self._layout

    def _plan(self) -> tuple[list[tuple[int, int]], int]:
        """(token offset, size) of each tensor in the padded flat token vector, and num_blocks."""
        offsets, cursor = [], 0
        for _, shape in self._require_layout():
            size = math.prod(shape)
            offsets.append((cursor, size))
            if self.grouping == "layer_aligned":
                cursor += -(-size // self.block_size) * self.block_size
            else:
                cursor += size
        return offsets, -(-cursor // self.block_size)

    def _check_layout(self, adapter: Adapter, what: str) -> None:
        layout = self._require_layout()
        got = sorted((name, tuple(tensor.shape)) for name, tensor in adapter.items())
        for index in range(max(len(layout), len(got))):
            want = layout[index] if index < len(layout) else None
            have = got[index] if index < len(got) else None
            if want != have:
                raise ConfigError(
                    f"{what} does not match the fitted layout: first mismatch at tensor #{index}: "
                    f"expected {_describe(want)}, got {_describe(have)}. Tokenize only adapters "
                    "of the architecture/LoRA config the tokenizer was fitted on."
                )
        for name, tensor in adapter.items():
            if not tensor.is_floating_point():
                raise ValueError(
                    f"{what}: tensor {name!r} has dtype {tensor.dtype}, expected float"
                )

    def _flat(self, adapter: Adapter, what: str) -> Tensor:
        """The adapter's real values as one float64 vector in flattening order."""
        self._check_layout(adapter, what)
        parts = [adapter[name].detach().reshape(-1).to(torch.float64) for name, _ in self._layout]
        flat = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
        if not torch.isfinite(flat).all():
            bad = [name for name, _ in self._layout if not torch.isfinite(adapter[name]).all()]
            raise ValueError(f"{what} has non-finite values (NaN/inf) in tensors {bad}")
        return flat

    # ------------------------------------------------------------------ fitting
    def fit(self, adapters: Sequence[Adapter]) -> BlockTokenizer:
        """Fix the layout from the first adapter and the normalisation stats from all of them.

        Pass only *training* adapters: statistics from validation/test concepts would leak them.
        Std is the population std (ddof 0), so a single adapter is allowed. Adapters are streamed
        (one flattened at a time, two passes for ``per_element``), so memory stays O(one adapter).
        """
        if len(adapters) == 0:
            raise ValueError("fit needs at least one training adapter, got an empty list")
        if len(adapters[0]) == 0:
            raise ValueError("fit got an adapter with no tensors")
        self._layout = sorted((name, tuple(tensor.shape)) for name, tensor in adapters[0].items())
        self._float32_stats = {}
        try:
            self._stats = self._statistics(adapters)
            if self.basis == "pca":
                self._stats |= self._principal_components(adapters)
        except ValueError:
            self._layout, self._stats = None, {}  # a failed fit leaves the tokenizer unfitted
            raise
        return self

    def _statistics(self, adapters: Sequence[Adapter]) -> dict[str, Tensor]:
        def flats():
            return (self._flat(a, f"training adapter #{i}") for i, a in enumerate(adapters))

        count = len(adapters)
        if self.normalization == "per_tensor":
            squares = sum(flat.square() for flat in flats()) / count
            rms = torch.stack([part.mean().sqrt() for part in self._split(squares)])
            return {"tensor_scale": torch.where(rms > 0, rms, torch.ones_like(rms))}
        if self.normalization == "per_element":
            mean = sum(flats()) / count
            std = (sum((flat - mean).square() for flat in flats()) / count).sqrt()
            return {"element_mean": mean, "element_scale": self._floored(std)}
        for _ in flats():  # ``none``: only the layout and finiteness checks
            pass
        return {}

    def _principal_components(self, adapters: Sequence[Adapter]) -> dict[str, Tensor]:
        """Mean, top right-singular vectors and coordinate stds of the normalised adapters.

        Holds all normalised training adapters at once (``len(adapters) x num_values`` float64):
        the basis needs them together.
        """
        rows = torch.stack([self._normalise(self._flat(a, f"training adapter #{i}"))
                            for i, a in enumerate(adapters)])
        mean = rows.mean(0)
        _, singular, components = torch.linalg.svd(rows - mean, full_matrices=False)
        keep = int((singular > PCA_RELATIVE_TOLERANCE * singular[:1].clamp_min(1e-300)).sum())
        if self.basis_rank is not None:
            keep = min(keep, self.basis_rank)
        if keep == 0:
            raise ConfigError(
                "tokenizer.basis=pca needs training adapters that differ from each other: all "
                f"{len(adapters)} are identical, so there is no principal component"
            )
        self._warn_thin_last_block(keep)
        return {"pca_mean": mean, "pca_components": components[:keep].contiguous(),
                "pca_scale": singular[:keep] / math.sqrt(len(adapters))}

    def _warn_thin_last_block(self, coordinates: int) -> None:
        """Warn when the last block of PCA coordinates is less than half full: it holds only the
        smallest components (whitened to unit variance like the rest), and the denoiser trains on
        it as often as on each full block (measured at 265 training adapters, 264 coordinates:
        the generator's fit of its own concepts fell from 25.2 to 20.3 dB,
        experiments/scaling/README.md)."""
        tail = coordinates % self.block_size
        if coordinates > self.block_size and 0 < tail < self.block_size / 2:
            full = coordinates - tail
            log.warning(
                "tokenizer.basis=pca: %d coordinates fill %d blocks of %d, the last with only %d "
                "(the smallest components), which the denoiser trains on as often as a full one; "
                "set tokenizer.basis_rank=%d (whole blocks) or tokenizer.block_size=%d (one "
                "block)", coordinates, full // self.block_size + 1, self.block_size, tail, full,
                coordinates)

    def _floored(self, std: Tensor) -> Tensor:
        """Per-element scale: std floored relative to its tensor's RMS std; 1 where all is 0."""
        floors = [
            torch.full_like(part, self.min_std_ratio * part.square().mean().sqrt().item())
            for part in self._split(std)
        ]
        scale = torch.maximum(std, torch.cat(floors))
        return torch.where(scale > 0, scale, torch.ones_like(scale))

    def _split(self, flat: Tensor) -> list[Tensor]:
        return list(flat.split([math.prod(shape) for _, shape in self._require_layout()]))

    def _scale_shift(self) -> tuple[Tensor, Tensor] | None:
        """Flat float64 (scale, shift) with token = value / scale - shift; None for ``none``."""
        if self.normalization == "per_tensor":
            sizes = torch.tensor([math.prod(shape) for _, shape in self._require_layout()])
            scale = self._stats["tensor_scale"].repeat_interleave(sizes)
            return scale, torch.zeros_like(scale)
        if self.normalization == "per_element":
            scale = self._stats["element_scale"]
            return scale, self._stats["element_mean"] / scale
        return None

    def _normalise(self, flat: Tensor) -> Tensor:
        scale_shift = self._scale_shift()
        if scale_shift is None:
            return flat
        scale, shift = scale_shift
        return flat / scale - shift

    # ------------------------------------------------------------------ tokens
    def tokenize(self, adapter: Adapter) -> Tensor:
        """``[num_blocks, block_size]`` float64 tokens; padding positions are exactly 0."""
        flat = self._normalise(self._flat(adapter, "adapter"))
        if self.basis == "pca":
            coefficients = self._stats["pca_components"] @ (flat - self._stats["pca_mean"])
            tokens = torch.zeros(self.num_blocks * self.block_size, dtype=torch.float64)
            tokens[: coefficients.numel()] = coefficients / self._stats["pca_scale"]
            return tokens.view(self.num_blocks, self.block_size)
        offsets, num_blocks = self._plan()
        tokens = torch.zeros(num_blocks * self.block_size, dtype=torch.float64)
        for (offset, size), part in zip(offsets, self._split(flat), strict=True):
            tokens[offset : offset + size] = part
        return tokens.view(num_blocks, self.block_size)

    def detokenize(self, blocks: Tensor) -> dict[str, Tensor]:
        """Inverse of :meth:`tokenize`: float32 tensors in their original shapes.

        Pass the float64 tokens for an exact round trip; generated blocks (float32) work too.
        Padding positions are ignored.
        """
        self._check_blocks(blocks)
        tokens = blocks.detach().to(device="cpu", dtype=torch.float64).reshape(-1)
        return {name: part.to(torch.float32)
                for name, part in self._values(tokens, self._decoding_stats()).items()}

    def detokenize_differentiable(self, blocks: Tensor) -> dict[str, Tensor]:
        """:meth:`detokenize` as a float32 function of ``blocks`` on their device, gradients kept:
        what a loss on the generated adapter's behaviour backpropagates through. Equal to
        :meth:`detokenize` up to float32 rounding."""
        self._check_blocks(blocks)
        device = blocks.device
        if device not in self._float32_stats:
            self._float32_stats[device] = {key: value.to(device=device, dtype=torch.float32)
                                           for key, value in self._decoding_stats().items()}
        return self._values(blocks.to(torch.float32).reshape(-1), self._float32_stats[device])

    def _check_blocks(self, blocks: Tensor) -> None:
        expected = (self.num_blocks, self.block_size)
        if tuple(blocks.shape) != expected:
            raise ValueError(
                f"detokenize expects blocks of shape {expected}, got {tuple(blocks.shape)}"
            )

    def _decoding_stats(self) -> dict[str, Tensor]:
        """Flat float64 statistics tokens are decoded with: the PCA basis under ``basis: pca``,
        the normalisation's ``scale`` and ``shift`` unless it is ``none``."""
        stats = {key: self._stats[key] for key in PCA_KEYS if self.basis == "pca"}
        scale_shift = self._scale_shift()
        if scale_shift is not None:
            stats["scale"], stats["shift"] = scale_shift
        return stats

    def _values(self, tokens: Tensor, stats: dict[str, Tensor]) -> dict[str, Tensor]:
        """Flat ``tokens`` -> the adapter's tensors, decoded with ``stats`` (in their dtype)."""
        if self.basis == "pca":
            coefficients = tokens[: self.num_coefficients] * stats["pca_scale"]
            flat = stats["pca_mean"] + coefficients @ stats["pca_components"]
        else:
            offsets, _ = self._plan()
            flat = torch.cat([tokens[offset : offset + size] for offset, size in offsets])
        if "scale" in stats:
            flat = (flat + stats["shift"]) * stats["scale"]
        return {name: part.reshape(shape)
                for (name, shape), part in zip(self._layout, self._split(flat), strict=True)}

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict:
        """JSON-able rules and layout; with :meth:`state_dict` enough to rebuild the tokenizer."""
        return {
            "block_size": self.block_size,
            "grouping": self.grouping,
            "normalization": self.normalization,
            "min_std_ratio": self.min_std_ratio,
            "basis": self.basis,
            "basis_rank": self.basis_rank,
            "layout": [[name, list(shape)] for name, shape in self._require_layout()],
        }

    def state_dict(self) -> dict[str, Tensor]:
        """Normalisation statistics (float64).

        ``{}`` for ``none``; ``tensor_scale`` [num_tensors] for ``per_tensor``;
        ``element_mean`` and ``element_scale`` [num_values] for ``per_element``; plus, under
        ``basis: pca``, ``pca_mean`` [num_values], ``pca_components`` [rank, num_values] and
        ``pca_scale`` [rank].
        """
        self._require_layout()
        return {key: value.clone() for key, value in self._stats.items()}

    @classmethod
    def from_state(cls, config: Mapping, state: Mapping[str, Tensor]) -> BlockTokenizer:
        """Rebuild a fitted tokenizer from :meth:`config` and :meth:`state_dict` output."""
        if "layout" not in config:
            raise ValueError(
                "tokenizer config has no 'layout': was it saved from a fitted tokenizer?"
            )
        tokenizer = cls(
            block_size=int(config["block_size"]),
            grouping=config["grouping"],
            normalization=config["normalization"],
            min_std_ratio=float(config.get("min_std_ratio", 1e-3)),
            basis=config.get("basis", "none"),
            basis_rank=config.get("basis_rank"),
        )
        tokenizer._layout = [
            (str(name), tuple(int(d) for d in shape)) for name, shape in config["layout"]
        ]
        expected = {
            "none": {},
            "per_tensor": {"tensor_scale": (len(tokenizer._layout),)},
            "per_element": {
                "element_mean": (tokenizer.num_values,),
                "element_scale": (tokenizer.num_values,),
            },
        }[tokenizer.normalization]
        if tokenizer.basis == "pca":
            rank = state["pca_scale"].numel() if "pca_scale" in state else 0
            expected |= {"pca_mean": (tokenizer.num_values,),
                         "pca_components": (rank, tokenizer.num_values), "pca_scale": (rank,)}
        if set(state) != set(expected):
            raise ValueError(
                f"tokenizer state for normalization={tokenizer.normalization!r} must have keys "
                f"{sorted(expected)}, got {sorted(state)}"
            )
        for key, want in expected.items():
            if tuple(state[key].shape) != want:
                shape = tuple(state[key].shape)
                raise ValueError(f"tokenizer state {key!r} has shape {shape}, expected {want}")
        tokenizer._stats = {key: state[key].to(torch.float64).clone() for key in expected}
        return tokenizer


def _describe(entry: tuple[str, tuple[int, ...]] | None) -> str:
    return "nothing" if entry is None else f"{entry[0]!r} with shape {list(entry[1])}"
