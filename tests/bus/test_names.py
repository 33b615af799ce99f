"""Subject and key names refuse anything that would change their meaning."""

from __future__ import annotations

import pytest

from faasbus.bus import names


def test_subjects_and_keys() -> None:
    assert names.invoke_subject("openfaas-fn", "echo") == "faas.invoke.openfaas-fn.echo"
    assert names.dead_subject("openfaas-fn", "echo") == "faas.dead.openfaas-fn.echo"
    assert names.logs_subject("ns", "echo", "echo-1") == "faas.logs.ns.echo.echo-1"
    assert names.endpoint_key("ns", "echo", "i1") == "ns.echo.i1"
    assert names.split_function_key("ns.echo.i1") == ("ns", "echo")


@pytest.mark.parametrize("bad", ["", "Echo", "a.b", "a*", ">", "-a", "a-", "../x", "a" * 64])
def test_invalid_names_are_refused(bad: str) -> None:
    assert not names.is_dns1123_label(bad)
    with pytest.raises(ValueError, match="DNS-1123"):
        names.invoke_subject("openfaas-fn", bad)
