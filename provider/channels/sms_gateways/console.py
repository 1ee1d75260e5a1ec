"""The `console` gateway: development only. Writes each message, code included, to the server
log instead of sending it, so the demo runs with no SMS provider at all.

It is the one place where a code is ever logged, so it says so loudly when it starts and in
`check-config`. Lines go out at WARNING level, so they show whatever the logging configuration.
"""
from __future__ import annotations

import logging
from typing import Literal

from provider.channels.sms_gateways import GatewaySettings, Sms, SmsGateway
from provider.channels.sms_phone import masked

log = logging.getLogger("twostep.sms.console")


class ConsoleSettings(GatewaySettings):
    type: Literal["console"]


class ConsoleGateway(SmsGateway):
    type_name = "console"
    Settings = ConsoleSettings

    def __init__(self, settings: GatewaySettings, where: str) -> None:
        super().__init__(settings, where)
        log.warning("%s: the console SMS gateway writes verification codes to this log instead of sending"
                    " them; it is for development only", where)

    def send(self, sms: Sms) -> str:
        log.warning("SMS to %s (not sent, console gateway): %s", masked(sms.to, hide="*"), sms.body)
        return self.label

    def warnings(self) -> list[str]:
        return [f"{self.where}: the console gateway writes verification codes to the server log instead of"
                " sending them; for development only"]
