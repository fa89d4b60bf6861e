"""The licence (SPEC §2 last rule, §5 ``boomerang licence``): signed files are
granted, tampered / foreign / expired / malformed ones are refused with their
reason, DEMO mode allows one mobile, and the CLI makes keys, issues and
verifies licences. Every key here is generated in the test, never the
project's private key."""

from __future__ import annotations

import json
import stat
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from boomerang.callback.licence import (
    DEMO_LICENCE,
    Licence,
    LicenceError,
    RefusedMobile,
    describe,
    entitlement,
    generate_key_pair,
    issue_licence,
    key_fingerprint,
    load_for_config,
    load_licence,
    load_public_key,
    project_public_key_pem,
)
from boomerang.cli import main
from boomerang.config import ExtensionSettings, load_config

ISSUED = date(2026, 11, 22)
EXPIRES = date(2027, 11, 22)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return generate_key_pair()


@pytest.fixture(scope="module")
def other_keys() -> tuple[bytes, bytes]:
    return generate_key_pair()


def write_licence(path: Path, private_pem: bytes, *, max_mobiles: int = 2,
                  issued: date = ISSUED, expires: date | None = EXPIRES,
                  extra: dict[str, object] | None = None) -> Path:
    path.write_bytes(issue_licence(private_pem, licence_id="L-123", licensee="ACME",
                                   max_mobiles=max_mobiles, issued=issued, expires=expires,
                                   extra=extra))
    return path


def edit(path: Path, change: dict[str, object]) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    document["licence"].update(change)
    path.write_text(json.dumps(document), encoding="utf-8")


def refusal(path: Path, public_pem: bytes | None, today: date = ISSUED) -> str:
    with pytest.raises(LicenceError) as caught:
        load_licence(path, public_key_pem=public_pem, today=today)
    assert caught.value.path == path
    assert str(caught.value).startswith(f"{path}: ")
    return caught.value.reason


def extension(number: str, *mobiles: str, callback: bool = True) -> ExtensionSettings:
    return ExtensionSettings(number=number, mobiles=list(mobiles), callback=callback)


# -- load_licence ------------------------------------------------------------------


def test_a_signed_licence_for_two_mobiles_is_granted(tmp_path: Path,
                                                     keys: tuple[bytes, bytes]) -> None:
    path = write_licence(tmp_path / "licence.json", keys[0])
    licence = load_licence(path, public_key_pem=keys[1], today=date(2027, 3, 1))
    assert licence == Licence(id="L-123", licensee="ACME", max_mobiles=2, issued=ISSUED,
                              expires=EXPIRES, demo=False)


def test_the_signature_covers_content_not_layout(tmp_path: Path,
                                                 keys: tuple[bytes, bytes]) -> None:
    path = write_licence(tmp_path / "licence.json", keys[0], expires=None)
    document = json.loads(path.read_text(encoding="utf-8"))
    reordered = {"signature": document["signature"],
                 "licence": dict(reversed(document["licence"].items()))}
    path.write_text(json.dumps(reordered, separators=(",", ":")), encoding="utf-8")
    licence = load_licence(path, public_key_pem=keys[1], today=date(2099, 1, 1))
    assert licence.max_mobiles == 2 and licence.expires is None


def test_more_mobiles_written_after_signing_is_refused(tmp_path: Path,
                                                       keys: tuple[bytes, bytes]) -> None:
    path = write_licence(tmp_path / "licence.json", keys[0])
    edit(path, {"max_mobiles": 200})
    reason = refusal(path, keys[1])
    assert reason.startswith("bad signature: the licence was changed after it was signed")


def test_unknown_fields_are_signed_but_ignored(tmp_path: Path,
                                               keys: tuple[bytes, bytes]) -> None:
    path = write_licence(tmp_path / "licence.json", keys[0], extra={"features": ["web"]})
    licence = load_licence(path, public_key_pem=keys[1], today=ISSUED)
    assert licence.max_mobiles == 2
    edit(path, {"features": ["web", "cluster"]})
    assert refusal(path, keys[1]).startswith("bad signature")


def test_a_licence_signed_with_another_key_is_refused(
        tmp_path: Path, keys: tuple[bytes, bytes], other_keys: tuple[bytes, bytes]) -> None:
    path = write_licence(tmp_path / "licence.json", other_keys[0])
    reason = refusal(path, keys[1])
    assert "signed with another key" in reason
    assert key_fingerprint(keys[1]) in reason


def test_by_default_the_shipped_project_key_verifies(tmp_path: Path,
                                                     keys: tuple[bytes, bytes]) -> None:
    path = write_licence(tmp_path / "licence.json", keys[0])
    reason = refusal(path, None)  # signed with a test key, checked with the project's
    assert "bad signature" in reason
    assert key_fingerprint(project_public_key_pem()) in reason


