"""Kaggle run-length encoding: one CSV row per image x class, the class's mask as run-length
pairs `start length` (1-indexed, column-major: top to bottom, then left to right), an empty
mask as an empty field. Layouts: `image_name,class,rle` (class names; the later cohorts'
per-class RLE) or `ImageId_ClassId,EncodedPixels` (`<file_name>_<class index>`)."""

from ..errors import SegsubmitError
from ..plugins import SubmissionFormat, register_format
from .options import CLASSES_OPTION, check_classes

LAYOUTS = ("image_class_rle", "imageid_classid")


@register_format
class KaggleRle(SubmissionFormat):
    name = "kaggle_rle"
    file_name = "submission_rle.csv"
    options = {
        "layout": {
            "enum": list(LAYOUTS),
            "default": "image_class_rle",
            "description": (
                "image_class_rle: header `image_name,class,rle`, the class by name; "
                "imageid_classid: header `ImageId_ClassId,EncodedPixels`, first field "
                "`<file_name>_<class index>`"
            ),
        },
        "classes": CLASSES_OPTION,
        "size": {
            "type": ["array", "null"],
            "items": {"type": "integer", "minimum": 1},
            "minItems": 2,
            "maxItems": 2,
            "default": None,
            "description": (
                "[height, width] the competition decodes the RLE at (the file carries no size): "
                "checked against resize.size before any job runs; null = resize.size"
            ),
        },
    }

    @classmethod
    def check_options(cls, section, class_names, size):
        check_classes("submission.kaggle_rle.classes", section.get("classes"), class_names)
        expected = section.get("size")
        if expected is not None and list(expected) != list(size):
            raise SegsubmitError(
                f"submission.kaggle_rle.size: the competition decodes the RLE at {list(expected)}"
                f" but resize.size is {list(size)} (the runs would land on other pixels); set "
                f"resize.size: {list(expected)}"
            )

    @staticmethod
    def write(path, file_names, label_maps, settings):
        from .kaggle_rle import write_checked_rle

        return write_checked_rle(path, file_names, label_maps, settings)

    @staticmethod
    def validate(path, file_names, settings):
        from .kaggle_rle import validate_rle

        return validate_rle(path, file_names, settings)
