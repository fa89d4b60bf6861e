"""``boomerang licence``: verify a licence, make keys, issue licences (SPEC §5).

``verify FILE [--public-key PEM]`` shows what a licence grants and exits 0,
or says why it is refused and exits 1. ``keygen`` and ``issue`` let an
operator run their own licences for their own deployments: ``keygen`` writes
an Ed25519 key pair (the private key mode 0600, never over an existing
file), ``issue`` signs a licence with the private key; deployments verify it
with the public key named by ``licence_public_key`` in their config. The
format and the checks are ``boomerang.callback.licence``'s; this module only
reads arguments, files and today's UTC date, and prints.

Exit status as for the other commands: 0 success, 1 refused (verify) or a
file could not be written, 2 a bad command line (missing or unusable input
file, an output that exists already, a bad key or field).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from .callback.licence import (
    Licence,
    LicenceError,
    generate_key_pair,
    issue_licence,
    key_fingerprint,
    load_licence,
    load_private_key,
    load_public_key,
    project_public_key_pem,
    public_pem_of,
)


def add_licence_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="licence_command", metavar="ACTION", required=True)

    verify = actions.add_parser("verify", help="show what a licence grants, or why it is "
                                               "refused (exit 0 or 1)")
    verify.add_argument("file", metavar="FILE", help="the licence file")
    verify.add_argument("--public-key", metavar="PEM",
                        help="verify with this Ed25519 public key (your own, as in the "
                             "config's licence_public_key); default: the project's key")

    keygen = actions.add_parser("keygen", help="create an Ed25519 key pair to issue your "
                                               "own licences with")
    keygen.add_argument("--private-key", metavar="OUT", required=True,
                        help="where to write the private key (mode 0600); keep it offline")
    keygen.add_argument("--public-key", metavar="OUT", required=True,
                        help="where to write the public key (licence_public_key in configs)")

    issue = actions.add_parser("issue", help="write a licence signed with your private key")
    issue.add_argument("--private-key", metavar="KEY", required=True,
                       help="the private key from `boomerang licence keygen`")
    issue.add_argument("--licensee", metavar="NAME", required=True, help="who it is for")
    issue.add_argument("--max-mobiles", metavar="N", type=_count, required=True,
                       help="how many mobiles may get a callback")
    issue.add_argument("--expires", metavar="YYYY-MM-DD", type=_date,
                       help="last valid day (UTC); default: never expires")
    issue.add_argument("--issued", metavar="YYYY-MM-DD", type=_date,
                       help="first valid day (UTC); default: today")
    issue.add_argument("--id", metavar="ID", dest="licence_id",
                       help="licence id; default: L-YYYYMMDD-<random>")
    issue.add_argument("-o", "--output", metavar="FILE", required=True, help="file to write")
    issue.add_argument("--force", action="store_true", help="overwrite an existing file")


def run_licence(args: argparse.Namespace) -> int:
    if args.licence_command == "verify":
        return _verify(Path(args.file), args.public_key, _today())
    if args.licence_command == "keygen":
        return _keygen(Path(args.private_key), Path(args.public_key))
    return _issue(args, _today())


def _today() -> date:
    """Today in UTC, the date the running server checks licences against."""
    return datetime.now(UTC).date()


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _date(text: str) -> date:
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD, e.g. 2027-11-22")


def _error(text: str) -> None:
    print(f"boomerang licence: {text}", file=sys.stderr)


# -- verify ------------------------------------------------------------------------


def _verify(file: Path, public_key: str | None, today: date) -> int:
    if public_key is None:
        key_pem = project_public_key_pem()
        key_name = "the project's key shipped with Boomerang"
    else:
        try:
            key_pem = Path(public_key).read_bytes()
            load_public_key(key_pem)
        except OSError as error:
            _error(f"{public_key}: cannot read the public key ({error.strerror or error})")
            return 2
        except LicenceError as error:
            _error(f"{public_key}: {error.reason}")
            return 2
        key_name = public_key
    key_used = f"{key_name} ({key_fingerprint(key_pem)})"
    try:
        licence = load_licence(file, public_key_pem=key_pem, today=today)
    except LicenceError as error:
        print(f"{file}: REFUSED: {error.reason}", file=sys.stderr)
        print(f"  public key: {key_used}", file=sys.stderr)
        return 1
    print(f"{file}: valid licence {licence.id}")
    for line in _grant_lines(licence, key_used, today):
        print(f"  {line}")
    return 0


def _grant_lines(licence: Licence, key_used: str, today: date) -> list[str]:
    if licence.expires is None:
        expires = "never"
    else:
        days = (licence.expires - today).days
        left = ("expired" if days < 0 else "today is the last" if days == 0
                else f"{days} day{'' if days == 1 else 's'} left")
        expires = f"{licence.expires} (the last valid day, UTC; {left})"
    return [
        f"licensee:   {licence.licensee}",
        f"mobiles:    {licence.max_mobiles} (callback for up to {licence.max_mobiles} "
        f"mobile{'' if licence.max_mobiles == 1 else 's'})",
        f"issued:     {licence.issued}",
        f"expires:    {expires}",
        f"public key: {key_used}",
    ]


# -- keygen ------------------------------------------------------------------------


def _keygen(private_path: Path, public_path: Path) -> int:
    if private_path.resolve() == public_path.resolve():
        _error("--private-key and --public-key name the same file; give two files")
        return 2
    for path in (private_path, public_path):
        if path.exists():
            _error(f"{path}: already exists; not overwritten (a key pair is made once; "
                   "move the old file away if you really mean to replace it)")
            return 2
    private_pem, public_pem = generate_key_pair()
    try:
        _write_new(private_path, private_pem, mode=0o600)
    except OSError as error:
        _error(f"{private_path}: cannot write ({error.strerror or error})")
        return 1
    try:
        _write_new(public_path, public_pem, mode=0o644)
    except OSError as error:
        private_path.unlink(missing_ok=True)
        _error(f"{public_path}: cannot write ({error.strerror or error}); "
               f"{private_path} removed again")
        return 1
    print(f"wrote private key {private_path} (mode 0600): keep it secret and offline; "
          "whoever has it can issue licences for your deployments")
    print(f"wrote public key {public_path} ({key_fingerprint(public_pem)}): set "
          f"licence_public_key: {public_path} in the config of each deployment")
    print(f"next: boomerang licence issue --private-key {private_path} --licensee NAME "
          "--max-mobiles N -o licence.json")
    return 0


def _write_new(path: Path, data: bytes, *, mode: int) -> None:
    """Create ``path`` (never over an existing file) with exactly ``mode``."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(descriptor, mode)  # not widened or narrowed by the umask
        os.write(descriptor, data)
    finally:
        os.close(descriptor)