def test_the_shipped_key_is_an_ed25519_public_key_and_no_private_key_is_shipped() -> None:
    assert isinstance(load_public_key(project_public_key_pem()), Ed25519PublicKey)
    for folder in (REPO / "boomerang", REPO / "docs"):
        for file in folder.rglob("*"):
            if file.is_file() and file.suffix in {".py", ".pem", ".md", ".txt", ".json"}:
                assert b"PRIVATE KEY-----" not in file.read_bytes(), file


def test_the_expires_day_is_the_last_valid_one(tmp_path: Path,
                                               keys: tuple[bytes, bytes]) -> None:
    path = write_licence(tmp_path / "licence.json", keys[0])
    assert load_licence(path, public_key_pem=keys[1], today=EXPIRES).expires == EXPIRES
    reason = refusal(path, keys[1], today=date(2027, 11, 23))
    assert reason.startswith("expired: it was valid until 2027-11-22 (today is 2027-11-23")


def test_a_licence_before_its_issued_day_is_refused(tmp_path: Path,
                                                    keys: tuple[bytes, bytes]) -> None:
    path = write_licence(tmp_path / "licence.json", keys[0])
    reason = refusal(path, keys[1], today=date(2026, 11, 21))
    assert reason.startswith("not valid yet: issued for 2026-11-22")


def test_a_missing_file_is_refused(tmp_path: Path, keys: tuple[bytes, bytes]) -> None:
    assert refusal(tmp_path / "nothing.json", keys[1]).startswith("licence file not found")


@pytest.mark.parametrize(("text", "reason"), [
    ('{"licence": {"id": "L-1",', "not JSON (line 1 column"),
    ("\xff\xfe", "not JSON: not UTF-8"),
    ("[1, 2]", "not a licence: the JSON is not an object"),
    ('{"signature": "AAAA"}', 'missing field "licence"'),
    ('{"licence": {}}', 'missing field "signature"'),
    ('{"licence": {"id": "L-1", "id": "L-2"}, "signature": ""}', "key 'id' appears twice"),
])
def test_malformed_files_are_refused_with_the_reason(
        tmp_path: Path, keys: tuple[bytes, bytes], text: str, reason: str) -> None:
    path = tmp_path / "licence.json"
    path.write_bytes(text.encode("latin-1"))
    assert reason in refusal(path, keys[1])


def test_missing_fields_are_named(tmp_path: Path, keys: tuple[bytes, bytes]) -> None:
    path = write_licence(tmp_path / "licence.json", keys[0])
    document = json.loads(path.read_text(encoding="utf-8"))
    del document["licence"]["max_mobiles"], document["licence"]["issued"]
    path.write_text(json.dumps(document), encoding="utf-8")
    assert refusal(path, keys[1]).startswith('missing fields max_mobiles, issued in "licence"')


@pytest.mark.parametrize(("change", "reason"), [
    ({"max_mobiles": "25"}, "field max_mobiles is '25'"),
    ({"max_mobiles": 0}, "field max_mobiles is 0"),
    ({"max_mobiles": True}, "field max_mobiles is True"),
    ({"max_mobiles": 2.5}, "field max_mobiles is 2.5"),
    ({"licensee": ""}, "field licensee is ''"),
    ({"issued": "22.11.2026"}, "field issued is '22.11.2026'; it must be a date"),
    ({"expires": "2027-02-30"}, "field expires is '2027-02-30'"),
    ({"expires": "2026-01-01"}, "field expires (2026-01-01) is before issued"),
])
def test_malformed_fields_are_refused_with_the_reason(
        tmp_path: Path, keys: tuple[bytes, bytes], change: dict[str, object],
        reason: str) -> None:
    path = write_licence(tmp_path / "licence.json", keys[0])
    edit(path, change)
    assert refusal(path, keys[1]).startswith(reason)


@pytest.mark.parametrize("signature", ["not base64!", "AAAA", 12])
def test_a_damaged_signature_is_refused(tmp_path: Path, keys: tuple[bytes, bytes],
                                        signature: object) -> None:
    path = write_licence(tmp_path / "licence.json", keys[0])
    document = json.loads(path.read_text(encoding="utf-8"))
    document["signature"] = signature
    path.write_text(json.dumps(document), encoding="utf-8")
    reason = refusal(path, keys[1])
    assert reason.startswith("bad signature: not 64 bytes" if isinstance(signature, str)
                             else 'missing field "signature"')


