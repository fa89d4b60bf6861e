"""The peer harness reads SIPp's output correctly (no SIPp needed)."""

from __future__ import annotations

from pathlib import Path

from .conftest import _parse_screen, _parse_statistics

CLIENT_SCREEN = """\
                                 Messages  Retrans   Timeout   Unexpected-Msg
      INVITE ---------->         20        0         0
         100 <----------         20        0         0         0
         404 <----------  E-RTD1 20        3         0         0
         ACK ---------->         20        3
       Pause [   1200ms]         20                            0
------- Waiting for active calls to end. Press [q] again to force exit. -------
                                 Messages  Retrans   Timeout   Unexpected-Msg
      INVITE ---------->         99        0         0
"""

SERVER_SCREEN = """\
                                 Messages  Retrans   Timeout   Unexpected-Msg
  ----------> INVITE             1         0         0         0
  <---------- 180                1         0
  ----------> ACK         E-RTD1 1         0         0         0
  [    100ms] Pause              1                             0
"""


def test_client_screen_rows_keep_name_direction_and_counts() -> None:
    rows = _parse_screen(CLIENT_SCREEN)
    assert [(r.name, r.direction, r.messages, r.retransmissions) for r in rows] == [
        ("INVITE", "sent", 20, 0),
        ("100", "received", 20, 0),
        ("404", "received", 20, 3),
        ("ACK", "sent", 20, 3),
    ]


def test_server_screen_rows_have_the_arrow_first() -> None:
    rows = _parse_screen(SERVER_SCREEN)
    assert [(r.name, r.direction, r.messages) for r in rows] == [
        ("INVITE", "received", 1),
        ("180", "sent", 1),
        ("ACK", "received", 1),
    ]


def test_statistics_take_the_last_row(tmp_path: Path) -> None:
    path = tmp_path / "stat.csv"
    path.write_text(
        "StartTime;SuccessfulCall(C);FailedCall(C);\n"
        "t0;0;0;\n"
        "t1;19;1;\n"
    )
    statistics = _parse_statistics(path)
    assert statistics["SuccessfulCall(C)"] == "19"
    assert statistics["FailedCall(C)"] == "1"
