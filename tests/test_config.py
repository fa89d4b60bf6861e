"""Config loading: good files load, every bad file is refused with the
problems it contains, each as FILE:LINE: field: what is wrong; what is right.

Each file under fixtures/config/bad/ states what it must produce in lines
``# expect: LINE | FIELD | TEXT``: a problem that starts with
``FILE:LINE: FIELD`` and contains TEXT (the fix). The file must produce
exactly those problems, no fewer and no more.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, time
from pathlib import Path

import pytest

from boomerang.config import (
    STARTER_CONFIG,
    Config,
    ConfigError,
    DidSettings,
    ExtensionSettings,
    HoursRange,
    ListenAddress,
    RecordsSettings,
    ServiceSettings,
    TrunkSettings,
    load_config,
    load_config_text,
)
from boomerang.config_calls import parse_hours

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
    assert config.dids == [] and config.flows == {}  # DIDs and flows: test_config_flows.py


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


def test_the_starter_config_holds_the_example_of_the_spec() -> None:
    config = load_config_text(STARTER_CONFIG, "boomerang.yaml")
    (carrier,) = config.trunks
    assert (carrier.name, carrier.host, carrier.port, carrier.country) == (
        "carrier", "127.0.0.1", 5070, "PL")
    (anna,) = config.extensions
    assert (anna.number, anna.mobiles, anna.callback, anna.transit) == (
        "101", ["+48600100200"], True, True)
    assert config.did("+48221234567") == DidSettings(
        number="+48221234567", trunk="carrier", flow="roaming")
    roaming = config.flows["roaming"]
    assert [(n.id, n.type, n.branches) for n in roaming.nodes] == [
        ("cb", "callback", {"_": "tone"}), ("tone", "disa", {})]


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


# -- trunks, extensions, registrar, numbers -----------------------------------


def test_trunks_and_extensions_are_typed_with_defaults() -> None:
    config = load_config(FIXTURES / "good" / "calls.yaml")
    carrier, provider = config.trunks
    assert (carrier.name, carrier.host, carrier.port, carrier.transport) == (
        "carrier", "127.0.0.1", 5070, "udp")
    assert carrier.sources == [ipaddress.ip_network("127.0.0.1/32")]
    assert (carrier.dial_format, carrier.outside_prefix, carrier.max_call_seconds) == (
        "national", "0", 180)
    assert (carrier.did_from, carrier.keepalive_s, carrier.max_channels) == (
        "request_uri", 30.0, 0)
    assert provider.port is None and provider.register is True
    assert provider.sources == [ipaddress.ip_network("192.0.2.0/24"),
                                ipaddress.ip_network("2001:db8::/32"),
                                ipaddress.ip_network("198.51.100.7/32")]
    assert (provider.country, provider.did_from, provider.caller_id_header) == (
        "DE", "to", "pai")
    assert config.trunk("sip-provider") is provider
    assert config.trunk("nope") is None
    anna = config.extension("101")
    assert anna is not None and anna.callback and anna.transit and not anna.allow_premium
    assert anna.max_contacts == 5 and anna.caller_id is None


def test_mobiles_caller_ids_and_company_number_are_stored_in_e164() -> None:
    config = load_config(FIXTURES / "good" / "calls.yaml")
    assert config.numbers.company_number == "+48221234567"
    assert config.extensions[0].mobiles == ["+48600100200", "+48600100201"]
    assert config.extensions[1].mobiles == ["+48600100202"]
    assert config.extensions[1].caller_id == "+48221234568"
    assert config.extension("103") == ExtensionSettings(number="103")
    assert config.numbers.blocked_prefixes == ["+4870", "+48300"]
    assert (config.registrar.min_expires_s, config.registrar.default_expires_s,
            config.registrar.max_expires_s) == (30, 600, 7200)


def test_defaults_of_the_new_sections() -> None:
    config = load_config(FIXTURES / "good" / "minimal.yaml")
    assert (config.numbers.country, config.numbers.company_number,
            config.numbers.premium_blocked, config.numbers.blocked_prefixes) == (
        "PL", None, True, [])
    assert (config.registrar.min_expires_s, config.registrar.max_expires_s,
            config.registrar.default_expires_s, config.registrar.keepalive_s,
            config.registrar.keepalive_failures) == (60, 3600, 3600, 30.0, 3)


def test_numbers_country_decides_how_national_mobiles_are_read() -> None:
    text = ("sip: {listen: [udp:127.0.0.1:0]}\nnumbers: {country: DE}\n"
            "extensions: [{number: '101', mobiles: ['0151 2345 6789']}]\n")
    assert load_config_text(text, "x.yaml").extensions[0].mobiles == ["+4915123456789"]


def test_a_mobile_listed_twice_on_one_extension_is_refused() -> None:
    text = ("sip: {listen: [udp:127.0.0.1:0]}\n"
            "extensions: [{number: '101', mobiles: ['+48600100200', '600100200']}]\n")
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "x.yaml")
    assert caught.value.problems == [
        "x.yaml:2: extensions[0].mobiles[1]: +48600100200 is listed twice; "
        "list each mobile once"]


def test_models_built_in_python_are_checked_too() -> None:
    with pytest.raises(ValueError, match="already a mobile of extension 101"):
        Config.model_validate({"sip": {"listen": ["udp:127.0.0.1:0"]}, "extensions": [
            {"number": "101", "mobiles": ["+48600100200"]},
            {"number": "102", "mobiles": ["+48600100200"]}]})
    trunk = TrunkSettings(name="carrier", host="[2001:db8::1]")
    assert trunk.host == "2001:db8::1"
    assert trunk.sources == [ipaddress.ip_network("2001:db8::1/128")]
    assert TrunkSettings(name="carrier", host="sip.example.com").sources == []
    with pytest.raises(ValueError, match=r"is required because host sip\.example\.com is a DNS"):
        Config.model_validate({"sip": {"listen": ["udp:127.0.0.1:0"]},
                               "trunks": [{"name": "carrier", "host": "sip.example.com"}]})


def _uncommented_example(text: str, section: str) -> str:
    """The commented ``# section:`` example block of the starter, uncommented."""
    lines = text.splitlines()
    start = lines.index(f"# {section}:")
    block = [lines[start][2:]]
    for line in lines[start + 1:]:
        if not line.startswith("#   "):
            break
        block.append(line[2:])
    return "\n".join(block)


