"""Run every flow and scan all log output for every secret it used: passwords, codes, factor
secrets, tokens, client secrets (issue: abuse resistance and audit)."""
from __future__ import annotations

import base64
import logging

from tests.fixtures.app import PASSWORD, SECRET
from tests.test_totp_login import code, enrol, totp_settings


def test_no_secret_reaches_the_logs(serve, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    served = serve(totp_settings(tmp_path, "memory://"))
    secrets_used = {PASSWORD, SECRET, "wrong-password-123"}
    rp = served.rp()
    page = rp.authorize()
    page = rp.submit(page, username="agent", password="wrong-password-123")
    secret, callback = enrol(served, rp)
    secrets_used |= {base64.b32encode(secret).decode().rstrip("="), secret.hex(), callback.params["code"]}
    tokens = rp.redeem(callback.params["code"]).json()
    secrets_used |= {tokens["access_token"], tokens["refresh_token"], tokens["id_token"]}
    refreshed = rp.refresh(tokens["refresh_token"]).json()
    secrets_used |= {refreshed["access_token"], refreshed["refresh_token"]}
    rp.redeem(callback.params["code"])  # reuse: audited, without the code
    served.clock.advance(30)
    other = served.rp()
    challenge = other.submit(other.authorize(), username="agent", password=PASSWORD)
    wrong = f"{(int(code(served, secret)) + 1) % 1_000_000:06d}"
    other.submit(challenge, otp=wrong)
    right = code(served, secret)
    other.submit(challenge, otp=right)
    secrets_used |= {wrong, right}
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "login.succeeded" in logged and "token.reuse_detected" in logged and "factor.enrolled" in logged
    for secret_value in secrets_used:
        assert secret_value not in logged, f"a secret reached the logs: {secret_value[:4]}..."
