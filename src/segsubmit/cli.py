"""Command line: `segsubmit validate-submission` re-checks a submission.csv outside the workflow."""

import argparse
import sys

from .errors import SegsubmitError
from .manifest import read_manifest
from .submission import validate_submission


def parse_arguments(argv):
    parser = argparse.ArgumentParser(prog="segsubmit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser(
        "validate-submission",
        help="check header, row order vs manifest, value count and class range",
    )
    validate.add_argument("csv", help="the submission.csv to check")
    validate.add_argument("manifest", help="the split's results/<split>/manifest.json")
    validate.add_argument("--classes", type=int, default=11, help="number of classes (default 11)")
    validate.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=[256, 256],
        metavar=("H", "W"),
        help="submission map size (default 256 256)",
    )
    return parser.parse_args(argv)


def main(argv=None):
    arguments = parse_arguments(argv)
    try:
        file_names = [entry["file_name"] for entry in read_manifest(arguments.manifest)]
        rows = validate_submission(
            arguments.csv, file_names, arguments.classes, arguments.size[0] * arguments.size[1]
        )
    except SegsubmitError as err:
        print(f"invalid: {err}", file=sys.stderr)
        return 1
    print(f"valid: {arguments.csv} ({rows} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
