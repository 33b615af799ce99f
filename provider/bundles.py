"""Bundles: what ``faasbus build`` makes of a ``python3``/``python3-http`` function; finding them.

A bundle is the process backend's "container image". It lives under the state directory, named by
the function's ``image`` (``<state>/bundles/<safe image name>/``), and holds:

    bundle.json   {"image", "lang", "handler": "function/handler.py", "python", "build_id", ...}
    function/     a copy of the handler folder (handler.py, requirements.txt, any data files)
    venv/         a virtual environment with the handler's requirements

The virtual environment is made with ``python -m venv --system-site-packages --without-pip``.
When faasbus itself runs from a virtual environment (the usual case), "system" site-packages would
mean the base interpreter's, where faasbus and aiohttp are not; so the bundle's site-packages also
gets a ``.pth`` file that adds the builder's own site-packages *after* its own. The handler's
requirements (installed by the builder's pip with ``pip --python``) therefore win over faasbus's,
and faasbus's watchdog stays importable. Requirements already satisfied by the builder's
environment are not downloaded again.

An image without a tag means ``:latest`` (as for container images): ``fn`` and ``fn:latest`` name
the same bundle. A rebuild writes a new ``build_id``; the provider restarts replicas of a function
whose bundle changed when it is deployed again.

``build_bundle`` is a blocking local operation (the CLI's ``faasbus build`` calls it directly); the
new bundle is assembled beside the old one and swapped in with renames, so a failed build leaves the
previous bundle intact.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import sysconfig
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from faasbus.provider.errors import BundleError

__all__ = [
    "BUNDLE_LANGS",
    "Bundle",
    "build_bundle",
    "bundle_dir",
    "load_bundle",
    "normalize_image",
]

BUNDLE_LANGS = frozenset({"python3", "python3-http"})
_HANDLER = "function/handler.py"
_PIP_TIMEOUT_S = 900.0
_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def normalize_image(image: str) -> str:
    """``fn`` → ``fn:latest``; a tag or digest already present is kept."""
    image = image.strip()
    last = image.rsplit("/", 1)[-1]
    if ":" in last or "@" in last:
        return image
    return f"{image}:latest"


def bundle_dir(state_dir: Path, image: str) -> Path:
    """``<state>/bundles/<image made path-safe>-<short hash>`` (the hash keeps names distinct)."""
    image = normalize_image(image)
    readable = _UNSAFE.sub("-", image.lower()).strip("-.") or "image"
    digest = hashlib.sha256(image.encode()).hexdigest()[:8]
    return state_dir / "bundles" / f"{readable[:80]}-{digest}"


@dataclass(frozen=True)
class Bundle:
    """A built bundle as recorded in its ``bundle.json``."""

    image: str
    lang: str
    root: Path
    handler: str
    python: Path
    build_id: str

    @property
    def handler_path(self) -> Path:
        return self.root / self.handler

    @classmethod
    def from_json(cls, root: Path, raw: dict[str, Any]) -> Self:
        return cls(
            image=str(raw["image"]),
            lang=str(raw["lang"]),
            root=root,
            handler=str(raw.get("handler", _HANDLER)),
            python=Path(str(raw["python"])),
            build_id=str(raw.get("build_id", "")),
        )


def load_bundle(state_dir: Path, image: str) -> Bundle | None:
    """The bundle stored for ``image``, or None when there is none (or it is unusable)."""
    if not image:
        return None
    root = bundle_dir(state_dir, image)
    try:
        raw = json.loads((root / "bundle.json").read_text())
        bundle = Bundle.from_json(root, raw)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not bundle.python.exists() or not bundle.handler_path.is_file():
        return None
    return bundle


def _requirements(handler_dir: Path) -> Path | None:
    path = handler_dir / "requirements.txt"
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    if any(line.strip() and not line.strip().startswith("#") for line in lines):
        return path
    return None


def _run(argv: list[str], step: str) -> None:
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BundleError(f"{step} failed: {exc}") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise BundleError(f"{step} failed (exit code {result.returncode}):\n{tail}")


def _site_packages(venv: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return venv / "lib" / version / "site-packages"


def _make_venv(venv: Path) -> Path:
    _run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        "creating the virtual environment",
    )
    python = venv / "bin" / "python"
    parents = []
    for key in ("purelib", "platlib"):
        path = sysconfig.get_paths()[key]
        if path not in parents:
            parents.append(path)
    if sys.prefix != sys.base_prefix:
        # See the module docstring: make the builder's environment (faasbus, aiohttp) importable.
        lines = [f"import site; site.addsitedir({path!r})" for path in parents]
        site_packages = _site_packages(venv)
        site_packages.mkdir(parents=True, exist_ok=True)
        (site_packages / "_faasbus_parent.pth").write_text("\n".join(lines) + "\n")
    return python


def build_bundle(name: str, image: str, lang: str, handler_dir: Path, state_dir: Path) -> Path:
    """Build the bundle for function ``name`` and return its directory.

    ``image`` names the bundle, ``lang`` is the template (``python3`` or ``python3-http``),
    ``handler_dir`` the folder with ``handler.py`` (and optionally ``requirements.txt``).
    Raises :class:`BundleError` saying what went wrong.
    """
    if lang not in BUNDLE_LANGS:
        raise BundleError(
            f"function {name!r}: lang {lang!r} cannot be built into a bundle "
            f"(supported: {', '.join(sorted(BUNDLE_LANGS))}; use fprocess for a host command)"
        )
    if not image.strip():
        raise BundleError(f"function {name!r}: image is required to name the bundle")
    handler_dir = Path(handler_dir).expanduser().absolute()
    if not (handler_dir / "handler.py").is_file():
        raise BundleError(f"function {name!r}: no handler.py in {handler_dir}")
    final = bundle_dir(Path(state_dir).absolute(), image)
    final.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    work = final.parent / f".build-{final.name}-{token}"
    old = final.parent / f".old-{final.name}-{token}"
    try:
        shutil.copytree(
            handler_dir,
            work / "function",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git", ".venv", "build"),
        )
        python = _make_venv(work / "venv")
        requirements = _requirements(work / "function")
        if requirements is not None:
            _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "--python",
                    str(python),
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--no-input",
                    "-r",
                    str(requirements),
                ],
                f"installing {requirements.name} for {name!r}",
            )
        record = {
            "image": normalize_image(image),
            "lang": lang,
            "name": name,
            "handler": _HANDLER,
            "python": str(final / "venv" / "bin" / python.name),
            "build_id": uuid.uuid4().hex,
            "built_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        (work / "bundle.json").write_text(json.dumps(record, indent=2) + "\n")
        if final.exists():
            final.rename(old)
        work.rename(final)
    except OSError as exc:
        raise BundleError(f"building {name!r} into {final}: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return final
