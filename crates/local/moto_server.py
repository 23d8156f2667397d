"""moto server as the local system runs it: `moto_server -H HOST -p PORT`, with one check of
moto's left out once it enforces IAM.

moto checks a request's SigV4 signature by signing again what it parsed: a form-encoded (query
protocol) body is encoded afresh by botocore, which writes a space as `+` where the AWS SDK for
Rust writes `%20`. Every CloudFormation, SNS or STS call whose parameters hold a space (a
template body, a message) would fail with SignatureDoesNotMatch, which real AWS never answers to
a correctly signed request. Everything else IAM enforcement does stays: the access key must
belong to a real identity of moto's, and that identity's policies must allow the action.

Usage: python moto_server.py -H 127.0.0.1 -p PORT
"""

import sys

from moto.iam import access_control

access_control.IAMRequestBase.check_signature = lambda self: None

from moto.server import main  # noqa: E402  (after the patch, so the server runs with it)

if __name__ == "__main__":
    sys.exit(main())
