# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""What the nodes share: lifecycle plumbing, parameters, QoS, diagnostics, model threads."""
