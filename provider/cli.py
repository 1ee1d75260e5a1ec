"""The `twostep` command: serve, check-config, users, enrollments, rsa-test, keys."""
from __future__ import annotations

import argparse
import datetime
import getpass
import logging
import sys
from collections.abc import Sequence

from provider.app import config_path, open_directory, open_enrollments, open_user_admin
from provider.audit import audit
from provider.errors import TwostepError
from provider.oidc import keys as signing_keys
from provider.settings import Settings, SettingsError, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        # `twostep` or `twostep users` alone: the help of what was named.
        getattr(args, "group", parser).print_help()
        return 2
    _audit_to_stderr()
    try:
        return args.run(args) or 0
    except SettingsError as error:
        _fail("the settings are not valid:\n  " + "\n  ".join(error.problems))
    except (TwostepError, ValueError) as error:
        _fail(str(getattr(error, "detail", "") or error))
    return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="twostep", description="Two-step verification for Keycloak deployments.")
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--config", help="settings file (default: $TWOSTEP_CONFIG, then config/demo.yaml)")
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser("serve", parents=[parent], help="serve on a loopback port (development)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.set_defaults(run=_serve)

    check = commands.add_parser("check-config", parents=[parent], help="validate the settings and flows")
    check.set_defaults(run=_check_config)

    group = commands.add_parser("users", help="manage the built-in directory")
    group.set_defaults(group=group)
    users = group.add_subparsers(title="users")
    add = users.add_parser("add", parents=[parent], help="add a user")
    add.add_argument("username")
    add.add_argument("--email")
    add.add_argument("--name")
    add.add_argument("--group", action="append", default=[], dest="groups")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(run=_users_add)
    listing = users.add_parser("list", parents=[parent], help="list users")
    listing.set_defaults(run=_users_list)
    passwd = users.add_parser("passwd", parents=[parent], help="set a user's password")
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(run=_users_passwd)
    disable = users.add_parser("disable", parents=[parent], help="disable a user")
    disable.add_argument("username")
    disable.set_defaults(run=_users_disable)

    group = commands.add_parser("enrollments", help="users' second-factor registrations")
    group.set_defaults(group=group)
    enrollments = group.add_subparsers(title="enrollments")
    listing = enrollments.add_parser("list", parents=[parent], help="list a user's registrations")
    listing.add_argument("username")
    listing.set_defaults(run=_enrollments_list)
    reset = enrollments.add_parser("reset", parents=[parent],
                                   help="remove a user's registrations (lost phone): the next login enrols again")
    reset.add_argument("username")
    reset.add_argument("--channel", help="only this channel (default: all)")
    reset.set_defaults(run=_enrollments_reset)

    rsa = commands.add_parser("rsa-test", parents=[parent],
                              help="try the RSA connection with a passcode read from standard input")
    rsa.add_argument("username", help="the name RSA knows the user by")
    rsa.add_argument("--channel", help="the RSA channel to use (default: the only one)")
    rsa.set_defaults(run=_rsa_test)

    group = commands.add_parser("keys", help="manage signing keys")
    group.set_defaults(group=group)
    keys = group.add_subparsers(title="keys")
    rotate = keys.add_parser("rotate", parents=[parent], help="add a new signing key; older keys stay published")
    rotate.set_defaults(run=_keys_rotate)
    reencrypt = keys.add_parser("reencrypt", parents=[parent],
                                help="re-encrypt every stored factor secret with the newest encryption_key")
    reencrypt.set_defaults(run=_keys_reencrypt)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(config_path(args.config))


def _serve(args: argparse.Namespace) -> int:
    from werkzeug.serving import run_simple

    from provider.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(args.config)
    settings = app.extensions["twostep"].settings
    print(f"twostep is serving {settings.issuer} on http://{args.host}:{args.port}", flush=True)
    if settings.demo and settings.demo.relying_party:
        print(f"Demo application: {settings.issuer}/demo/", flush=True)
        for user in settings.demo.users:
            print(f"  sign in as {user.username!r} with password {user.password.get_secret_value()!r}", flush=True)
    # Threaded: the demo relying party calls back into this same server.
    run_simple(args.host, args.port, app, threaded=True, use_reloader=False)
    return 0


def _check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    print(f"OK: {config_path(args.config)} (issuer {settings.issuer})")
    for client in settings.clients:
        kind = "public, PKCE" if client.is_public else "confidential" + (", PKCE" if client.require_pkce else "")
        print(f"  client {client.client_id}: {kind}, flow {client.flow}, {len(client.redirect_uris)} redirect URI(s)")
    for name, flow in sorted(settings.parsed_flows.items()):
        acr = f" (acr {flow.acr})" if flow.acr else ""
        print(f"  flow {name}{acr}: " + " -> ".join(step.type_name for step in flow.steps))
    for name, channel in sorted(settings.parsed_channels.items()):
        print(f"  channel {name}: {channel.type_name}")
    for warning in settings.warnings:
        print(f"warning: {warning}")
    return 0


def _users_add(args: argparse.Namespace) -> int:
    directory = open_user_admin(_settings(args))
    user = directory.add_user(args.username, _new_password(args.password_stdin), email=args.email,
                              name=args.name, groups=tuple(args.groups))
    print(f"added {user.username} ({user.id})")
    return 0


def _users_list(args: argparse.Namespace) -> int:
    for user in open_user_admin(_settings(args)).list_users():
        state = "disabled" if user.disabled else "active"
        groups = ",".join(user.groups) or "-"
        print(f"{user.username}\t{user.id}\t{state}\t{user.email or '-'}\t{groups}")
    return 0


def _users_passwd(args: argparse.Namespace) -> int:
    open_user_admin(_settings(args)).set_password(args.username, _new_password(args.password_stdin))
    print(f"password changed for {args.username}")
    return 0


def _users_disable(args: argparse.Namespace) -> int:
    open_user_admin(_settings(args)).disable(args.username)
    print(f"disabled {args.username}")
    return 0


def _enrollments_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    user = _existing_user(settings, args.username)
    audit("enrollments.listed", user_id=user.id, username=user.username, actor="cli")
    for enrollment in open_enrollments(settings).list(user.id):
        used = _when(enrollment.last_used_at) if enrollment.last_used_at else "never"
        print(f"{enrollment.channel}\t{enrollment.kind}\tregistered {_when(enrollment.created_at)}\tlast used {used}")
    return 0


def _enrollments_reset(args: argparse.Namespace) -> int:
    settings = _settings(args)
    user = _existing_user(settings, args.username)
    removed = open_enrollments(settings).delete(user.id, args.channel)
    audit("factor.reset", user_id=user.id, username=user.username, channel=args.channel, actor="cli",
          outcome="success", removed=removed)
    print(f"removed {removed} registration(s) of {user.username}; their next login enrols again")
    return 0


def _existing_user(settings: Settings, username: str):
    user = open_directory(settings).find(username)
    if user is None:
        raise ValueError(f"no user {username!r}")
    return user


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _keys_rotate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    kid = signing_keys.rotate(settings.resolve(settings.keys.path))
    print(f"new signing key {kid}; restart twostep to sign with it. Older keys stay published.")
    return 0


def _keys_reencrypt(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings.encryption_key is None:
        raise ValueError("no encryption_key in the settings: nothing is encrypted")
    moved = open_enrollments(settings).reencrypt_all()
    audit("keys.reencrypted", actor="cli", outcome="success", records=moved)
    print(f"re-encrypted {moved} registration(s) with the newest encryption key")
    return 0


def _rsa_test(args: argparse.Namespace) -> int:
    """Which of the three outcomes RSA gives; a next-tokencode challenge is answered with a
    second line of standard input."""
    from provider.channels import rsa_transports as rt

    found = {n: c for n, c in _settings(args).parsed_channels.items() if c.type_name == "rsa"}
    name = args.channel or (next(iter(found)) if len(found) == 1 else None)
    if name not in found:
        raise ValueError(f"name the RSA channel with --channel (RSA channels: {', '.join(sorted(found)) or 'none'})")
    transport = found[name].transport
    print(f"asking RSA through {transport.describe()}", flush=True)
    verdict = transport.check_passcode(args.username, _secret_line("Passcode: "))
    if isinstance(verdict, rt.NextTokencode):
        print(f"RSA asks for the next tokencode ({verdict.message or 'no message'})", flush=True)
        tokencode = _secret_line("Next tokencode: ")
        verdict = transport.check_next_tokencode(args.username, tokencode, verdict.attempt) if tokencode else \
            rt.Rejected("no next tokencode given")
    if isinstance(verdict, rt.NewPinRequired):
        transport.cancel(verdict.attempt)
        verdict = rt.Rejected("RSA asks for a new PIN: set it in RSA Self-Service")
    outcome = {rt.Accepted: "success: RSA accepted the passcode",
               rt.Rejected: "the passcode is invalid (RSA answered, so the connection works)",
               rt.ConfigurationProblem: "the RSA configuration is invalid",
               rt.ServerProblem: "there is an issue with the RSA server"}[type(verdict)]
    reason = getattr(verdict, "reason", None)
    print(outcome + (f": {reason}" if reason else ""))
    return 0 if isinstance(verdict, rt.Accepted) else 1


def _secret_line(prompt: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(prompt).strip()
    return sys.stdin.readline().strip()


def _new_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New password: ")
        if getpass.getpass("Repeat it: ") != password:
            raise ValueError("the passwords do not match")
    if not password:
        raise ValueError("the password is empty")
    return password


def _audit_to_stderr() -> None:
    """Administrative actions leave their audit line where the operator (and cron) sees it."""
    logger = logging.getLogger("twostep.audit")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _fail(message: str) -> None:
    print(f"twostep: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
