"""``boomerang cdr`` and ``boomerang calls`` on a temporary SQLite database named
by a temporary config file: the three formats, the filters, the totals, the
empty answers and the refusals."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from boomerang import cli_records
from boomerang.cli import main
from boomerang.store import (
    CallbackMethod,
    CallResult,
    JobState,
    LegKind,
    NewCallbackJob,
    NewCallRecord,
    open_store,
)
from boomerang.store.records import PERIODS, LegEstimate

NOW = datetime(2030, 1, 15, 12, 0, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Setup:
    config: Path
    database: Path


def _config(tmp_path: Path, database: Path) -> Path:
    path = tmp_path / "boomerang.yaml"
    path.write_text(f"sip: {{listen: [udp:127.0.0.1:5099]}}\ndatabase: sqlite:///{database}\n",
                    encoding="utf-8")
    return path


async def _fill(url: str) -> None:
    """Story 1 (extension 101, the 15th): trigger, callback, destination, with
    estimates. Story 2 (extension 102, the 16th): a callback nobody answered."""
    store = await open_store(url, utc_now=lambda: NOW)
    records = store.records
    try:
        async def leg(correlation_id: str, kind: LegKind, start_s: float,
                      answer_s: float | None, end_s: float, result: CallResult,
                      sip_status: int, **fields: object) -> int:
            record = await records.insert(NewCallRecord(
                correlation_id=correlation_id, leg_kind=kind,
                started_at=NOW + timedelta(seconds=start_s), **fields))  # type: ignore[arg-type]
            if answer_s is not None:
                await records.answer(record.id, NOW + timedelta(seconds=answer_s))
            await records.finish(record.id, ended_at=NOW + timedelta(seconds=end_s),
                                 result=result, sip_status=sip_status, q850_cause=16)
            return record.id

        trigger = await leg("story-1", LegKind.TRIGGER, 0, None, 6, CallResult.REJECTED, 486,
                            owner_extension="101", trunk="carrier",
                            trigger_did="+48221234567", trigger_caller="+48600100200",
                            callback_target="+48600100200", call_id="t1@carrier")
        callback = await leg("story-1", LegKind.CALLBACK, 11, 15, 165, CallResult.ANSWERED,
                             200, owner_extension="101", trunk="carrier",
                             callback_target="+48600100200", call_id="c1@boomerang")
        destination = await leg("story-1", LegKind.DESTINATION, 20, 25, 145,
                                CallResult.ANSWERED, 200, owner_extension="101",
                                trunk="carrier", dialed_destination="+4930123456",
                                call_id="d1@boomerang")
        await records.set_estimates([
            LegEstimate(record_id=trigger, cost_estimate=0.0, saving_estimate=None,
                        currency="EUR"),
            LegEstimate(record_id=callback, cost_estimate=0.125, saving_estimate=1.625,
                        currency="EUR"),
            LegEstimate(record_id=destination, cost_estimate=0.05, saving_estimate=None,
                        currency="EUR")])
        await leg("story-2", LegKind.CALLBACK, 86_400, None, 86_445, CallResult.NO_ANSWER,
                  480, owner_extension="102", trunk="carrier", callback_target="+48600300400",
                  attempts=2, call_id="c2@boomerang")
    finally:
        await store.close()


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    database = tmp_path / "boomerang.db"
    asyncio.run(_fill(f"sqlite:///{database}"))
    return Setup(config=_config(tmp_path, database), database=database)


@pytest.fixture
def empty(tmp_path: Path) -> Setup:
    database = tmp_path / "empty.db"

    async def migrate_only() -> None:
        await (await open_store(f"sqlite:///{database}")).close()

    asyncio.run(migrate_only())
    return Setup(config=_config(tmp_path, database), database=database)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# -- cdr -------------------------------------------------------------------------------


def test_cdr_json_is_a_list_of_snake_case_objects_with_utc_times(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "cdr", "-c", str(setup.config), "--format", "json")
    assert (code, err) == (0, "")
    legs = json.loads(out)
    assert [(leg["correlation_id"], leg["leg_kind"]) for leg in legs] == [
        ("story-1", "trigger"), ("story-1", "callback"), ("story-1", "destination"),
        ("story-2", "callback")]
    callback = legs[1]
    assert callback == {
        "id": callback["id"], "correlation_id": "story-1", "leg_kind": "callback",
        "owner_extension": "101", "trunk": "carrier", "trigger_did": None,
        "trigger_caller": None, "callback_target": "+48600100200",
        "dialed_destination": None, "call_id": "c1@boomerang",
        "started_at": "2030-01-15T12:00:11+00:00", "answered_at": "2030-01-15T12:00:15+00:00",
        "ended_at": "2030-01-15T12:02:45+00:00", "duration_s": 154.0, "billable_s": 150.0,
        "result": "answered", "sip_status": 200, "q850_cause": 16, "attempts": 1,
        "cost_estimate": 0.125, "saving_estimate": 1.625, "currency": "EUR"}


def test_cdr_csv_has_a_header_and_every_field(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "cdr", "-c", str(setup.config), "--format", "csv")
    assert code == 0
    assert out.splitlines()[0] == (
        "id,correlation_id,leg_kind,owner_extension,trunk,trigger_did,trigger_caller,"
        "callback_target,dialed_destination,call_id,started_at,answered_at,ended_at,"
        "duration_s,billable_s,result,sip_status,q850_cause,attempts,cost_estimate,"
        "saving_estimate,currency")
    rows = _csv_rows(out)
    assert len(rows) == 4
    trigger = rows[0]
    assert (trigger["leg_kind"], trigger["trigger_caller"], trigger["answered_at"],
            trigger["billable_s"], trigger["sip_status"], trigger["cost_estimate"]) == (
        "trigger", "+48600100200", "", "0.0", "486", "0.0")
    unanswered = rows[3]
    assert (unanswered["result"], unanswered["attempts"], unanswered["started_at"],
            unanswered["cost_estimate"]) == ("no_answer", "2", "2030-01-16T12:00:00+00:00", "")


def test_cdr_table_has_aligned_columns(setup: Setup,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "cdr", "-c", str(setup.config))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["id", "correlation", "kind", "ext", "caller", "did", "target",
                                "destination", "trunk", "started_utc", "answered_utc",
                                "dur_s", "bill_s", "result", "sip", "q850", "att", "cost",
                                "saving", "cur"]
    assert len(lines) == 5
    column = lines[0].index("started_utc")
    assert [line[column:column + 19] for line in lines[1:]] == [
        "2030-01-15 12:00:00", "2030-01-15 12:00:11", "2030-01-15 12:00:20",
        "2030-01-16 12:00:00"]
    callback = lines[2].split()
    assert callback[2:4] == ["callback", "101"] and callback[-3:] == ["0.1250", "1.6250", "EUR"]
    cost_end = lines[0].index("cost") + len("cost")  # right-aligned under its heading
    assert all(line[cost_end - 1] != " " for line in lines[1:])


def _ids(capsys: pytest.CaptureFixture[str], setup: Setup, *filters: str) -> list[tuple[str, str]]:
    code, out, err = _run(capsys, "cdr", "-c", str(setup.config), "--format", "json", *filters)
    assert (code, err) == (0, "")
    return [(leg["correlation_id"], leg["leg_kind"]) for leg in json.loads(out)]


def test_cdr_filters(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    assert _ids(capsys, setup, "--extension", "102") == [("story-2", "callback")]
    assert _ids(capsys, setup, "--kind", "callback") == [("story-1", "callback"),
                                                          ("story-2", "callback")]
    assert _ids(capsys, setup, "--result", "rejected") == [("story-1", "trigger")]
    assert _ids(capsys, setup, "--correlation", "story-1", "--kind", "destination") == [
        ("story-1", "destination")]
    assert _ids(capsys, setup, "--since", "2030-01-16") == [("story-2", "callback")]
    assert _ids(capsys, setup, "--until", "2030-01-15T12:00:11") == [("story-1", "trigger")]
    # An offset is honoured: 13:00:15+01:00 is 12:00:15 UTC.
    assert _ids(capsys, setup, "--since", "2030-01-15T12:00:05",
                "--until", "2030-01-15T13:00:15+01:00") == [("story-1", "callback")]
    assert _ids(capsys, setup, "--limit", "2") == [("story-1", "trigger"),
                                                   ("story-1", "callback")]


def test_cdr_totals_per_extension_and_per_day(setup: Setup,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "cdr", "-c", str(setup.config), "--totals", "--format", "json")
    assert code == 0
    assert json.loads(out) == [
        {"owner_extension": "101", "legs": 3, "answered_legs": 2, "estimated_legs": 3,
         "duration_s": 285.0, "billable_s": 270.0, "cost_estimate": 0.175,
         "saving_estimate": 1.625, "currency": "EUR", "mixed_currency": False},
        {"owner_extension": "102", "legs": 1, "answered_legs": 0, "estimated_legs": 0,
         "duration_s": 45.0, "billable_s": 0.0, "cost_estimate": None,
         "saving_estimate": None, "currency": None, "mixed_currency": False}]

    code, out, _ = _run(capsys, "cdr", "-c", str(setup.config), "--period", "day",
                        "--format", "csv")
    assert code == 0
    assert [(row["period"], row["owner_extension"], row["legs"], row["cost_estimate"],
             row["mixed_currency"]) for row in _csv_rows(out)] == [
        ("2030-01-15", "101", "3", "0.175", "false"), ("2030-01-16", "102", "1", "", "false")]

    code, out, _ = _run(capsys, "cdr", "-c", str(setup.config), "--totals", "--period",
                        "month", "--extension", "101")
    lines = out.splitlines()
    assert lines[0].split() == ["period", "ext", "legs", "answered", "estimated", "dur_s",
                                "bill_s", "cost", "saving", "cur"]
    assert lines[1].split() == ["2030-01", "101", "3", "2", "3", "285.0", "270.0", "0.1750",
                                "1.6250", "EUR"]
    assert len(lines) == 2


def test_cdr_with_nothing_to_show(empty: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "cdr", "-c", str(empty.config)) == (0, "no call records match\n", "")
    code, out, _ = _run(capsys, "cdr", "-c", str(empty.config), "--format", "csv")
    assert code == 0 and out.splitlines() == [out.splitlines()[0]]
    assert out.startswith("id,correlation_id,leg_kind,")
    assert _run(capsys, "cdr", "-c", str(empty.config), "--format", "json") == (0, "[]\n", "")
    assert _run(capsys, "cdr", "-c", str(empty.config), "--totals",
                "--format", "json") == (0, "[]\n", "")


def test_cdr_refuses_a_bad_config_a_bad_command_line_and_a_missing_database(
        tmp_path: Path, setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sip: {listen: [udp:127.0.0.1:5099]}\ndatabase: mysql://x/y\n")
    code, out, err = _run(capsys, "cdr", "-c", str(bad))
    assert (code, out) == (2, "")
    assert f"{bad}:2" in err and "not a supported database URL" in err

    with pytest.raises(SystemExit) as caught:
        main(["cdr", "-c", str(setup.config), "--since", "15/01/2030"])
    assert caught.value.code == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err

    code, _, err = _run(capsys, "cdr", "-c", str(setup.config), "--totals", "--limit", "3")
    assert code == 2 and "--limit" in err

    (tmp_path / "elsewhere").mkdir()
    missing = _config(tmp_path / "elsewhere", tmp_path / "nowhere.db")
    code, out, err = _run(capsys, "cdr", "-c", str(missing))
    assert (code, out) == (1, "")
    assert "nowhere.db" in err and "boomerang run" in err
    assert not (tmp_path / "nowhere.db").exists()  # not created by reading


def test_the_written_out_choices_match_the_store() -> None:
    assert tuple(result.value for result in CallResult) == cli_records.RESULTS
    assert tuple(kind.value for kind in LegKind) == cli_records.LEG_KINDS
    assert cli_records.PERIODS == PERIODS


# -- calls -----------------------------------------------------------------------------


async def _jobs_and_live_legs(url: str) -> None:
    store = await open_store(url, utc_now=lambda: NOW)
    try:
        def job(key: str, target: str, due_s: float) -> NewCallbackJob:
            return NewCallbackJob(
                correlation_id=f"story-{key}", owner_extension="101", target_number=target,
                method=CallbackMethod.CALLER, due_at=NOW + timedelta(seconds=due_s),
                flow="roaming", component_id="cb", trunk="carrier", max_attempts=3,
                deduplication_key=target)

        await store.jobs.create(job("a", "+48600100200", 5))
        claimed = await store.jobs.create(job("b", "+48600100201", 1))
        done = await store.jobs.create(job("c", "+48600100202", 0))
        await store.jobs.claim(claimed.id, "node-1", NOW)
        await store.jobs.claim(done.id, "node-1", NOW)
        await store.jobs.finish(done.id, "answered", state=JobState.DONE)
        await store.records.insert(NewCallRecord(
            correlation_id="story-b", leg_kind=LegKind.CALLBACK, started_at=NOW,
            owner_extension="101", trunk="carrier", callback_target="+48600100201",
            call_id="live@boomerang"))
    finally:
        await store.close()


def test_calls_lists_unfinished_jobs_and_live_legs(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(_jobs_and_live_legs(f"sqlite:///{setup.database}"))
    code, out, err = _run(capsys, "calls", "-c", str(setup.config), "--format", "json")
    assert (code, err) == (0, "")
    listed = json.loads(out)
    assert [(job["correlation_id"], job["state"], job["attempts"], job["max_attempts"],
             job["claimed_by"], job["due_at"]) for job in listed["callbacks"]] == [
        ("story-b", "claimed", 1, 3, "node-1", "2030-01-15T12:00:01+00:00"),
        ("story-a", "pending", 0, 3, None, "2030-01-15T12:00:05+00:00")]
    assert [(leg["call_id"], leg["ended_at"]) for leg in listed["live_legs"]] == [
        ("live@boomerang", None)]

    code, out, _ = _run(capsys, "calls", "-c", str(setup.config))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "pending and active callbacks:"
    assert lines[1].split() == ["id", "correlation", "owner", "target", "method", "due_utc",
                                "attempts", "state", "claimed_by", "last_result"]
    assert lines[2].split()[1:] == ["story-b", "101", "+48600100201", "caller", "2030-01-15",
                                    "12:00:01", "1/3", "claimed", "node-1", "-"]
    assert lines[3].split()[1:] == ["story-a", "101", "+48600100200", "caller", "2030-01-15",
                                    "12:00:05", "0/3", "pending", "-", "-"]
    assert lines[5] == "live legs:"
    assert lines[7].split()[1:] == ["story-b", "callback", "101", "+48600100201", "carrier",
                                    "live@boomerang", "2030-01-15", "12:00:00", "-"]
    assert len(lines) == 8


def test_calls_with_nothing_in_progress(empty: Setup,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "calls", "-c", str(empty.config))
    assert (code, out) == (0, "pending and active callbacks:\n  none\n\nlive legs:\n  none\n")
    code, out, _ = _run(capsys, "calls", "-c", str(empty.config), "--format", "json")
    assert (code, json.loads(out)) == (0, {"callbacks": [], "live_legs": []})
