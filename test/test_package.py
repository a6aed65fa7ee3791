"""The package as ROS 2 and pip see it: package.xml, setup.py, the rclpy-free core, the two commands."""

from __future__ import annotations

import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_package_xml_is_format_3_ament_python_with_the_ros_dependencies() -> None:
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "vb_perception"
    assert root.findtext("license") == "Apache-2.0"
    assert root.findtext("export/build_type") == "ament_python"
    assert root.findtext("buildtool_depend") == "ament_python"
    exec_deps = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "python3-numpy"} <= exec_deps


def _setup_call() -> ast.Call:
    tree = ast.parse((REPO / "setup.py").read_text())
    return next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")


def test_setup_py_matches_package_xml_and_installs_the_ament_resource() -> None:
    root = ET.parse(REPO / "package.xml").getroot()
    source = (REPO / "setup.py").read_text()
    assert f'PACKAGE = "{root.findtext("name")}"' in source
    assert f'version="{root.findtext("version")}"' in source
    assert (REPO / "resource" / "vb_perception").is_file()
    assert "share/ament_index/resource_index/packages" in source
    keywords = {k.arg for k in _setup_call().keywords}
    assert {"data_files", "entry_points", "packages"} <= keywords
    assert '"vb-perception = vb_perception.cli:main"' in source
    cfg = (REPO / "setup.cfg").read_text()
    assert "install_scripts=$base/lib/vb_perception" in cfg  # where ros2 run looks for executables


def test_layout_has_the_ros_package_folders() -> None:
    for folder in ("vb_perception", "launch", "config", "test", "docker", "bench", "models", "resource"):
        assert (REPO / folder).is_dir(), folder
    assert "Apache License" in (REPO / "LICENSE").read_text()[:200]


def test_core_imports_without_rclpy() -> None:
    # Every module outside vb_perception/ros/ must import with rclpy made unimportable.
    modules = sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts)
        for p in (REPO / "vb_perception").rglob("*.py")
        if "ros" not in p.relative_to(REPO / "vb_perception").parts[:1] and p.name != "__main__.py"
    )
    code = (
        "import sys, importlib\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('rclpy', 'rosidl_runtime_py', 'sensor_msgs'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for m in {[m.replace('.__init__', '') for m in modules]!r}:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except ModuleNotFoundError as exc:\n"
        "        if exc.name not in ('torch', 'open3d'):  # offline extras may be absent; ROS must never be needed\n"
        "            raise\n"
        "print('ok', len(sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


def test_readme_starts_with_the_two_commands_and_ci_runs_make_test() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = readme.split("```")
    first_code = blocks[1].strip().splitlines()
    assert [line.strip() for line in first_code[1:] if line.strip()] == ["make demo", "make test"]
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_packaged_fixture_is_the_shared_tum_frame() -> None:
    shared = REPO.parent / "shared" / "fixtures" / "tum_rgbd"
    if not shared.is_dir():
        pytest.skip("no ../shared/fixtures next to this clone")
    packaged = REPO / "vb_perception" / "data" / "tum_rgbd"
    for name in ("color.png", "depth.png"):
        assert (packaged / name).read_bytes() == (shared / name).read_bytes()
