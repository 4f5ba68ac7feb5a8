"""Rerun digests: a rule's `code` param is the digest of the package modules its script reaches
through imports, found with `ast` (imports inside functions included), so that editing any of
them reruns the rule and editing any other module does not. Snakemake itself tracks only the
rule's own script."""

import ast
import functools
import hashlib
import importlib.util
import re
from pathlib import Path

PACKAGE = "segsubmit"
PACKAGE_DIR = Path(__file__).resolve().parent


def module_file(module, package_dir=PACKAGE_DIR):
    """The file of a package module ('segsubmit.backends.base'), or None if it names none."""
    parts = module.split(".")[1:]
    path = package_dir.joinpath(*parts)
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    path = path.with_suffix(".py")
    return path if parts and path.is_file() else None


def absolute_base(node, module, is_package):
    """The module an `ImportFrom` node imports from, made absolute."""
    if not node.level:
        return node.module
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


STATEMENT_LISTS = ("body", "orelse", "finalbody", "handlers", "cases")


def statements(nodes):
    """Every statement of `nodes` and of the blocks nested in them (functions, classes, if,
    try, with, loops, match), without walking into expressions: imports are statements."""
    for node in nodes:
        yield node
        for name in STATEMENT_LISTS:
            yield from statements(getattr(node, name, ()))


def imported_names(source, module="", is_package=False):
    """Every dotted name imported anywhere in `source` (with each `from x import y` giving both
    `x` and `x.y`, since y may be a submodule)."""
    for node in statements(ast.parse(source).body):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = absolute_base(node, module, is_package)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def package_modules(names, package_dir=PACKAGE_DIR):
    """The package modules that importing `names` runs (a.b.c runs a, a.b and a.b.c)."""
    found = set()
    for name in names:
        parts = name.split(".")
        if parts[0] != PACKAGE:
            continue
        for end in range(1, len(parts) + 1):
            if module_file(".".join(parts[:end]), package_dir):
                found.add(".".join(parts[:end]))
    return found


def file_imports(path, module="", package_dir=PACKAGE_DIR):
    """The package modules a file imports directly; each file parsed once per version (the
    workflow asks for every rule's closure, and the closures share most modules)."""
    stat = Path(path).stat()
    return _file_imports(str(path), stat.st_mtime_ns, stat.st_size, module, str(package_dir))


@functools.lru_cache(maxsize=1024)
def _file_imports(path, mtime_ns, size, module, package_dir):
    names = imported_names(Path(path).read_text(), module, Path(path).name == "__init__.py")
    return frozenset(package_modules(names, Path(package_dir)))


def import_closure(script_path, package_dir=PACKAGE_DIR, extra_modules=()):
    """Sorted package modules a script (and `extra_modules`: modules it imports by name, such
    as a plug-in's declaration) reaches through imports, transitively."""
    pending = set(file_imports(script_path, package_dir=package_dir))
    for module in extra_modules:
        if module.split(".")[0] == PACKAGE:
            pending.add(module)
    closure = set()
    while pending:
        module = pending.pop()
        closure.add(module)
        path = module_file(module, package_dir)
        pending |= file_imports(path, module, package_dir) - closure
    return sorted(closure)


def plugin_table(plugins, package_dir=PACKAGE_DIR):
    """Markdown table: each plug-in ({label: declaration module}) and the package modules it
    adds to the digest of the rule that loads it (infer: the configured backend; submission:
    the configured formats)."""
    rows = ["| plug-in | modules it adds (segsubmit.*) |", "| --- | --- |"]
    for label, module in plugins.items():
        closure = set()
        pending = {module}
        while pending:
            name = pending.pop()
            closure.add(name)
            pending |= file_imports(module_file(name, package_dir), name, package_dir) - closure
        names = sorted(m.removeprefix(f"{PACKAGE}.") for m in closure if "." in m)
        rows.append(f"| {label} | {', '.join(names)} |")
    return "\n".join(rows) + "\n"


def script_digest(script_path, package_dir=PACKAGE_DIR, extra_modules=()):
    """sha256 (first 16 hex) over the files of the script's import closure (with
    `extra_modules`, see `import_closure`; one outside the package, a plug-in named in the
    config, counts with its own file)."""
    digest = hashlib.sha256()
    for module in import_closure(script_path, package_dir, extra_modules):
        digest.update(module.encode())
        digest.update(module_file(module, package_dir).read_bytes())
    for module in sorted(m for m in extra_modules if m.split(".")[0] != PACKAGE):
        spec = importlib.util.find_spec(module)
        digest.update(module.encode())
        if spec and spec.origin and Path(spec.origin).is_file():
            digest.update(Path(spec.origin).read_bytes())
    return digest.hexdigest()[:16]


RULE_PATTERN = re.compile(r"^\s*(?:rule|checkpoint) (\w+):", re.MULTILINE)  # also inside `if`
SCRIPT_PATTERN = re.compile(r"^\s+script:\s*\n\s+\"([^\"]+)\"", re.MULTILINE)


def rule_scripts(rules_dir):
    """{rule name: script path} of the rules in `rules_dir`/*.smk that run a script."""
    scripts = {}
    for rule_file in sorted(Path(rules_dir).glob("*.smk")):
        text = rule_file.read_text()
        matches = list(RULE_PATTERN.finditer(text))
        ends = [match.start() for match in matches[1:]] + [len(text)]
        for match, end in zip(matches, ends, strict=False):  # no rules: no ends either
            script = SCRIPT_PATTERN.search(text, match.start(), end)
            if script:
                scripts[match.group(1)] = (rule_file.parent / script.group(1)).resolve()
    return scripts


def digest_table(rules_dir, package_dir=PACKAGE_DIR, with_digests=True):
    """Markdown table: each rule, its code digest (unless not `with_digests`), and the package
    modules the digest covers."""
    header = ["rule", "digest", "modules it covers (segsubmit.*)"]
    if not with_digests:
        header.remove("digest")
    rows = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for rule, script in rule_scripts(rules_dir).items():
        modules = [m.removeprefix(f"{PACKAGE}.") for m in import_closure(script, package_dir)]
        cells = [f"`{rule}`", ", ".join("__init__" if m == PACKAGE else m for m in modules)]
        if with_digests:
            cells.insert(1, f"`{script_digest(script, package_dir)}`")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"
