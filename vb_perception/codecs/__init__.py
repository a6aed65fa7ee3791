"""The RGB interface: every vision output is an RGB image that decodes exactly back to numbers."""

from vb_perception.codecs.depth import (
    COLORMAPS,
    PATH_VERTICES,
    curve_to_depth,
    curve_to_rgb,
    decode_depth,
    depth_code_step_m,
    depth_to_curve,
    encode_depth,
    rgb_to_curve,
    valid_depth_mask,
)
from vb_perception.codecs.masks import InstanceMasks, SemanticMasks, decode_instances, decode_semantic
from vb_perception.codecs.normals import (
    camera_to_optical,
    decode_normals,
    encode_normals,
    mirror_normals,
    optical_to_camera,
)

__all__ = [
    "COLORMAPS",
    "PATH_VERTICES",
    "InstanceMasks",
    "SemanticMasks",
    "camera_to_optical",
    "curve_to_depth",
    "curve_to_rgb",
    "decode_depth",
    "decode_instances",
    "decode_normals",
    "decode_semantic",
    "depth_code_step_m",
    "depth_to_curve",
    "encode_depth",
    "encode_normals",
    "mirror_normals",
    "optical_to_camera",
    "rgb_to_curve",
    "valid_depth_mask",
]
