# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Asynchronous late fusion of audio and vision embeddings on ROS 2."""
