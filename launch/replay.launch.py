"""Replay a rosbag through vb_perception: `ros2 bag play` + perception_node + rviz.

    ros2 launch vb_perception replay.launch.py bag:=/data/run1 image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info
"""

from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("vb_perception")
    args = [
        DeclareLaunchArgument("bag", description="rosbag2 folder or file to play"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback rate"),
        DeclareLaunchArgument("namespace", default_value="camera", description="namespace of the node and its topics"),
        DeclareLaunchArgument("image", default_value="image_raw", description="image topic recorded in the bag"),
        DeclareLaunchArgument("camera_info", default_value="camera_info", description="camera_info topic in the bag"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "perception.yaml"]),
            description="parameters file",
        ),
        DeclareLaunchArgument("backend", default_value="torch", description="torch, onnxruntime or tensorrt"),
        DeclareLaunchArgument("rviz", default_value="true", description="start rviz2 with config/perception.rviz"),
    ]
    play = ExecuteProcess(
        cmd=["ros2", "bag", "play", LaunchConfiguration("bag"), "--rate", LaunchConfiguration("rate"), "--clock"],
        output="screen",
    )
    node = Node(
        package="vb_perception",
        executable="perception_node",
        name="perception",
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            LaunchConfiguration("params_file"),
            {"backend": LaunchConfiguration("backend"), "use_sim_time": True},
        ],
        remappings=[("image", LaunchConfiguration("image")), ("camera_info", LaunchConfiguration("camera_info"))],
        output="screen",
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", PathJoinSubstitution([share, "config", "perception.rviz"])],
        parameters=[{"use_sim_time": True}],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*args, play, node, rviz])
