"""echo: answers with the request body, unchanged, and says how it was called in headers."""


def handle(event, context):
    return {
        "statusCode": 200,
        "body": event.body,
        "headers": {
            "Content-Type": event.headers.get("Content-Type") or "text/plain",
            "X-Echo-Method": event.method,
            "X-Echo-Path": event.path,
            "X-Echo-Hostname": context.hostname,
        },
    }