def test_the_issuer_never_signs_what_would_be_refused(keys: tuple[bytes, bytes]) -> None:
    with pytest.raises(LicenceError, match="max_mobiles is 0"):
        issue_licence(keys[0], licence_id="L-1", licensee="ACME", max_mobiles=0,
                      issued=ISSUED, expires=None)
    with pytest.raises(LicenceError, match="not a PEM private key"):
        issue_licence(keys[1], licence_id="L-1", licensee="ACME", max_mobiles=1,
                      issued=ISSUED, expires=None)


# -- entitlement -------------------------------------------------------------------


def test_demo_mode_allows_the_first_mobile_and_refuses_the_second() -> None:
    granted = entitlement([extension("101", "+48600100200"), extension("102", "+48600100300")],
                          DEMO_LICENCE)
    assert granted.allowed == frozenset({"+48600100200"})
    assert granted.refused == (RefusedMobile(
        mobile="+48600100300", extension="102",
        message="DEMO mode: callback is enabled for one mobile only (+48600100200 of "
                "extension 101); +48600100300 of extension 102 will get no callback: install "
                "a licence file (licence: in the config) or remove the mobile"),)
    assert describe(granted) == [
        "DEMO mode: 1 mobile (no licence file; set licence: in the config to allow more)",
        "callback mobiles: 1 allowed, 1 refused (beyond the 1 mobile granted)",
        granted.refused[0].message,
    ]


def test_a_licence_for_two_allows_both_and_refuses_a_third(tmp_path: Path,
                                                           keys: tuple[bytes, bytes]) -> None:
    licence = load_licence(write_licence(tmp_path / "licence.json", keys[0]),
                           public_key_pem=keys[1], today=ISSUED)
    two = [extension("101", "+48600100200"), extension("102", "+48600100300")]
    granted = entitlement(two, licence)
    assert granted.allowed == frozenset({"+48600100200", "+48600100300"})
    assert granted.refused == ()
    assert describe(granted) == ["licence L-123 for ACME: 2 mobiles, expires 2027-11-22",
                                 "callback mobiles: 2 in use of 2"]
    granted = entitlement([*two, extension("103", "+48600100400")], licence)
    assert granted.allowed == frozenset({"+48600100200", "+48600100300"})
    (refused,) = granted.refused
    assert (refused.mobile, refused.extension) == ("+48600100400", "103")
    assert refused.message == (
        "licence L-123 for ACME allows callback for 2 mobiles (the first 2 in config order, "
        "up to +48600100300 of extension 102); +48600100400 of extension 103 will get no "
        "callback: install a licence for more mobiles (licence: in the config) or remove "
        "the mobile")


def test_only_mobiles_of_callback_extensions_count_in_config_order() -> None:
    granted = entitlement([extension("101", "+48600100200", callback=False),
                           extension("102", "+48600100300", "+48600100400"),
                           extension("103", "+48600100500")], DEMO_LICENCE)
    assert granted.allowed == frozenset({"+48600100300"})
    assert [(r.mobile, r.extension) for r in granted.refused] == [
        ("+48600100400", "102"), ("+48600100500", "103")]


def test_a_mobile_listed_twice_counts_once() -> None:
    granted = entitlement([extension("101", "+48600100200"),
                           extension("102", "+48600100200", "+48600100300")], DEMO_LICENCE)
    assert granted.allowed == frozenset({"+48600100200"})
    assert [(r.mobile, r.extension) for r in granted.refused] == [("+48600100300", "102")]


def test_a_licence_that_never_expires_says_so() -> None:
    licence = Licence(id="L-9", licensee="ACME", max_mobiles=25, issued=ISSUED, expires=None)
    assert describe(entitlement([], licence)) == [
        "licence L-9 for ACME: 25 mobiles, never expires", "callback mobiles: 0 in use of 25"]


# -- load_for_config ---------------------------------------------------------------


def config_file(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "boomerang.yaml"
    path.write_text("\n".join([
        "sip: {listen: ['udp:127.0.0.1:0']}",
        "numbers: {country: PL}",
        "extensions:",
        '  - {number: "101", mobiles: ["600100200"], callback: true}',
        '  - {number: "102", mobiles: ["0048600100300"], callback: true}',
        *lines]) + "\n", encoding="utf-8")
    return path


def test_no_licence_in_the_config_is_demo_mode(tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path))
    licence = load_for_config(config, today=ISSUED)
    assert licence is DEMO_LICENCE
    granted = entitlement(config.extensions, licence)
    assert granted.allowed == frozenset({"+48600100200"})
    assert [r.mobile for r in granted.refused] == ["+48600100300"]


