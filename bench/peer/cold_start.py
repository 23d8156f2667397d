"""The peer's cold start: a fresh python3 process imports the handler (and boto3), reads one
Lambda event from a file and handles it, as a Lambda instance's init and first invocation do.

Usage: python cold_start.py EVENT.json
"""

import json
import sys

import handler


def main() -> None:
    with open(sys.argv[1], "rb") as events:
        event = json.loads(events.read())
    handler.lambda_handler(event, None)


if __name__ == "__main__":
    main()
