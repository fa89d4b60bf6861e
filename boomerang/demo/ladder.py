"""The demo's timeline, drawn as a SIP ladder in plain ASCII.

Three lanes: the mobile (behind its carrier), Boomerang, and the phone of
extension 101. Each SIP message a peer sent or received is one arrow
between its lane and Boomerang's, labelled with the method (and number)
or the status, with a short note on the right saying what it means in the
story; each media observation is a ``*`` on the lane of the peer that made
it. Times are seconds since the demo started.

::

     time  Mobile (via carrier)             Boomerang                  Phone 101
    0.324s           |                          |<----- REGISTER 101 ------|  no credentials yet
    2.342s           |<---- 486 Busy Here ------|                          |  rejected, never...
    5.228s           *                          |                          |  dial tone heard...

The notes come from the messages alone (``Ladder`` remembers which
Call-ID is the trigger, the callback and the call to 101 from the first
INVITE it sees of each), so a message that was not on the wire cannot
appear here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..sip.errors import SipError
from ..sip.message import Request, Response
from ..sip.uri import SipUri, TelUri, Uri
from .peers import WireMessage

LANE_GAP = 26  # characters between two lanes
LEFT_MARGIN = 10  # room for the first lane's title
TIME_WIDTH = 8
TITLES = ("Mobile (via carrier)", "Boomerang", "Phone 101")
LANE_OF_PEER = {"mobile": 0, "phone": 2}
BOOMERANG_LANE = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaEvent:
    """Something a peer measured on its RTP stream (``text`` says what)."""

    at: float
    peer: str
    text: str


def _lane_x(lane: int) -> int:
    return LEFT_MARGIN + lane * (LANE_GAP + 1)


def _user(uri: Uri) -> str:
    if isinstance(uri, TelUri):
        return uri.number
    if isinstance(uri, SipUri):
        return (uri.user_unescaped or uri.host).split(";", 1)[0]
    return str(uri)


def _identity(request: Request) -> tuple[str, str]:
    """The caller number a request presents, and the header it came from."""
    try:
        asserted = request.name_addrs("P-Asserted-Identity")
    except SipError:
        asserted = []
    if asserted:
        return _user(asserted[0].uri), "P-Asserted-Identity"
    try:
        return _user(request.from_.uri), "From"
    except SipError:
        return "?", "From"


class Ladder:
    """Turns wire messages and media events into ladder lines."""

    def __init__(self, *, started_at: float, write: Callable[[str], None]) -> None:
        self.started_at = started_at
        self.write = write
        self.roles: dict[str, str] = {}  # Call-ID -> trigger / callback / destination
        self._seen: set[tuple[str, bool, bytes]] = set()
        self.lines = 0

    # -- header ------------------------------------------------------------------------

    def header(self) -> None:
        row = [" "] * (_lane_x(2) + LEFT_MARGIN)
        for lane, title in enumerate(TITLES):
            start = max(0, _lane_x(lane) - len(title) // 2)
            row[start:start + len(title)] = title
        self.write(f"{'time':>{TIME_WIDTH - 1}}  " + "".join(row).rstrip())
        self.write(f"{'':>{TIME_WIDTH - 1}}  " + self._bars())

    def _bars(self) -> str:
        row = [" "] * (_lane_x(2) + 1)
        for lane in range(3):
            row[_lane_x(lane)] = "|"
        return "".join(row)

    def _time(self, at: float) -> str:
        return f"{at - self.started_at:{TIME_WIDTH - 1}.3f}s "

    # -- SIP ---------------------------------------------------------------------------

    def sip(self, wire: WireMessage) -> None:
        peer_lane = LANE_OF_PEER[wire.peer]
        key = (wire.peer, wire.sent, wire.data)
        again = key in self._seen
        self._seen.add(key)
        label, note = self.describe(wire)
        if again:
            note = "(retransmission)" + (f" {note}" if note else "")
        to_boomerang = wire.sent
        row = list(self._bars())
        left, right = sorted((peer_lane, BOOMERANG_LANE))
        start, end = _lane_x(left) + 1, _lane_x(right)
        width = end - start
        text = f" {label} " if len(label) + 4 <= width else f" {label[:width - 5]}~ "
        pointing_right = (peer_lane < BOOMERANG_LANE) == to_boomerang
        body = ["-"] * width
        if pointing_right:
            body[-1] = ">"
        else:
            body[0] = "<"
        offset = (width - len(text)) // 2
        body[offset:offset + len(text)] = text
        row[start:end] = body
        line = self._time(wire.at) + "".join(row)
        self._emit(line, note)

    def describe(self, wire: WireMessage) -> tuple[str, str]:
        """The arrow's label and the note for one message."""
        message = wire.message
        call_id = message.call_id
        if isinstance(message, Request):
            return self._describe_request(wire, message, call_id)
        assert isinstance(message, Response)
        return self._describe_response(message, self.roles.get(call_id))

    def _describe_request(self, wire: WireMessage, request: Request,
                          call_id: str) -> tuple[str, str]:
        method = request.method
        if method == "REGISTER":
            has_credentials = request.headers.get("Authorization") is not None
            return ("REGISTER " + _user(request.to.uri),
                    "with digest credentials" if has_credentials else "no credentials yet")
        if method == "BYE":
            who = "Boomerang" if not wire.sent else "mobile" if wire.peer == "mobile" else "101"
            return method, f"{who} hangs up"
        if method == "CANCEL":
            return method, "gives up ringing"
        if method != "INVITE":
            return method, ""
        number = _user(request.request_uri)
        label = f"INVITE {number}"
        if request.to_tag is not None:
            return label, "re-INVITE"
        caller, header = _identity(request)
        role = self.roles.get(call_id)
        if role is None:
            if wire.peer == "mobile" and wire.sent:
                role = "trigger"
            elif wire.peer == "mobile":
                role = "callback"
            else:
                role = "destination"
            self.roles[call_id] = role
        if role == "trigger":
            return label, f"trigger from {caller}"
        if role == "callback":
            short = "PAI" if header == "P-Asserted-Identity" else header
            return label, f"callback, caller ID {caller} ({short})"
        return label, f"call for {number}, from {caller}"

    @staticmethod
    def _describe_response(response: Response, role: str | None) -> tuple[str, str]:
        label = f"{response.status} {response.reason}"
        method = response.cseq.method
        status = response.status
        note = ""
        if method == "REGISTER":
            note = ("digest challenge" if status in (401, 407)
                    else "registered" if 200 <= status < 300 else "refused")
        elif method == "INVITE":
            if role == "trigger":
                if status >= 300:
                    note = "rejected, never answered"
                elif status >= 200:
                    note = "ANSWERED: the caller would pay"
            elif 200 <= status < 300:
                note = {"callback": "mobile answers", "destination": "101 answers"}.get(
                    role or "", "answered")
            elif status >= 300:
                note = "refused"
            elif status == 180:
                note = {"callback": "mobile rings", "destination": "101 rings"}.get(
                    role or "", "")
        return label, note

    # -- media -------------------------------------------------------------------------

    def media(self, event: MediaEvent) -> None:
        row = list(self._bars())
        row[_lane_x(LANE_OF_PEER[event.peer])] = "*"
        self._emit(self._time(event.at) + "".join(row), event.text)

    def text(self, at: float, text: str) -> None:
        """A plain line in the timeline (what the demo does next)."""
        self._emit(self._time(at) + self._bars(), text)

    def _emit(self, line: str, note: str) -> None:
        self.write(f"{line}  {note}".rstrip())
        self.lines += 1


__all__ = ["Ladder", "MediaEvent"]
