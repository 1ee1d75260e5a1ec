"""Authenticator-app passcodes (provider/channels/totp_codes.py).

RFC 6238 and RFC 4226 test vectors on a frozen clock (every ``now`` is explicit: nothing sleeps),
the window and its edges, replay protection on the memory store and a real Redis, and
independent tools: Debian's ``oathtool`` makes codes that ``verify`` accepts, ``zbarimg``
reads the enrolment QR code back, and pyotp's parser reads the provisioning URI.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pyotp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from provider.channels.totp_codes import (
    ReplayGuard,
    TotpParameters,
    Verification,
    base32,
    code_at,
    grouped,
    matching_step,
    new_secret,
    normalize,
    provisioning_uri,
    qr_data_uri,
    replay_ttl,
    skewed_step,
    step_at,
    verify,
)
from provider.clock import FrozenClock
from provider.storage.state import StateStore, open_state_store
from tests.fixtures.services import service_missing

T = TypeVar("T")

SECRET = b"twostep-test-secret!"  # 20 bytes, the default size
PARAMS = TotpParameters()
STEP = 56_666_667  # the 30 s step that holds 1 700 000 025
NOW = STEP * 30 + 15.0  # the middle of STEP
KEY = "totp:last:agent:totp"
THREADS = 20

# RFC 6238 Appendix B: the seed is "12345678901234567890" repeated to the digest's size
# (the errata's 32 and 64 bytes for SHA256 and SHA512), 8 digits, X = 30, T0 = 0.
SEEDS = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
RFC6238_VECTORS = [
    (59, "SHA1", "94287082"),
    (59, "SHA256", "46119246"),
    (59, "SHA512", "90693936"),
    (1111111109, "SHA1", "07081804"),
    (1111111109, "SHA256", "68084774"),
    (1111111109, "SHA512", "25091201"),
    (1111111111, "SHA1", "14050471"),
    (1111111111, "SHA256", "67062674"),
    (1111111111, "SHA512", "99943326"),
    (1234567890, "SHA1", "89005924"),
    (1234567890, "SHA256", "91819424"),
    (1234567890, "SHA512", "93441116"),
    (2000000000, "SHA1", "69279037"),
    (2000000000, "SHA256", "90698825"),
    (2000000000, "SHA512", "38618901"),
    (20000000000, "SHA1", "65353130"),
    (20000000000, "SHA256", "77737706"),
    (20000000000, "SHA512", "47863826"),
]
# RFC 4226 Appendix D: HOTP of counters 0 to 9, SHA1, 6 digits, the same 20-byte seed.
RFC4226_VECTORS = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]


@pytest.fixture
def guard() -> ReplayGuard:
    return ReplayGuard(open_state_store("memory://", clock=FrozenClock(NOW)))


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> StateStore:
    if request.param == "memory":
        return open_state_store("memory://", clock=FrozenClock(NOW))
    return request.getfixturevalue("redis_store_factory")()


def code(offset: int = 0, params: TotpParameters = PARAMS) -> str:
    """The passcode of the step ``offset`` steps from the one holding NOW."""
    return code_at(SECRET, params, step_at(params, NOW) + offset)


def run_together(action: Callable[[int], T], threads: int = THREADS) -> list[T]:
    """Call ``action(i)`` on ``threads`` threads released at the same moment."""
    start = threading.Barrier(threads, timeout=10)

    def run(index: int) -> T:
        start.wait()
        return action(index)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(run, range(threads)))


# -- test vectors -----------------------------------------------------------------------------


@pytest.mark.parametrize(("now", "algorithm", "expected"), RFC6238_VECTORS)
def test_rfc6238_appendix_b(now: int, algorithm: str, expected: str, guard: ReplayGuard) -> None:
    params = TotpParameters(digits=8, algorithm=algorithm)  # type: ignore[arg-type]
    secret = SEEDS[algorithm]
    assert code_at(secret, params, step_at(params, now)) == expected
    assert verify(secret, params, expected, now, guard, KEY) == Verification("ok")


@pytest.mark.parametrize(("counter", "expected"), list(enumerate(RFC4226_VECTORS)))
def test_rfc4226_appendix_d(counter: int, expected: str) -> None:
    assert code_at(SEEDS["SHA1"], PARAMS, counter) == expected


@given(
    secret=st.binary(min_size=16, max_size=64),
    now=st.integers(min_value=0, max_value=253_402_300_799),  # pyotp stops at the year 10000
    algorithm=st.sampled_from(["SHA1", "SHA256", "SHA512"]),
    digits=st.sampled_from([6, 8]),
    period=st.sampled_from([30, 60]),
)
def test_codes_agree_with_pyotp(secret: bytes, now: int, algorithm: str, digits: int, period: int) -> None:
    params = TotpParameters(digits=digits, period=period, algorithm=algorithm)  # type: ignore[arg-type]
    theirs = pyotp.TOTP(base32(secret), digits=digits, digest=getattr(hashlib, algorithm.lower()), interval=period)
    assert code_at(secret, params, step_at(params, now)) == theirs.at(now)


# -- parameters and enrolment -----------------------------------------------------------------


@pytest.mark.parametrize(
    "wrong",
    [
        {"algorithm": "MD5"},
        {"algorithm": "sha1"},
        {"digits": 7},
        {"digits": 10},
        {"period": 0},
        {"valid_window": -1},
        {"secret_bytes": 10},
    ],
)
def test_unusable_parameters_are_refused(wrong: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(wrong))):
        TotpParameters(**wrong)  # type: ignore[arg-type]


def test_new_secrets_are_random_and_of_the_configured_size() -> None:
    assert len(new_secret(PARAMS)) == 20
    assert len(new_secret(TotpParameters(secret_bytes=32))) == 32
    assert new_secret(PARAMS) != new_secret(PARAMS)


def test_base32_has_no_padding_and_groups_of_four_for_typing() -> None:
    assert base32(SEEDS["SHA1"]) == "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    assert base32(bytes(16)) == "A" * 26  # RFC 4648 would pad it with six "="
    assert grouped("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ") == "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"
    assert grouped("A" * 26) == "AAAA AAAA AAAA AAAA AAAA AAAA AA"


def test_provisioning_uri_leaves_defaults_out() -> None:
    uri = provisioning_uri(SEEDS["SHA1"], PARAMS, "Example", "agent")
    assert uri == "otpauth://totp/Example:agent?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example"


def test_provisioning_uri_names_parameters_that_are_not_defaults() -> None:
    params = TotpParameters(digits=8, period=60, algorithm="SHA256")
    assert provisioning_uri(SEEDS["SHA1"], params, "Example", "agent") == (
        "otpauth://totp/Example:agent?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example"
        "&algorithm=SHA256&digits=8&period=60"
    )


def test_provisioning_uri_percent_encodes_label_and_issuer() -> None:
    uri = provisioning_uri(SEEDS["SHA1"], PARAMS, "Example CX & Co/EU", "zoë@example.com")
    assert uri == (
        "otpauth://totp/Example%20CX%20%26%20Co%2FEU:zo%C3%AB%40example.com"
        "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example%20CX%20%26%20Co%2FEU"
    )


@pytest.mark.parametrize(("issuer", "account"), [("Example: CX", "agent"), ("Example", "domain:agent")])
def test_provisioning_uri_refuses_a_colon_in_issuer_or_account(issuer: str, account: str) -> None:
    with pytest.raises(ValueError, match="colon"):
        provisioning_uri(SECRET, PARAMS, issuer, account)


def test_pyotp_reads_the_provisioning_uri_back() -> None:
    params = TotpParameters(digits=8, period=60, algorithm="SHA512")
    parsed = pyotp.parse_uri(provisioning_uri(SECRET, params, "Example CX", "zoë@example.com"))
    assert (parsed.issuer, parsed.name, parsed.digits, parsed.interval) == ("Example CX", "zoë@example.com", 8, 60)
    assert parsed.at(NOW) == code(params=params)


def test_qr_data_uri_is_an_inline_png() -> None:
    uri = qr_data_uri("otpauth://totp/Example:agent?secret=AAAA&issuer=Example")
    prefix, _, payload = uri.partition(",")
    assert prefix == "data:image/png;base64"
    assert base64.b64decode(payload, validate=True).startswith(b"\x89PNG\r\n\x1a\n")


# -- normalizing what the user typed ----------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("123456", "123456"),
        ("012345", "012345"),
        ("  123456 ", "123456"),
        ("\t123456\r\n", "123456"),
        ("123 456", "123456"),
        ("123   456", "123456"),
        (" 123 456 ", "123456"),
        ("12 34 56", "123456"),
        ("", None),
        ("   ", None),
        ("12345", None),
        ("1234567", None),
        ("12345678", None),
        ("123 45", None),
        ("12345a", None),
        ("123-456", None),
        ("123.456", None),
        ("123_456", None),
        ("123\t456", None),
        ("123\n456", None),
        ("+123456", None),
        ("-12345", None),
        ("１２３４５６", None),  # fullwidth digits
        ("١٢٣٤٥٦", None),  # Arabic-Indic digits
        ("123456\x00", None),
    ],
)
def test_normalize_six_digits(typed: str, expected: str | None) -> None:
    assert normalize(typed, PARAMS) == expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("12345678", "12345678"), ("1234 5678", "12345678"), (" 12345678\n", "12345678"), ("123456", None)],
)
def test_normalize_eight_digits(typed: str, expected: str | None) -> None:
    assert normalize(typed, TotpParameters(digits=8)) == expected


@given(digits=st.text("0123456789", min_size=6, max_size=6), gaps=st.lists(st.integers(0, 3), min_size=5, max_size=5))
def test_any_spacing_between_digits_is_accepted(digits: str, gaps: list[int]) -> None:
    typed = digits[0] + "".join(" " * gap + digit for gap, digit in zip(gaps, digits[1:], strict=True))
    assert normalize(f" {typed} ", PARAMS) == digits


# -- the window -------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_codes_within_the_window_are_accepted(offset: int, guard: ReplayGuard) -> None:
    assert matching_step(SECRET, PARAMS, code(offset), NOW) == STEP + offset
    assert verify(SECRET, PARAMS, code(offset), NOW, guard, KEY) == Verification("ok")


@pytest.mark.parametrize("offset", [-2, 2, -5, 6, -10, 10])
def test_codes_outside_the_window_are_wrong_and_tell_the_skew(offset: int, guard: ReplayGuard) -> None:
    assert matching_step(SECRET, PARAMS, code(offset), NOW) is None
    assert verify(SECRET, PARAMS, code(offset), NOW, guard, KEY) == Verification("wrong", skew=offset)


@pytest.mark.parametrize("offset", [-11, 11, 1000])
def test_codes_beyond_the_skew_reach_are_just_wrong(offset: int, guard: ReplayGuard) -> None:
    assert verify(SECRET, PARAMS, code(offset), NOW, guard, KEY) == Verification("wrong")


def test_a_code_is_valid_from_the_start_of_the_step_before_to_the_end_of_the_step_after() -> None:
    passcode = code_at(SECRET, PARAMS, STEP)
    first, last = (STEP - 1) * 30.0, (STEP + 2) * 30.0 - 0.001
    assert matching_step(SECRET, PARAMS, passcode, first) == STEP
    assert matching_step(SECRET, PARAMS, passcode, last) == STEP
    assert matching_step(SECRET, PARAMS, passcode, first - 0.001) is None
    assert matching_step(SECRET, PARAMS, passcode, last + 0.001) is None


def test_a_zero_window_accepts_only_the_current_step(guard: ReplayGuard) -> None:
    strict = TotpParameters(valid_window=0)
    assert verify(SECRET, strict, code(0, strict), NOW, guard, KEY) == Verification("ok")
    assert verify(SECRET, strict, code(1, strict), NOW, guard, KEY) == Verification("wrong", skew=1)
    assert verify(SECRET, strict, code(-1, strict), NOW, guard, KEY) == Verification("wrong", skew=-1)


def test_the_skew_hint_starts_past_a_wider_window() -> None:
    wide = TotpParameters(valid_window=2)
    assert matching_step(SECRET, wide, code(-2, wide), NOW) == STEP - 2
    assert skewed_step(SECRET, wide, code(-2, wide), NOW) is None
    assert skewed_step(SECRET, wide, code(3, wide), NOW) == 3
    assert skewed_step(SECRET, wide, code(4, wide), NOW, reach=3) is None


def test_no_step_before_the_epoch_is_tried() -> None:
    assert matching_step(SECRET, PARAMS, code_at(SECRET, PARAMS, 0), 1.0) == 0
    assert skewed_step(SECRET, PARAMS, code_at(SECRET, PARAMS, 5), 1.0) == 5


def test_eight_digit_codes(guard: ReplayGuard) -> None:
    params = TotpParameters(digits=8)
    passcode = code(0, params)
    assert len(passcode) == 8
    assert verify(SECRET, params, f"{passcode[:4]} {passcode[4:]}", NOW, guard, KEY) == Verification("ok")
    assert verify(SECRET, params, passcode[2:], NOW, guard, KEY) == Verification("malformed")


def test_every_candidate_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[bytes] = []
    compare_digest = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(a)
        return compare_digest(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert matching_step(SECRET, PARAMS, code(0), NOW) == STEP  # the first candidate matches...
    assert sorted(compared) == sorted(code(offset).encode() for offset in (-1, 0, 1))  # ...all are compared
    compared.clear()
    assert skewed_step(SECRET, PARAMS, code(2), NOW) == 2
    assert len(compared) == 18  # steps 2 to 10 away, either side


# -- malformed codes and replays --------------------------------------------------------------


@pytest.mark.parametrize("typed", ["", "12345", "abcdef", "123-456", "1234567", "１２３４５６"])
def test_malformed_codes_are_refused_without_touching_the_store(typed: str, store: StateStore) -> None:
    assert verify(SECRET, PARAMS, typed, NOW, ReplayGuard(store), KEY) == Verification("malformed")
    assert store.get(KEY) is None


def test_a_wrong_code_does_not_use_up_the_step(guard: ReplayGuard) -> None:
    wrong = f"{(int(code(0)) + 1) % 10**6:06d}"
    assert verify(SECRET, PARAMS, wrong, NOW, guard, KEY).reason == "wrong"
    assert verify(SECRET, PARAMS, code(0), NOW, guard, KEY) == Verification("ok")


def test_the_same_code_twice_is_a_replay(store: StateStore) -> None:
    guard = ReplayGuard(store)
    assert verify(SECRET, PARAMS, code(0), NOW, guard, KEY) == Verification("ok")
    assert verify(SECRET, PARAMS, code(0), NOW + 1, guard, KEY) == Verification("replayed")
    assert verify(SECRET, PARAMS, code(0), NOW, ReplayGuard(store), KEY) == Verification("replayed")  # another instance


def test_an_older_code_after_a_newer_one_is_a_replay(guard: ReplayGuard) -> None:
    assert verify(SECRET, PARAMS, code(1), NOW, guard, KEY) == Verification("ok")
    assert verify(SECRET, PARAMS, code(0), NOW, guard, KEY) == Verification("replayed")
    assert verify(SECRET, PARAMS, code(-1), NOW, guard, KEY) == Verification("replayed")


def test_newer_codes_are_accepted_in_turn(guard: ReplayGuard) -> None:
    for offset in (-1, 0, 1):
        assert verify(SECRET, PARAMS, code(offset), NOW, guard, KEY) == Verification("ok")


def test_each_key_has_its_own_last_step(guard: ReplayGuard) -> None:
    assert verify(SECRET, PARAMS, code(0), NOW, guard, KEY) == Verification("ok")
    assert verify(SECRET, PARAMS, code(0), NOW, guard, "totp:last:other:totp") == Verification("ok")


def test_the_last_step_is_remembered_while_its_code_can_still_match() -> None:
    """Worst case: the code of the step after now, accepted at the first instant of now's step."""
    clock = FrozenClock(STEP * 30.0)
    guard = ReplayGuard(open_state_store("memory://", clock=clock))
    passcode = code_at(SECRET, PARAMS, STEP + 1)
    assert verify(SECRET, PARAMS, passcode, clock.now(), guard, KEY) == Verification("ok")
    for _ in range(int(replay_ttl(PARAMS)) + 30):
        clock.advance(1)
        outcome = verify(SECRET, PARAMS, passcode, clock.now(), guard, KEY)
        assert outcome.reason in ("replayed", "wrong"), f"accepted again {clock.now() - STEP * 30} s later"


