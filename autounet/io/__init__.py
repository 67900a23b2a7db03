"""Image and label files in and out, chosen by file ending.

Every reader returns a float32 array ``(channels, z, y, x)`` and a
:class:`Geometry`; 2D images have one z slice. Label maps are written with
exactly the geometry of a reference image.

Example:
    >>> image, geometry = read_image(["imagesTr/case_0000.nii.gz"])  # doctest: +SKIP
    >>> write_segmentation(labels, geometry, "out/case.nii.gz")       # doctest: +SKIP
"""

from autounet.io.geometry import SPACING_2D_THROUGH_PLANE, Geometry
from autounet.io.registry import (SUPPORTED_ENDINGS, file_ending, read_image, read_label, read_volume,
                                  segmentation_path, write_segmentation)

__all__ = ["Geometry", "SPACING_2D_THROUGH_PLANE", "SUPPORTED_ENDINGS", "file_ending", "read_image",
           "read_label", "read_volume", "segmentation_path", "write_segmentation"]
