"""A python3 function: the request body comes in as text, the returned text goes back."""


def handle(req: str) -> str:
    """Handle a request to the function.

    Args:
        req: the request body, decoded as UTF-8.

    Returns:
        The response body.
    """
    return req
