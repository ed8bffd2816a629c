"""The Lambda API's handlers (REST-JSON, SigV4 service `lambda`): thin, over `LambdaService`."""

from __future__ import annotations

from typing import Any

from fleetsim.localcore.api.operations import Call, Operations
from fleetsim.localcore.features.functions.service import LambdaService

operations = Operations()
Lambda = Call[LambdaService]


@operations.lambda_("CreateFunction")
def create_function(call: Lambda, p: dict[str, Any]) -> dict[str, Any]:
    return call.service.create(call.scope, p)


@operations.lambda_("GetFunction")
def get_function(call: Lambda, p: dict[str, Any]) -> dict[str, Any]:
    f = call.service.require(call.scope, p["FunctionName"], p.get("Qualifier"))
    return {"Configuration": call.service.configuration(call.scope, f.name),
            "Code": call.service.code_location(f)}


@operations.lambda_("GetFunctionConfiguration")
def get_function_configuration(call: Lambda, p: dict[str, Any]) -> dict[str, Any]:
    return call.service.configuration(call.scope, p["FunctionName"], p.get("Qualifier"))


@operations.lambda_("ListFunctions")
def list_functions(call: Lambda, p: dict[str, Any]) -> dict[str, Any]:
    return call.service.list_functions(call.scope, p.get("Marker"), p.get("MaxItems"))


@operations.lambda_("UpdateFunctionCode")
def update_function_code(call: Lambda, p: dict[str, Any]) -> dict[str, Any]:
    return call.service.update_code(call.scope, p)


@operations.lambda_("UpdateFunctionConfiguration")
def update_function_configuration(call: Lambda, p: dict[str, Any]) -> dict[str, Any]:
    return call.service.update_configuration(call.scope, p)


@operations.lambda_("DeleteFunction")
def delete_function(call: Lambda, p: dict[str, Any]) -> None:
    call.service.delete(call.scope, p["FunctionName"], p.get("Qualifier"))


@operations.lambda_("AddPermission")
def add_permission(call: Lambda, p: dict[str, Any]) -> dict[str, Any]:
    return call.service.add_permission(call.scope, p)


@operations.lambda_("RemovePermission")
def remove_permission(call: Lambda, p: dict[str, Any]) -> None:
    call.service.remove_permission(call.scope, p["FunctionName"], p["StatementId"],
                                   p.get("Qualifier"))


@operations.lambda_("GetPolicy")
def get_policy(call: Lambda, p: dict[str, Any]) -> dict[str, Any]:
    return call.service.policy(call.scope, p["FunctionName"], p.get("Qualifier"))


@operations.lambda_("Invoke")
async def invoke(call: Lambda, p: dict[str, Any]) -> dict[str, Any]:
    payload = p.get("Payload") or b""
    if isinstance(payload, str):
        payload = payload.encode()
    return await call.service.invoke(call.scope, p["FunctionName"], payload,
                                     p.get("InvocationType") or "RequestResponse",
                                     p.get("LogType"), p.get("Qualifier"))
