"""Procedural image edits: deterministic, composable, with exact targets and text descriptions.

These ops are the embedded default editor. Because an edit is a known function of the image,
every (source, target) pair has an exact ground truth, and because ops compose, a few families
span hundreds of concepts whose held-out members are new combinations of seen parts.

An image is a float32 array HxWx3 in [0, 1]. Every op returns the same shape and dtype, clipped
to [0, 1], and uses no randomness. A recipe is a list of steps ``{"op": name, **params}``;
`normalize_recipe` validates it and fills defaults so equal edits compare equal.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy import ndimage

from weightgen.errors import ConfigError

NAMED_COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.10, 0.10),
    "orange": (1.00, 0.55, 0.10),
    "yellow": (0.98, 0.88, 0.15),
    "lime": (0.60, 0.90, 0.20),
    "green": (0.10, 0.60, 0.20),
    "teal": (0.00, 0.55, 0.55),
    "cyan": (0.10, 0.85, 0.90),
    "blue": (0.15, 0.30, 0.90),
    "navy": (0.05, 0.10, 0.35),
    "purple": (0.50, 0.20, 0.70),
    "magenta": (0.90, 0.15, 0.75),
    "pink": (1.00, 0.60, 0.75),
    "gold": (0.95, 0.75, 0.25),
    "brown": (0.50, 0.30, 0.15),
}

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def luminance(image: np.ndarray) -> np.ndarray:
    """Rec. 601 luma, HxW: the grey value every tone/colour-map op starts from."""
    return image @ _LUMA


def _grey3(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=-1)


def _rgb(values: Sequence[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def _mix(original: np.ndarray, edited: np.ndarray, strength: float) -> np.ndarray:
    return original + strength * (edited - original)


def _a(phrase: str) -> str:
    """Prefix the right indefinite article: "an orange tint", "a teal tint"."""
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


def _word(value: float, scale: Sequence[tuple[float, str]]) -> str:
    """The first word whose threshold is >= value (scale sorted ascending; last one catches all)."""
    for threshold, word in scale:
        if value <= threshold:
            return word
    return scale[-1][1]


@dataclass(frozen=True)
class Param:
    """One op parameter: a default plus either a numeric range or a set of allowed choices."""

    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    integer: bool = False

    def allowed(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(self.choices)
        kind = "an integer" if self.integer else "a number"
        return f"{kind} in [{self.low}, {self.high}]"

    def validate(self, op: str, name: str, value: Any) -> Any:
        problem = f"op {op!r}: parameter {name!r}={value!r} is invalid; allowed: {self.allowed()}"
        if self.choices is not None:
            if not isinstance(value, str) or value not in self.choices:
                raise ConfigError(problem)
            return value
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise ConfigError(problem)
        if self.integer:
            if float(value) != int(value):
                raise ConfigError(problem)
            value = int(value)
        else:
            value = float(value)
        if not np.isfinite(value) or not self.low <= value <= self.high:
            raise ConfigError(problem)
        return value


@dataclass(frozen=True)
class Step(Mapping[str, Any]):
    """One recipe step in canonical, hashable form: op name plus sorted (name, value) params.

    It also reads as the mapping ``{"op": name, **params}`` (the file format), so code that
    treats steps as dicts (`dict(step)`, `step["op"]`) works on it unchanged.
    """

    op: str
    params: tuple[tuple[str, Any], ...] = ()

    def __getitem__(self, key: str) -> Any:
        return self.op if key == "op" else dict(self.params)[key]

    def __iter__(self) -> Iterator[str]:
        yield "op"
        yield from (name for name, _ in self.params)

    def __len__(self) -> int:
        return 1 + len(self.params)

    @classmethod
    def from_mapping(cls, step: Mapping[str, Any]) -> Step:
        if not isinstance(step, Mapping) or "op" not in step:
            raise ConfigError(f"a recipe step must be a mapping with an 'op' key, got {step!r}")
        params = {k: v for k, v in step.items() if k != "op"}
        return cls(op=step["op"], params=tuple(sorted(params.items())))

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, **dict(self.params)}

    def build(self) -> EditOp:
        return make_op(self.op, **dict(self.params))


class EditOp(ABC):
    """A validated, parameterised image edit that can also say in words what it does.

    `kind` is "structure" (changes shapes/texture: blur, sketch, pixelate...) or "colour"
    (changes colours/tones only); the catalog composes one of each.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    params: ClassVar[dict[str, Param]] = {}

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            known = ", ".join(self.params) or "none"
            raise ConfigError(
                f"op {self.name!r}: unknown parameter(s) {', '.join(unknown)}; "
                f"its parameters are: {known}"
            )
        for key, spec in self.params.items():
            setattr(self, key, spec.validate(self.name, key, values.get(key, spec.default)))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        out = self.apply(np.asarray(image, dtype=np.float32))
        return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)

    def step(self) -> Step:
        """The canonical recipe step for this op (all parameters explicit)."""
        return Step(self.name, tuple(sorted((k, getattr(self, k)) for k in self.params)))

    def describe(self, variant: int = 0) -> str:
        """A noun phrase for the edit; other variants are paraphrases with different words."""
        phrasings = self.phrasings()
        return phrasings[variant % len(phrasings)]

    @abstractmethod
    def apply(self, image: np.ndarray) -> np.ndarray:
        """Edit a float32 HxWx3 image; the result is clipped by `__call__`."""

    @abstractmethod
    def phrasings(self) -> tuple[str, ...]:
        """Several noun phrases ("a sepia tone", "an old brown photograph look", ...)."""


