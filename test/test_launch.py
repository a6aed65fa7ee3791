"""Launch files, parameters file and rviz config, checked statically (launch / launch_ros / rviz2 are not on PyPI):
they parse, every parameter they set is one the node declares, and the topics they name are the node's."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytest.importorskip("rclpy", reason="the node's parameter table imports rclpy message types")
from vb_perception.ros.node import PARAMETERS

BUILTIN = {"use_sim_time"}  # declared by every rclpy node
NODE_TOPICS = {
    "image", "image/compressed", "camera_info", "prompt", "depth/image", "depth/camera_info", "normals/image",
    "normals/visualization", "points", "segmentation/labels", "segmentation/visualization", "segmentation/classes",
    "instances/labels",
}  # fmt: skip


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == name]


@pytest.mark.parametrize("name", ["perception.launch.py", "replay.launch.py"])
def test_launch_files_parse_and_set_only_declared_parameters(name: str) -> None:
    tree = ast.parse((REPO / "launch" / name).read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    declared = {ast.literal_eval(c.args[0]) for c in _calls(tree, "DeclareLaunchArgument")}
    for c in _calls(tree, "DeclareLaunchArgument"):
        assert any(k.arg == "description" for k in c.keywords), ast.unparse(c)  # every argument is described
    used = {ast.literal_eval(c.args[0]) for c in _calls(tree, "LaunchConfiguration")}
    assert used <= declared, used - declared
    nodes = [
        c
        for c in _calls(tree, "Node")
        if any(k.arg == "executable" and "perception" in ast.unparse(k.value) for k in c.keywords)
    ]
    assert len(nodes) == 1
    kw = {k.arg: k.value for k in nodes[0].keywords}
    assert (
        ast.literal_eval(kw["package"]) == "vb_perception" and ast.literal_eval(kw["executable"]) == "perception_node"
    )
    for d in (n for n in ast.walk(kw["parameters"]) if isinstance(n, ast.Dict)):
        for key in d.keys:
            assert ast.literal_eval(key) in set(PARAMETERS) | BUILTIN, ast.unparse(key)
    for pair in kw["remappings"].elts:  # type: ignore[attr-defined]
        assert ast.literal_eval(pair.elts[0]) in NODE_TOPICS


def test_setup_installs_the_node_and_the_launch_files() -> None:
    source = (REPO / "setup.py").read_text()
    assert '"perception_node = vb_perception.ros.node:main"' in source
    assert "launch/*.launch.py" in source or 'glob("launch/*.launch.py")' in source


def test_params_file_is_exactly_the_node_parameters_with_their_defaults() -> None:
    params = yaml.safe_load((REPO / "config" / "perception.yaml").read_text())["/**"]["ros__parameters"]
    assert set(params) == set(PARAMETERS)
    for name, value in params.items():
        default = PARAMETERS[name][0]
        assert value == default or (isinstance(default, float) and value == pytest.approx(default)), name
    text = (REPO / "config" / "perception.yaml").read_text()
    for name in PARAMETERS:  # every line documents its parameter
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"{name}:"))
        assert "#" in line, name


def test_rviz_config_shows_the_node_outputs() -> None:
    cfg = yaml.safe_load((REPO / "config" / "perception.rviz").read_text())
    displays = cfg["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"] for d in displays}
    assert {"/camera/depth/image", "/camera/normals/visualization", "/camera/segmentation/visualization"} <= topics
    assert "/camera/points" in topics
    cloud = next(d for d in displays if d["Class"].endswith("PointCloud2"))
    assert cloud["Topic"]["Reliability Policy"] == "Reliable" and cloud["Color Transformer"] == "RGB8"
    assert cfg["Visualization Manager"]["Global Options"]["Fixed Frame"].endswith("optical_frame")
    for d in displays:
        if d["Topic"]["Value"] != "/camera/image_raw":
            assert d["Topic"]["Value"].removeprefix("/camera/") in NODE_TOPICS


def test_readme_documents_every_parameter_and_topic() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## ROS 2 node") :]
    for name in PARAMETERS:
        assert f"| `{name}` |" in section, name
    for topic in NODE_TOPICS:
        assert f"| `{topic}` |" in section, topic
