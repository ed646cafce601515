"""Sa2VA-i referring segmentation and SAM2 tracking for ROS 2.

Everything outside ``sa2va_i_ros.ros`` is pure Python (no ROS import); ``sa2va_i_ros.ros`` is the
thin ROS layer (docs/DESIGN.md has the map of the packages). The generated interfaces (``sa2va_i_ros.msg``, ``.srv``,
``.action``) live beside these modules in a colcon install, or in the venv's
site-packages in the development setup; extending ``__path__`` finds them in
either place.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
