"""The stack.yml reader: faas-cli's file format turned into deploy bodies (REFERENCE.md section 8).

Rules, in the order they apply:

1. ``${VAR}`` (and ``${VAR:-default}``) is substituted from the environment in the raw text before
   YAML parsing, as faas-cli's envsubst does; an unset variable without a default becomes empty.
2. Each function's ``environment`` is read first, then every ``environment_file`` in order (YAML
   files with a top-level ``environment:`` mapping, as faas-cli writes them); later entries
   override earlier ones, so the files override ``environment``.
3. ``handler`` and ``environment_file`` paths are relative to the stack file's folder.
4. Names (function, namespace, secrets) must be DNS-1123 labels; scalar values in ``environment``,
   ``labels``, ``annotations``, ``limits`` and ``requests`` become strings (``true``/``false`` for
   booleans), since the deploy body carries string maps.
5. Unknown keys are ignored (faas-cli files carry ``build_args``, ``skip_build``, ...); a known key
   with the wrong shape is a :class:`StackError` naming the field (``functions.echo.labels``).

``image`` defaults to ``NAME:latest`` for template functions (it names the bundle ``faasbus build``
makes); a host command (``fprocess``) needs no image.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from faasbus.bus.names import is_dns1123_label
from faasbus.cli.errors import StackError

__all__ = [
    "TEMPLATE_LANGS",
    "Stack",
    "StackFunction",
    "load_stack",
    "substitute_env",
]

# Templates faasbus can build into a bundle; everything else runs as a host command (fprocess).
TEMPLATE_LANGS = frozenset({"python3", "python3-http"})

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME_RULE = (
    "lowercase letters, digits and '-', starting and ending with a letter or digit, "
    "at most 63 characters"
)


def substitute_env(text: str, environ: Mapping[str, str]) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` from ``environ``."""

    def replace(match: re.Match[str]) -> str:
        value = environ.get(match.group(1))
        if value is None or (value == "" and match.group(2) is not None):
            return match.group(2) or ""
        return value

    return _VARIABLE.sub(replace, text)


@dataclass(frozen=True)
class StackFunction:
    """One entry under ``functions:``, validated, with absolute paths."""

    name: str
    lang: str | None = None
    handler: Path | None = None
    image: str = ""
    fprocess: str | None = None
    namespace: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    limits: dict[str, str] | None = None
    requests: dict[str, str] | None = None
    constraints: list[str] = field(default_factory=list)
    read_only_root_filesystem: bool | None = None

    @property
    def is_template(self) -> bool:
        """True when ``faasbus build`` must make a bundle for it (a template, no fprocess)."""
        return self.fprocess is None and self.lang in TEMPLATE_LANGS

    def deploy_body(self) -> dict[str, Any]:
        """The ``POST``/``PUT /system/functions`` body, in OpenFaaS field names."""
        body: dict[str, Any] = {
            "service": self.name,
            "image": self.image,
            "envVars": dict(self.environment),
            "secrets": list(self.secrets),
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
        }
        if self.namespace:
            body["namespace"] = self.namespace
        if self.fprocess is not None:
            body["envProcess"] = self.fprocess
        if self.limits is not None:
            body["limits"] = dict(self.limits)
        if self.requests is not None:
            body["requests"] = dict(self.requests)
        if self.constraints:
            body["constraints"] = list(self.constraints)
        if self.read_only_root_filesystem is not None:
            body["readOnlyRootFilesystem"] = self.read_only_root_filesystem
        return body


@dataclass(frozen=True)
class Stack:
    """A parsed stack file: its path, the gateway it names, and its functions in file order."""

    path: Path
    gateway: str | None
    functions: dict[str, StackFunction]

    def select(self, pattern: str | None = None) -> list[StackFunction]:
        """Functions whose name matches ``pattern`` (a glob, as faas-cli's ``--filter``)."""
        if not pattern:
            return list(self.functions.values())
        return [fn for fn in self.functions.values() if fnmatch.fnmatchcase(fn.name, pattern)]


