"""Config loading: good files load, every bad file is refused with the
problems it contains, each as FILE:LINE: field: what is wrong; what is right.

Each file under fixtures/config/bad/ states what it must produce in lines
``# expect: LINE | FIELD | TEXT``: a problem that starts with
``FILE:LINE: FIELD`` and contains TEXT (the fix). The file must produce
exactly those problems, no fewer and no more.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from boomerang.config import (
    STARTER_CONFIG,
    ConfigError,
    ListenAddress,
    load_config,
    load_config_text,
)

FIXTURES = Path(__file__).parent / "fixtures" / "config"
GOOD = sorted((FIXTURES / "good").glob("*.yaml"))
BAD = sorted((FIXTURES / "bad").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (\d+) \| ([^|]+?) \| (.+)$", re.MULTILINE)


def test_fixture_folders_are_not_empty() -> None:
    assert len(GOOD) >= 3 and len(BAD) >= 20


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_good_files_load(path: Path) -> None:
    config = load_config(path)
    assert config.sip.listen
    assert config.trunks == [] and config.extensions == [] and config.dids == []


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_files_are_refused_with_every_problem_located_and_a_fix(path: Path) -> None:
    expected = EXPECT.findall(path.read_text())
    assert expected, f"{path.name} states no '# expect:' line"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = caught.value.problems
    for line, field, text in expected:
        prefix = f"{path}:{line}: {field}"
        matching = [p for p in problems if p.startswith(prefix) and text in p]
        assert matching, f"no problem starting {prefix!r} with {text!r} in:\n" + "\n".join(
            problems)
    assert len(problems) == len(expected), "\n".join(problems)


def test_full_file_values_are_typed() -> None:
    config = load_config(FIXTURES / "good" / "full.yaml")
    assert config.sip.listen == [
        ListenAddress("udp", "0.0.0.0", 5060),
        ListenAddress("tcp", "0.0.0.0", 5060),
        ListenAddress("udp", "::", 5060),
    ]
    assert str(config.sip.listen[2]) == "udp:[::]:5060"
    assert config.sip.public_address == "203.0.113.10"
    assert (config.media.rtp_ports.first, config.media.rtp_ports.last) == (30000, 30999)
    assert config.media.tone_plan == "de"
    assert config.database.scheme == "postgresql"
    assert config.sip.connection_idle_s == 120.0


def test_defaults_of_a_minimal_file() -> None:
    config = load_config(FIXTURES / "good" / "minimal.yaml")
    assert config.sip.public_address == "auto"
    assert config.sip.realm == "boomerang"
    assert config.sip.user_agent.startswith("Boomerang/")
    assert str(config.media.rtp_ports) == "20000-20999"
    assert str(config.database) == "sqlite:///boomerang.db"
    assert config.licence is None
    assert config.sip.tls is None


def test_the_starter_config_is_valid() -> None:
    config = load_config_text(STARTER_CONFIG, "boomerang.yaml")
    assert [str(a) for a in config.sip.listen] == ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"]


def test_port_zero_is_allowed_for_an_ephemeral_port() -> None:
    config = load_config_text("sip: {listen: [udp:127.0.0.1:0, udp:127.0.0.1:0]}", "x.yaml")
    assert [a.port for a in config.sip.listen] == [0, 0]


def test_a_listen_address_listed_twice_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text("sip:\n  listen: [udp:0.0.0.0:5060, udp:0.0.0.0:5060]\n", "x.yaml")
    assert caught.value.problems == [
        "x.yaml:2: sip.listen: udp:0.0.0.0:5060 is listed twice; list each address once"]


def test_a_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert "boomerang init" in caught.value.problems[0]


def test_relative_paths_are_resolved_against_the_config_folder(tmp_path: Path) -> None:
    from transport.sip_test_support import make_self_signed

    folder = tmp_path / "etc"
    folder.mkdir()
    make_self_signed(folder)
    path = folder / "boomerang.yaml"
    path.write_text("sip:\n  listen: [tls:127.0.0.1:0]\n  tls: {cert: cert.pem, key: key.pem}\n")
    config = load_config(path)
    assert config.sip.tls is not None
    assert config.sip.tls.cert == folder / "cert.pem"


def test_a_certificate_and_a_key_that_do_not_match_are_refused(tmp_path: Path) -> None:
    from transport.sip_test_support import make_self_signed

    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    cert, _ = make_self_signed(one)
    _, other_key = make_self_signed(two)
    text = f"sip:\n  listen: [tls:127.0.0.1:0]\n  tls:\n    cert: {cert}\n    key: {other_key}\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "x.yaml")
    (problem,) = caught.value.problems
    assert problem.startswith("x.yaml:3: sip.tls: ")
    assert "do not load together" in problem and "matching private key" in problem


def test_digest_algorithms_default_to_md5_first_for_interoperability() -> None:
    config = load_config_text("sip:\n  listen: [udp:127.0.0.1:0]\n", "x.yaml")
    assert config.sip.digest_algorithms == ["MD5", "SHA-256"]


def test_unknown_digest_algorithm_is_refused_with_line_and_fix() -> None:
    text = "sip:\n  listen: [udp:127.0.0.1:0]\n  digest_algorithms: [MD5, SHA-1]\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "x.yaml")
    problems = "\n".join(caught.value.problems)
    assert "x.yaml:3:" in problems
    assert "'SHA-1' is not a digest algorithm we offer" in problems
    assert "e.g. [MD5, SHA-256]" in problems


def test_endpoint_challenges_in_the_configured_order() -> None:
    from boomerang.app import make_endpoint
    from boomerang.sip.auth import parse_challenge

    text = "sip:\n  listen: [udp:127.0.0.1:0]\n  digest_algorithms: [SHA-256, MD5]\n"
    endpoint = make_endpoint(load_config_text(text, "x.yaml"))
    challenges = [parse_challenge(v) for v in endpoint.challenger.challenge(0.0)]
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]
