"""The `failover` gateway: several gateways in order of preference.

    gateway: {type: failover, gateways: [{type: twilio, ...}, {type: http, ...}]}

The next gateway is tried when one is unavailable (down, slow, rate-limited) or refuses our
configuration (expired credentials: another provider has its own). A recipient problem (an
invalid or unsubscribed number) ends it: another provider would refuse that number too, and the
user must be told.
"""
from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field

from provider.channels.sms_gateways import GatewaySettings, GatewaySpec, SendFailed, Sms, SmsGateway, build_gateway

log = logging.getLogger("twostep.sms")


class FailoverSettings(GatewaySettings):
    type: Literal["failover"]
    gateways: list[GatewaySpec] = Field(min_length=2, description="tried in this order")


class FailoverGateway(SmsGateway):
    type_name = "failover"
    Settings = FailoverSettings
    settings: FailoverSettings

    def __init__(self, settings: GatewaySettings, where: str) -> None:
        super().__init__(settings, where)
        self.gateways = [build_gateway(child, f"{where}.gateways.{index}")
                         for index, child in enumerate(self.settings.gateways)]

    @property
    def label(self) -> str:
        return "failover"

    def send(self, sms: Sms) -> str:
        failures: list[SendFailed] = []
        for gateway in self.gateways:
            try:
                return gateway.send(sms)
            except SendFailed as failure:
                if failure.kind == "recipient":
                    raise
                failures.append(failure)
                log.warning("SMS gateway %s (%s) failed, %s: %s", gateway.where, failure.gateway or gateway.label,
                            failure.kind, failure.detail)
        kind = "unavailable" if any(f.kind == "unavailable" for f in failures) else "configuration"
        raise SendFailed(kind, "; ".join(f"{f.gateway}: {f.kind}" for f in failures), self.label)

    def warnings(self) -> list[str]:
        return [line for gateway in self.gateways for line in gateway.warnings()]
