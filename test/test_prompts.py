"""The prompt grammar: the paper's prompts, round trips of rendered prompts, errors, and a 10k-prompt fuzz."""

from __future__ import annotations

import json

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vb_perception.colors import COLOR_STYLES, color_distance, format_color, parse_color
from vb_perception.errors import PromptError
from vb_perception.prompts import (
    MAX_CLASSES,
    MIN_COLOR_DISTANCE,
    STYLES,
    DepthSpec,
    InstanceSpec,
    NormalsSpec,
    ReferringSpec,
    SemanticSpec,
    parse_prompt,
    render_prompt,
    spec_to_dict,
)

PAPER_PROMPTS = [
    (
        'Generate a semantic segmentation visualization image, using this color mapping: {"cat": "red", "lock": '
        '"pink", "exit sign": "light purple", "background": yellow}.',
        SemanticSpec((("cat", (255, 0, 0)), ("lock", (255, 192, 203)), ("exit sign", (192, 128, 192))), (255, 255, 0)),
    ),
    (
        'Generate a visualization image of semantic segmentation, using this color mapping: {"cat ears": '
        '<255, 165, 0>, "exit sign": <0, 0, 255>, "background":<125,0, 125>}',
        SemanticSpec((("cat ears", (255, 165, 0)), ("exit sign", (0, 0, 255))), (125, 0, 125)),
    ),
    (
        "This image is a per-pixel class labeling of the input. The macaron cakes are represented by (255, 255, 0). "
        "The round plates are represented by (255, 192, 128). The slice cakes are depicted in (64, 192, 64). The "
        "flowers are shown in (128, 0, 64). The tongs are (255, 0, 192).",
        SemanticSpec(
            (
                ("macaron cakes", (255, 255, 0)),
                ("round plates", (255, 192, 128)),
                ("slice cakes", (64, 192, 64)),
                ("flowers", (128, 0, 64)),
                ("tongs", (255, 0, 192)),
            )
        ),
    ),
    (
        "Generate a semantic segmentation visualization of the input. The menu is #80C000. The dessert is #800000. "
        "The patterns on the wall is #40FFC0",
        SemanticSpec((("menu", (128, 192, 0)), ("dessert", (128, 0, 0)), ("patterns on the wall", (64, 255, 192)))),
    ),
    ("Segment the skateboard category in pure yellow (<255, 255, 0>)", SemanticSpec((("skateboard", (255, 255, 0)),))),
    (
        '{"cat": "red", "lock": <255,192,203>, "background": "#101010"}',
        SemanticSpec((("cat", (255, 0, 0)), ("lock", (255, 192, 203))), (16, 16, 16)),
    ),
    (
        "Generate an instance segmentation visualization of this image. Each piece of garlic is colored differently.",
        InstanceSpec("garlic"),
    ),
    (
        "Generate an instance segmentation visualization of this image. Each price tag is colored differently. ",
        InstanceSpec("price tag"),
    ),
    (
        'This image is a segmentation task derived from the input. The "crescent"-shaped croissant instances are '
        "each represented by a unique, solid color. Background is RGB(88, 50, 82).",
        InstanceSpec("crescent-shaped croissant", (88, 50, 82)),
    ),
    (
        "This image shows segmentation masks for the basketballs from the input image. The background is set to "
        "#10aa05. Each basketball instance is represented by a solid circular mask, and a different colora is used "
        "for each mask.",
        InstanceSpec("basketball", (16, 170, 5)),
    ),
    (
        "This image shows segmentation masks for the balls from the input image. The background is set to white "
        "color. Each ball is represented by a different color.",
        InstanceSpec("ball", (255, 255, 255)),
    ),
    (
        "A segmentation map image. The area that corresponds to the man in pink t shirt is rendered solid white; "
        "the other man is rendered in green.",
        ReferringSpec((("man in pink t shirt", (255, 255, 255)), ("other man", (0, 128, 0)))),
    ),
    (
        "A segmentation map image. The stretching cat is rendered in green, the cat that is cleaning itself is in "
        "cyan.",
        ReferringSpec((("stretching cat", (0, 128, 0)), ("cat that is cleaning itself", (0, 255, 255)))),
    ),
    (
        "This image shows segmentation masks from the given image. The background is black color. The chef's names "
        "in both Chinese and English are rendered as cyan color.",
        ReferringSpec((("chef's names in both Chinese and English", (0, 255, 255)),)),
    ),
    ("Generate a metric depth map of this image.", DepthSpec()),
    ("Estimate depth and visualize it with the plasma colormap", DepthSpec("plasma")),
    ("Show the depth in grayscale", DepthSpec("gray")),
    ("Estimate surface normals in camera space.", NormalsSpec()),
    ("Generate a normal map", NormalsSpec()),
]


@pytest.mark.parametrize(("text", "expected"), PAPER_PROMPTS, ids=[t[:40] for t, _ in PAPER_PROMPTS])
def test_paper_prompts_parse_to_the_intended_task(text: str, expected: object) -> None:
    assert parse_prompt(text) == expected