class _Reader:
    """Validation helpers that know the file they report against."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.parent

    def fail(self, field_name: str, problem: str) -> StackError:
        return StackError(str(self.path), field_name, problem)

    def scalar_text(self, value: Any, field_name: str) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value)
        raise self.fail(field_name, "must be a string, number or boolean")

    def text(self, raw: Mapping[str, Any], key: str, prefix: str) -> str | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(f"{prefix}.{key}", "must be a string")
        return str(value)

    def string_map(self, raw: Mapping[str, Any], key: str, prefix: str) -> dict[str, str]:
        value = raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(f"{prefix}.{key}", "must be a mapping of names to values")
        return {str(k): self.scalar_text(v, f"{prefix}.{key}.{k}") for k, v in value.items()}

    def string_list(self, raw: Mapping[str, Any], key: str, prefix: str) -> list[str]:
        value = raw.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self.fail(f"{prefix}.{key}", "must be a list of strings")
        items: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str | int | float) or isinstance(item, bool):
                raise self.fail(f"{prefix}.{key}[{index}]", "must be a string")
            items.append(str(item))
        return items

    def name(self, value: str, field_name: str, kind: str) -> str:
        if not is_dns1123_label(value):
            raise self.fail(field_name, f"{value!r} is not a valid {kind} name ({_NAME_RULE})")
        return value

    def resources(self, raw: Mapping[str, Any], key: str, prefix: str) -> dict[str, str] | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(f"{prefix}.{key}", "must be a mapping with memory and/or cpu")
        out: dict[str, str] = {}
        for sub in ("memory", "cpu"):
            if value.get(sub) is not None:
                out[sub] = self.scalar_text(value[sub], f"{prefix}.{key}.{sub}")
        return out

    def environment_files(
        self, raw: Mapping[str, Any], prefix: str, environ: Mapping[str, str]
    ) -> dict[str, str]:
        merged: dict[str, str] = {}
        for index, entry in enumerate(self.string_list(raw, "environment_file", prefix)):
            field_name = f"{prefix}.environment_file[{index}]"
            env_path = (self.base / entry).resolve()
            try:
                text = env_path.read_text(encoding="utf-8")
            except OSError as exc:
                raise self.fail(field_name, f"cannot read {env_path}: {exc.strerror}") from exc
            try:
                data = yaml.safe_load(substitute_env(text, environ))
            except yaml.YAMLError as exc:
                raise self.fail(field_name, f"{env_path} is not valid YAML: {exc}") from exc
            if data is None:
                continue
            if not isinstance(data, dict):
                raise self.fail(field_name, f"{env_path} must hold a mapping 'environment:'")
            merged.update(self.string_map(data, "environment", f"{field_name}({env_path.name})"))
        return merged

    def function(self, name: Any, raw: Any, environ: Mapping[str, str]) -> StackFunction:
        prefix = f"functions.{name}"
        if not isinstance(name, str):
            raise self.fail(prefix, "function names must be strings")
        self.name(name, prefix, "function")
        if not isinstance(raw, dict):
            raise self.fail(prefix, "must be a mapping (lang, handler, image, ...)")
        lang = self.text(raw, "lang", prefix)
        fprocess = self.text(raw, "fprocess", prefix)
        image = self.text(raw, "image", prefix)
        handler_text = self.text(raw, "handler", prefix)
        namespace = self.text(raw, "namespace", prefix)
        if namespace:
            self.name(namespace, f"{prefix}.namespace", "namespace")
        secrets = self.string_list(raw, "secrets", prefix)
        for index, secret in enumerate(secrets):
            self.name(secret, f"{prefix}.secrets[{index}]", "secret")
        if not lang and not fprocess and not image:
            raise self.fail(prefix, "needs lang (python3 or python3-http), fprocess or image")
        environment = self.string_map(raw, "environment", prefix)
        environment.update(self.environment_files(raw, prefix, environ))
        read_only = raw.get("readonly_root_filesystem")
        if read_only is not None and not isinstance(read_only, bool):
            raise self.fail(f"{prefix}.readonly_root_filesystem", "must be true or false")
        template = fprocess is None and lang in TEMPLATE_LANGS
        handler = (self.base / handler_text).resolve() if handler_text else None
        if template and handler is None:
            raise self.fail(f"{prefix}.handler", f"is required for lang {lang}")
        return StackFunction(
            name=name,
            lang=lang,
            handler=handler,
            image=image or (f"{name}:latest" if template else ""),
            fprocess=fprocess,
            namespace=namespace or None,
            environment=environment,
            secrets=secrets,
            labels=self.string_map(raw, "labels", prefix),
            annotations=self.string_map(raw, "annotations", prefix),
            limits=self.resources(raw, "limits", prefix),
            requests=self.resources(raw, "requests", prefix),
            constraints=self.string_list(raw, "constraints", prefix),
            read_only_root_filesystem=read_only,
        )


def load_stack(path: Path | str, environ: Mapping[str, str] | None = None) -> Stack:
    """Read and validate a stack file; :class:`StackError` names the file and the field."""
    stack_path = Path(path).expanduser().resolve()
    env = os.environ if environ is None else environ
    reader = _Reader(stack_path)
    try:
        text = stack_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise reader.fail("", f"cannot read the stack file: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(substitute_env(text, env))
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise reader.fail("", f"not valid YAML: {detail}") from exc
    if not isinstance(data, dict):
        raise reader.fail("", "must be a YAML mapping with a 'functions:' section")
    provider = data.get("provider")
    gateway: str | None = None
    if provider is not None:
        if not isinstance(provider, dict):
            raise reader.fail("provider", "must be a mapping (name, gateway)")
        gateway = reader.text(provider, "gateway", "provider") or None
    functions_raw = data.get("functions")
    if functions_raw is None:
        raise reader.fail("functions", "is missing")
    if not isinstance(functions_raw, dict):
        raise reader.fail("functions", "must be a mapping of function names to definitions")
    functions = {str(name): reader.function(name, raw, env) for name, raw in functions_raw.items()}
    return Stack(path=stack_path, gateway=gateway, functions=functions)
