"""pip metadata for the Python side (``pip install -e .``).

colcon does not use this file: package.xml declares ament_cmake, and
CMakeLists.txt installs the same sources beside the generated interfaces.
sam2 is deliberately not in install_requires (its metadata pulls torchvision
and a CUDA torch); install it with ``--no-deps`` as dev/setup.sh does.
"""

from setuptools import find_packages, setup

setup(
    name="sa2va_i_ros",
    version="0.1.0",
    description="Sa2VA-i referring segmentation and SAM2 tracking for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    # package_dir {"": "."} makes the editable install a plain path entry, so the
    # interfaces generated into site-packages/sa2va_i_ros join the same package
    # (see sa2va_i_ros/__init__.py and docs/DESIGN.md).
    package_dir={"": "."},
    packages=find_packages(where=".", include=["sa2va_i_ros", "sa2va_i_ros.*"]),
    install_requires=[
        "torch>=2.4",
        "transformers>=5.0",
        "tokenizers",
        "safetensors",
        "huggingface-hub",
        "numpy",
        "pillow",
        "tqdm",
        "pyyaml",
        "hydra-core",
        "iopath",
    ],
    extras_require={"bags": ["rosbags>=0.10"], "video": ["av"], "eval": ["matplotlib"],
                    "onnx": ["onnx", "onnxruntime", "onnxscript"]},
    entry_points={
        "console_scripts": [
            "segment_node = sa2va_i_ros.ros.node_process:main",
            "sa2va-i-tiny-checkpoint = sa2va_i_ros.cli.tiny_checkpoint:main",
            "sa2va-i-video = sa2va_i_ros.cli.video:main",
            "sa2va-i-eval = sa2va_i_ros.cli.evaluate:main",
            "sa2va-i-play = sa2va_i_ros.cli.play:main",
            "sa2va-i-make-bag = sa2va_i_ros.cli.make_bag:main",
            "sa2va-i-convert-sam2 = sa2va_i_ros.cli.convert_sam2:main",
            "sa2va-i-export = sa2va_i_ros.cli.export:main",
        ]
    },
)
