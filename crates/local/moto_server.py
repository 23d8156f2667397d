"""moto server as the local system runs it: `moto_server -H HOST -p PORT`, with one check of
moto's left out once it enforces IAM, DynamoDB's conditional writes made atomic, and stopping
when the process that started it is gone.

Stopping with the parent: a server left behind (its parent killed with `kill -9`, or crashed)
would keep the port, and the next run's readiness check would be answered by it, with the old
run's table still in it. The parent names itself in MOTO_PARENT_PID; without it (started by
hand) nothing changes. On Linux the kernel sends SIGTERM when the parent dies
(prctl PR_SET_PDEATHSIG, strictly: when the parent's thread that started this server ends; the
local system starts it from its main thread); the parent may have died before that was asked, so
it is checked once after; and elsewhere (macOS) a thread looks every second.

moto checks a request's SigV4 signature by signing again what it parsed: a form-encoded (query
protocol) body is encoded afresh by botocore, which writes a space as `+` where the AWS SDK for
Rust writes `%20`. Every CloudFormation, SNS or STS call whose parameters hold a space (a
template body, a message) would fail with SignatureDoesNotMatch, which real AWS never answers to
a correctly signed request. Everything else IAM enforcement does stays: the access key must
belong to a real identity of moto's, and that identity's policies must allow the action.

moto serves each request on its own thread, and a DynamoDB write reads the item, evaluates its
condition and stores with no lock between: of six concurrent `attribute_not_exists` PutItems on
one key, two sometimes succeed (5 rounds in 100, measured). DynamoDB evaluates a condition and
writes atomically, and the control plane's claims and leases rely on it, so item writes are
serialised here. Reads and long polls are not.

Usage: [MOTO_PARENT_PID=PID] python moto_server.py -H 127.0.0.1 -p PORT
"""

import os
import signal
import sys
import threading
import time


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_with_parent() -> None:
    try:
        parent = int(os.environ.get("MOTO_PARENT_PID", ""))
    except ValueError:
        return
    started_under = os.getppid()
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass

    def gone() -> bool:
        # Re-parented (the parent died, even if nobody reaped it yet), or the named parent (above
        # a wrapper that does not exec) no longer runs.
        return os.getppid() != started_under or not _alive(parent)

    if gone():
        sys.exit(f"moto server: the process that started it ({parent}) is gone")

    def watch() -> None:
        while not gone():
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


_stop_with_parent()

from moto.iam import access_control  # noqa: E402  (after the parent check: moto loads slowly)

access_control.IAMRequestBase.check_signature = lambda self: None

import functools  # noqa: E402

from moto.dynamodb.models import DynamoDBBackend  # noqa: E402

_item_writes = threading.RLock()


def _atomic(write):
    @functools.wraps(write)
    def serialised(*args, **kwargs):
        with _item_writes:
            return write(*args, **kwargs)

    return serialised


for _name in (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "batch_write_item",
):
    setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))

from moto.server import main  # noqa: E402  (after the patch, so the server runs with it)

if __name__ == "__main__":
    sys.exit(main())
