"""A python3-http function: full control of the status code, headers and body."""

from typing import Any


def handle(event: Any, context: Any) -> dict[str, Any]:
    """Handle a request to the function.

    Args:
        event: the request: ``body`` (bytes), ``headers``, ``method``, ``query`` (dict), ``path``.
        context: where the function runs: ``hostname``.

    Returns:
        ``statusCode``, ``body`` (str, bytes, or a dict/list sent as JSON) and ``headers``.
        ``async def handle`` works too.
    """
    return {
        "statusCode": 200,
        "body": {
            "method": event.method,
            "path": event.path,
            "query": event.query,
            "body": event.body.decode(errors="replace"),
            "hostname": context.hostname,
        },
        "headers": {"Content-Type": "application/json"},
    }
