"""Where every output lives under the `results` folder: the one place the rules (`.smk`
files), the end-of-run summary and the report take their paths from. Arguments may be values
(`layout.labels("val", 0)`) or Snakemake wildcard patterns (`layout.labels("{split}",
"{shard}")`)."""

import os
from dataclasses import dataclass

SUBMISSION_REPORT = "submission.valid.json"


@dataclass(frozen=True)
class Layout:
    results: str

    def path(self, *parts):
        return os.path.join(self.results, *(str(part) for part in parts))

    # the embedded default
    def demo_data(self):
        return self.path("demo", "data")

    def demo_model(self):
        return self.path("demo", "model.pt")

    # per split
    def manifest(self, split):
        return self.path(split, "manifest.json")

    def shard(self, split, shard):
        return self.path(split, "shards", f"{shard}.json")

    def labels(self, split, shard):
        """Argmax maps at the images' own size (the infer stage's output)."""
        return self.path(split, "labels", f"{shard}.npz")

    def area_labels(self, split, shard):
        """Argmax of the area-averaged class probabilities at the submission size
        (probability-space resizing), written by the infer stage beside `labels`."""
        return self.path(split, "area_labels", f"{shard}.npz")

    def confident_labels(self, split, shard):
        """Argmax maps at the images' own size with pseudo_labels.ignore_index where the top
        probability is below pseudo_labels.threshold (the infer_confident stage's output)."""
        return self.path(split, "confident_labels", f"{shard}.npz")

    def resized(self, split, shard):
        return self.path(split, "resized", f"{shard}.npz")

    def fragment(self, split, shard, format_name):
        """A submission format's part for one shard, written by its resize job."""
        return self.path(split, "resized", f"{shard}.{format_name}.rows")

    def submission(self, split, file_name):
        """A submission file (its format's `file_name`)."""
        return self.path(split, file_name)

    def submission_report(self, split):
        return self.path(split, SUBMISSION_REPORT)

    def pseudo_labels(self, split):
        """A split's predictions as training data (ann_dir/ PNGs + annotations.json)."""
        return self.path(split, "pseudo_labels")

    def ground_truth(self, split, size):
        return self.path(split, "ground_truth", f"{size}.npz")

    def score(self, split, size, suffix="json"):
        return self.path(split, "score", f"{size}.{suffix}")

    # per split, ensembles (docs/ensembles.md)
    def member(self, split, member, kind, shard):
        """An ensemble member's per-shard file: `kind` labels (argmax maps at the images' own
        size), probabilities (fp16 at the submission size) or resized (its labels resized)."""
        return self.path(split, "members", member, kind, f"{shard}.npz")

    def ensemble_resized(self, split, shard):
        """The combined maps at the submission size (read in place of `resized`)."""
        return self.path(split, "ensemble", "resized", f"{shard}.npz")

    def ensemble_csv(self, split, csv, shard):
        """The maps of `ensemble.csvs[csv]`, checked and decoded, per shard."""
        return self.path(split, "ensemble", "csvs", str(csv), f"{shard}.npz")

    def member_score(self, split, member, size, suffix="json"):
        return self.path(split, "score", "members", member, f"{size}.{suffix}")

    def weight_search(self, split):
        return self.path(split, "ensemble", "weight_search.json")

    def split_report(self, split, name):
        return self.path(split, "report", name)

    def runtimes_page(self):
        return self.path("report", "runtimes.html")

    # per job
    def log(self, rule, pattern):
        return self.path("logs", rule, f"{pattern}.log")

    def benchmark(self, rule, pattern):
        return self.path("benchmarks", rule, f"{pattern}.tsv")

    def benchmarks(self):
        return self.path("benchmarks")

    def summary(self):
        return self.path("logs", "summary.txt")


# The job pattern (log and benchmark name) of each per-split rule, by its wildcards.
JOB_PATTERNS = {
    "manifest": "{split}",
    "infer": "{split}/{shard}",
    "infer_confident": "{split}/{shard}",
    "resize": "{split}/{shard}",
    "submission": "{split}",
    "pseudo_labels": "{split}",
    "ground_truth": "{split}/{size}",
    "score": "{split}/{size}",
    "report_figures": "{split}",
    "infer_member": "{split}/{member}/{shard}",
    "infer_members": "{split}/{shard}",
    "resize_member": "{split}/{member}/{shard}",
    "ensemble_csv": "{split}/{csv}",
    "ensemble_combine": "{split}/{shard}",
    "score_member": "{split}/{member}/{size}",
    "weight_search": "{split}",
    "report_members": "{split}",
}
JOB_PATTERNS_WILDCARDS = {
    rule: tuple(part.strip("{}") for part in pattern.split("/"))
    for rule, pattern in JOB_PATTERNS.items()
}
