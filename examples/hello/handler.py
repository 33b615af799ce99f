"""hello: a python3 function; the greeting comes from the `GREETING` environment variable."""

import os


def handle(req):
    name = req.strip() or "world"
    return f"{os.environ.get('GREETING', 'Hello')}, {name}!"
