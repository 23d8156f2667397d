"""The peer: a stream handler as it is usually written for this design, completed so it runs.

The usual form is kept as it is written (its names, its loop, its client per use); only the
parts it leaves out are filled in, and only the fixes listed in README.md are made, each
marked `FIX` below. Nothing here is made slower than that form; nothing is made faster either.
"""

import os
import re
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer

# Replace these values with your own
ROLE_NAME = os.environ.get("TENANT_ROLE_NAME", "TenantControlRole")
STACK_NAME_PREFIX = "tenant-"
TEMPLATE_PATH = os.environ.get(
    "TENANT_TEMPLATE",
    os.path.join(os.path.dirname(__file__), "..", "..", "templates", "tenant-template.yaml"),
)
with open(TEMPLATE_PATH, encoding="utf-8") as template_file:
    TEMPLATE_BODY = template_file.read()


def deserialise_dynamodb(item: dict[str, Any]) -> dict[str, Any]:
    """Deserialises raw DynamoDB data into a Python dictionary."""
    return TypeDeserializer().deserialize({"M": item})


def parameter_name(key: str) -> str:
    """FIX (keys mapped to parameter names): `player_count` -> `PlayerCount`."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_\-]", key) if part)


def parameter_value(value: Any) -> str:
    """FIX (values rendered as strings): N as written, BOOL as true/false, lists joined."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, set)):
        return ",".join(str(v) for v in value)
    return str(value)


def lambda_handler(event: dict[str, Any], context: Any) -> None:
    """
    Takes the CRUD operations from the DynamoDB Stream and applies changes to the
    remote AWS account.
    """

    # Perform an sts AssumeRole to get temporary credentials for the remote account
    sts = boto3.client("sts")
    # FIX (AssumeRole once per account in a batch): each row names its own account.
    cloudformation_clients: dict[str, Any] = {}

    def cloudformation_for(account_id: str) -> Any:
        if account_id not in cloudformation_clients:
            assumed_role_object = sts.assume_role(
                RoleArn=f"arn:aws:iam::{account_id}:role/{ROLE_NAME}",
                RoleSessionName="tenant-control-plane",
            )
            remote_credentials = {
                "AccessKeyId": assumed_role_object["Credentials"]["AccessKeyId"],
                "SecretAccessKey": assumed_role_object["Credentials"]["SecretAccessKey"],
                "SessionToken": assumed_role_object["Credentials"]["SessionToken"],
            }
            cloudformation_clients[account_id] = boto3.client(
                "cloudformation",
                aws_access_key_id=remote_credentials["AccessKeyId"],
                aws_secret_access_key=remote_credentials["SecretAccessKey"],
                aws_session_token=remote_credentials["SessionToken"],
            )
        return cloudformation_clients[account_id]

    # Loop through the DynamoDB Stream records
    for record in event.get("Records", []):
        object_key = "NewImage"
        # Valid events are: INSERT, MODIFY, REMOVE
        if record["eventName"] == "REMOVE":
            object_key = "OldImage"

        row = deserialise_dynamodb(record["dynamodb"][object_key])
        cloudformation = cloudformation_for(row["account_id"])
        stack_name = STACK_NAME_PREFIX + row["tenant_id"]

        if record["eventName"] in ("INSERT", "MODIFY"):
            stack_params = [
                # FIX (`config`, not `configuration`; names and string values as above)
                {"ParameterKey": parameter_name(k), "ParameterValue": parameter_value(v)}
                for k, v in row["config"].items()
            ]
            # The template's TenantId has no default: the row's id fills it, as the stack name.
            stack_params.append({"ParameterKey": "TenantId", "ParameterValue": row["tenant_id"]})
            if record["eventName"] == "INSERT":
                cloudformation.create_stack(
                    StackName=stack_name, TemplateBody=TEMPLATE_BODY, Parameters=stack_params
                )
            else:
                # FIX (MODIFY -> UpdateStack)
                cloudformation.update_stack(
                    StackName=stack_name, TemplateBody=TEMPLATE_BODY, Parameters=stack_params
                )
        # FIX (REMOVE, where the usual form tests "DELETE", which DynamoDB never sends)
        elif record["eventName"] == "REMOVE":
            cloudformation.delete_stack(StackName=stack_name)
