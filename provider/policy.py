"""How many replicas: the scaling labels and the clamp applied to every requested count.

Labels (REFERENCE.md section 6): ``com.openfaas.scale.min`` (default 1), ``com.openfaas.scale.max``
(default 20, OpenFaaS Pro's), ``com.openfaas.scale.zero`` (default false).

The rule, from REFERENCE.md section 1 ("replicas clamped to the function's min/max labels; 0 allowed
only where scale-to-zero is on"):

- a request for N > 0 replicas gets ``min(max(N, min), max)``;
- a request for 0 gets 0 when scale-to-zero is on for the function — label
  ``com.openfaas.scale.zero=true``, or ``com.openfaas.scale.min=0`` — and ``min`` otherwise.
  So ``faas-cli scale fn --replicas 0`` on a plain function keeps it at 1 (the API still answers
  202, with the count it applied in the body); give the function ``com.openfaas.scale.zero: true``
  to let it rest at zero and wake on the next request.
- a new function starts with ``min`` replicas (1 unless the label says otherwise).
- an update keeps the current count, clamped again to the new labels.
- a scale-up request from the bus (a request arrived for a function at zero) sets ``max(1, min)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from faasbus.provider.types import WireError

__all__ = ["ScaleBounds"]

MIN_LABEL = "com.openfaas.scale.min"
MAX_LABEL = "com.openfaas.scale.max"
ZERO_LABEL = "com.openfaas.scale.zero"
DEFAULT_MIN = 1
DEFAULT_MAX = 20
_TRUE = frozenset({"true", "1", "yes", "on"})


def _label_int(labels: Mapping[str, str], key: str, default: int) -> int:
    text = labels.get(key, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise WireError(f"labels.{key}", f"{text!r} is not a whole number") from None
    if value < 0:
        raise WireError(f"labels.{key}", f"{value} must not be negative")
    return value


@dataclass(frozen=True)
class ScaleBounds:
    minimum: int
    maximum: int
    zero_allowed: bool

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> ScaleBounds:
        """Read the labels; a malformed one raises :class:`WireError` (a 400 at deploy)."""
        minimum = _label_int(labels, MIN_LABEL, DEFAULT_MIN)
        maximum = _label_int(labels, MAX_LABEL, DEFAULT_MAX)
        if maximum < minimum:
            raise WireError(f"labels.{MAX_LABEL}", f"{maximum} is below the minimum {minimum}")
        zero = labels.get(ZERO_LABEL, "").strip().lower() in _TRUE or minimum == 0
        return cls(minimum=minimum, maximum=maximum, zero_allowed=zero)

    def clamp(self, requested: int) -> int:
        if requested <= 0:
            return 0 if self.zero_allowed else self.minimum
        return min(max(requested, self.minimum), self.maximum)

    @property
    def initial(self) -> int:
        return min(self.minimum, self.maximum)

    @property
    def wake(self) -> int:
        """Replicas to start when a request arrives for a function at zero."""
        return min(max(1, self.minimum), max(1, self.maximum))
