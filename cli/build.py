"""``faasbus build``: turn the template functions of a stack file into bundles.

This is the one place the CLI reaches past the gateway API: a bundle (the handler folder plus a
virtual environment with its requirements) is built on this machine into the state directory the
process provider reads, by the provider's own bundle builder
(``faasbus.provider.bundles.build_bundle``). Like the launcher of ``faasbus up``, it is a local
operation, so importing the provider here is allowed by the layers (the CLI sits on top); the import
is deferred so every other command works without it. Host-command functions (``fprocess``) need
no build and are skipped.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from faasbus.cli.errors import BuildError
from faasbus.cli.stack import TEMPLATE_LANGS, StackFunction

__all__ = ["BuildResult", "build_functions", "load_builder"]

BundleBuilder = Callable[..., Path]


@dataclass(frozen=True)
class BuildResult:
    """What happened to one function: its bundle path, or why it was skipped."""

    name: str
    bundle: Path | None
    skipped: str = ""


def load_builder() -> BundleBuilder:
    """The provider's ``build_bundle``, or :class:`BuildError` saying it is missing."""
    try:
        module = importlib.import_module("faasbus.provider.bundles")
    except ImportError as exc:
        raise BuildError(
            f"cannot build bundles: faasbus.provider.bundles is not available ({exc})"
        ) from exc
    builder = getattr(module, "build_bundle", None)
    if not callable(builder):
        raise BuildError("cannot build bundles: faasbus.provider.bundles has no build_bundle")
    return cast("BundleBuilder", builder)


def _build_one(builder: BundleBuilder, fn: StackFunction, state_dir: Path) -> BuildResult:
    if fn.fprocess is not None:
        return BuildResult(fn.name, None, skipped="host command (fprocess), nothing to build")
    if fn.lang not in TEMPLATE_LANGS:
        if fn.lang is None:
            return BuildResult(fn.name, None, skipped=f"no lang: image {fn.image!r} used as is")
        supported = ", ".join(sorted(TEMPLATE_LANGS))
        raise BuildError(
            f"function {fn.name!r}: lang {fn.lang!r} cannot be built by faasbus "
            f"(supported: {supported}; or set fprocess to run a host command)"
        )
    if fn.handler is None or not fn.handler.is_dir():
        raise BuildError(f"function {fn.name!r}: handler folder {fn.handler} does not exist")
    try:
        bundle = builder(
            name=fn.name,
            image=fn.image,
            lang=fn.lang,
            handler_dir=fn.handler,
            state_dir=state_dir,
        )
    except BuildError:
        raise
    except Exception as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise BuildError(f"building function {fn.name!r} failed: {message}") from exc
    return BuildResult(fn.name, Path(bundle))


def build_functions(
    functions: Iterable[StackFunction],
    state_dir: Path,
    *,
    on_result: Callable[[BuildResult], None] | None = None,
) -> list[BuildResult]:
    """Build every template function; the builder is loaded only if one needs it."""
    results: list[BuildResult] = []
    builder: BundleBuilder | None = None
    for fn in functions:
        if fn.is_template and builder is None:
            builder = load_builder()
        result = _build_one(builder or _never, fn, state_dir)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _never(**_: object) -> Path:  # pragma: no cover - only reached for non-template functions
    raise BuildError("internal: no bundle builder loaded")
