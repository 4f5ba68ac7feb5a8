"""COCO results json with RLE masks: `[{"image_id", "category_id", "segmentation": {"size":
[h, w], "counts": <compressed RLE string>}}, ...]`, one record per image and class present in
its map (pycocotools' `mask.encode`), images in manifest order, classes in `classes` order."""

from ..plugins import SubmissionFormat, register_format
from .options import CLASSES_OPTION, check_classes, check_id_map, id_map_option, selected_classes


@register_format
class CocoRle(SubmissionFormat):
    name = "coco_rle"
    file_name = "submission_coco.json"
    options = {
        "classes": CLASSES_OPTION,
        "category_ids": id_map_option(
            "COCO category id", "the split json's own ids {General trash: 1, Paper: 2, ...}"
        ),
    }

    @classmethod
    def check_options(cls, section, class_names, size):
        check_classes("submission.coco_rle.classes", section.get("classes"), class_names)
        check_id_map(
            "submission.coco_rle.category_ids",
            section.get("category_ids") or {},
            list(class_names),
            selected_classes(section.get("classes"), list(class_names)),
        )

    @staticmethod
    def write(path, file_names, label_maps, settings):
        from .coco_rle import write_checked_coco_rle

        return write_checked_coco_rle(path, file_names, label_maps, settings)

    @staticmethod
    def validate(path, file_names, settings):
        from .coco_rle import validate_coco_rle

        return validate_coco_rle(path, file_names, settings)
