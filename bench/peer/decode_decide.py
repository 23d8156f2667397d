"""The peer's in-process cost per record with AWS faked: the same event bytes our criterion
bench reads, parsed (`json.loads`, as Lambda's Python runtime does before calling the handler)
and handled by `handler.lambda_handler` with boto3 clients that answer at once.

Timed with `timeit` (garbage collection left on, as in a real invocation), one batch per
sample; prints one JSON line: samples, records, and the batch times in seconds.

Usage: python decode_decide.py EVENT.json [--samples N]
"""

import argparse
import json
import statistics
import timeit

import handler


class FakeSts:
    def assume_role(self, RoleArn: str, RoleSessionName: str) -> dict:
        return {
            "Credentials": {
                "AccessKeyId": "ASIAFAKE",
                "SecretAccessKey": "fake",
                "SessionToken": "fake",
            }
        }


class FakeCloudFormation:
    def create_stack(self, **request) -> dict:
        return {"StackId": "arn:aws:cloudformation:us-east-1:000000000000:stack/" + request["StackName"] + "/1"}

    def update_stack(self, **request) -> dict:
        return self.create_stack(**request)

    def delete_stack(self, **request) -> dict:
        return {}


class FakeBoto3:
    """Stands in for the `boto3` module the handler uses: clients that do nothing."""

    @staticmethod
    def client(service: str, **_credentials) -> object:
        return FakeSts() if service == "sts" else FakeCloudFormation()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("event")
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    with open(args.event, "rb") as events:
        data = events.read()
    records = len(json.loads(data)["Records"])
    handler.boto3 = FakeBoto3
    run = lambda: handler.lambda_handler(json.loads(data), None)  # noqa: E731
    run()  # warm-up, as criterion warms up
    times = timeit.Timer(run, setup="gc.enable()").repeat(repeat=args.samples, number=1)
    print(json.dumps({
        "records": records,
        "samples": len(times),
        "median_seconds": statistics.median(times),
        "min_seconds": min(times),
        "mean_seconds": statistics.fmean(times),
        "times": times,
    }))


if __name__ == "__main__":
    main()
