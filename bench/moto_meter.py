"""moto server, exactly as `moto_server -H HOST -p PORT` runs it, with a meter around it.

The meter is a WSGI middleware inside the emulator's own process: for every AWS request it
records the operation (service and action), who made it (the access key's class: `harness`,
`eventsource`, `unsigned` for moto's own API such as resets, any other key is the function under
test, including keys issued by AssumeRole),
and when moto started and finished handling it (`time.perf_counter`, from the request reaching
the app to the last byte of the response handed back). Both sides of a benchmark run against the
same metered emulator, so one harness counts and times the emulator's work for both.

    GET /__meter/start   forget what was recorded; the window starts now
    GET /__meter/stop    the window ends now: calls by (class, service, action), the time the
                         emulator was busy (the union of the requests' intervals, so concurrent
                         requests count once), the window's length, and moto's CPU time

Usage: python moto_meter.py -H 127.0.0.1 -p PORT
"""

import argparse
import io
import json
import os
import re
import signal
import sys
import threading
import time
from urllib.parse import parse_qs

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/[^/]+/([^/]+)/")
HARNESS_KEYS = {"harness": "harness", "eventsource": "eventsource"}


class Meter:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.records = []  # (class, service, action, start, end)
        self.in_flight = 0
        self.idle = threading.Condition(self.lock)
        self.window_start = time.perf_counter()
        self.cpu_start = time.process_time()

    def control(self, path, start_response):
        now = time.perf_counter()
        with self.lock:
            # A response the client already has may not be closed here yet: wait for it.
            self.idle.wait_for(lambda: self.in_flight == 0, timeout=2.0)
            if path == "/__meter/start":
                self.records = []
                self.window_start = now
                self.cpu_start = time.process_time()
                body = {"started": True}
            else:
                body = self.report(now)
        data = json.dumps(body).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    def report(self, now):
        calls = {}
        intervals = []
        for who, service, action, start, end in self.records:
            start, end = max(start, self.window_start), min(end, now)
            if end < start:
                continue
            key = f"{who}|{service}|{action}"
            entry = calls.setdefault(key, {"count": 0, "seconds": 0.0})
            entry["count"] += 1
            entry["seconds"] += end - start
            intervals.append((start, end))
        intervals.sort()
        busy = 0.0
        current_start = current_end = None
        for start, end in intervals:
            if current_end is None or start > current_end:
                if current_end is not None:
                    busy += current_end - current_start
                current_start, current_end = start, end
            else:
                current_end = max(current_end, end)
        if current_end is not None:
            busy += current_end - current_start
        return {
            "window_seconds": now - self.window_start,
            "busy_seconds": busy,
            "cpu_seconds": time.process_time() - self.cpu_start,
            "calls": calls,
        }

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/__meter/"):
            return self.control(path, start_response)
        start = time.perf_counter()
        with self.lock:
            self.in_flight += 1
        who, service, action = self.classify(environ)
        result = self.app(environ, start_response)
        return Timed(result, self, (who, service, action, start))

    def classify(self, environ):
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        match = CREDENTIAL.search(authorization)
        if not match:
            # moto's own API (the harness's resets) and anything else unsigned.
            return "unsigned", "moto", environ.get("PATH_INFO", "")
        key, service = match.group(1), match.group(2)
        who = HARNESS_KEYS.get(key, "function")
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target:
            return who, service, target.rsplit(".", 1)[-1]
        # Query protocol (STS, CloudFormation, SNS): the action is a form field of the body.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        action = parse_qs(body.decode("utf-8", "replace")).get("Action", [None])[0]
        if action is None:
            action = parse_qs(environ.get("QUERY_STRING", "")).get("Action", [environ.get("REQUEST_METHOD", "?")])[0]
        return who, service, action


class Timed:
    """The response body; the request ends when the server closes it."""

    def __init__(self, result, meter, record):
        self.result = result
        self.meter = meter
        self.record = record

    def __iter__(self):
        return iter(self.result)

    def close(self):
        if hasattr(self.result, "close"):
            self.result.close()
        end = time.perf_counter()
        with self.meter.lock:
            self.meter.records.append((*self.record, end))
            self.meter.in_flight -= 1
            self.meter.idle.notify_all()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    run_simple(args.host, args.port, Meter(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
