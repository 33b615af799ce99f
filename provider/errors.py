"""Errors of the provider, and the HTTP status each one means.

    ProviderError                     base; ``status`` is the HTTP code the API answers with
    ├── InvalidRequest        400     a deploy/secret/scale body that cannot be accepted as is
    │   ├── ImageNotBuilt     400     ``image`` names no bundle and no ``envProcess`` was given
    │   └── SecretMissing     400     a deployment names a secret that does not exist
    ├── NotFound              404     no such function, secret or namespace
    ├── Conflict              409     the secret or namespace already exists / is not empty
    └── BundleError                   ``build_bundle`` failed (bad handler folder, pip failed)

:class:`faasbus.provider.types.WireError` (a malformed field) is also answered with 400; bus
failures surface as :class:`faasbus.bus.BusUnavailable` and are answered with 503.
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "Conflict",
    "ImageNotBuilt",
    "InvalidRequest",
    "NotFound",
    "ProviderError",
    "SecretMissing",
]


class ProviderError(Exception):
    """Base of the provider's errors; ``status`` is the HTTP status that reports it."""

    status = 500


class InvalidRequest(ProviderError):
    status = 400


class ImageNotBuilt(InvalidRequest):
    """No bundle is stored under ``image``."""

    def __init__(self, image: str) -> None:
        super().__init__(
            f"image {image!r} is not built: build it with `faasbus build -f stack.yml` "
            "(or deploy a host command with envProcess)"
        )
        self.image = image


class SecretMissing(InvalidRequest):
    def __init__(self, name: str) -> None:
        super().__init__(f"unable to find secret: {name}")
        self.name = name


class NotFound(ProviderError):
    status = 404


class Conflict(ProviderError):
    status = 409


class BundleError(ProviderError):
    """Building a bundle failed; the message says which step."""
