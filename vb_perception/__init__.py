"""vb_perception: metric depth, surface normals and prompted segmentation from one image generator.

The core (codecs, prompts, model, runtime, pipeline, geometry) imports without rclpy;
only :mod:`vb_perception.ros` touches ROS.
"""

from vb_perception.errors import CodecError, PromptError, VbPerceptionError

__version__ = "0.1.0"

__all__ = ["CodecError", "PromptError", "VbPerceptionError", "__version__"]
