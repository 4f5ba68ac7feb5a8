"""PNG label maps zipped for upload: one 8-bit PNG per image, named after its file_name with
the extension replaced by `.png` (`batch_01_vt/0021.jpg` -> `batch_01_vt/0021.png`), in
manifest order; pixel value = the class's label id (the class index, or `label_ids`, e.g.
Cityscapes ids); greyscale (`L`) or palette (`P`) PNGs."""

from ..errors import SegsubmitError
from ..plugins import SubmissionFormat, register_format
from .options import check_id_map, id_map_option

PNG_VALUES = 256  # an 8-bit PNG holds ids 0..255


@register_format
class PngZip(SubmissionFormat):
    name = "png_zip"
    file_name = "submission_png.zip"
    options = {
        "mode": {
            "enum": ["L", "P"],
            "default": "L",
            "description": (
                "L: 8-bit greyscale PNGs, pixel = label id; P: 8-bit palette PNGs (same pixel "
                "values, shown in the Pascal VOC colours)"
            ),
        },
        "label_ids": id_map_option(
            "pixel value (0..255)", "Cityscapes ids {road: 7, sidewalk: 8, ...}"
        ),
    }

    @classmethod
    def check_options(cls, section, class_names, size):
        if len(class_names) > PNG_VALUES:
            raise SegsubmitError(
                f"submission.png_zip: `classes` lists {len(class_names)} classes but an 8-bit "
                f"PNG holds {PNG_VALUES} values; drop png_zip from submission.formats"
            )
        check_id_map(
            "submission.png_zip.label_ids",
            section.get("label_ids") or {},
            list(class_names),
            range(len(class_names)),
            largest=PNG_VALUES - 1,
        )

    @staticmethod
    def write(path, file_names, label_maps, settings):
        from .png_zip import write_checked_png_zip

        return write_checked_png_zip(path, file_names, label_maps, settings)

    @staticmethod
    def validate(path, file_names, settings):
        from .png_zip import validate_png_zip

        return validate_png_zip(path, file_names, settings)