def test_game_controller_prompt_is_one_target_on_black() -> None:
    spec = parse_prompt(
        "This image shows segmentation masks from the given image. The background is black color. The game control "
        "device is represented by a solid yellow."
    )
    assert isinstance(spec, (SemanticSpec, ReferringSpec))
    assert spec.palette == {"game control device": (255, 255, 0)} and spec.background == (0, 0, 0)


def test_kind_forces_referring_or_semantic() -> None:
    text = "Segment the cup on the left in red"
    assert isinstance(parse_prompt(text), ReferringSpec)
    assert isinstance(parse_prompt(text, kind="semantic"), SemanticSpec)
    assert isinstance(parse_prompt('{"cat": "red"}', kind="referring"), ReferringSpec)


@pytest.mark.parametrize(
    ("text", "rgb"),
    [
        ("#80C000", (128, 192, 0)),
        ("#abc", (170, 187, 204)),
        ("RGB(88, 50, 82)", (88, 50, 82)),
        ("rgb(1,2,3)", (1, 2, 3)),
        ("<255, 255, 0>", (255, 255, 0)),
        ("(255, 192, 128)", (255, 192, 128)),
        ("[0, 0, 255]", (0, 0, 255)),
        ("pure yellow (<255, 255, 0>)", (255, 255, 0)),
        ("pure green", (0, 255, 0)),
        ("green", (0, 128, 0)),
        ("light purple", (192, 128, 192)),
        ("light blue", (173, 216, 230)),
        ("dark red", (139, 0, 0)),
        ("dark pink", (140, 106, 112)),
        ("sky blue", (135, 206, 235)),
        ("Light-Sky-Blue", (135, 206, 250)),
        ("grey", (128, 128, 128)),
        ("white color", (255, 255, 255)),
        ("solid red", (255, 0, 0)),
    ],
)
def test_colour_forms(text: str, rgb: tuple[int, int, int]) -> None:
    assert parse_color(text) == rgb


colours = st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))


