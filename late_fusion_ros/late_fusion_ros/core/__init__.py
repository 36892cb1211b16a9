# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""ROS-free core of late_fusion_ros: never imports rclpy; unit-tested with plain arrays."""