def test_the_config_licence_is_verified_with_its_public_key(
        tmp_path: Path, keys: tuple[bytes, bytes]) -> None:
    write_licence(tmp_path / "licence.json", keys[0])
    (tmp_path / "public.pem").write_bytes(keys[1])
    config = load_config(config_file(tmp_path, "licence: licence.json",
                                     "licence_public_key: public.pem"))
    licence = load_for_config(config, today=ISSUED)
    assert (licence.id, licence.max_mobiles, licence.demo) == ("L-123", 2, False)
    assert entitlement(config.extensions, licence).refused == ()


def test_without_licence_public_key_the_project_key_is_used(
        tmp_path: Path, keys: tuple[bytes, bytes]) -> None:
    write_licence(tmp_path / "licence.json", keys[0])
    config = load_config(config_file(tmp_path, "licence: licence.json"))
    with pytest.raises(LicenceError, match="bad signature") as caught:
        load_for_config(config, today=ISSUED)
    assert caught.value.path == tmp_path / "licence.json"


def test_a_public_key_gone_after_the_config_was_checked_is_named(
        tmp_path: Path, keys: tuple[bytes, bytes]) -> None:
    write_licence(tmp_path / "licence.json", keys[0])
    (tmp_path / "public.pem").write_bytes(keys[1])
    config = load_config(config_file(tmp_path, "licence: licence.json",
                                     "licence_public_key: public.pem"))
    (tmp_path / "public.pem").unlink()
    with pytest.raises(LicenceError, match="licence public key cannot be read") as caught:
        load_for_config(config, today=ISSUED)
    assert caught.value.path == tmp_path / "public.pem"


# -- boomerang licence -------------------------------------------------------------


def test_cli_keygen_issue_verify_round_trip(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    private, public = tmp_path / "private.pem", tmp_path / "public.pem"
    assert main(["licence", "keygen", "--private-key", str(private),
                 "--public-key", str(public)]) == 0
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert isinstance(load_public_key(public.read_bytes()), Ed25519PublicKey)
    fingerprint = key_fingerprint(public.read_bytes())
    assert fingerprint in capsys.readouterr().out

    before = private.read_bytes()
    assert main(["licence", "keygen", "--private-key", str(private),
                 "--public-key", str(tmp_path / "new.pem")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert private.read_bytes() == before and not (tmp_path / "new.pem").exists()

    licence = tmp_path / "licence.json"
    assert main(["licence", "issue", "--private-key", str(private), "--licensee", "ACME",
                 "--max-mobiles", "25", "--expires", "2099-12-31", "--id", "L-777",
                 "-o", str(licence)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["licence", "issue", "--private-key", str(private), "--licensee", "X",
                 "--max-mobiles", "1", "-o", str(licence)]) == 2
    assert "already exists" in capsys.readouterr().err

    assert main(["licence", "verify", str(licence), "--public-key", str(public)]) == 0
    out = capsys.readouterr().out
    for expected in ("valid licence L-777", "licensee:   ACME", "mobiles:    25",
                     "expires:    2099-12-31", f"public key: {public} ({fingerprint})"):
        assert expected in out

    assert main(["licence", "verify", str(licence)]) == 1  # the project's key
    err = capsys.readouterr().err
    assert "REFUSED: bad signature" in err and "the project's key" in err


def test_cli_verify_refuses_tampered_and_expired_files(
        tmp_path: Path, keys: tuple[bytes, bytes],
        capsys: pytest.CaptureFixture[str]) -> None:
    public = tmp_path / "public.pem"
    public.write_bytes(keys[1])
    tampered = write_licence(tmp_path / "tampered.json", keys[0], expires=None)
    edit(tampered, {"max_mobiles": 1000})
    assert main(["licence", "verify", str(tampered), "--public-key", str(public)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{tampered}: REFUSED: bad signature" in captured.err

    (tmp_path / "private.pem").write_bytes(keys[0])
    expired = tmp_path / "expired.json"
    assert main(["licence", "issue", "--private-key", str(tmp_path / "private.pem"),
                 "--licensee", "ACME", "--max-mobiles", "2", "--issued", "2020-01-01",
                 "--expires", "2020-06-01", "-o", str(expired)]) == 0
    assert "expired already" in capsys.readouterr().out
    assert main(["licence", "verify", str(expired), "--public-key", str(public)]) == 1
    assert "REFUSED: expired: it was valid until 2020-06-01" in capsys.readouterr().err


def test_cli_refuses_a_public_key_that_is_not_one(
        tmp_path: Path, keys: tuple[bytes, bytes],
        capsys: pytest.CaptureFixture[str]) -> None:
    licence = write_licence(tmp_path / "licence.json", keys[0])
    (tmp_path / "private.pem").write_bytes(keys[0])
    assert main(["licence", "verify", str(licence),
                 "--public-key", str(tmp_path / "private.pem")]) == 2
    assert "not a PEM public key" in capsys.readouterr().err