# -- ReplayGuard on memory and Redis ----------------------------------------------------------


def test_replay_guard_accepts_only_later_steps(store: StateStore) -> None:
    guard = ReplayGuard(store)
    assert guard.accept(KEY, STEP, 120)
    assert not guard.accept(KEY, STEP, 120)
    assert not guard.accept(KEY, STEP - 1, 120)
    assert guard.accept(KEY, STEP + 1, 120)
    assert ReplayGuard(store).accept("totp:last:other:totp", STEP, 120)


def test_of_concurrent_submissions_of_one_step_exactly_one_is_accepted(store: StateStore) -> None:
    results = run_together(lambda _: ReplayGuard(store).accept(KEY, STEP, 120))
    assert results.count(True) == 1


def test_of_concurrent_submissions_of_one_code_exactly_one_verifies(store: StateStore) -> None:
    results = run_together(lambda _: verify(SECRET, PARAMS, code(0), NOW, ReplayGuard(store), KEY).reason)
    assert sorted(results) == ["ok"] + ["replayed"] * (THREADS - 1)


# -- independent tools: oathtool and zbarimg (Debian packages oathtool and zbar-tools) -------


def installed(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        service_missing(binary, f"not on PATH; install the Debian package {package}")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def oathtool() -> str:
    return installed("oathtool", "oathtool")


@pytest.fixture(scope="session")
def zbarimg() -> str:
    return installed("zbarimg", "zbar-tools")


def oathtool_code(oathtool: str, secret: bytes, params: TotpParameters, at: float) -> str:
    command = [
        oathtool, f"--totp={params.algorithm.lower()}", f"--digits={params.digits}",
        f"--time-step-size={params.period}s", f"--now=@{int(at)}", "--base32", base32(secret),
    ]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=10).stdout.strip()


