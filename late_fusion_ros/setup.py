# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Packaging for late_fusion_ros (ament_python)."""

from glob import glob

from setuptools import find_packages, setup

package_name = 'late_fusion_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.xml')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='late_fusion_ros maintainers',
    maintainer_email='maintainers@late-fusion-ros.org',
    description='Asynchronous late fusion of audio and vision embeddings on ROS 2.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'audio_encoder_node = late_fusion_ros.nodes.audio_encoder_node:main',
            'vision_encoder_node = late_fusion_ros.nodes.vision_encoder_node:main',
            'fusion_node = late_fusion_ros.nodes.fusion_node:main',
            'transcription_node = late_fusion_ros.nodes.transcription_node:main',
            'media_player_node = late_fusion_ros.nodes.media_player_node:main',
            'late_fusion_demo = late_fusion_ros.tools.demo:main',
            'train_fusion = late_fusion_ros.tools.train_fusion:main',
            'bag_record = late_fusion_ros.tools.bag_record:main',
            'bag_play = late_fusion_ros.tools.bag_play:main',
            'fusion_offline = late_fusion_ros.tools.fusion_offline:main',
            'fusion_timeline = late_fusion_ros.tools.timeline:main',
            'fusion_monitor = late_fusion_ros.tools.monitor:main',
        ],
    },
)
