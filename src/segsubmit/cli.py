"""Command line: `segsubmit validate-submission` re-checks a submission file (any registered
format) outside the workflow; `segsubmit digests` prints which package modules each rule's
rerun digest covers;
`segsubmit config-docs` regenerates (or checks) config/config.yaml and config/README.md."""

import argparse
import sys
from pathlib import Path

import yaml

from .codehash import digest_table, plugin_table
from .config import (
    coerce_config,
    default_config,
    default_config_yaml,
    load_schema,
    validate_config,
    with_config_table,
)
from .errors import SegsubmitError
from .formats.competition_csv import format_notes
from .manifest import Manifest
from .plugins import BACKENDS, FORMATS, format_named, load_plugins
from .submission import validate_file

load_plugins()
DEFAULTS = default_config()


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive integer (a submission map needs at least 1 pixel and "
            "1 class)"
        )
    return value


def parse_arguments(argv):
    parser = argparse.ArgumentParser(prog="segsubmit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser(
        "validate-submission",
        help="check a submission file's structure, names and order vs the manifest, sizes and "
        "value ranges",
    )
    validate.add_argument("csv", help="the submission file to check (submission.csv, ...)")
    validate.add_argument("manifest", help="the split's results/<split>/manifest.json")
    validate.add_argument(
        "--classes",
        type=positive_int,
        default=None,
        help="number of classes (default: the config's `classes`, without --config the "
        f"default {len(DEFAULTS['classes'])}); the classes are then named by index",
    )
    validate.add_argument(
        "--size",
        type=positive_int,
        nargs=2,
        default=None,
        metavar=("H", "W"),
        help="submission map size (default: the config's resize.size, without --config "
        f"{DEFAULTS['resize']['size']})",
    )
    validate.add_argument(
        "--format",
        default=DEFAULTS["submission"]["formats"][0],
        choices=sorted(FORMATS),
        help="the file's format (default: %(default)s)",
    )
    validate.add_argument(
        "--config",
        help="the run's config file (--configfile): its classes, resize.size and the "
        "format's submission.<format> options (default: the defaults)",
    )
    digests = commands.add_parser(
        "digests", help="rule -> rerun digest -> the package modules it covers (markdown)"
    )
    digests.add_argument("workflow", nargs="?", default=".", help="workflow folder (default .)")
    digests.add_argument(
        "--modules-only", action="store_true", help="leave out the digests (README's table)"
    )
    docs = commands.add_parser(
        "config-docs", help="regenerate config/config.yaml and config/README.md from the schema"
    )
    docs.add_argument("workflow", nargs="?", default=".", help="workflow folder (default .)")
    docs.add_argument("--write", action="store_true", help="write the files (default: check)")
    return parser.parse_args(argv)


def validate_command(arguments):
    Manifest.load(arguments.manifest)  # its own message before the file's
    if arguments.format == "competition_csv":
        try:
            notes = format_notes(Path(arguments.csv).read_bytes())
        except OSError as err:
            raise SegsubmitError(f"{arguments.csv}: cannot read ({err.strerror})") from err
        for note in notes:
            print(f"note: {arguments.csv}: {note}", file=sys.stderr)
    class_names, size, options = validation_settings(arguments)
    summary = validate_file(
        arguments.csv, arguments.manifest, arguments.format, class_names, size, options
    )
    images = f"{summary['images']} images, " if "images" in summary else ""
    print(f"valid: {arguments.csv} ({images}{summary['rows']} rows)")


def validation_settings(arguments):
    """(class names or count, size, format options) of the CLI check: the config file's (or
    the defaults), with --classes and --size taking precedence."""
    config = DEFAULTS
    if arguments.config:
        try:
            loaded = yaml.safe_load(Path(arguments.config).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise SegsubmitError(f"{arguments.config}: cannot read as a config ({err})") from err
        if not isinstance(loaded, dict):
            raise SegsubmitError(f"{arguments.config}: not a config mapping")
        plugins = loaded.get("plugins", [])
        schema = load_schema(plugin_modules=plugins if isinstance(plugins, list) else ())
        config = validate_config(coerce_config(loaded, schema), schema)
    class_names = config["classes"] if arguments.classes is None else arguments.classes
    size = config["resize"]["size"] if arguments.size is None else arguments.size
    options = config["submission"].get(arguments.format, {})
    if not isinstance(class_names, int):
        format_named(arguments.format).check_options(options, class_names, size)
    return class_names, size, options


def builtin_plugins():
    """{'backend `name`' / 'format `name`': declaration module} of the registered plug-ins."""
    plugins = {f"backend `{name}`": b.__module__ for name, b in sorted(BACKENDS.items())}
    plugins |= {f"format `{name}`": f.__module__ for name, f in sorted(FORMATS.items())}
    return plugins


def generated_config_files(workflow):
    """{path: text it should hold} for the files generated from the schema."""
    readme = Path(workflow) / "config" / "README.md"
    return {
        Path(workflow) / "config" / "config.yaml": default_config_yaml(),
        readme: with_config_table(readme.read_text(encoding="utf-8")),
    }


def config_docs_command(arguments):
    stale = []
    for path, text in generated_config_files(arguments.workflow).items():
        if path.read_text(encoding="utf-8") == text:
            continue
        if arguments.write:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
        else:
            stale.append(str(path))
    if stale:
        raise SegsubmitError(
            f"{', '.join(stale)}: stale; run `segsubmit config-docs --write` after editing "
            "src/segsubmit/config.schema.yaml"
        )


def main(argv=None):
    arguments = parse_arguments(argv)
    try:
        if arguments.command == "validate-submission":
            validate_command(arguments)
        elif arguments.command == "digests":
            rules_dir = Path(arguments.workflow) / "workflow" / "rules"
            print(digest_table(rules_dir, with_digests=not arguments.modules_only))
            print(plugin_table(builtin_plugins()), end="")
        else:
            config_docs_command(arguments)
    except SegsubmitError as err:
        print(f"{'invalid' if arguments.command == 'validate-submission' else 'error'}: {err}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
