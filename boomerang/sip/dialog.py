"""Dialogs (RFC 3261 §12, §13.2.2.4, §14, §15; RFC 3311 for UPDATE).

A ``Dialog`` holds the state RFC 3261 §12 names: the dialog id (Call-ID,
local tag, remote tag), local and remote sequence numbers, local and remote
URI, remote target, route set and secure flag, plus what re-INVITE and
UPDATE glare handling needs (§14, RFC 3311 §5.2). It builds in-dialog
requests (§12.2.1.1) and checks incoming ones (§12.2.2). It never sends
anything, reads no clock and draws no random number: ids come from an
injected ``IdGenerator``, the §14.1 glare back-off takes its random draw as
an argument.

States, as a table (input -> next state; a missing pair is an error):

    early      + 2xx to the INVITE (sent or received)        -> confirmed
    early      + non-2xx final to the INVITE                  -> terminated
    early      + BYE (sent by the caller, or received)        -> terminated
    confirmed  + BYE (sent or received)                       -> terminated
    confirmed  + 481 / 408 to an in-dialog request            -> terminated
    early      + 481 / 408 to an in-dialog request            -> terminated

``DialogSet`` keeps the dialogs one forked INVITE creates (§13.2.2.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .errors import SipError
from .grammar import has_param
from .headers import NameAddr
from .ids import IdGenerator
from .message import Headers, Request, Response
from .uri import SipUri, Uri

MAX_FORWARDS = 70

# Requests that change the remote target (RFC 3261 §12.2, RFC 3311, RFC 6665).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})
# Requests that carry our Contact (the target refresh requests).
_CONTACT_METHODS = TARGET_REFRESH_METHODS
# SIP URI parameters not allowed in a Request-URI (RFC 3261 §19.1.1 table).
_NOT_IN_REQUEST_URI = frozenset({"method"})


class DialogError(SipError):
    """A request or response that does not fit the dialog; ``status`` is the answer.

    481 when it matches no dialog (or this dialog is gone), 500 for an
    out-of-order CSeq (§12.2.2) or an INVITE overlapping one we are still
    answering (§14.2), 491 for glare (§14.2, RFC 3311 §5.2).
    """

    status = 500
    reason = "Server Internal Error"


class DialogState(StrEnum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class DialogId:
    """RFC 3261 §12: Call-ID, local tag and remote tag ('' when the peer sent none)."""

    call_id: str
    local_tag: str
    remote_tag: str


# (state, input) -> next state; see the module docstring.
_TRANSITIONS: dict[tuple[DialogState, str], DialogState] = {
    (DialogState.EARLY, "invite_2xx"): DialogState.CONFIRMED,
    (DialogState.EARLY, "invite_failed"): DialogState.TERMINATED,
    (DialogState.EARLY, "bye"): DialogState.TERMINATED,
    (DialogState.EARLY, "gone"): DialogState.TERMINATED,
    (DialogState.CONFIRMED, "invite_2xx"): DialogState.CONFIRMED,
    (DialogState.CONFIRMED, "bye"): DialogState.TERMINATED,
    (DialogState.CONFIRMED, "gone"): DialogState.TERMINATED,
    (DialogState.TERMINATED, "gone"): DialogState.TERMINATED,
}


def glare_retry_after_s(is_owner_of_call_id: bool, draw: float) -> float:
    """RFC 3261 §14.1: wait before retrying a re-INVITE that got 491.

    ``draw`` is a uniform random number in [0, 1) supplied by the caller.
    The owner of the Call-ID waits 2.1 to 4 s, the other side 0 to 2 s, in
    units of 10 ms.
    """
    if not 0.0 <= draw < 1.0:
        raise ValueError(f"draw must be in [0, 1), not {draw}")
    if is_owner_of_call_id:
        return round(2.1 + int(draw * 191) / 100, 2)
    return round(int(draw * 201) / 100, 2)


def _contact_uri(message: Request | Response) -> Uri | None:
    contacts = message.contacts
    return contacts[0].uri if contacts else None


def _contact_text(message: Request | Response) -> str | None:
    value = message.headers.get("Contact")
    if value is None or value.strip() == "*":
        return None
    return str(message.contacts[0])


def _request_uri_of(uri: Uri) -> Uri:
    """``uri`` without the parameters and headers a Request-URI may not carry."""
    if not isinstance(uri, SipUri):
        return uri
    params = [(k, v) for k, v in uri.params if k.lower() not in _NOT_IN_REQUEST_URI]
    if len(params) == len(uri.params) and uri.headers is None:
        return uri
    return SipUri(uri.host, uri.user, uri.password, uri.port, uri.scheme, params, None)


class Dialog:
    """One dialog, either side. Build with ``from_uas`` or ``from_uac``."""

    __slots__ = (
        "id",
        "is_caller",
        "local_contact",
        "local_header",
        "local_invite_pending",
        "local_offer_pending",
        "local_party",
        "local_seq",
        "remote_header",
        "remote_invite_pending",
        "remote_offer_pending",
        "remote_party",
        "remote_seq",
        "remote_target",
        "route_set",
        "secure",
        "state",
    )

    id: DialogId
    state: DialogState
    local_party: NameAddr
    remote_party: NameAddr
    local_header: str
    remote_header: str
    local_seq: int | None
    remote_seq: int | None
    remote_target: Uri
    route_set: tuple[NameAddr, ...]
    secure: bool
    is_caller: bool
    local_contact: str | None
    local_invite_pending: bool
    remote_invite_pending: bool
    local_offer_pending: bool
    remote_offer_pending: bool

    def __init__(
        self,
        *,
        id: DialogId,
        state: DialogState,
        local_party: NameAddr,
        remote_party: NameAddr,
        local_header: str,
        remote_header: str,
        local_seq: int | None,
        remote_seq: int | None,
        remote_target: Uri,
        route_set: tuple[NameAddr, ...],
        secure: bool,
        is_caller: bool,
        local_contact: str | None,
    ) -> None:
        self.id = id
        self.state = state
        self.local_party = local_party
        self.remote_party = remote_party
        # From / To values as they were first written, tags included, reused verbatim
        self.local_header = local_header
        self.remote_header = remote_header
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.remote_target = remote_target
        self.route_set = route_set
        self.secure = secure
        self.is_caller = is_caller
        self.local_contact = local_contact
        self.local_invite_pending = False
        self.remote_invite_pending = False
        self.local_offer_pending = False
        self.remote_offer_pending = False

    # -- creation -------------------------------------------------------------

    @classmethod
    def from_uas(cls, request: Request, response: Response, *, over_tls: bool = False) -> Dialog:
        """The dialog our 101-299 ``response`` (with a To tag) to ``request`` creates (§12.1.1)."""
        local_tag = response.to_tag
        if not 101 <= response.status <= 299 or not local_tag:
            raise DialogError(f"a {response.status} without To tag creates no dialog")
        remote_target = _contact_uri(request)
        if remote_target is None:
            raise DialogError("request without Contact creates no dialog", status=400,
                              reason="Bad Request")
        remote_party = request.from_
        dialog = cls(
            id=DialogId(request.call_id, local_tag, remote_party.tag or ""),
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            local_party=response.to,
            remote_party=remote_party,
            local_header=(response.headers.get("To") or "").strip(),
            remote_header=(request.headers.get("From") or "").strip(),
            local_seq=None,
            remote_seq=request.cseq.number,
            remote_target=remote_target,
            route_set=tuple(request.name_addrs("Record-Route")),
            secure=over_tls and request.request_uri.scheme == "sips",
            is_caller=False,
            local_contact=_contact_text(response),
        )
        if request.method == "INVITE":
            offer_in_request = bool(request.body)
            dialog.remote_invite_pending = response.status < 200
            dialog.remote_offer_pending = offer_in_request and not response.body
            dialog.local_offer_pending = not offer_in_request and bool(response.body) \
                and response.status >= 200
        return dialog

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> Dialog:
        """The dialog a received 101-299 ``response`` with a To tag creates (§12.1.2).

        A response without Contact (a broken 18x) leaves the Request-URI as
        remote target until a later response brings one.
        """
        remote_tag = response.to_tag
        if not 101 <= response.status <= 299 or not remote_tag:
            raise DialogError(f"a {response.status} without To tag creates no dialog")
        local_party = request.from_
        remote_target = _contact_uri(response) or request.request_uri
        dialog = cls(
            id=DialogId(request.call_id, local_party.tag or "", remote_tag),
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            local_party=local_party,
            remote_party=response.to,
            local_header=(request.headers.get("From") or "").strip(),
            remote_header=(response.headers.get("To") or "").strip(),
            local_seq=request.cseq.number,
            remote_seq=None,
            remote_target=remote_target,
            route_set=tuple(reversed(response.name_addrs("Record-Route"))),
            secure=request.request_uri.scheme == "sips",
            is_caller=True,
            local_contact=_contact_text(request),
        )
        if request.method == "INVITE":
            offer_in_request = bool(request.body)
            dialog.local_invite_pending = response.status < 200
            dialog.local_offer_pending = offer_in_request and not response.body
            dialog.remote_offer_pending = not offer_in_request and bool(response.body) \
                and response.status >= 200
        return dialog

    # -- reading ----------------------------------------------------------------

    @property
    def local_uri(self) -> Uri:
        return self.local_party.uri

    @property
    def remote_uri(self) -> Uri:
        return self.remote_party.uri

    @property
    def offer_pending(self) -> bool:
        """We sent an offer (INVITE, UPDATE or 2xx) and have no answer yet."""
        return self.local_offer_pending

    @property
    def is_early(self) -> bool:
        return self.state is DialogState.EARLY

    @property
    def is_confirmed(self) -> bool:
        return self.state is DialogState.CONFIRMED

    @property
    def is_terminated(self) -> bool:
        return self.state is DialogState.TERMINATED

    def next_hop(self) -> Uri:
        """The URI to resolve (RFC 3263) and send the next request to."""
        return self.route_set[0].uri if self.route_set else self.remote_target

    def glare_retry_after_s(self, draw: float) -> float:
        """§14.1 back-off after a 491; the caller (UAC of the INVITE) owns the Call-ID."""
        return glare_retry_after_s(self.is_caller, draw)

    def matches(self, message: Request | Response) -> bool:
        """Whether a request from the peer, or a response to our request, is ours."""
        if message.call_id != self.id.call_id:
            return False
        if isinstance(message, Request):
            local_tag, remote_tag = message.to_tag, message.from_tag
        else:
            local_tag, remote_tag = message.from_tag, message.to_tag
        return (local_tag or "") == self.id.local_tag and (remote_tag or "") == self.id.remote_tag

    def _move(self, event: str) -> None:
        try:
            self.state = _TRANSITIONS[(self.state, event)]
        except KeyError:
            raise DialogError(f"{event} in dialog state {self.state}") from None

    # -- building requests (§12.2.1.1) -------------------------------------------

    def _target_and_routes(self) -> tuple[str, list[str]]:
        if not self.route_set:
            return str(self.remote_target), []
        first = self.route_set[0]
        if isinstance(first.uri, SipUri) and has_param(first.uri.params, "lr"):
            return str(self.remote_target), [str(route) for route in self.route_set]
        # strict router: it goes in the Request-URI, the remote target last in Route
        routes = [str(route) for route in self.route_set[1:]]
        routes.append(f"<{self.remote_target}>")
        return str(_request_uri_of(first.uri)), routes

    def _build(
        self,
        method: str,
        cseq: int,
        ids: IdGenerator,
        sent_by: str,
        transport: str,
        body: bytes,
        content_type: str | None,
        headers: tuple[tuple[str, str], ...] | list[tuple[str, str]],
    ) -> Request:
        uri, routes = self._target_and_routes()
        out = Headers()
        out.add("Via", f"SIP/2.0/{transport.upper()} {sent_by};branch={ids.branch()};rport")
        out.add("Max-Forwards", str(MAX_FORWARDS))
        if routes:
            out.add("Route", ", ".join(routes))
        out.add("From", self.local_header)
        out.add("To", self.remote_header)
        out.add("Call-ID", self.id.call_id)
        out.add("CSeq", f"{cseq} {method}")
        if method in _CONTACT_METHODS and self.local_contact is not None:
            out.add("Contact", self.local_contact)
        for name, value in headers:
            out.add(name, value)
        if body and content_type is not None:
            out.add("Content-Type", content_type)
        return Request(method, uri, out, body)

    def create_request(
        self,
        method: str,
        ids: IdGenerator,
        *,
        sent_by: str,
        transport: str = "UDP",
        body: bytes = b"",
        content_type: str | None = None,
        headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
    ) -> Request:
        """A request within the dialog (§12.2.1.1); ACK and CANCEL are not built here.

        ``sent_by`` is our Via host[:port]. The local CSeq is incremented.
        An INVITE or UPDATE with a body counts as our offer; a BYE ends the
        dialog. Raises DialogError when the dialog cannot carry ``method``.
        """
        method = method.upper()
        if method in ("ACK", "CANCEL"):
            raise ValueError(f"{method} is not built by create_request (use create_ack)")
        if self.state is DialogState.TERMINATED:
            raise DialogError(f"{method} on a terminated dialog", status=481,
                              reason="Call/Transaction Does Not Exist")
        if method == "BYE" and self.state is DialogState.EARLY and not self.is_caller:
            raise DialogError("the callee cannot send BYE on an early dialog (§15)")
        if method == "INVITE" and (self.local_invite_pending or self.remote_invite_pending):
            raise DialogError("re-INVITE while an INVITE is in progress (§14.1)", status=491,
                              reason="Request Pending")
        cseq = 1 if self.local_seq is None else self.local_seq + 1
        request = self._build(method, cseq, ids, sent_by, transport, body, content_type, headers)
        self.local_seq = cseq
        if method == "INVITE":
            self.local_invite_pending = True
        if method in ("INVITE", "UPDATE") and body:
            self.local_offer_pending = True
        elif method == "BYE":
            self._move("bye")
        return request

    def create_ack(
        self,
        invite_cseq: int,
        ids: IdGenerator,
        *,
        sent_by: str,
        transport: str = "UDP",
        body: bytes = b"",
        content_type: str | None = None,
        headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
    ) -> Request:
        """The ACK for a 2xx to the INVITE with CSeq ``invite_cseq`` (§13.2.2.4).

        Same CSeq number, method ACK, a new branch. A body is our answer to
        an offer the 2xx carried.
        """
        if body:
            self.remote_offer_pending = False
        return self._build("ACK", invite_cseq, ids, sent_by, transport, body, content_type,
                           headers)

    # -- requests from the peer (§12.2.2) ------------------------------------------

    def receive_request(self, request: Request) -> None:
        """Check and apply a request the peer sent in this dialog.

        Raises DialogError: 481 when it is not for this dialog (or the
        dialog has ended), 500 for a CSeq lower than the last one or an
        INVITE that overlaps one we are still answering, 491 for a re-INVITE
        or UPDATE offer that collides with ours (glare). Target refresh
        requests replace the remote target with their Contact.
        """
        if not self.matches(request):
            raise DialogError("request does not match the dialog", status=481,
                              reason="Call/Transaction Does Not Exist")
        method = request.method
        if self.state is DialogState.TERMINATED and method != "ACK":
            raise DialogError(f"{method} on a terminated dialog", status=481,
                              reason="Call/Transaction Does Not Exist")
        number = request.cseq.number
        if method == "ACK":
            if request.body:
                self.local_offer_pending = False
            return
        if method != "CANCEL":
            if self.remote_seq is not None and number < self.remote_seq:
                raise DialogError(
                    f"CSeq {number} lower than {self.remote_seq}: out of order (§12.2.2)"
                )
            self.remote_seq = number
        has_offer = bool(request.body)
        if method == "INVITE":
            if self.remote_invite_pending:
                raise DialogError("INVITE while the previous one is unanswered (§14.2)")
            if self.local_invite_pending or self.local_offer_pending:
                raise DialogError("re-INVITE glare (§14.2)", status=491, reason="Request Pending")
        elif method == "UPDATE" and has_offer:
            if self.local_offer_pending:
                raise DialogError("UPDATE glare (RFC 3311 §5.2)", status=491,
                                  reason="Request Pending")
            if self.remote_offer_pending:
                raise DialogError("UPDATE offer while their last offer is unanswered")
        if method in TARGET_REFRESH_METHODS:
            target = _contact_uri(request)
            if target is not None:
                self.remote_target = target
        if method == "INVITE":
            self.remote_invite_pending = True
            self.remote_offer_pending = has_offer
        elif method == "UPDATE" and has_offer:
            self.remote_offer_pending = True
        elif method == "BYE":
            self._move("bye")

    def response_sent(self, request: Request, response: Response) -> None:
        """Record our final (or early) response to the peer's ``request``.

        A 2xx to the INVITE that made the dialog confirms it (UAS side). A
        final response ends the INVITE in progress; a body in a response to
        an offer is our answer, a body in a 2xx to an offer-less INVITE is
        our offer.
        """
        method = request.method
        if response.status < 200:
            return
        if method == "INVITE":
            self.remote_invite_pending = False
            if 200 <= response.status < 300:
                if self.state is DialogState.EARLY:
                    self._move("invite_2xx")
                if self.remote_offer_pending:
                    self.remote_offer_pending = not response.body
                elif response.body:
                    self.local_offer_pending = True
                if response.headers.get("Contact") is not None:
                    self.local_contact = _contact_text(response)
            else:
                self.remote_offer_pending = False
                if self.state is DialogState.EARLY:
                    self._move("invite_failed")
        elif method == "UPDATE":
            self.remote_offer_pending = False

    # -- responses to our requests (§12.2.1.2, §13.2.2.4) ---------------------------

    def update_from_response(self, response: Response) -> None:
        """Apply a response to a request we sent in this dialog.

        2xx to an INVITE confirms an early dialog and recomputes its route
        set (§13.2.2.4); a 2xx to a target refresh replaces the remote
        target with its Contact. 481 and 408 end the dialog (§12.2.1.2).
        """
        if response.call_id != self.id.call_id or (response.to_tag or "") != self.id.remote_tag:
            raise DialogError("response does not match the dialog", status=481,
                              reason="Call/Transaction Does Not Exist")
        status = response.status
        method = response.cseq.method
        if status in (408, 481):
            self._move("gone")
            self.local_invite_pending = self.local_offer_pending = False
            return
        if method == "INVITE":
            if status < 200:
                if response.body and self.local_offer_pending:
                    self.local_offer_pending = False
                return
            self.local_invite_pending = False
            if status < 300:
                if self.state is DialogState.EARLY:
                    self.route_set = tuple(reversed(response.name_addrs("Record-Route")))
                if self.state is not DialogState.TERMINATED:
                    self._move("invite_2xx")
                if self.local_offer_pending:
                    self.local_offer_pending = not response.body
                elif response.body:
                    self.remote_offer_pending = True
            else:
                self.local_offer_pending = False
                if self.state is DialogState.EARLY:
                    self._move("invite_failed")
                return
        elif method == "UPDATE" and status >= 200:
            self.local_offer_pending = False
        if 200 <= status < 300 and method in TARGET_REFRESH_METHODS:
            target = _contact_uri(response)
            if target is not None:
                self.remote_target = target

    def __repr__(self) -> str:
        return f"<Dialog {self.id.call_id} {self.id.local_tag}/{self.id.remote_tag} {self.state}>"


class DialogSet:
    """The dialogs one INVITE of ours creates when a proxy forks it (§13.2.2.4).

    Early dialogs are kept by remote tag. The first 2xx confirms its dialog
    (``confirmed``); a 2xx from another branch creates a dialog the caller
    must ACK and then end with BYE (``surplus``). A final non-2xx ends the
    INVITE and every early dialog.
    """

    __slots__ = ("confirmed", "dialogs", "request", "surplus")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.dialogs: dict[str, Dialog] = {}
        self.confirmed: Dialog | None = None
        self.surplus: list[Dialog] = []

    def receive_response(self, response: Response) -> Dialog | None:
        """The dialog ``response`` belongs to (created if new); None for 100 or no tag.

        On a 2xx, check ``dialog is set.confirmed``: if not, it is a
        surplus dialog to ACK and BYE.
        """
        tag = response.to_tag
        status = response.status
        if status >= 300:
            for dialog in self.dialogs.values():
                dialog.local_invite_pending = dialog.local_offer_pending = False
                if dialog.is_early:
                    dialog._move("invite_failed")
            return self.dialogs.get(tag or "")
        if status < 101 or not tag:
            return None
        known = self.dialogs.get(tag)
        if known is None:
            dialog = Dialog.from_uac(self.request, response)
            self.dialogs[tag] = dialog
        else:
            dialog = known
            dialog.update_from_response(response)
        if status >= 200:
            if self.confirmed is None:
                self.confirmed = dialog
            elif dialog is not self.confirmed and dialog not in self.surplus:
                self.surplus.append(dialog)
        return dialog

    @property
    def early(self) -> list[Dialog]:
        return [d for d in self.dialogs.values() if d.is_early]


__all__ = [
    "MAX_FORWARDS",
    "TARGET_REFRESH_METHODS",
    "Dialog",
    "DialogError",
    "DialogId",
    "DialogSet",
    "DialogState",
    "glare_retry_after_s",
]