def test_the_starter_examples_are_valid_when_uncommented(tmp_path: Path) -> None:
    text = STARTER_CONFIG
    for section in ("numbers", "records", "service"):
        text += _uncommented_example(STARTER_CONFIG, section) + "\n"
    (tmp_path / "rates.csv").write_text("prefix,per_minute\n+48,0.10\n")
    config = load_config_text(text, "starter.yaml", base_dir=tmp_path)
    assert config.numbers.company_number == "+48221234567"
    assert config.numbers.timezone == "Europe/Warsaw"
    assert config.records.rate_table == tmp_path / "rates.csv"
    assert config.records.roaming_rates == {"default": 1.50, "PL": 0.80}
    assert config.service == ServiceSettings()  # the example shows the defaults


# -- records, service, licence key, extension limits ---------------------------


def test_records_service_and_limits_are_typed() -> None:
    path = FIXTURES / "good" / "service_records_limits.yaml"
    config = load_config(path)
    assert config.licence_public_key == path.parent / "../keys/ed25519_public.pem"
    assert config.records == RecordsSettings(
        rate_table=path.parent / "../rates.csv", currency="PLN",
        roaming_rates={"default": 1.5, "PL": 0.8, "DE": 0.0})
    assert config.service == ServiceSettings(
        node_id="node-1", drain_grace_s=10, metrics_listen="[::1]:9464", lease_s=60,
        poll_interval_s=0.5)
    assert config.numbers.timezone == "Europe/Warsaw"
    assert config.numbers.zone.key == "Europe/Warsaw"
    anna, piotr, ewa = config.extensions
    assert anna.max_minutes_per_day == 120 and piotr.max_minutes_per_day == 0
    assert str(anna.callback_hours) == "07:00-22:00"
    assert str(piotr.callback_hours) == "22:00-06:00"
    assert str(ewa.callback_hours) == "00:00-24:00"


def test_defaults_of_records_service_and_limits() -> None:
    config = load_config(FIXTURES / "good" / "minimal.yaml")
    assert config.records == RecordsSettings(rate_table=None, currency="EUR", roaming_rates={})
    assert config.service == ServiceSettings(node_id=None, drain_grace_s=30.0,
                                             metrics_listen=None, lease_s=120.0,
                                             poll_interval_s=1.0)
    assert config.licence_public_key is None
    assert config.numbers.timezone == "UTC"
    extension = ExtensionSettings(number="101")
    assert extension.max_minutes_per_day == 0 and extension.callback_hours is None


@pytest.mark.parametrize(("hours", "inside", "outside"), [
    ("07:00-22:00", ["07:00", "12:00", "21:59:59"], ["06:59:59", "22:00", "23:30", "00:00"]),
    ("22:00-06:00", ["22:00", "23:59", "00:00", "05:59"], ["06:00", "12:00", "21:59"]),
    ("00:00-24:00", ["00:00", "12:00", "23:59:59"], []),
    ("18:30-24:00", ["18:30", "23:59"], ["00:00", "18:29"]),
])
def test_callback_hours_contain_the_times_of_day_inside(hours: str, inside: list[str],
                                                         outside: list[str]) -> None:
    window = parse_hours(hours)
    assert str(window) == hours
    assert all(window.contains(time.fromisoformat(t)) for t in inside)
    assert not any(window.contains(time.fromisoformat(t)) for t in outside)


def test_callback_hours_ignore_the_zone_of_an_aware_time() -> None:
    window = parse_hours("07:00-22:00")
    assert window.contains(time(8, 0, tzinfo=UTC))
    assert HoursRange(start=time(7), end=time(22)) == window


@pytest.mark.parametrize("listen, expected", [
    ("127.0.0.1:9464", "127.0.0.1:9464"),
    ("[::1]:9464", "[::1]:9464"),
    ("Metrics.Example.com:0", "metrics.example.com:0"),
])
def test_metrics_listen_is_normalised_host_and_port(listen: str, expected: str) -> None:
    assert ServiceSettings(metrics_listen=listen).metrics_listen == expected
    host, _, port = expected.rpartition(":")
    assert int(port) >= 0 and host


def test_service_and_records_may_be_null_for_their_defaults() -> None:
    config = load_config_text("sip: {listen: [udp:127.0.0.1:0]}\nrecords:\nservice:\n",
                              "x.yaml")
    assert config.records == RecordsSettings() and config.service == ServiceSettings()


def test_session_expires_below_min_se_is_refused_with_the_fix() -> None:
    text = "sip:\n  listen: [udp:127.0.0.1:0]\n  session_expires_s: 100\n  min_se_s: 120\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "x.yaml")
    problems = "\n".join(caught.value.problems)
    assert "session_expires_s 100 is below min_se_s 120" in problems
    assert "x.yaml:" in problems


def test_min_se_below_the_rfc_4028_floor_of_90_is_refused() -> None:
    text = "sip:\n  listen: [udp:127.0.0.1:0]\n  min_se_s: 60\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "x.yaml")
    assert any("x.yaml:3: sip.min_se_s" in p for p in caught.value.problems)
