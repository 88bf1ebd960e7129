"""A CloudFormation custom resource's answer, for the team gateway's functions (Python 3.12 runtime).

CloudFormation waits for a PUT of the result to the request's pre-signed ResponseURL (CloudFormation
user guide, "Custom resource response objects"); a function that fails without answering leaves
the stack waiting for an hour, so every outcome, exceptions included, is answered here, with the
reason CloudFormation shows in the stack's events.
"""

import json
import traceback
import urllib.request
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any]], dict[str, str]]  # the event -> the resource's Data


def answer(event: dict[str, Any], context: Any, handle: Handler) -> None:
    physical_id = event.get("PhysicalResourceId") or event["LogicalResourceId"]
    try:
        data = handle(event)
        body = {"Status": "SUCCESS", "Data": data, "Reason": "done"}
    except Exception as error:
        traceback.print_exc()
        body = {"Status": "FAILED", "Reason": f"{type(error).__name__}: {error}"[:3000]}
    body.update(PhysicalResourceId=physical_id, StackId=event["StackId"], RequestId=event["RequestId"],
                LogicalResourceId=event["LogicalResourceId"], NoEcho=True)
    request = urllib.request.Request(event["ResponseURL"], data=json.dumps(body).encode(), method="PUT",
                                     headers={"content-type": ""})
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
