"""The competition's CSV (the default): header `image_id,PredictionString`, one row per image in
manifest order, `image_id` = the COCO file_name, PredictionString = the map's class indices,
space-separated, row-major (65,536 of them at 256x256). Its rows are encoded and checked per
shard by the resize jobs (fragments); the submission job gathers them."""

from ..plugins import SubmissionFormat, register_format


@register_format
class CompetitionCsv(SubmissionFormat):
    name = "competition_csv"
    file_name = "submission.csv"
    fragments = True

    @staticmethod
    def write(path, file_names, label_maps, settings):
        if settings.fragments:
            from .competition_csv_rows import gather_submission

            return gather_submission(path, file_names, settings)
        from .competition_csv import write_checked_submission

        return write_checked_submission(path, file_names, label_maps, settings)

    @staticmethod
    def write_fragment(path, image_ids, label_maps, settings):
        from .competition_csv_rows import write_row_fragment

        return write_row_fragment(path, image_ids, label_maps, settings)

    @staticmethod
    def validate(path, file_names, settings):
        from .competition_csv import validate_submission

        size = settings.size
        rows = validate_submission(
            path, file_names, settings.num_classes, size[0] * size[1], settings.threads
        )
        return {"rows": rows}