# -- issue -------------------------------------------------------------------------


def _issue(args: argparse.Namespace, today: date) -> int:
    output = Path(args.output)
    if output.exists() and not args.force:
        _error(f"{output}: already exists; not overwritten (use --force to replace it)")
        return 2
    try:
        private_pem = Path(args.private_key).read_bytes()
        public_pem = public_pem_of(load_private_key(private_pem))
    except OSError as error:
        _error(f"{args.private_key}: cannot read the private key ({error.strerror or error})")
        return 2
    except LicenceError as error:
        _error(f"{args.private_key}: {error.reason}")
        return 2
    issued: date = args.issued or today
    licence_id: str = args.licence_id or f"L-{issued:%Y%m%d}-{secrets.token_hex(4)}"
    try:
        document = issue_licence(private_pem, licence_id=licence_id, licensee=args.licensee,
                                 max_mobiles=args.max_mobiles, issued=issued,
                                 expires=args.expires)
    except LicenceError as error:
        _error(f"cannot issue: {error.reason}")
        return 2
    try:
        if args.force:
            output.write_bytes(document)
        else:
            _write_new(output, document, mode=0o644)
    except OSError as error:
        _error(f"{output}: cannot write ({error.strerror or error})")
        return 1
    licence = load_licence(output, public_key_pem=public_pem, today=issued)  # self-check
    print(f"wrote {output}: licence {licence.id}")
    for line in _grant_lines(licence, f"the pair of {args.private_key} "
                                      f"({key_fingerprint(public_pem)})", today):
        print(f"  {line}")
    if licence.expires is not None and licence.expires < today:
        print(f"note: it expired already ({licence.expires} is before today, {today})")
    elif issued > today:
        print(f"note: it is not valid before {issued}")
    if public_pem.strip() == project_public_key_pem().strip():
        print("it verifies with the project's key shipped with Boomerang")
    else:
        print("deployments verify it with your public key: set licence_public_key in their "
              "config; check it with: boomerang licence verify "
              f"{output} --public-key YOUR_PUBLIC_KEY.pem")
    return 0