class Grayscale(EditOp):
    name, kind = "grayscale", "colour"

    def apply(self, image):
        return _grey3(luminance(image))

    def phrasings(self):
        return ("black and white colours", "a colourless monochrome photo", "shades of grey only")


class Invert(EditOp):
    name, kind = "invert", "colour"

    def apply(self, image):
        return 1.0 - image

    def phrasings(self):
        return ("inverted colours", "a photographic negative look", "reversed light and dark")


class Sepia(EditOp):
    name, kind = "sepia", "colour"
    params = {"strength": Param(1.0, 0.05, 1.0)}
    _MATRIX = np.array(
        [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32
    )

    def apply(self, image):
        return _mix(image, image @ self._MATRIX.T, self.strength)

    def phrasings(self):
        light = "a light " if self.strength < 0.75 else "a "
        return (
            f"{light}sepia tone",
            f"{'a faintly' if self.strength < 0.75 else 'an'} old brown photograph look",
            f"{'slightly ' if self.strength < 0.75 else ''}antique brownish colouring",
        )


class Tint(EditOp):
    """Overlay-blend the grey image with a named colour: mid-grey becomes the colour itself,
    black and white stay put, so shading survives the tint."""

    name, kind = "tint", "colour"
    params = {
        "colour": Param("teal", choices=tuple(NAMED_COLOURS)),
        "strength": Param(0.6, 0.05, 1.0),
    }

    def apply(self, image):
        grey = luminance(image)[..., None]
        colour = _rgb(NAMED_COLOURS[self.colour])
        tinted = np.where(grey < 0.5, 2 * grey * colour, 1 - 2 * (1 - grey) * (1 - colour))
        return _mix(image, tinted, self.strength)

    def phrasings(self):
        amount = _word(self.strength, [(0.35, "subtle "), (0.75, ""), (1.0, "strong ")])
        c = self.colour
        return (_a(f"{amount}{c} tint"), f"{amount}{c}-tinted colours", f"a {amount}wash of {c}")


class Grade(EditOp):
    """Film-style colour grading: warm, cool, or teal shadows with orange highlights."""

    name, kind = "grade", "colour"
    params = {
        "style": Param("warm", choices=("warm", "cool", "teal_orange")),
        "strength": Param(1.0, 0.05, 1.0),
    }
    _PHRASES = {
        "warm": ("warm colour grading", "a cosy golden colour cast", "sunny amber tones"),
        "cool": ("cool colour grading", "a cold bluish colour cast", "chilly steel-blue tones"),
        "teal_orange": (
            "teal and orange colour grading",
            "a blockbuster movie colour look",
            "cinematic cyan shadows and amber highlights",
        ),
    }

    def apply(self, image):
        if self.style == "warm":
            graded = image * _rgb((1.12, 1.0, 0.82)) + _rgb((0.03, 0.01, 0.0))
        elif self.style == "cool":
            graded = image * _rgb((0.85, 0.98, 1.15)) + _rgb((0.0, 0.01, 0.04))
        else:
            grey = luminance(image)[..., None]
            highlights = grey * (_rgb((1.0, 0.6, 0.2)) - 0.5)
            shadows = (1 - grey) * (_rgb((0.0, 0.5, 0.55)) - 0.5)
            graded = image + 0.3 * (highlights + shadows)
        return _mix(image, graded, self.strength)

    def phrasings(self):
        phrases = self._PHRASES[self.style]
        if self.strength < 0.75:
            return tuple(f"mild {p}" for p in phrases)
        return phrases


class Posterise(EditOp):
    name, kind = "posterise", "structure"
    params = {"levels": Param(4, 2, 32, integer=True)}

    def apply(self, image):
        steps = self.levels - 1
        return np.round(image * steps) / steps

    def phrasings(self):
        n = self.levels
        return (
            f"a {n}-level posterised look",
            f"a flat screen-print poster in {n} shades per channel",
            f"banded colours in {n} steps",
        )


class Blur(EditOp):
    name, kind = "blur", "structure"
    params = {"sigma": Param(1.5, 0.3, 8.0)}

    def apply(self, image):
        return ndimage.gaussian_filter(image, sigma=(self.sigma, self.sigma, 0), mode="reflect")

    def phrasings(self):
        amount = _word(self.sigma, [(1.0, "slight"), (2.0, "moderate"), (8.0, "heavy")])
        dreamy = _word(self.sigma, [(1.0, "gently"), (2.0, "noticeably"), (8.0, "very")])
        return (
            f"a {amount} blur",
            f"a {dreamy} out-of-focus softness",
            f"{dreamy} smeared, fuzzy detail",
        )


class Sharpen(EditOp):
    """Unsharp masking: add back the difference between the image and its blur."""

    name, kind = "sharpen", "structure"
    params = {"amount": Param(1.5, 0.1, 5.0)}

    def apply(self, image):
        blurred = ndimage.gaussian_filter(image, sigma=(1.0, 1.0, 0), mode="reflect")
        return image + self.amount * (image - blurred)

    def phrasings(self):
        amount = _word(self.amount, [(1.0, "slightly"), (5.0, "strongly")])
        return (
            f"{amount} sharpened details",
            f"{amount} crisper edges and textures",
            f"a {amount} enhanced unsharp-mask finish",
        )


class Emboss(EditOp):
    """A grey relief: directional derivative of luma around mid-grey (flat areas become 0.5)."""

    name, kind = "emboss", "structure"
    params = {"strength": Param(0.7, 0.1, 4.0)}
    _KERNEL = np.array([[-1, -1, 0], [-1, 0, 1], [0, 1, 1]], dtype=np.float32)

    def apply(self, image):
        relief = ndimage.correlate(luminance(image), self._KERNEL, mode="nearest")
        return _grey3(0.5 + self.strength * relief)

    def phrasings(self):
        deep = "a deep " if self.strength > 1.5 else "an "
        return (
            f"{deep}embossed relief",
            f"{'a deep' if self.strength > 1.5 else 'a'} raised metal stamping",
            f"{'deeply ' if self.strength > 1.5 else ''}carved grey bas-relief",
        )


class Sketch(EditOp):
    """Pencil sketch: dark strokes where luma changes, white paper where it is flat."""

    name, kind = "sketch", "structure"
    params = {"sigma": Param(1.0, 0.5, 4.0), "darkness": Param(4.0, 0.5, 30.0)}

    def apply(self, image):
        edges = ndimage.gaussian_gradient_magnitude(luminance(image), self.sigma, mode="nearest")
        return _grey3(1.0 - self.darkness * edges)

    def phrasings(self):
        bold = "bold " if self.darkness > 10 else ""
        return (
            f"a {bold}pencil sketch",
            f"a {bold}graphite line drawing on white paper",
            f"{bold}hand-drawn charcoal outlines",
        )


class Cartoon(EditOp):
    """Smooth, quantise colours, then draw black lines where the smoothed luma has edges."""

    name, kind = "cartoon", "structure"
    params = {"levels": Param(5, 2, 16, integer=True), "edge_threshold": Param(0.12, 0.01, 1.0)}

    def apply(self, image):
        smooth = ndimage.gaussian_filter(image, sigma=(1.0, 1.0, 0), mode="reflect")
        steps = self.levels - 1
        flat = np.round(smooth * steps) / steps
        edges = ndimage.gaussian_gradient_magnitude(luminance(smooth), 1.0, mode="nearest")
        return flat * (edges <= self.edge_threshold)[..., None]

    def phrasings(self):
        flat = "flat " if self.levels <= 3 else ""
        return (
            f"a {flat}cartoon style",
            f"{'a flat' if flat else 'an'} inked comic-book drawing",
            f"{'a flat' if flat else 'an'} animated cel-shaded look",
        )


class Pixelate(EditOp):
    """Average over square blocks (edge-padded at the borders, so any image size works)."""

    name, kind = "pixelate", "structure"
    params = {"block": Param(4, 2, 32, integer=True)}

    def apply(self, image):
        height, width = image.shape[:2]
        b = self.block
        padded = np.pad(image, ((0, -height % b), (0, -width % b), (0, 0)), mode="edge")
        ph, pw = padded.shape[:2]
        means = padded.reshape(ph // b, b, pw // b, b, 3).mean(axis=(1, 3))
        return np.repeat(np.repeat(means, b, axis=0), b, axis=1)[:height, :width]

    def phrasings(self):
        b = self.block
        return (
            f"pixelation into {b}-pixel blocks",
            f"a blocky {b}x{b} retro pixel-art look",
            f"a mosaic of {b}-pixel squares",
        )


class Vignette(EditOp):
    """Darken towards the corners: multiply by 1 - strength * r^2 (r = 1 at the corners)."""

    name, kind = "vignette", "structure"
    params = {"strength": Param(0.7, 0.05, 1.0)}

    def apply(self, image):
        height, width = image.shape[:2]
        ys = (np.arange(height, dtype=np.float32) + 0.5) / height * 2 - 1
        xs = (np.arange(width, dtype=np.float32) + 0.5) / width * 2 - 1
        radius2 = (ys[:, None] ** 2 + xs[None, :] ** 2) / 2
        return image * (1 - self.strength * radius2)[..., None]

    def phrasings(self):
        amount = _word(self.strength, [(0.5, "soft"), (1.0, "dark")])
        return (
            f"a {amount} vignette",
            f"{amount}ened corners framing the centre",
            f"a {amount} spotlight fade towards the edges",
        )


class ColourMap(EditOp):
    """Map luma through a false-colour palette (piecewise-linear stops)."""

    name, kind = "colormap", "colour"
    _PALETTES = {
        "thermal": (
            (0.0, (0.0, 0.0, 0.1)),
            (0.25, (0.35, 0.0, 0.6)),
            (0.5, (0.85, 0.1, 0.35)),
            (0.75, (1.0, 0.6, 0.0)),
            (1.0, (1.0, 1.0, 0.85)),
        ),
        "night_vision": ((0.0, (0.0, 0.05, 0.0)), (0.7, (0.15, 0.9, 0.2)), (1.0, (0.7, 1.0, 0.6))),
        "xray": ((0.0, (0.95, 0.98, 1.0)), (0.6, (0.35, 0.5, 0.65)), (1.0, (0.0, 0.02, 0.08))),
    }
    params = {"palette": Param("thermal", choices=tuple(_PALETTES))}
    _PHRASES = {
        "thermal": ("thermal camera colours", "a heat-vision infrared image", "a hot-cold heatmap"),
        "night_vision": (
            "night vision green",
            "a military low-light goggle view",
            "glowing phosphor-green monochrome",
        ),
        "xray": ("an x-ray look", "a radiograph film image", "a glowing skeletal scan view"),
    }

    def apply(self, image):
        stops = self._PALETTES[self.palette]
        grey = luminance(image)
        positions = [s for s, _ in stops]
        channels = [np.interp(grey, positions, [c[i] for _, c in stops]) for i in range(3)]
        return np.stack(channels, axis=-1)

    def phrasings(self):
        return self._PHRASES[self.palette]


class Season(EditOp):
    """Seasonal looks built from simple colour arithmetic (and a vertical gradient for sunset)."""

    name, kind = "season", "colour"
    params = {"look": Param("winter", choices=("winter", "sunset", "autumn"))}
    _PHRASES = {
        "winter": ("a snowy winter look", "a frosty cold-season mood", "icy pale wintry light"),
        "sunset": ("a sunset glow", "golden-hour evening light", "a dusky orange sky feeling"),
        "autumn": ("an autumn look", "fall foliage colours", "russet leaf-season hues"),
    }

    def apply(self, image):
        grey = luminance(image)[..., None]
        if self.look == "winter":
            muted = grey + 0.4 * (image - grey)
            return 0.75 * muted * _rgb((0.9, 1.0, 1.12)) + 0.25
        if self.look == "sunset":
            top, bottom = _rgb((1.0, 0.45, 0.35)), _rgb((1.0, 0.75, 0.4))
            height = image.shape[0]
            t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
            glow = top + t * (bottom - top)
            return image * glow * 1.1 + 0.03 * glow
        matrix = _rgb(((0.9, 0.35, 0.0), (0.15, 0.65, 0.0), (0.0, 0.0, 0.55)))
        return image @ matrix.T + _rgb((0.0, 0.0, 0.05))

    def phrasings(self):
        return self._PHRASES[self.look]


class Solarize(EditOp):
    name, kind = "solarize", "colour"
    params = {"threshold": Param(0.5, 0.05, 0.95)}

    def apply(self, image):
        return np.where(image > self.threshold, 1.0 - image, image)

    def phrasings(self):
        low = "strong " if self.threshold < 0.4 else ""
        return (
            f"a {low}solarized effect",
            f"{low}half-reversed darkroom tones",
            f"a {low}Sabattier partial-negative print",
        )


class Contrast(EditOp):
    name, kind = "contrast", "colour"
    params = {"factor": Param(1.5, 0.1, 4.0)}

    def apply(self, image):
        return (image - 0.5) * self.factor + 0.5

    def phrasings(self):
        if self.factor >= 1:
            return ("high contrast", "punchy deep blacks and bright whites", "a hard dramatic tone")
        return ("low contrast", "a faded flat matte finish", "washed-out milky tones")


class Brightness(EditOp):
    name, kind = "brightness", "colour"
    params = {"delta": Param(0.2, -0.8, 0.8)}

    def apply(self, image):
        return image + self.delta

    def phrasings(self):
        if self.delta >= 0:
            return ("a brighter exposure", "an airy overexposed lightness", "lifted light levels")
        return ("a darker exposure", "a dim underexposed gloom", "lowered light levels")


class Saturation(EditOp):
    name, kind = "saturation", "colour"
    params = {"factor": Param(1.8, 0.0, 4.0)}

    def apply(self, image):
        grey = luminance(image)[..., None]
        return grey + self.factor * (image - grey)

    def phrasings(self):
        if self.factor >= 1:
            return ("vivid saturated colours", "a bold colour boost", "punchy rich hues")
        return ("muted colours", "a pastel desaturated palette", "drained subdued hues")


class Duotone(EditOp):
    """Map luma onto the line between two named colours (shadows -> dark, highlights -> light)."""

    name, kind = "duotone", "colour"
    params = {
        "dark": Param("navy", choices=tuple(NAMED_COLOURS)),
        "light": Param("gold", choices=tuple(NAMED_COLOURS)),
    }

    def apply(self, image):
        grey = luminance(image)[..., None]
        dark, light = _rgb(NAMED_COLOURS[self.dark]), _rgb(NAMED_COLOURS[self.light])
        return dark + grey * (light - dark)

    def phrasings(self):
        d, li = self.dark, self.light
        return (
            _a(f"{d} and {li} duotone"),
            f"a two-colour print in {d} shadows and {li} highlights",
            _a(f"{d}-to-{li} gradient map"),
        )


OPS: dict[str, type[EditOp]] = {
    cls.name: cls
    for cls in (
        Grayscale,
        Invert,
        Sepia,
        Tint,
        Grade,
        Posterise,
        Blur,
        Sharpen,
        Emboss,
        Sketch,
        Cartoon,
        Pixelate,
        Vignette,
        ColourMap,
        Season,
        Solarize,
        Contrast,
        Brightness,
        Saturation,
        Duotone,
    )
}


def make_op(name: str, **params: Any) -> EditOp:
    """Build a validated op by name; an unknown name lists the known ones."""
    if name not in OPS:
        raise ConfigError(f"unknown op {name!r}; known ops: {', '.join(sorted(OPS))}")
    return OPS[name](**params)


RecipeLike = Iterable[Step | Mapping[str, Any]]


def normalize_recipe(recipe: RecipeLike) -> tuple[Step, ...]:
    """Validate every step and make all parameters explicit, so equal edits compare equal."""
    steps = tuple(s if isinstance(s, Step) else Step.from_mapping(s) for s in recipe)
    if not steps:
        raise ConfigError("a recipe needs at least one step, e.g. [{'op': 'sepia'}]")
    return tuple(step.build().step() for step in steps)


def build_recipe(recipe: RecipeLike) -> list[EditOp]:
    return [step.build() for step in normalize_recipe(recipe)]


def run_ops(image: np.ndarray, ops: Sequence[EditOp]) -> np.ndarray:
    """Apply already-built ops in order to one float HxWx3 image in [0, 1]."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or not np.issubdtype(image.dtype, np.floating):
        raise ValueError(
            f"expected a float HxWx3 image in [0, 1], got dtype {image.dtype} shape {image.shape}"
        )
    out = image.astype(np.float32)
    for op in ops:
        out = op(out)
    return out


def apply_recipe(image: np.ndarray, recipe: RecipeLike) -> np.ndarray:
    """Apply a recipe (steps as dicts or `Step`s) to one float32 HxWx3 image in [0, 1]."""
    return run_ops(image, build_recipe(recipe))


def join_phrases(phrases: Sequence[str]) -> str:
    """One noun phrase from the ops' phrases, in the given order: "a cartoon style with a teal tint"."""
    if len(phrases) <= 2:
        return " with ".join(phrases)
    return f"{phrases[0]} with " + ", ".join(phrases[1:-1]) + f" and {phrases[-1]}"


def describe_recipe(recipe: RecipeLike, variant: int = 0) -> str:
    """A noun phrase for the whole recipe: "a cartoon style with a teal tint"."""
    return join_phrases([op.describe(variant) for op in build_recipe(recipe)])
