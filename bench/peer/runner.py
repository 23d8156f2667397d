"""The peer's thin runner: invokes `handler.lambda_handler` once per event, as Lambda does.

Long-lived (one warm function instance): reads one Lambda event per line on stdin (the batches
the harness's stream poller builds, the same events our handler gets), answers one JSON line per
event on stdout: `{"response": <the handler's return value>}`, or `{"error": "..."}` when the
handler raised (a function error: Lambda retries the batch).
"""

import json
import sys
import traceback

import handler


def main() -> None:
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        event = json.loads(line)
        try:
            answer = {"response": handler.lambda_handler(event, None)}
        except Exception as error:  # the function failed: reported, as Lambda reports it
            traceback.print_exc(file=sys.stderr)
            answer = {"error": f"{type(error).__name__}: {error}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
