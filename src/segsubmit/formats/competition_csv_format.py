"""The competition's CSV (the default): header `image_id,PredictionString`, one row per image in
manifest order, `image_id` = the COCO file_name, PredictionString = the map's class indices,
space-separated, row-major (65,536 of them at 256x256)."""

from ..plugins import SubmissionFormat, register_format


@register_format
class CompetitionCsv(SubmissionFormat):
    name = "competition_csv"
    file_name = "submission.csv"

    @staticmethod
    def write(path, file_names, label_maps, settings):
        from .competition_csv import write_checked_submission

        return write_checked_submission(path, file_names, label_maps, settings)

    @staticmethod
    def validate(path, file_names, settings):
        from .competition_csv import validate_submission

        size = settings.size
        rows = validate_submission(
            path, file_names, settings.num_classes, size[0] * size[1], settings.threads
        )
        return {"rows": rows}
