"""The thin rclpy shell: message conversions (numpy, no cv_bridge) and the perception node."""
