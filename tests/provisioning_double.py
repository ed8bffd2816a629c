"""A stand-in for the provisioning feature's `ProvisioningService` (not in the product), so
bulk registration runs before the template engine is merged: it applies only what the
workshop's templateBody.json needs (a thing named by `Ref`, with attributes, a certificate
from a CSR `Ref`, attached), and raises `AwsError` for a missing parameter as RegisterThing
does. `ThreadCore` runs a real local core in a thread of the test process, with this double
provided when no real provisioning feature is installed."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetsim.localcore.core import LocalCore, LocalCoreConfig
from fleetsim.localcore.errors import AwsError
from fleetsim.localcore.scope import Scope


@dataclass
class Result:
    certificate_pem: str | None
    resource_arns: dict[str, str]


class ProvisioningDouble:
    def __init__(self, services: Any):
        self.services = services

    def provision_from_template(self, scope: Scope, template_body: str,
                                parameters: dict[str, str], *,
                                certificate_pem_out: bool = True) -> Result:
        template = json.loads(template_body)
        declared = template.get("Parameters", {})

        def value(v: Any) -> Any:
            if isinstance(v, dict) and "Ref" in v:
                name = v["Ref"]
                if name in parameters:
                    return parameters[name]
                if "Default" in declared.get(name, {}):
                    return declared[name]["Default"]
                raise AwsError("InvalidRequestException",
                               f"Parameter {name} has no value and no default")
            return v

        registry, certificates = self.services.get("registry"), self.services.get("certificates")
        arns: dict[str, str] = {}
        pem = None
        thing = None
        for name, resource in template["Resources"].items():
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::IoT::Thing":
                thing = value(props["ThingName"])
                attrs = {k: value(v) for k, v in props.get("AttributePayload", {}).items()}
                registry.create_thing(scope, thing, None, attrs)
                arns[name] = scope.arn("thing", thing)
            elif resource["Type"] == "AWS::IoT::Certificate":
                cert = certificates.create_certificate_from_csr(
                    scope, value(props["CertificateSigningRequest"]), True)
                pem = cert.pem
                arns[name] = scope.arn("cert", cert.id)
        if thing and "certificate" in arns:
            registry.attach_thing_principal(scope, thing, arns["certificate"])
        return Result(pem if certificate_pem_out else None, arns)


class ThreadCore:
    """Local core in a thread of this process (the test needs to hand it the double)."""

    def __init__(self, state_dir: Path):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def boot() -> LocalCore:
            core = LocalCore(LocalCoreConfig(state_dir, api_port=0, mqtt_port=0))
            try:
                core.services.get("provisioning")
            except LookupError:
                core.services.provide("provisioning", ProvisioningDouble(core.services))
            await core.start()
            return core

        self.core = asyncio.run_coroutine_threadsafe(boot(), self.loop).result(30)
        assert self.core.endpoints is not None
        self.api_url = self.core.endpoints.api_url

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.core.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