@pytest.mark.parametrize(
    "params",
    [
        TotpParameters(),
        TotpParameters(digits=8),
        TotpParameters(algorithm="SHA256", digits=8),
        TotpParameters(algorithm="SHA512", digits=8, period=60),
        TotpParameters(algorithm="SHA256", secret_bytes=32),
        TotpParameters(secret_bytes=16),  # base32 of 26 characters: unpadded
    ],
    ids=lambda p: f"{p.algorithm}-{p.digits}d-{p.period}s-{p.secret_bytes}B",
)
def test_oathtool_codes_verify(oathtool: str, params: TotpParameters, guard: ReplayGuard) -> None:
    secret = SECRET.ljust(params.secret_bytes, b"#")[: params.secret_bytes]
    now = step_at(params, NOW) * params.period + 7.0
    behind = oathtool_code(oathtool, secret, params, now - params.period)  # the phone's clock one step late
    assert verify(secret, params, behind, now, guard, KEY) == Verification("ok")
    assert verify(secret, params, oathtool_code(oathtool, secret, params, now), now, guard, KEY) == Verification("ok")
    late = oathtool_code(oathtool, secret, params, now - 3 * params.period)
    assert verify(secret, params, late, now, guard, KEY) == Verification("wrong", skew=-3)


@pytest.mark.parametrize(
    ("params", "issuer", "account"),
    [
        (TotpParameters(), "Example", "agent"),
        (TotpParameters(algorithm="SHA512", digits=8, period=60), "Example CX & Co/EU", "zoë@example.com"),
    ],
)
def test_zbarimg_reads_the_enrolment_qr_code_back(
    zbarimg: str, tmp_path: Path, params: TotpParameters, issuer: str, account: str
) -> None:
    uri = provisioning_uri(new_secret(params), params, issuer, account)
    image = tmp_path / "enrol.png"
    image.write_bytes(base64.b64decode(qr_data_uri(uri).partition(",")[2]))
    read = subprocess.run([zbarimg, "--quiet", "--raw", str(image)], capture_output=True, text=True, timeout=10)
    assert read.returncode == 0, read.stderr
    assert read.stdout == uri + "\n"
