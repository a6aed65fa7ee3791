"""Start vb_perception's perception_node on one camera, optionally with rviz.

    ros2 launch vb_perception perception.launch.py namespace:=camera image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info rviz:=true
"""

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("vb_perception")
    args = [
        DeclareLaunchArgument("namespace", default_value="camera", description="namespace of the node and its topics"),
        DeclareLaunchArgument("image", default_value="image_raw", description="input image topic (sensor_msgs/Image)"),
        DeclareLaunchArgument(
            "camera_info", default_value="camera_info", description="camera_info topic matching the image"
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "perception.yaml"]),
            description="parameters file (config/perception.yaml documents every parameter)",
        ),
        DeclareLaunchArgument("backend", default_value="torch", description="torch, onnxruntime or tensorrt"),
        DeclareLaunchArgument("model_path", default_value="", description="model folder ('' = bundled vb-mini)"),
        DeclareLaunchArgument("device", default_value="cpu", description="torch device (cpu, cuda)"),
        DeclareLaunchArgument("rviz", default_value="false", description="start rviz2 with config/perception.rviz"),
    ]
    node = Node(
        package="vb_perception",
        executable="perception_node",
        name="perception",
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "backend": LaunchConfiguration("backend"),
                "model_path": LaunchConfiguration("model_path"),
                "device": LaunchConfiguration("device"),
            },
        ],
        remappings=[("image", LaunchConfiguration("image")), ("camera_info", LaunchConfiguration("camera_info"))],
        output="screen",
        emulate_tty=True,
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", PathJoinSubstitution([share, "config", "perception.rviz"])],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="screen",
    )
    return LaunchDescription([*args, node, rviz])
