"""The project's structure holds by construction: rerun digests follow imports, the generated
config documents match the schema, cross-key config checks fail early with one line."""

import re
import shutil

import pytest
from conftest import REPO_ROOT

from segsubmit.cli import builtin_plugins
from segsubmit.cli import main as cli_main
from segsubmit.codehash import (
    PACKAGE_DIR,
    digest_table,
    import_closure,
    imported_names,
    module_file,
    plugin_table,
    rule_scripts,
    script_digest,
)
from segsubmit.config import shard_count, visible_gpu_count
from segsubmit.plugins import backend_named

RULES_DIR = REPO_ROOT / "workflow" / "rules"
RULE_SCRIPTS = rule_scripts(RULES_DIR)
ALL_MODULES = sorted(
    ".".join(("segsubmit", *path.relative_to(PACKAGE_DIR).with_suffix("").parts)).removesuffix(
        ".__init__"
    )
    for path in PACKAGE_DIR.rglob("*.py")
)


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory):
    """A copy of the package whose modules the tests edit."""
    copy = tmp_path_factory.mktemp("package") / "segsubmit"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


NESTED_IMPORTS = """
import a
def f():
    if x:
        import b
    else:
        from c import d
class K:
    def m(self):
        try:
            import e
        except ImportError:
            import f2
        finally:
            import g
        with h:
            for i in j:
                while k:
                    import l2
        match m:
            case 1:
                from .n import o
print("import p")  # a string: no import
"""


def test_imports_in_every_kind_of_block_are_found():
    names = set(imported_names(NESTED_IMPORTS, module="segsubmit.x"))
    assert names == {"a", "b", "c", "c.d", "e", "f2", "g", "l2", "segsubmit.n", "segsubmit.n.o"}


def test_every_script_rule_is_found():
    assert {"manifest", "infer", "resize", "submission", "ground_truth", "score"} <= set(
        RULE_SCRIPTS
    )


@pytest.mark.parametrize("rule", sorted(RULE_SCRIPTS))
def test_digest_changes_exactly_with_the_modules_in_the_rules_closure(rule, package_copy):
    script = RULE_SCRIPTS[rule]
    closure = set(import_closure(script, package_copy))
    before = script_digest(script, package_copy)
    for module in ALL_MODULES:
        path = module_file(module, package_copy)
        original = path.read_bytes()
        path.write_bytes(original + b"\n# edited\n")
        try:
            changed = script_digest(script, package_copy) != before
        finally:
            path.write_bytes(original)
        assert changed == (module in closure), f"{rule}: editing {module}"


def test_closures_separate_the_stages():
    closure = {rule: set(import_closure(script)) for rule, script in RULE_SCRIPTS.items()}
    detectron2 = backend_named("detectron2").__module__
    with_detectron2 = set(import_closure(RULE_SCRIPTS["infer"], extra_modules=[detectron2]))
    assert "segsubmit.pil_resize" in with_detectron2  # decides the detectron2 GPU pixels
    assert not any(m.startswith("segsubmit.backends.torch") for m in with_detectron2)
    assert "segsubmit.infer" not in closure["score"] | closure["resize"] | closure["submission"]
    assert "segsubmit.metrics" not in closure["infer"]
    assert "segsubmit.backends" not in closure["manifest"] | closure["score"]


def test_every_script_rule_passes_its_own_digest():
    for rule_file in RULES_DIR.glob("*.smk"):
        text = rule_file.read_text()
        for script in re.findall(r'"\.\./scripts/(\w+\.py)"', text):
            rule = script.removesuffix(".py")
            assert f'code=rule_digest("{rule}")' in text, f"{rule_file.name}: {script}"


def test_readme_quotes_the_digest_tables():
    readme = (REPO_ROOT / "README.md").read_text()
    assert digest_table(RULES_DIR, with_digests=False) in readme, "segsubmit digests --modules-only"
    assert plugin_table(builtin_plugins()) in readme, "run: segsubmit digests --modules-only"


def test_generated_config_files_are_current(capsys):
    assert cli_main(["config-docs", str(REPO_ROOT)]) == 0, capsys.readouterr().err


def test_config_docs_check_names_a_stale_file(tmp_path, capsys):
    shutil.copytree(REPO_ROOT / "config", tmp_path / "config")
    (tmp_path / "config" / "config.yaml").write_text("results: elsewhere\n")
    assert cli_main(["config-docs", str(tmp_path)]) == 1
    assert "config.yaml: stale; run `segsubmit config-docs --write`" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("shards", "device", "gpus", "expected"),
    [
        ("auto", "auto", 1, 1),  # one process per GPU: start-up paid once
        ("auto", "auto", 2, 2),
        ("auto", "cuda", 0, 4),  # no GPU visible: the CPU default
        ("auto", "cpu", 8, 4),
        ("auto", "cuda:1", 4, 1),
        (3, "auto", 8, 3),
    ],
)
def test_auto_shards_follow_the_gpus(shards, device, gpus, expected):
    assert shard_count(shards, device, gpus) == expected


def test_visible_gpus_are_counted_without_cuda(tmp_path):
    (tmp_path / "0000:01:00.0").mkdir()
    (tmp_path / "0000:02:00.0").mkdir()
    assert visible_gpu_count({}, tmp_path) == 2
    assert visible_gpu_count({"CUDA_VISIBLE_DEVICES": "3"}, tmp_path) == 1
    assert visible_gpu_count({"CUDA_VISIBLE_DEVICES": ""}, tmp_path) == 0
    assert visible_gpu_count({}, tmp_path / "absent") == 0