@given(colours, st.sampled_from(COLOR_STYLES))
def test_every_colour_style_parses_back(rgb: tuple[int, int, int], style: str) -> None:
    assert parse_color(format_color(rgb, style)) == rgb


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Segment the cat in blurple", r"unknown colour name 'blurple': did you mean 'purple'"),
        ("Segment the cat in red and the dog in blurple and the cup in blue", r"did you mean 'purple'"),
        ('{"cat": "redd"}', r"unknown colour name 'redd': did you mean 'red'"),
        ('{"cat": "light blurple"}', r"did you mean 'light purple'"),
        ("Segment the cat in red and the dog in #FF0001", r"too close to decode apart"),
        ("Segment the cat in black", r"'cat' \(0, 0, 0\) are too close"),
        ('{"": "red"}', r"empty class"),
        ('{"cat": "red", "cat": "blue"}', r"appears twice"),
        ("Segment the cat in <300, 0, 0>", r"component above 255"),
        ("The background is white.", r"no class given"),
        ("Estimate depth and surface normals", r"one task per prompt"),
        ("hello world", r"could not tell the task"),
        ("", r"empty prompt"),
        ("   ", r"empty prompt"),
        ("{cat red}", r"cannot read colour-map entry 'cat red'"),
    ],
)
def test_errors_say_what_to_fix(text: str, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        parse_prompt(text)


def test_too_many_classes_and_too_long_and_wrong_types() -> None:
    many = {f"class {i}": f"#{(i * 37) % 256:02x}{(i * 91) % 256:02x}{(i * 53) % 256:02x}" for i in range(40)}
    with pytest.raises(PromptError, match=rf"too many classs \(40\); at most {MAX_CLASSES}"):
        parse_prompt(json.dumps(many))
    with pytest.raises(PromptError, match="characters long"):
        parse_prompt("depth " * 2000)
    with pytest.raises(PromptError, match="must be text"):
        parse_prompt(42)  # type: ignore[arg-type]
    with pytest.raises(PromptError, match="unknown depth colormap"):
        DepthSpec("jet")


# ------------------------------------------------------------------ round trips of rendered prompts

NOUNS = (
    "cat dog chair table mug bottle car truck person tree road sidewalk building sky pole sign plant sofa bed lamp "
    "door window shelf book laptop keyboard monitor cup bowl box bag wall floor ceiling bicycle bus rider fence "
    "orange tomato gold light"
).split()
ADJECTIVES = tuple("big small wooden metal plastic traffic office kitchen round tall".split())
REL = ("on the left", "on the right", "next to the door", "behind the sofa", "in the middle", "with a red lid")

class_names = st.builds(lambda a, n: f"{a} {n}".strip(), st.sampled_from(("",) + ADJECTIVES), st.sampled_from(NOUNS))
referring_names = st.builds(lambda n, r: f"{n} {r}", st.sampled_from(NOUNS), st.sampled_from(REL))


def _separated(cols: list[tuple[int, int, int]]) -> bool:
    return all(color_distance(a, b) >= MIN_COLOR_DISTANCE for i, a in enumerate(cols) for b in cols[i + 1 :])


@st.composite
def semantic_specs(
    draw: st.DrawFn, names: st.SearchStrategy[str] = class_names
) -> tuple[list[str], list[tuple[int, int, int]]]:
    n = draw(st.integers(1, 6))
    picked = draw(st.lists(names, min_size=n, max_size=n, unique_by=str.lower))
    cols = draw(st.lists(colours, min_size=n + 1, max_size=n + 1))
    assume(_separated(cols))
    return picked, cols


@settings(max_examples=600)
@given(semantic_specs(), st.sampled_from(STYLES["semantic"]), st.sampled_from(COLOR_STYLES), st.integers(0, 99))
def test_rendered_semantic_prompts_parse_back(
    drawn: tuple[list[str], list[tuple[int, int, int]]], style: str, color_style: str, seed: int
) -> None:
    names, cols = drawn
    spec = SemanticSpec(tuple(zip(names, cols[1:])), cols[0])
    text = render_prompt(spec, style, color_style=color_style, rng=seed)
    assert parse_prompt(text) == spec, text


@settings(max_examples=300)
@given(semantic_specs(referring_names), st.sampled_from(STYLES["referring"]), st.sampled_from(COLOR_STYLES))
def test_rendered_referring_prompts_parse_back(
    drawn: tuple[list[str], list[tuple[int, int, int]]], style: str, color_style: str
) -> None:
    names, cols = drawn
    spec = ReferringSpec(tuple(zip(names, cols[1:])), cols[0])
    text = render_prompt(spec, style, color_style=color_style)
    assert parse_prompt(text) == spec, text


@settings(max_examples=300)
@given(class_names, colours, st.sampled_from(STYLES["instances"]), st.sampled_from(COLOR_STYLES))
def test_rendered_instance_prompts_parse_back(name: str, bg: tuple[int, int, int], style: str, cs: str) -> None:
    spec = InstanceSpec(name, bg)
    text = render_prompt(spec, style, color_style=cs)
    assert parse_prompt(text) == spec, text


@pytest.mark.parametrize("colormap", ["hilbert", "plasma", "inferno", "viridis", "gray"])
@pytest.mark.parametrize("style", STYLES["depth"])
def test_rendered_depth_and_normals_prompts_parse_back(colormap: str, style: str) -> None:
    assert parse_prompt(render_prompt(DepthSpec(colormap), style)) == DepthSpec(colormap)
    assert parse_prompt(render_prompt(NormalsSpec(), style)) == NormalsSpec()


def test_render_gives_varied_phrasings_and_spec_to_dict_is_json() -> None:
    spec = SemanticSpec((("cat", (255, 0, 0)), ("dog", (0, 0, 255))))
    texts = {render_prompt(spec, rng=seed) for seed in range(40)}
    assert len(texts) >= 20
    as_json = json.loads(json.dumps(spec_to_dict(spec)))
    assert as_json == {
        "task": "semantic",
        "classes": [{"name": "cat", "rgb": [255, 0, 0]}, {"name": "dog", "rgb": [0, 0, 255]}],
        "background": [0, 0, 0],
    }


def test_names_with_punctuation_render_as_json() -> None:
    spec = SemanticSpec((("chef's names, in Chinese", (0, 255, 255)),))
    text = render_prompt(spec, "imperative")
    assert text.count("{") == 1 and parse_prompt(text) == spec


# ------------------------------------------------------------------ fuzz: never anything but PromptError

FRAGMENTS = (
    "Segment the",
    "segment",
    "each",
    "Each",
    "instance",
    "instances of",
    "is colored differently",
    "depth",
    "surface normals",
    "normal map",
    "plasma",
    "in",
    "and",
    ",",
    ".",
    ";",
    ":",
    "{",
    "}",
    '"',
    "'",
    "<",
    ">",
    "(",
    ")",
    "[",
    "]",
    "#",
    "#fff",
    "#12345G",
    "#80C000",
    "RGB(",
    "rgb(1,2,3)",
    "<255, 255, 0>",
    "(999, 0, 0)",
    "(0,0,0)",
    "red",
    "light",
    "light purple",
    "pure",
    "pure yellow",
    "dark",
    "blurple",
    "background",
    "the rest",
    "is represented by",
    "are",
    "the",
    "cat",
    "dog",
    "man in pink t shirt",
    "refers to",
    "described as",
    "semantic segmentation",
    "per-pixel class labeling",
    "->",
    "=",
    "\n",
    "\u201c",
    "\u201d",
    "0",
    "255",
    "-1",
    "#",
    "mask",
    "masks for the",
    "from the input image",
    "The background is set to",
    "white color",
    "unique color",
)
fuzz_prompts = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=25).map(" ".join),
    st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("".join),
    st.text(max_size=200),
    st.text(alphabet="{}<>()[],:;#\"' abcdefRGB0123456789.-", max_size=120),
)


@settings(max_examples=10_000)
@given(fuzz_prompts)
def test_any_text_parses_or_raises_prompt_error(text: str) -> None:
    try:
        spec = parse_prompt(text)
    except PromptError as exc:
        message = str(exc)
    else:
        assert spec.task in STYLES
        json.dumps(spec_to_dict(spec))
        return
    assert message  # every error has a message
