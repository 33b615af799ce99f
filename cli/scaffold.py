"""``faasbus new``: copy a handler template into ``./NAME`` and add its entry to stack.yml.

Templates live with the watchdog (ARCHITECTURE.md section 4). The watchdog exposes
``template_path(lang)``; when it does not, the files are read from the
``faasbus.watchdog.templates`` package data (``<lang>/...``). A template folder holding a
``function/`` subfolder (the OpenFaaS layout) contributes only that subfolder: the rest is the
template's runtime, not the user's code.

The stack entry is appended as text so the file keeps its comments and layout; when ``functions:``
is not the last section (appending would land elsewhere) the file is rewritten from its parsed form
instead, which drops comments, and the command says so.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

from faasbus.bus.names import is_dns1123_label
from faasbus.cli.errors import ScaffoldError
from faasbus.cli.settings import DEFAULT_GATEWAY
from faasbus.cli.stack import TEMPLATE_LANGS, load_stack

__all__ = ["ScaffoldResult", "scaffold_function", "template_source"]

_SKIP = frozenset({"__pycache__", "__init__.py", ".DS_Store"})


@dataclass(frozen=True)
class ScaffoldResult:
    handler_dir: Path
    stack_path: Path
    files: list[Path]
    stack_rewritten: bool


def template_source(lang: str) -> Traversable:
    """The folder of template ``lang``: the watchdog's ``template_path``, else package data."""
    if lang not in TEMPLATE_LANGS:
        raise ScaffoldError(
            f"unknown template {lang!r}: choose one of {', '.join(sorted(TEMPLATE_LANGS))}"
        )
    source: Traversable | None = None
    try:
        watchdog = importlib.import_module("faasbus.watchdog")
    except ImportError:
        watchdog = None
    template_path = getattr(watchdog, "template_path", None)
    if callable(template_path):
        try:
            found = template_path(lang)
        except (KeyError, ValueError, LookupError, OSError):
            found = None
        if found is not None:
            source = Path(found)
    if source is None:
        source = resources.files("faasbus.watchdog.templates") / lang
    if not source.is_dir():
        raise ScaffoldError(f"template {lang!r} is not installed (looked in {source})")
    function_dir = source / "function"
    return function_dir if function_dir.is_dir() else source


def _copy_tree(source: Traversable, target: Path, copied: list[Path]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir(), key=lambda item: item.name):
        if entry.name in _SKIP or entry.name.endswith(".pyc"):
            continue
        destination = target / entry.name
        if entry.is_dir():
            _copy_tree(entry, destination, copied)
        else:
            destination.write_bytes(entry.read_bytes())
            copied.append(destination)


def _entry_text(name: str, lang: str, handler: str) -> str:
    return f"  {name}:\n    lang: {lang}\n    handler: {handler}\n    image: {name}:latest\n"


def _new_stack_text(gateway: str) -> str:
    return f"version: 1.0\nprovider:\n  name: openfaas\n  gateway: {gateway}\nfunctions:\n"


def _functions_is_last_section(text: str) -> bool:
    """True when the last top-level key of the file is a block-style ``functions:``."""
    last_key = ""
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            last_key = line.rstrip()
    return last_key.split("#", 1)[0].strip() == "functions:"


def _add_stack_entry(stack_path: Path, name: str, lang: str, handler: str) -> bool:
    """Append (or rewrite) the entry; True when the file had to be rewritten."""
    if not stack_path.exists():
        stack_path.write_text(_new_stack_text(DEFAULT_GATEWAY) + _entry_text(name, lang, handler))
        return False
    text = stack_path.read_text(encoding="utf-8")
    if _functions_is_last_section(text):
        joined = text if text.endswith("\n") or not text else text + "\n"
        candidate = joined + _entry_text(name, lang, handler)
        parsed = yaml.safe_load(candidate)
        functions = parsed.get("functions") if isinstance(parsed, dict) else None
        if isinstance(functions, dict) and isinstance(functions.get(name), dict):
            stack_path.write_text(candidate, encoding="utf-8")
            return False
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ScaffoldError(f"{stack_path} is not a stack file (not a YAML mapping)")
    functions_map = data.get("functions") or {}
    if not isinstance(functions_map, dict):
        raise ScaffoldError(f"{stack_path}: functions: must be a mapping")
    functions_map[name] = {"lang": lang, "handler": handler, "image": f"{name}:latest"}
    data["functions"] = functions_map
    stack_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return True


def scaffold_function(
    name: str, lang: str, stack_path: Path, root: Path | None = None
) -> ScaffoldResult:
    """Create ``<root>/<name>/`` from template ``lang`` and add ``name`` to ``stack_path``.

    ``root`` defaults to the stack file's folder, so ``handler: ./NAME`` is right.
    """
    if not is_dns1123_label(name):
        raise ScaffoldError(
            f"{name!r} is not a valid function name (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)"
        )
    source = template_source(lang)
    stack_path = stack_path.resolve()
    base = (root or stack_path.parent).resolve()
    handler_dir = base / name
    if stack_path.exists():
        existing = load_stack(stack_path)
        if name in existing.functions:
            raise ScaffoldError(f"{stack_path} already has a function named {name!r}")
    if handler_dir.exists():
        raise ScaffoldError(f"{handler_dir} already exists; choose another name or remove it")
    copied: list[Path] = []
    _copy_tree(source, handler_dir, copied)
    try:
        handler_ref = "./" + handler_dir.relative_to(stack_path.parent).as_posix()
    except ValueError:
        handler_ref = str(handler_dir)
    rewritten = _add_stack_entry(stack_path, name, lang, handler_ref)
    return ScaffoldResult(handler_dir, stack_path, copied, rewritten)
