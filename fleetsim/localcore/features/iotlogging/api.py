"""Get/SetLoggingOptions (v1), Get/SetV2LoggingOptions, Set/List/DeleteV2LoggingLevel."""

from __future__ import annotations

from typing import Any

from fleetsim.localcore.api.operations import Call, Operations
from fleetsim.localcore.api.paging import page_size, slice_page
from fleetsim.localcore.features.iotlogging.service import LoggingService

operations = Operations()
L = Call[LoggingService]


def _present(**members: Any) -> dict[str, Any]:
    return {k: v for k, v in members.items() if v is not None}


@operations.iot("SetLoggingOptions")
def set_logging_options(call: L, p: dict[str, Any]) -> None:
    payload = p["loggingOptionsPayload"]
    call.service.set_v1(call.scope, payload["roleArn"], payload.get("logLevel"))


@operations.iot("GetLoggingOptions")
def get_logging_options(call: L, p: dict[str, Any]) -> dict[str, Any]:
    options = call.service.get_v1(call.scope)
    return _present(roleArn=options.role_arn, logLevel=options.log_level)


@operations.iot("SetV2LoggingOptions")
def set_v2_logging_options(call: L, p: dict[str, Any]) -> None:
    call.service.set_v2(call.scope, p.get("roleArn"), p.get("defaultLogLevel"),
                        p.get("disableAllLogs"))


@operations.iot("GetV2LoggingOptions")
def get_v2_logging_options(call: L, p: dict[str, Any]) -> dict[str, Any]:
    options = call.service.get_v2(call.scope)
    return _present(roleArn=options.role_arn, defaultLogLevel=options.log_level,
                    disableAllLogs=options.disable_all)


@operations.iot("SetV2LoggingLevel")
def set_v2_logging_level(call: L, p: dict[str, Any]) -> None:
    target = p["logTarget"]
    call.service.set_level(call.scope, target["targetType"], target.get("targetName"),
                           p["logLevel"])


@operations.iot("ListV2LoggingLevels")
def list_v2_logging_levels(call: L, p: dict[str, Any]) -> dict[str, Any]:
    found = call.service.list_levels(call.scope, p.get("targetType"))
    items, token = slice_page(found, p.get("nextToken"), page_size(p, default=250))
    return _present(logTargetConfigurations=[
        {"logTarget": {"targetType": t, "targetName": n}, "logLevel": lv}
        for t, n, lv in items], nextToken=token)


@operations.iot("DeleteV2LoggingLevel")
def delete_v2_logging_level(call: L, p: dict[str, Any]) -> None:
    call.service.delete_level(call.scope, p["targetType"], p["targetName"])
