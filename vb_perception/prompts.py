"""The prompt grammar: instruction text <-> typed task specs.

The prompt alone selects the task (MISSION.md, "The RGB interface"). :func:`parse_prompt` reads every style of the
paper's figures; :func:`render_prompt` writes varied natural phrasings of a spec (training needs the diversity), and
everything it writes parses back to the same spec.

Styles understood (case-insensitive):

* depth: "Generate a metric depth map of this image", optional colormap ("... with the plasma colormap").
* normals: "Estimate surface normals", "Generate a normal map".
* semantic: JSON-like maps ``{"cat": "red", "lock": <255,192,203>, "background": "#101010"}``; sentences
  ("The macaron cakes are represented by (255, 255, 0).", "The menu is #80C000."); imperative lists
  ("Segment the skateboard in pure yellow (<255, 255, 0>), the dog in RGB(0, 0, 255) and the background in black").
* instances: "Each price tag is colored differently", "instances of car ... different colours", with an optional
  background ("The background is set to #10aa05", "Background is RGB(88, 50, 82)"). One class per prompt.
* referring: free-text expressions with colours ("The area that corresponds to the man in pink t shirt is rendered
  solid white; the other man is rendered in green").

Colours: see :mod:`vb_perception.colors`. Every error is a :class:`~vb_perception.errors.PromptError` that says what
to fix.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, ClassVar, Literal

from vb_perception.codecs.depth import COLORMAPS
from vb_perception.colors import (
    COLOR_STYLES,
    NUMERIC_COLOR_RE,
    RGB,
    color_distance,
    format_color,
    numeric_value,
    parse_color,
    resolve_name,
    unknown_color_error,
)
from vb_perception.errors import PromptError

__all__ = [
    "BACKGROUND_NAMES",
    "MAX_CLASSES",
    "MAX_PROMPT_CHARS",
    "MIN_COLOR_DISTANCE",
    "STYLES",
    "DepthSpec",
    "InstanceSpec",
    "NormalsSpec",
    "ReferringSpec",
    "SemanticSpec",
    "TaskSpec",
    "parse_prompt",
    "render_prompt",
    "spec_to_dict",
]

#: Prompt colours (background included) closer than this, in 8-bit RGB units, cannot be decoded apart reliably.
MIN_COLOR_DISTANCE = 48.0
#: At most this many classes / expressions in one prompt (colours must stay far apart to decode).
MAX_CLASSES = 32
#: Longer prompts are rejected (the text encoder reads far fewer tokens anyway).
MAX_PROMPT_CHARS = 4000
#: Names that mean "the background" in a colour map or a sentence.
BACKGROUND_NAMES = ("background", "bg", "everything else", "the rest", "rest", "others", "other pixels")
_MAX_NAME_CHARS = 200


# ----------------------------------------------------------------------------------------------------------------
# Specs
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DepthSpec:
    """Metric depth, visualised with ``colormap`` (``hilbert`` is the paper's decodable encoding)."""

    colormap: str = "hilbert"
    task: ClassVar[str] = "depth"

    def __post_init__(self) -> None:
        if self.colormap not in COLORMAPS:
            raise PromptError(f"unknown depth colormap {self.colormap!r}; use one of {', '.join(COLORMAPS)}")


@dataclass(frozen=True)
class NormalsSpec:
    """Surface normals in the paper's camera frame, ``rgb = (n + 1) / 2``."""

    task: ClassVar[str] = "normals"


def _clean_name(name: str, what: str) -> str:
    cleaned = " ".join(str(name).split())
    if not cleaned:
        raise PromptError(f"empty {what}: every {what} needs some text, e.g. 'cat' or 'the man in the pink shirt'")
    if len(cleaned) > _MAX_NAME_CHARS:
        raise PromptError(f"{what} {cleaned[:40]!r}... is longer than {_MAX_NAME_CHARS} characters; shorten it")
    return cleaned


def _check_rgb(rgb: Any, what: str) -> RGB:
    if not (isinstance(rgb, (tuple, list)) and len(rgb) == 3 and all(isinstance(v, int) for v in rgb)):
        raise PromptError(f"colour of {what} must be three integers, got {rgb!r}")
    if not all(0 <= v <= 255 for v in rgb):
        raise PromptError(f"colour of {what} {tuple(rgb)} has a component outside 0-255")
    return (rgb[0], rgb[1], rgb[2])


def _validate_targets(targets: Any, background: Any, what: str) -> tuple[tuple[tuple[str, RGB], ...], RGB]:
    pairs = tuple((_clean_name(n, what), _check_rgb(c, f"{what} {n!r}")) for n, c in targets)
    bg = _check_rgb(background, "the background")
    if not pairs:
        raise PromptError(f"no {what} given: name at least one, with its colour")
    if len(pairs) > MAX_CLASSES:
        raise PromptError(
            f"too many {what}s ({len(pairs)}); at most {MAX_CLASSES} fit in one prompt with colours far enough apart "
            "to decode: split them over several prompts"
        )
    seen: dict[str, str] = {}
    for name, _ in pairs:
        key = name.lower()
        if key in seen:
            raise PromptError(f"{what} {name!r} appears twice; give each {what} once, with one colour")
        if key in BACKGROUND_NAMES:
            raise PromptError(f"{name!r} is the background, not a {what}: give it as the background colour")
        seen[key] = name
    labelled = [("the background", bg)] + [(repr(n), c) for n, c in pairs]
    for i, (name_a, col_a) in enumerate(labelled):
        for name_b, col_b in labelled[i + 1 :]:
            if color_distance(col_a, col_b) < MIN_COLOR_DISTANCE:
                raise PromptError(
                    f"colours of {name_a} {col_a} and {name_b} {col_b} are too close to decode apart "
                    f"(distance {color_distance(col_a, col_b):.0f} < {MIN_COLOR_DISTANCE:.0f} in 8-bit RGB): "
                    "pick colours that differ more"
                )
    return pairs, bg


@dataclass(frozen=True)
class SemanticSpec:
    """Semantic segmentation: each class (any text) in its prompt colour, everything else in ``background``.

    Label ``i`` (1-based) of the decoded map is ``classes[i - 1]``.
    """

    classes: tuple[tuple[str, RGB], ...]
    background: RGB = (0, 0, 0)
    task: ClassVar[str] = "semantic"

    def __post_init__(self) -> None:
        pairs, bg = _validate_targets(self.classes, self.background, "class")
        object.__setattr__(self, "classes", pairs)
        object.__setattr__(self, "background", bg)

    @property
    def palette(self) -> dict[str, RGB]:
        """Class name -> colour, in label order."""
        return dict(self.classes)


@dataclass(frozen=True)
class ReferringSpec:
    """Referring-expression segmentation: each free-text expression in its colour, the rest in ``background``."""

    targets: tuple[tuple[str, RGB], ...]
    background: RGB = (0, 0, 0)
    task: ClassVar[str] = "referring"

    def __post_init__(self) -> None:
        pairs, bg = _validate_targets(self.targets, self.background, "expression")
        object.__setattr__(self, "targets", pairs)
        object.__setattr__(self, "background", bg)

    @property
    def palette(self) -> dict[str, RGB]:
        """Expression -> colour, in label order."""
        return dict(self.targets)


@dataclass(frozen=True)
class InstanceSpec:
    """Instance segmentation of one class: the model colours each instance differently on ``background``."""

    class_name: str
    background: RGB = (0, 0, 0)
    task: ClassVar[str] = "instances"

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_name", _clean_name(self.class_name, "class"))
        if self.class_name.lower() in BACKGROUND_NAMES:
            raise PromptError("the instance class cannot be the background; name the objects to separate")
        object.__setattr__(self, "background", _check_rgb(self.background, "the background"))


TaskSpec = DepthSpec | NormalsSpec | SemanticSpec | InstanceSpec | ReferringSpec


def spec_to_dict(spec: TaskSpec) -> dict[str, Any]:
    """JSON-ready dict of a spec, with its ``task``."""
    out: dict[str, Any] = {"task": spec.task}
    if isinstance(spec, DepthSpec):
        out["colormap"] = spec.colormap
    elif isinstance(spec, (SemanticSpec, ReferringSpec)):
        key = "classes" if isinstance(spec, SemanticSpec) else "targets"
        out[key] = [{"name": n, "rgb": list(c)} for n, c in spec.palette.items()]
        out["background"] = list(spec.background)
    elif isinstance(spec, InstanceSpec):
        out["class"] = spec.class_name
        out["background"] = list(spec.background)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------------------------

_NORMALS_RE = re.compile(r"\bsurface[\s-]+normals?\b|\bnormal[\s-]+(?:maps?|estimation|vectors?)\b|\bnormals\b", re.I)
_DEPTH_RE = re.compile(r"\bdepths?\b|\bdistance[\s-]+maps?\b", re.I)
_SEG_RE = re.compile(
    r"\bsegment|\bmasks?\b|\binstances?\b|\bclass(?:es)?\b|\brepresented\b|\bcolou?r[\s-]+mapping\b"
    r"|\blabel(?:l?ing)?\b|\bcolou?red\b|\bpainted\b",
    re.I,
)
_COLORMAP_RE = re.compile(r"\b(plasma|inferno|viridis|gr[ae]y[\s-]?scale|gr[ae]y|hilbert)\b", re.I)
_INSTANCE_RE = re.compile(
    r"\binstances?\b|\bcolou?red\s+differently\b|\bdifferent\s+colou?rs?\b|\bunique\b[^.]*\bcolou?r|"
    r"\bdistinct\s+colou?rs?\b|\bdifferently\b",
    re.I,
)
_SEMANTIC_CUE_RE = re.compile(r"\bsemantic\b|\bclass\s+label(?:l?ing)?\b|\bper-pixel\s+class\b|\bcategor", re.I)
_REFERRING_CUE_RE = re.compile(
    r"\breferring\b|\brefers?\s+to\b|\bdescribed\s+as\b|\bcorresponds?\s+to\b|\breferred\s+to\b", re.I
)
_RELATIONAL_WORDS = frozenset(
    "left right near nearest far farthest closest behind front next beside between above below under wearing "
    "holding with in on that who which whose other first second third fourth last largest smallest biggest "
    "leftmost rightmost middle top bottom".split()
)
_ENDING_RE = re.compile(r"\s*(?:$|[.,;!?)\]}\n]|and\b|while\b|whereas\b|then\b|but\b|&)", re.I)
_TRAILING_WORDS_RE = re.compile(r"\s+(?:colou?r|pixels?|masks?)\b", re.I)
_TRAIL_RE = re.compile(
    r"(?:^|\s+)(?:is|are|be|was|were|set|to|in|as|with|using|by|represented|depicted|shown|rendered|drawn|painted|"
    r"colou?red|marked|highlighted|filled|labell?ed|displayed|visuali[sz]ed|segmented|should|a|an|the|solid|refers?|"
    r"each|into|of)\s*$|\s*(?:->|=>|=|:|\u2192)\s*$",
    re.I,
)
_LEAD_RE = re.compile(  # longer phrases first: alternation takes the first that matches
    r"^\s*(?:the\s+area\s+that\s+corresponds?\s+to|the\s+region\s+that\s+corresponds?\s+to|"
    r"the\s+object\s+described\s+as|the\s+object\s+referred\s+to\s+as|the\s+target\s+referred\s+to\s+as|"
    r"whatever\s+is\s+described\s+as|pixels\s+of|and|then|also|while|whereas|but|please|segment|color|colour|"
    r"paint|mark|highlight|label|show|draw|fill|render|make|with|where|the|a|an|all|every|each|of|in)\b\s*",
    re.I,
)
_SUFFIX_RE = re.compile(r"\s+(?:category|class|regions?|area|pixels)$", re.I)
_SEPARATORS_RE = re.compile(r"[.;:!?,\n]")
_WORD_RE = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    rgb: RGB
    ends_clause: bool = field(default=False)


def _find_mentions(text: str) -> list[_Mention]:
    """Colour mentions (numeric forms and names with modifiers) in text order, merged and extended."""
    spans: list[tuple[int, int, RGB, bool]] = []  # start, end, rgb, numeric
    taken = [False] * (len(text) + 1)
    for m in NUMERIC_COLOR_RE.finditer(text):
        spans.append((m.start(), m.end(), numeric_value(m), True))
        for i in range(m.start(), m.end()):
            taken[i] = True
    words = [w for w in _WORD_RE.finditer(text) if not taken[w.start()]]
    i = 0
    while i < len(words):
        for n in range(min(4, len(words) - i), 0, -1):
            group = words[i : i + n]
            gaps = [text[a.end() : b.start()] for a, b in pairwise(group)]
            if any(not re.fullmatch(r"[ \t\-]+", g) for g in gaps):
                continue
            rgb = resolve_name(text[group[0].start() : group[-1].end()])
            if rgb is not None:
                spans.append((group[0].start(), group[-1].end(), rgb, False))
                i += n
                break
        else:
            i += 1
    spans.sort()
    merged: list[tuple[int, int, RGB]] = []
    for start, end, rgb, numeric in spans:
        if numeric and merged:
            p_start, p_end, _ = merged[-1]
            gap = text[p_end:start]
            if re.fullmatch(r"\s*[\(\[]?\s*", gap):  # "pure yellow (<255, 255, 0>)": the exact value wins
                close = re.match(r"\s*[\)\]]", text[end:]) if gap.strip() else None
                merged[-1] = (p_start, end + (close.end() if close else 0), rgb)
                continue
        merged.append((start, end, rgb))
    out = []
    for start, end, rgb in merged:
        extra = _TRAILING_WORDS_RE.match(text, end)
        if extra:
            end = extra.end()
        out.append(_Mention(start, end, rgb, bool(_ENDING_RE.match(text, end))))
    return out


def _strip_repeated(pattern: re.Pattern[str], s: str) -> str:
    while True:
        new = pattern.sub("", s, count=1)
        if new == s:
            return s.strip()
        s = new


def _clean_target(raw: str) -> str:
    s = _strip_repeated(_TRAIL_RE, raw)
    s = _SEPARATORS_RE.split(s)[-1]
    s = _strip_repeated(_LEAD_RE, s)
    s = _strip_repeated(_SUFFIX_RE, s)
    return s.strip().strip("\"'`").strip()


def _is_background(name: str) -> bool:
    return name.lower().strip() in BACKGROUND_NAMES


def _clauses(text: str) -> tuple[list[tuple[str, RGB]], str]:
    """(target, colour) pairs for every clause that ends in a colour, and the text with those colours masked."""
    pairs: list[tuple[str, RGB]] = []
    masked: list[str] = []
    prev = 0
    for m in _find_mentions(text):
        if not m.ends_clause:
            continue
        pairs.append((_clean_target(text[prev : m.start]), m.rgb))
        masked.append(text[prev : m.start] + " .")
        prev = m.end
    masked.append(text[prev:])
    return pairs, "".join(masked)


_CONNECTOR_WORDS = frozenset(
    "is are be was were set to in as with using by represented depicted shown rendered drawn painted colored "
    "coloured marked highlighted filled labeled labelled displayed visualized visualised segmented should a an the "
    "solid refers refer each into of and".split()
)
_UNKNOWN_COLOR_RE = re.compile(
    r"\b(?:in|as|is|are|by|using|with|to)\s+(?:(?:a|an|the|solid|pure)\s+)*"
    r"(?P<word>[a-z]+(?:[\s-][a-z]+)?)(?:\s+colou?r)?\s*(?:$|[.;,!)]|and\b)",
    re.I,
)


def _unknown_color_near(text: str) -> PromptError | None:
    """A clause that ends like a colour but names none ("the cat in blurple"): an error with close matches."""
    from vb_perception.colors import _close_names

    for m in _UNKNOWN_COLOR_RE.finditer(text):
        word = m.group("word")
        if _CONNECTOR_WORDS & set(word.lower().split()):
            continue
        if resolve_name(word) is None and _close_names(word):
            return unknown_color_error(word)
    return None


def _parse_json_map(body: str) -> list[tuple[str, RGB]]:
    """Entries of a lenient JSON-like map: keys quoted or bare, values names, hex, <r,g,b>, (r,g,b), RGB(...)."""
    entries: list[str] = []
    depth, quote, current = 0, "", []
    for ch in body:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "<([":
            depth += 1
        elif ch in ">)]":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            entries.append("".join(current))
            current = []
            continue
        current.append(ch)
    entries.append("".join(current))
    pairs = []
    for entry in entries:
        if not entry.strip():
            continue
        m = re.fullmatch(
            r"\s*(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)'|(?P<bare>[^:\"']*?))\s*:\s*(?P<value>.+?)\s*", entry, re.S
        )
        if not m:
            raise PromptError(
                f'cannot read colour-map entry {entry.strip()!r}: write it as "name": colour, '
                'e.g. {"cat": "red", "dog": <0, 0, 255>, "background": "#101010"}'
            )
        key = next(g for g in (m.group("dq"), m.group("sq"), m.group("bare")) if g is not None)
        pairs.append((key.strip(), parse_color(m.group("value"))))
    return pairs


def _split_background(pairs: list[tuple[str, RGB]]) -> tuple[list[tuple[str, RGB]], RGB]:
    background: RGB = (0, 0, 0)
    targets = []
    for name, rgb in pairs:
        if _is_background(name):
            background = rgb
        else:
            targets.append((name, rgb))
    return targets, background


def _looks_referring(text: str, names: list[str]) -> bool:
    if _SEMANTIC_CUE_RE.search(text):
        return False
    if _REFERRING_CUE_RE.search(text):
        return True
    return any(len(n.split()) > 4 or _RELATIONAL_WORDS & set(n.lower().split()) for n in names)


_INSTANCE_CLASS_RES = (
    re.compile(
        r"\b(?:each|every)\s+(?:piece\s+of\s+|one\s+of\s+the\s+|single\s+)?(?P<c>[^.;:,]+?)(?:\s+instance)?\s+"
        r"(?:is|gets|has|in|with)\b",
        re.I,
    ),
    re.compile(r"\bthe\s+(?P<c>[^.;:,]+?)\s+instances\s+are\b", re.I),
    re.compile(
        r"\binstances?\s+of\s+(?:the\s+|a\s+|an\s+|every\s+|each\s+|all\s+)?(?P<c>[^.;:,]+?)"
        r"(?:\s+(?:in|with|on|using)\b|[.;:,]|$)",
        re.I,
    ),
    re.compile(r"\bmasks?\s+for\s+(?:the\s+|all\s+|each\s+)?(?P<c>[^.;:,]+?)\s+(?:from|in)\s+the\b", re.I),
)


def _parse_instances(text: str) -> InstanceSpec | None:
    for pattern in _INSTANCE_CLASS_RES:
        m = pattern.search(text)
        if m:
            name = m.group("c").replace('"', "").replace("'", "").strip()
            name = _strip_repeated(_LEAD_RE, name)
            break
    else:
        return None
    pairs, _ = _clauses(text)
    _, background = _split_background([(n, c) for n, c in pairs if _is_background(n)])
    return InstanceSpec(name, background)


def parse_prompt(text: str, *, kind: Literal["auto", "semantic", "referring"] = "auto") -> TaskSpec:
    """Parse an instruction prompt into a task spec.

    Args:
        text: the prompt, in any style of the module docstring.
        kind: for colour-assigning prompts, force ``semantic`` or ``referring`` instead of guessing from cues
            ("semantic", "class labeling" vs "referring", "corresponds to", relational words).

    Raises:
        PromptError: not a task we know, unknown colour name, colours too close, empty or duplicate class names,
            too many classes.
    """
    if not isinstance(text, str):
        raise PromptError(f"a prompt must be text, got {type(text).__name__}")
    if len(text) > MAX_PROMPT_CHARS:
        raise PromptError(f"prompt is {len(text)} characters long; keep it under {MAX_PROMPT_CHARS}")
    if kind not in ("auto", "semantic", "referring"):
        raise PromptError(f"unknown prompt kind {kind!r}; use auto, semantic or referring")
    s = " ".join(text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2019", "'").split())
    if not s:
        raise PromptError("empty prompt: say which task, e.g. 'Generate a metric depth map of this image'")

    # 1. A colour map in braces is semantic (or referring, if forced).
    brace = re.search(r"\{(.*)\}", s, re.S)
    if brace:
        targets, background = _split_background(_parse_json_map(brace.group(1)))
        if kind == "referring":
            return ReferringSpec(tuple(targets), background)
        return SemanticSpec(tuple(targets), background)

    # 2. Depth and normals, when nothing asks for segmentation.
    if not _SEG_RE.search(s):
        wants_normals, wants_depth = bool(_NORMALS_RE.search(s)), bool(_DEPTH_RE.search(s))
        if wants_normals and wants_depth:
            raise PromptError("the prompt asks for depth and normals; one task per prompt, so send two prompts")
        if wants_normals:
            return NormalsSpec()
        if wants_depth:
            cm = _COLORMAP_RE.search(s)
            name = cm.group(1).lower() if cm else "hilbert"
            return DepthSpec("gray" if name.startswith(("gray", "grey")) else name)

    # 3. Instances: one class, colours picked by the model.
    if _INSTANCE_RE.search(s):
        spec = _parse_instances(s)
        if spec is not None:
            return spec

    # 4. Clauses that end in a colour: semantic or referring.
    pairs, masked = _clauses(s)
    unknown = _unknown_color_near(masked)
    if unknown is not None:
        raise unknown
    if not pairs:
        raise PromptError(
            "could not tell the task from the prompt; say e.g. 'Generate a metric depth map', 'Estimate surface "
            "normals', 'Segment the cat in red and the dog in <0, 0, 255>' or 'Each car is colored differently'"
        )
    targets, background = _split_background(pairs)
    names = [n for n, _ in targets]
    if kind == "referring" or (kind == "auto" and _looks_referring(s, names)):
        return ReferringSpec(tuple(targets), background)
    return SemanticSpec(tuple(targets), background)


# ----------------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------------

#: Phrasings :func:`render_prompt` knows, per task.
STYLES: dict[str, tuple[str, ...]] = {
    "depth": ("generate", "estimate", "visualize", "short"),
    "normals": ("generate", "estimate", "visualize", "short"),
    "semantic": ("json", "json_intro", "represented", "imperative", "is_list", "arrow"),
    "instances": ("colored_differently", "masks_for", "unique_color", "instances_of"),
    "referring": ("corresponds", "described_as", "referring_list"),
}
_SAFE_NAME_RE = re.compile(r"^[^.;:!?,\n\"{}<>()\[\]#=]+$")


def _pick(rng: random.Random, options: tuple[str, ...], chosen: str | None, what: str) -> str:
    if chosen is None:
        return rng.choice(options)
    if chosen not in options:
        raise ValueError(f"unknown {what} {chosen!r}; use one of {', '.join(options)}")
    return chosen


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def render_prompt(
    spec: TaskSpec,
    style: str | None = None,
    *,
    color_style: str | None = None,
    rng: random.Random | int | None = None,
) -> str:
    """Write ``spec`` as a natural prompt; :func:`parse_prompt` reads it back to an equal spec.

    Args:
        style: one of ``STYLES[spec.task]``; random (from ``rng``) when None.
        color_style: one of :data:`vb_perception.colors.COLOR_STYLES`; random when None.
        rng: a ``random.Random`` or a seed, for reproducible variety.
    """
    r = rng if isinstance(rng, random.Random) else random.Random(rng)
    st = _pick(r, STYLES[spec.task], style, f"{spec.task} style")

    def col(rgb: RGB) -> str:
        return format_color(rgb, _pick(r, COLOR_STYLES, color_style, "colour style"))

    if isinstance(spec, DepthSpec):
        cm = "" if spec.colormap == "hilbert" else f" with the {spec.colormap} colormap"
        return {
            "generate": f"Generate a metric depth map of this image{cm}.",
            "estimate": f"Estimate the metric depth of every pixel and visualize it{cm or ' as a depth map'}.",
            "visualize": f"Visualize the depth of the scene{cm}.",
            "short": f"depth{cm}",
        }[st]
    if isinstance(spec, NormalsSpec):
        return {
            "generate": "Generate a surface normal map of this image.",
            "estimate": "Estimate the surface normals of every pixel in camera space.",
            "visualize": "Visualize the surface normals of the scene.",
            "short": "surface normals",
        }[st]
    if isinstance(spec, InstanceSpec):
        name, bg = spec.class_name, col(spec.background)
        return {
            "colored_differently": f"Generate an instance segmentation visualization of this image. Each {name} is "
            f"colored differently. The background is {bg}.",
            "masks_for": f"This image shows segmentation masks for the {name} instances from the input image. The "
            f"background is set to {bg}. Each {name} is represented by a different color.",
            "unique_color": f"Instance segmentation: each {name} in a unique solid color; the background is {bg}.",
            "instances_of": f"Segment all instances of {name}, each in a different colour, and the background in {bg}.",
        }[st]
    if isinstance(spec, SemanticSpec):
        items, bg = list(spec.palette.items()), spec.background
        if not all(_SAFE_NAME_RE.match(n) for n, _ in items) and not st.startswith("json"):
            st = "json"  # names with punctuation only survive inside quotes
        if st in ("json", "json_intro"):
            body = ", ".join([json.dumps(n) + ": " + _json_value(col(c)) for n, c in items])
            body += ", " + json.dumps("background") + ": " + _json_value(col(bg))
            intro = "Generate a semantic segmentation visualization image, using this color mapping: "
            if st == "json_intro":
                intro = "Generate a visualization image of semantic segmentation, using this color mapping: "
            return intro + "{" + body + "}."
        if st == "represented":
            parts = [f"The {n} {'are' if n.endswith('s') else 'is'} represented by {col(c)}." for n, c in items]
            return (
                "This image is a per-pixel class labeling of the input. "
                + " ".join(parts)
                + (f" The background is {col(bg)}.")
            )
        if st == "imperative":
            parts = [f"the {n} in {col(c)}" for n, c in items] + [f"the background in {col(bg)}"]
            return "Semantic segmentation: segment " + _join(parts) + "."
        if st == "is_list":
            parts = [f"The {n} is {col(c)}." for n, c in items]
            return (
                "Generate a semantic segmentation visualization of the input. "
                + " ".join(parts)
                + (f" The background is {col(bg)}.")
            )
        parts = [f"{n} -> {col(c)}" for n, c in items] + [f"background -> {col(bg)}"]
        return "Semantic segmentation with classes; " + "; ".join(parts) + "."
    # ReferringSpec
    items, bg = list(spec.palette.items()), spec.background
    if not all(_SAFE_NAME_RE.match(n) for n, _ in items):
        body = ", ".join(json.dumps(n) + ": " + _json_value(col(c)) for n, c in items)
        return "Referring segmentation, using this mapping: {" + body + ', "background": ' + _json_value(col(bg)) + "}."
    if st == "corresponds":
        parts = [f"the area that corresponds to the {n} is rendered solid {col(c)}" for n, c in items]
        return (
            "A segmentation map image. "
            + "; ".join(p[0].upper() + p[1:] if i == 0 else p for i, p in enumerate(parts))
            + f". The background is {col(bg)}."
        )
    if st == "described_as":
        parts = [f"the object described as {n} in {col(c)}" for n, c in items]
        return "Referring segmentation: segment " + _join(parts) + f", and the background in {col(bg)}."
    parts = [f"The {n} refers to {col(c)}." for n, c in items]
    return "A referring segmentation image. " + " ".join(parts) + f" The background is {col(bg)}."


def _json_value(color_text: str) -> str:
    """Quote names and hex codes as JSON strings; leave <r, g, b> and (r, g, b) bare, as the paper does."""
    if color_text.startswith(("<", "(", "[")):
        return color_text
    return json.dumps(color_text)
