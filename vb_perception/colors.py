"""Colours in prompts: names, modifiers and numeric forms, parsed to and formatted from 8-bit RGB.

Names are the CSS4 / X11 set (matplotlib's table, identical to the CSS spec's values), written joined or spaced
(``"sky blue"`` = ``skyblue``). Modifiers: ``light``/``pale`` (the CSS ``light*`` colour if there is one, else
halfway to white), ``dark``/``deep`` (the CSS ``dark*`` colour if there is one, else 55 % brightness),
``pure``/``bright``/``vivid`` (full saturation and value of the hue: "pure green" is (0, 255, 0)) and ``solid``
(no change). Numeric forms: ``#RRGGBB``, ``#RGB``, ``RGB(r, g, b)``, ``<r, g, b>``, ``(r, g, b)``, ``[r, g, b]``.
"""

from __future__ import annotations

import colorsys
import difflib
import re
from functools import lru_cache

from vb_perception.errors import PromptError

__all__ = [
    "COLOR_STYLES",
    "INSTANCE_SLOT_COLORS",
    "MODIFIERS",
    "RGB",
    "color_distance",
    "color_names",
    "format_color",
    "instance_slots",
    "name_of",
    "parse_color",
    "resolve_name",
]

RGB = tuple[int, int, int]
MODIFIERS = ("light", "pale", "dark", "deep", "pure", "bright", "vivid", "solid")
#: Ways :func:`format_color` can write a colour (all parse back with :func:`parse_color`).
COLOR_STYLES = ("name", "angle", "tuple", "rgb", "hex", "hex_upper", "hex3", "name_angle", "name_tuple")

_NUM = r"\s*(\d{1,3})\s*"
NUMERIC_COLOR_RE = re.compile(
    rf"(?:rgb\s*\({_NUM},{_NUM},{_NUM}\))|(?:<{_NUM},{_NUM},{_NUM}>)|(?:\({_NUM},{_NUM},{_NUM}\))"
    rf"|(?:\[{_NUM},{_NUM},{_NUM}\])|(?:#(?P<hex6>[0-9a-f]{{6}})\b)|(?:#(?P<hex3>[0-9a-f]{{3}})\b)",
    re.IGNORECASE,
)


@lru_cache(maxsize=1)
def color_names() -> dict[str, RGB]:
    """Every colour name we accept without a modifier (CSS4/X11, lower case, no spaces) -> RGB."""
    from matplotlib.colors import CSS4_COLORS  # lazy, once: the well-kept CSS table robots already install

    return {name: (int(h[1:3], 16), int(h[3:5], 16), int(h[5:7], 16)) for name, h in CSS4_COLORS.items()}


@lru_cache(maxsize=1)
def _preferred_names() -> dict[RGB, str]:
    """One name per RGB value (the shortest, so "aqua"/"cyan" pick "aqua", "gray"/"grey" pick "gray")."""
    out: dict[RGB, str] = {}
    for name, rgb in sorted(color_names().items(), key=lambda kv: (len(kv[0]), kv[0])):
        out.setdefault(rgb, name)
    return out


def name_of(rgb: RGB) -> str | None:
    """The CSS name of exactly this RGB value, if it has one."""
    return _preferred_names().get(tuple(rgb))  # type: ignore[arg-type]


def _key(words: str) -> str:
    return re.sub(r"[\s\-_]+", "", words.lower())


def _apply_modifier(modifier: str, base: str, rgb: RGB) -> RGB:
    names = color_names()
    if modifier == "solid":
        return rgb
    if modifier in ("light", "pale"):
        for prefix in (modifier, "light"):
            if prefix + base in names:
                return names[prefix + base]
        return (round((rgb[0] + 255) / 2), round((rgb[1] + 255) / 2), round((rgb[2] + 255) / 2))
    if modifier in ("dark", "deep"):
        for prefix in (modifier, "dark"):
            if prefix + base in names:
                return names[prefix + base]
        return (round(rgb[0] * 0.55), round(rgb[1] * 0.55), round(rgb[2] * 0.55))
    # pure / bright / vivid: the hue at full saturation and value; greys stay as they are.
    h, s, _ = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    if s == 0.0:
        return rgb
    r, g, b = colorsys.hsv_to_rgb(h, 1.0, 1.0)
    return (round(r * 255), round(g * 255), round(b * 255))


def resolve_name(text: str) -> RGB | None:
    """RGB of a colour name with optional modifiers ("light purple", "pure yellow", "sky blue"), or None."""
    words = [w for w in re.split(r"[\s\-_]+", text.strip().lower()) if w]
    names = color_names()
    if not words:
        return None
    joined = "".join(words)
    if joined in names:
        return names[joined]
    if words[0] in MODIFIERS and len(words) > 1:
        base = "".join(words[1:])
        inner = resolve_name(" ".join(words[1:]))
        if inner is not None:
            return _apply_modifier(words[0], base, inner)
    return None


def _close_names(text: str) -> list[str]:
    words = text.strip().lower().split()
    candidates = list(color_names())
    if words and words[0] in MODIFIERS:
        rest = difflib.get_close_matches(_key(" ".join(words[1:])), candidates, n=3, cutoff=0.6)
        return [f"{words[0]} {r}" for r in rest]
    return difflib.get_close_matches(_key(text), candidates, n=3, cutoff=0.6)


def unknown_color_error(text: str) -> PromptError:
    """A :class:`PromptError` for an unknown colour name, with the closest known names."""
    close = _close_names(text)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    return PromptError(
        f"unknown colour name {text.strip()!r}: {hint}use a CSS/X11 colour name (optionally with light, dark, "
        "pure...) or a value such as #FF8800, RGB(255, 136, 0) or <255, 136, 0>"
    )


def numeric_value(match: re.Match[str]) -> RGB:
    """RGB of a :data:`NUMERIC_COLOR_RE` match; raises :class:`PromptError` for components above 255."""
    if match.group("hex6"):
        h = match.group("hex6")
        return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
    if match.group("hex3"):
        h = match.group("hex3")
        return (int(h[0] * 2, 16), int(h[1] * 2, 16), int(h[2] * 2, 16))
    values = tuple(int(g) for g in match.groups()[:12] if g is not None)
    if any(v > 255 for v in values):
        raise PromptError(f"colour {match.group(0)!r} has a component above 255; RGB components are 0-255")
    return values  # type: ignore[return-value]


def parse_color(text: str) -> RGB:
    """Parse one colour: a name with optional modifiers, or a numeric form. Raises :class:`PromptError`."""
    s = text.strip().strip("\"'").strip()
    s = re.sub(r"\s+colou?r$", "", s, flags=re.IGNORECASE)
    m = NUMERIC_COLOR_RE.fullmatch(s)
    if m:
        return numeric_value(m)
    # "pure yellow (<255, 255, 0>)": a name followed by its value; the value is exact, so it wins.
    m = re.fullmatch(r"(.*?)\s*[\(\[]?\s*(" + NUMERIC_COLOR_RE.pattern + r")\s*[\)\]]?", s, re.IGNORECASE)
    if m and m.group(1) and resolve_name(m.group(1)) is not None:
        inner = NUMERIC_COLOR_RE.fullmatch(m.group(2))
        if inner:
            return numeric_value(inner)
    rgb = resolve_name(s)
    if rgb is None:
        raise unknown_color_error(s)
    return rgb


def format_color(rgb: RGB, style: str = "angle") -> str:
    """Write ``rgb`` in one of :data:`COLOR_STYLES`; name styles fall back to ``angle`` for unnamed values."""
    r, g, b = rgb
    name = name_of(rgb)
    if style == "name":
        return name if name else format_color(rgb, "angle")
    if style == "angle":
        return f"<{r}, {g}, {b}>"
    if style == "tuple":
        return f"({r}, {g}, {b})"
    if style == "rgb":
        return f"RGB({r}, {g}, {b})"
    if style == "hex":
        return f"#{r:02x}{g:02x}{b:02x}"
    if style == "hex_upper":
        return f"#{r:02X}{g:02X}{b:02X}"
    if style == "hex3":
        if all(c % 17 == 0 for c in rgb):
            return f"#{r // 17:X}{g // 17:X}{b // 17:X}"
        return format_color(rgb, "hex_upper")
    if style == "name_angle":
        return f"{name} (<{r}, {g}, {b}>)" if name else format_color(rgb, "angle")
    if style == "name_tuple":
        return f"{name} ({r}, {g}, {b})" if name else format_color(rgb, "tuple")
    raise ValueError(f"unknown colour style {style!r}; use one of {', '.join(COLOR_STYLES)}")


def color_distance(a: RGB, b: RGB) -> float:
    """Euclidean distance in 8-bit RGB units."""
    return float(sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5)


#: The colours a generator paints instances in, one per instance (the "slots" of its palette head). Points of the
#: {0, 128, 255}^3 grid, so any two are at least 127 apart. Fixed forever: checkpoints depend on this order.
INSTANCE_SLOT_COLORS: tuple[RGB, ...] = (
    (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255), (255, 255, 255),
    (255, 128, 0), (128, 0, 255), (0, 128, 255), (255, 0, 128), (0, 255, 128), (128, 255, 0), (128, 128, 128),
    (128, 0, 0), (0, 0, 128),
)  # fmt: skip
#: Slots closer than this to the prompt's background colour are not used for that prompt.
INSTANCE_SLOT_BACKGROUND_DISTANCE = 64.0


def instance_slots(background: RGB) -> tuple[RGB, ...]:
    """The instance colours usable on ``background``: :data:`INSTANCE_SLOT_COLORS` minus those close to it."""
    return tuple(c for c in INSTANCE_SLOT_COLORS if color_distance(c, background) >= INSTANCE_SLOT_BACKGROUND_DISTANCE)
