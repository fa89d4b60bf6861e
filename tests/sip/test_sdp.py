"""SDP (RFC 4566) parsing/serialising and RFC 3264 offer/answer for audio."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boomerang.sip.errors import ParseError
from boomerang.sip.offer_answer import (
    G722,
    PCMA,
    PCMU,
    MediaCapabilities,
    build_answer,
    build_offer,
    format_events,
    hold_direction,
    negotiate_answer,
    next_version,
    parse_events,
)
from boomerang.sip.sdp import (
    Attribute,
    Bandwidth,
    Codec,
    Connection,
    Direction,
    ExtraLine,
    MediaDescription,
    Origin,
    SdpError,
    SessionDescription,
    Timing,
)


def sdp_bytes(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


# What SIPp sends (peers/sipp/uac_dtmf.xml with its keywords filled in).
SIPP_OFFER = sdp_bytes(
    "v=0",
    "o=sipp 53655765 2353687637 IN IP4 127.0.0.1",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 6000 RTP/AVP 0 8 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=sendrecv",
)

SIPP_ANSWER = sdp_bytes(
    "v=0",
    "o=sipp 53655765 2353687637 IN IP4 127.0.0.1",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 6002 RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=sendrecv",
)

# baresip 1.0.0 with opus, G722 and G711 loaded.
BARESIP_OFFER = sdp_bytes(
    "v=0",
    "o=- 1913583939 2961582516 IN IP4 127.0.0.1",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "a=tool:baresip 1.0.0",
    "m=audio 10004 RTP/AVP 96 9 0 8 101",
    "b=AS:64",
    "a=rtpmap:96 opus/48000/2",
    "a=fmtp:96 stereo=1;sprop-stereo=1",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=sendrecv",
    "a=label:1",
    "a=ssrc:2712548101 cname:3a0f6e1c-8a41-4f6d-bd2e-6b1a0d1c9e52",
    "a=rtcp-rsize",
    "a=ptime:20",
)

# linphone 5.1: several telephone-event clock rates, RFC 3605 rtcp, video.
LINPHONE_OFFER = sdp_bytes(
    "v=0",
    "o=anna 1817 2761 IN IP4 127.0.0.1",
    "s=Talk",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics",
    "a=record:off",
    "m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100",
    "a=rtpmap:96 opus/48000/2",
    "a=fmtp:96 useinbandfec=1",
    "a=rtpmap:97 speex/16000",
    "a=fmtp:97 vbr=on",
    "a=rtpmap:98 speex/8000",
    "a=fmtp:98 vbr=on",
    "a=fmtp:18 annexb=yes",
    "a=rtpmap:101 telephone-event/48000",
    "a=rtpmap:99 telephone-event/16000",
    "a=rtpmap:100 telephone-event/8000",
    "a=rtcp:7079",
    "a=rtcp-fb:* trr-int 1000",
    "a=rtcp-fb:* ccm tmmbr",
    "m=video 9078 RTP/AVP 96 97",
    "a=rtpmap:96 VP8/90000",
    "a=rtpmap:97 H264/90000",
    "a=fmtp:97 profile-level-id=42801F",
    "a=rtcp:9079",
    "a=rtcp-fb:* trr-int 1000",
)

# A carrier SBC: PCMA first, G729, maxptime, media on another address.
CARRIER_OFFER = sdp_bytes(
    "v=0",
    "o=Sonus_UAC 326952 210453 IN IP4 203.0.113.10",
    "s=SIP Media Capabilities",
    "c=IN IP4 203.0.113.20",
    "t=0 0",
    "m=audio 31712 RTP/AVP 8 0 18 101",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:18 G729/8000",
    "a=fmtp:18 annexb=no",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=sendrecv",
    "a=ptime:30",
    "a=maxptime:40",
)

CARRIER_IPV6_OFFER = sdp_bytes(
    "v=0",
    "o=- 1 1 IN IP6 2001:db8::10",
    "s=-",
    "c=IN IP6 2001:db8::20",
    "t=0 0",
    "m=audio 40000 RTP/AVP 8 126",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:126 telephone-event/8000",
    "a=fmtp:126 0-15",
    "a=rtcp:40001 IN IP6 2001:db8::21",
)

# Every RFC 4566 line type, in RFC order (the RFC 4566 §5 example, extended).
EVERY_LINE = sdp_bytes(
    "v=0",
    "o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5",
    "s=SDP Seminar",
    "i=A Seminar on the session description protocol",
    "u=http://www.example.com/seminars/sdp.pdf",
    "e=j.doe@example.com (Jane Doe)",
    "p=+1 617 555-6011",
    "c=IN IP4 224.2.17.12/127/2",
    "b=CT:128",
    "t=2873397496 2873404696",
    "r=604800 3600 0 90000",
    "r=7d 1h 0 25h",
    "t=0 0",
    "z=2882844526 -1h 2898848070 0",
    "k=prompt",
    "a=recvonly",
    "m=audio 49170/2 RTP/AVP 0",
    "i=voice",
    "c=IN IP4 224.2.17.12/127",
    "c=IN IP4 224.2.17.14/127",
    "b=AS:64",
    "k=clear:secret",
    "a=ptime:20",
    "m=video 51372 RTP/AVP 99",
    "a=rtpmap:99 h263-1998/90000",
    "m=application 9 UDP/BFCP *",
)

CAPS = MediaCapabilities(codecs=(PCMU, PCMA, G722))


# ---------------------------------------------------------------------------
# Parse and serialise
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [SIPP_OFFER, SIPP_ANSWER, BARESIP_OFFER, LINPHONE_OFFER, CARRIER_OFFER,
     CARRIER_IPV6_OFFER, EVERY_LINE],
    ids=["sipp-offer", "sipp-answer", "baresip", "linphone", "carrier", "carrier-ipv6",
         "every-line"],
)
def test_clean_sdp_round_trips_byte_exactly(data: bytes) -> None:
    assert SessionDescription.parse(data).serialize() == data


def test_parse_sipp_offer_fields() -> None:
    sdp = SessionDescription.parse(SIPP_OFFER)
    assert sdp.origin == Origin("sipp", "53655765", 2353687637, "127.0.0.1", "IN", "IP4")
    assert sdp.session_name == "-"
    assert sdp.connection == Connection("127.0.0.1")
    assert sdp.timings == [Timing(0, 0)]
    (audio,) = sdp.media
    assert (audio.media, audio.port, audio.protocol, audio.formats) == (
        "audio", 6000, "RTP/AVP", ["0", "8", "101"])
    assert audio.codecs() == [
        Codec("PCMU", 8000, 0), Codec("PCMA", 8000, 8),
        Codec("telephone-event", 8000, 101, fmtp="0-16"),
    ]
    assert audio.ptime_ms == 20
    assert audio.direction is Direction.SENDRECV


def test_parse_every_line_type() -> None:
    sdp = SessionDescription.parse(EVERY_LINE)
    assert sdp.information == "A Seminar on the session description protocol"
    assert sdp.uri == "http://www.example.com/seminars/sdp.pdf"
    assert sdp.emails == ["j.doe@example.com (Jane Doe)"]
    assert sdp.phones == ["+1 617 555-6011"]
    assert sdp.connection == Connection("224.2.17.12", ttl=127, address_count=2)
    assert sdp.bandwidths == [Bandwidth("CT", 128)]
    assert sdp.timings == [
        Timing(2873397496, 2873404696, ["604800 3600 0 90000", "7d 1h 0 25h"]),
        Timing(0, 0),
    ]
    assert sdp.time_zones == "2882844526 -1h 2898848070 0"
    assert sdp.encryption_key == "prompt"
    assert sdp.session_direction is Direction.RECVONLY
    audio, video, bfcp = sdp.media
    assert (audio.port, audio.port_count, audio.title) == (49170, 2, "voice")
    assert [c.address for c in audio.connections] == ["224.2.17.12", "224.2.17.14"]
    assert audio.bandwidths == [Bandwidth("AS", 64)]
    assert audio.encryption_key == "clear:secret"
    assert audio.direction is None
    assert sdp.direction_of(audio) is Direction.RECVONLY
    assert video.rtpmaps()[99].encoding_name == "h263-1998"
    assert bfcp.formats == ["*"]


def test_ipv6_connection_and_rtcp_address() -> None:
    sdp = SessionDescription.parse(CARRIER_IPV6_OFFER)
    assert sdp.origin.address_type == "IP6"
    assert sdp.connection == Connection("2001:db8::20", "IN", "IP6")
    rtcp = sdp.media[0].rtcp
    assert rtcp is not None
    assert rtcp[0] == 40001
    assert rtcp[1] == Connection("2001:db8::21", "IN", "IP6")


def test_unknown_lines_and_attributes_are_kept_in_place() -> None:
    data = sdp_bytes(
        "v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
        "y=0100000001",  # GB28181 SSRC line
        "a=x-vendor:thing",
        "m=audio 4000 RTP/AVP 0",
        "a=rtpmap:0 PCMU/8000",
        "f=v/2/25",
        "a=x-flag",
        "a=sendrecv",
    )
    sdp = SessionDescription.parse(data)
    assert sdp.extra_lines == [ExtraLine("y", "0100000001", "t", 1)]
    assert sdp.attributes == [Attribute("x-vendor", "thing")]
    assert sdp.media[0].extra_lines == [ExtraLine("f", "v/2/25", "a", 1)]
    assert sdp.media[0].attribute("x-flag") == ""
    assert sdp.serialize() == data


def test_lf_line_ends_are_accepted_and_written_as_crlf() -> None:
    lf = SIPP_OFFER.replace(b"\r\n", b"\n")
    assert SessionDescription.parse(lf).serialize() == SIPP_OFFER


def test_str_input_equals_bytes_input() -> None:
    assert SessionDescription.parse(SIPP_OFFER.decode()) == SessionDescription.parse(SIPP_OFFER)


def test_sdp_error_is_a_parse_error_with_status_400() -> None:
    with pytest.raises(ParseError) as caught:
        SessionDescription.parse(b"v=1\r\n")
    assert isinstance(caught.value, SdpError)
    assert caught.value.status == 400


def _replace_line(data: bytes, old: str, new: str | None) -> bytes:
    lines = data.decode().split("\r\n")
    index = lines.index(old)
    if new is None:
        del lines[index]
    else:
        lines[index] = new
    return "\r\n".join(lines).encode()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("v=0", None),                                   # no version line
        ("v=0", "v=1"),                                  # unknown version
        ("o=sipp 53655765 2353687637 IN IP4 127.0.0.1", None),  # no origin
        ("o=sipp 53655765 2353687637 IN IP4 127.0.0.1", "o=sipp 1 IN IP4 127.0.0.1"),
        ("o=sipp 53655765 2353687637 IN IP4 127.0.0.1", "o=sipp 1 x IN IP4 127.0.0.1"),
        ("s=-", "s=-\r\ns=again"),                        # repeated s=
        ("c=IN IP4 127.0.0.1", "c=IN IP4 999.0.0.1"),     # bad IPv4
        ("c=IN IP4 127.0.0.1", "c=IN IP6 12345::zz"),     # bad IPv6
        ("c=IN IP4 127.0.0.1", "c=IN IP4"),               # missing address
        ("c=IN IP4 127.0.0.1", "c=IN IP4 127.0.0.1\r\nc=IN IP4 127.0.0.2"),
        ("t=0 0", "t=0"),
        ("t=0 0", "r=7d 1h 0 25h\r\nt=0 0"),             # r= before t=
        ("m=audio 6000 RTP/AVP 0 8 101", "m=audio x RTP/AVP 0"),
        ("m=audio 6000 RTP/AVP 0 8 101", "m=audio 70000 RTP/AVP 0"),
        ("m=audio 6000 RTP/AVP 0 8 101", "m=audio 6000 RTP/AVP"),  # no formats
        ("a=ptime:20", "a="),                            # empty attribute
        ("a=ptime:20", "a=pt ime:20"),                   # bad attribute name
        ("a=ptime:20", "b=AS"),                          # bad bandwidth
        ("a=ptime:20", "junk"),                          # no '='
        ("a=ptime:20", "ab=c"),                          # two-letter type
        ("a=ptime:20", " a=ptime:20"),                   # leading space
    ],
)
def test_malformed_sdp_raises_sdp_error(old: str, new: str | None) -> None:
    with pytest.raises(SdpError) as caught:
        SessionDescription.parse(_replace_line(SIPP_OFFER, old, new))
    assert caught.value.status == 400


def test_empty_body_raises() -> None:
    with pytest.raises(SdpError):
        SessionDescription.parse(b"")


def test_bad_rtpmap_and_ptime_raise_when_read() -> None:
    bad = _replace_line(SIPP_OFFER, "a=rtpmap:8 PCMA/8000", "a=rtpmap:8 PCMA")
    media = SessionDescription.parse(bad).media[0]
    with pytest.raises(SdpError):
        media.codecs()
    bad = _replace_line(SIPP_OFFER, "a=ptime:20", "a=ptime:often")
    with pytest.raises(SdpError):
        _ = SessionDescription.parse(bad).media[0].ptime_ms


def test_static_payload_types_without_rtpmap() -> None:
    data = sdp_bytes("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1",
                     "t=0 0", "m=audio 4000 RTP/AVP 9 18 0 96")
    codecs = SessionDescription.parse(data).media[0].codecs()
    # 96 is dynamic without an rtpmap: it cannot be identified and is skipped
    assert codecs == [Codec("G722", 8000, 9), Codec("G729", 8000, 18), Codec("PCMU", 8000, 0)]


# ---------------------------------------------------------------------------
# Offer
# ---------------------------------------------------------------------------


def test_build_offer_writes_what_sipp_and_phones_expect() -> None:
    offer = build_offer(CAPS, "192.0.2.5", 20000, 42, 1)
    assert offer.serialize() == sdp_bytes(
        "v=0",
        "o=boomerang 42 1 IN IP4 192.0.2.5",
        "s=-",
        "c=IN IP4 192.0.2.5",
        "t=0 0",
        "m=audio 20000 RTP/AVP 0 8 9 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
    )


def test_build_offer_ipv6_rtcp_and_no_dtmf() -> None:
    caps = MediaCapabilities(codecs=(PCMA,), telephone_event=False, ptime_ms=30)
    offer = build_offer(caps, "2001:db8::5", 20000, 7, 3, "sendonly", rtcp_port=20011)
    text = offer.serialize().decode()
    assert "c=IN IP6 2001:db8::5\r\n" in text
    assert "o=boomerang 7 3 IN IP6 2001:db8::5\r\n" in text
    assert "m=audio 20000 RTP/AVP 8\r\n" in text
    assert "telephone-event" not in text
    assert "a=ptime:30\r\na=rtcp:20011\r\na=sendonly\r\n" in text


def test_next_version_for_hold_and_resume() -> None:
    offer = build_offer(CAPS, "192.0.2.5", 20000, 42, 1)
    held = next_version(offer, direction=hold_direction(Direction.SENDRECV))
    assert held.origin.session_version == 2
    assert held.media[0].direction is Direction.SENDONLY
    assert offer.origin.session_version == 1  # the original is untouched
    assert offer.media[0].direction is Direction.SENDRECV
    resumed = next_version(held, direction="sendrecv")
    assert resumed.origin.session_version == 3
    assert resumed.serialize() == offer.serialize().replace(b" 42 1 ", b" 42 3 ")


def test_next_version_without_direction_changes_only_the_version() -> None:
    offer = build_offer(CAPS, "192.0.2.5", 20000, 42, 9)
    assert next_version(offer).serialize() == offer.serialize().replace(b" 42 9 ", b" 42 10 ")


def test_hold_direction_rfc3264_section_8_4() -> None:
    assert hold_direction("sendrecv") is Direction.SENDONLY
    assert hold_direction("recvonly") is Direction.INACTIVE
    assert hold_direction("sendonly") is Direction.SENDONLY
    assert hold_direction("inactive") is Direction.INACTIVE


# ---------------------------------------------------------------------------
# Answer
# ---------------------------------------------------------------------------


def test_answer_to_sipp_offer() -> None:
    answer, media = build_answer(
        SessionDescription.parse(SIPP_OFFER), CAPS, "192.0.2.5", 20000, 77, 1
    )
    assert answer.serialize() == sdp_bytes(
        "v=0",
        "o=boomerang 77 1 IN IP4 192.0.2.5",
        "s=-",
        "c=IN IP4 192.0.2.5",
        "t=0 0",
        "m=audio 20000 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
    )
    assert media.remote_address == "127.0.0.1"
    assert media.remote_port == 6000
    assert media.remote_rtcp_port == 6001
    assert media.codec == Codec("PCMU", 8000, 0)
    assert [c.name for c in media.codecs] == ["PCMU", "PCMA"]
    assert media.telephone_event_payload_type == 101
    assert media.direction is Direction.SENDRECV
    assert media.ptime_ms == 20
    assert not media.held_by_remote


def test_answer_keeps_offerers_codec_order_not_ours() -> None:
    _, media = build_answer(SessionDescription.parse(CARRIER_OFFER), CAPS, "192.0.2.5",
                            20000, 1, 1)
    assert [c.name for c in media.codecs] == ["PCMA", "PCMU"]
    assert media.codec.payload_type == 8
    assert media.remote_address == "203.0.113.20"  # c=, not o=
    assert media.ptime_ms == 30                     # the carrier's ptime
    assert media.telephone_event_payload_type == 101


def test_answer_sends_no_longer_packets_than_maxptime() -> None:
    offer = _replace_line(CARRIER_OFFER, "a=ptime:30", "a=ptime:60")
    _, media = build_answer(SessionDescription.parse(offer), CAPS, "192.0.2.5", 20000, 1, 1)
    assert media.ptime_ms == 40


def test_answer_to_baresip_picks_g722_when_offered_first_among_ours() -> None:
    answer, media = build_answer(SessionDescription.parse(BARESIP_OFFER), CAPS, "192.0.2.5",
                                 20000, 1, 1)
    assert media.codec == Codec("G722", 8000, 9)
    assert answer.media[0].formats == ["9", "0", "8", "101"]
    assert answer.media[0].attribute_values("fmtp") == ["101 0-15"]  # mirror 0-15


def test_answer_to_linphone_mirrors_8k_telephone_event_and_rejects_video() -> None:
    answer, media = build_answer(SessionDescription.parse(LINPHONE_OFFER), CAPS, "192.0.2.5",
                                 20000, 1, 1)
    assert media.telephone_event_payload_type == 100
    assert media.remote_rtcp_port == 7079
    assert answer.media[0].formats == ["0", "8", "100"]
    video = answer.media[1]
    assert (video.media, video.port, video.protocol, video.formats) == (
        "video", 0, "RTP/AVP", ["96", "97"])
    assert video.attributes == []
    # still parseable by the other side
    assert SessionDescription.parse(answer.serialize()) == answer


def test_answer_rejects_leading_non_audio_and_keeps_positions() -> None:
    data = sdp_bytes("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1",
                     "t=0 0",
                     "m=video 5000 RTP/AVP 96", "a=rtpmap:96 H264/90000",
                     "m=audio 5002 RTP/SAVP 0",          # SRTP: we cannot
                     "m=audio 5004 RTP/AVP 18",          # no common codec
                     "m=audio 5006 RTP/AVP 8",
                     "m=audio 5008 RTP/AVP 0")           # we use one stream only
    answer, media = build_answer(SessionDescription.parse(data), CAPS, "192.0.2.5", 20000, 1, 1)
    assert [m.port for m in answer.media] == [0, 0, 0, 20000, 0]
    assert [m.media for m in answer.media] == ["video", "audio", "audio", "audio", "audio"]
    assert media.media_index == 3
    assert media.remote_port == 5006
    assert media.telephone_event_payload_type is None


def test_answer_without_common_codec_is_488() -> None:
    data = _replace_line(CARRIER_OFFER, "m=audio 31712 RTP/AVP 8 0 18 101",
                         "m=audio 31712 RTP/AVP 18 101")
    with pytest.raises(SdpError) as caught:
        build_answer(SessionDescription.parse(data), CAPS, "192.0.2.5", 20000, 1, 1)
    assert caught.value.status == 488
    assert caught.value.reason == "Not Acceptable Here"


def test_answer_to_video_only_offer_is_488() -> None:
    data = sdp_bytes("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1",
                     "t=0 0", "m=video 5000 RTP/AVP 96", "a=rtpmap:96 VP8/90000")
    with pytest.raises(SdpError) as caught:
        build_answer(SessionDescription.parse(data), CAPS, "192.0.2.5", 20000, 1, 1)
    assert caught.value.status == 488


def test_offer_with_telephone_event_only_is_488() -> None:
    data = sdp_bytes("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1",
                     "t=0 0", "m=audio 5000 RTP/AVP 101", "a=rtpmap:101 telephone-event/8000")
    with pytest.raises(SdpError) as caught:
        build_answer(SessionDescription.parse(data), CAPS, "192.0.2.5", 20000, 1, 1)
    assert caught.value.status == 488


def test_offer_without_connection_line_is_400() -> None:
    data = _replace_line(SIPP_OFFER, "c=IN IP4 127.0.0.1", None)
    with pytest.raises(SdpError) as caught:
        build_answer(SessionDescription.parse(data), CAPS, "192.0.2.5", 20000, 1, 1)
    assert caught.value.status == 400


def test_answer_without_telephone_event_when_disabled() -> None:
    caps = MediaCapabilities(codecs=(PCMU,), telephone_event=False)
    answer, media = build_answer(SessionDescription.parse(SIPP_OFFER), caps, "192.0.2.5",
                                 20000, 1, 1)
    assert answer.media[0].formats == ["0"]
    assert media.telephone_event_payload_type is None


# RFC 3264 §6.1: (offer direction, what we want) -> answer direction.
ANSWER_TABLE = [
    ("sendrecv", "sendrecv", "sendrecv"),
    ("sendrecv", "sendonly", "sendonly"),
    ("sendrecv", "recvonly", "recvonly"),
    ("sendrecv", "inactive", "inactive"),
    ("sendonly", "sendrecv", "recvonly"),
    ("sendonly", "sendonly", "inactive"),
    ("sendonly", "recvonly", "recvonly"),
    ("sendonly", "inactive", "inactive"),
    ("recvonly", "sendrecv", "sendonly"),
    ("recvonly", "sendonly", "sendonly"),
    ("recvonly", "recvonly", "inactive"),
    ("recvonly", "inactive", "inactive"),
    ("inactive", "sendrecv", "inactive"),
    ("inactive", "sendonly", "inactive"),
    ("inactive", "recvonly", "inactive"),
    ("inactive", "inactive", "inactive"),
]


@pytest.mark.parametrize(("offered", "wish", "expected"), ANSWER_TABLE)
def test_answer_direction_table(offered: str, wish: str, expected: str) -> None:
    offer = _replace_line(SIPP_OFFER, "a=sendrecv", f"a={offered}")
    answer, media = build_answer(SessionDescription.parse(offer), CAPS, "192.0.2.5", 20000,
                                 1, 1, direction=wish)
    assert answer.media[0].direction == expected
    assert media.direction == expected


def test_session_level_direction_applies_to_media() -> None:
    offer = _replace_line(SIPP_OFFER, "a=sendrecv", None)
    offer = _replace_line(offer, "t=0 0", "t=0 0\r\na=sendonly")
    answer, media = build_answer(SessionDescription.parse(offer), CAPS, "192.0.2.5", 20000, 1, 1)
    assert answer.media[0].direction is Direction.RECVONLY
    assert media.held_by_remote


def test_offer_without_direction_means_sendrecv() -> None:
    offer = _replace_line(SIPP_OFFER, "a=sendrecv", None)
    answer, _ = build_answer(SessionDescription.parse(offer), CAPS, "192.0.2.5", 20000, 1, 1)
    assert answer.media[0].direction is Direction.SENDRECV


@pytest.mark.parametrize("hold", ["a=sendonly", "a=inactive"])
def test_hold_reinvite_with_direction_attribute(hold: str) -> None:
    offer = _replace_line(SIPP_OFFER, "a=sendrecv", hold)
    _, media = build_answer(SessionDescription.parse(offer), CAPS, "192.0.2.5", 20000, 1, 2)
    assert media.held_by_remote
    assert not media.sends
    assert media.remote_port == 6000


def test_old_style_hold_with_null_connection_address() -> None:
    offer = _replace_line(SIPP_OFFER, "c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0")
    answer, media = build_answer(SessionDescription.parse(offer), CAPS, "192.0.2.5", 20000, 1, 2)
    assert media.held_by_remote
    assert media.remote_address == "0.0.0.0"
    assert media.direction is Direction.RECVONLY
    assert not media.sends and media.receives
    assert answer.media[0].direction is Direction.RECVONLY


def test_answer_copies_offer_timing() -> None:
    offer = _replace_line(SIPP_OFFER, "t=0 0", "t=3034423619 3042462419")
    answer, _ = build_answer(SessionDescription.parse(offer), CAPS, "192.0.2.5", 20000, 1, 1)
    assert answer.timings == [Timing(3034423619, 3042462419)]


def test_answer_narrows_telephone_events_to_what_we_handle() -> None:
    offer = _replace_line(SIPP_OFFER, "a=fmtp:101 0-16", "a=fmtp:101 0-15,16,32-40")
    answer, _ = build_answer(SessionDescription.parse(offer), CAPS, "192.0.2.5", 20000, 1, 1)
    assert answer.media[0].attribute_values("fmtp") == ["101 0-16"]


def test_events_fmtp_helpers() -> None:
    assert parse_events(None) == frozenset(range(16))
    assert parse_events("0-15,66,70-71") == frozenset([*range(16), 66, 70, 71])
    assert format_events(frozenset([0, 1, 2, 5, 7, 8])) == "0-2,5,7-8"
    for bad in ("1-", "a", "5-3", "0-300"):
        with pytest.raises(SdpError):
            parse_events(bad)


# ---------------------------------------------------------------------------
# Offerer side
# ---------------------------------------------------------------------------


def test_negotiate_answer_from_sipp_uas() -> None:
    offer = build_offer(CAPS, "192.0.2.5", 20000, 42, 1)
    media = negotiate_answer(offer, SessionDescription.parse(SIPP_ANSWER))
    assert media.remote_address == "127.0.0.1"
    assert media.remote_port == 6002
    assert media.remote_rtcp_port == 6003
    assert media.codec == Codec("PCMU", 8000, 0)
    assert media.telephone_event_payload_type == 101
    assert media.direction is Direction.SENDRECV
    assert media.ptime_ms == 20


def test_negotiate_answer_recvonly_means_we_only_send() -> None:
    offer = build_offer(CAPS, "192.0.2.5", 20000, 42, 1)
    answer = _replace_line(SIPP_ANSWER, "a=sendrecv", "a=recvonly")
    media = negotiate_answer(offer, SessionDescription.parse(answer))
    assert media.direction is Direction.SENDONLY


def test_negotiate_answer_on_our_own_answer_agrees_with_answerer() -> None:
    offer = build_offer(CAPS, "192.0.2.5", 20000, 42, 1)
    answer, answerer_view = build_answer(offer, MediaCapabilities(codecs=(PCMA, G722)),
                                         "192.0.2.9", 30000, 5, 1, direction="recvonly")
    offerer_view = negotiate_answer(offer, answer)
    assert offerer_view.codec == answerer_view.codec == Codec("PCMA", 8000, 8)
    assert offerer_view.direction is Direction.SENDONLY
    assert answerer_view.direction is Direction.RECVONLY
    assert (offerer_view.remote_address, offerer_view.remote_port) == ("192.0.2.9", 30000)


def test_negotiate_answer_rejected_stream_is_488() -> None:
    offer = build_offer(CAPS, "192.0.2.5", 20000, 42, 1)
    answer = _replace_line(SIPP_ANSWER, "m=audio 6002 RTP/AVP 0 101", "m=audio 0 RTP/AVP 0 101")
    with pytest.raises(SdpError) as caught:
        negotiate_answer(offer, SessionDescription.parse(answer))
    assert caught.value.status == 488


def test_negotiate_answer_with_codec_we_never_offered_is_488() -> None:
    offer = build_offer(MediaCapabilities(codecs=(PCMA,)), "192.0.2.5", 20000, 42, 1)
    with pytest.raises(SdpError) as caught:
        negotiate_answer(offer, SessionDescription.parse(SIPP_ANSWER))
    assert caught.value.status == 488


def test_negotiate_answer_with_wrong_mline_count_is_400() -> None:
    offer = build_offer(CAPS, "192.0.2.5", 20000, 42, 1)
    answer = SessionDescription.parse(SIPP_ANSWER)
    answer.media.append(MediaDescription("video", 0, "RTP/AVP", ["96"]))
    with pytest.raises(SdpError) as caught:
        negotiate_answer(offer, answer)
    assert caught.value.status == 400


# ---------------------------------------------------------------------------
# Round-trip property
# ---------------------------------------------------------------------------

_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._",
                 min_size=1, max_size=12)
# Free text of i=, u=, e=, p=, z=, k=, r= and attribute values: no CR, LF or NUL.
_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=30)
_UINT = st.integers(min_value=0, max_value=2**40)


@st.composite
def _connections(draw: st.DrawFn) -> Connection:
    if draw(st.booleans()):
        address = str(draw(st.ip_addresses(v=4)))
        ttl = draw(st.none() | st.integers(0, 255))
        count = draw(st.none() | st.integers(1, 9)) if ttl is not None else None
        return Connection(address, "IN", "IP4", ttl, count)
    address = str(draw(st.ip_addresses(v=6)))
    return Connection(address, "IN", "IP6", None, draw(st.none() | st.integers(1, 9)))


_ATTRIBUTES = st.lists(st.builds(Attribute, _TOKEN, st.none() | _TEXT), max_size=5)
_BANDWIDTHS = st.lists(st.builds(Bandwidth, _TOKEN, _UINT), max_size=2)


@st.composite
def _media(draw: st.DrawFn) -> MediaDescription:
    port = draw(st.integers(0, 65535))
    formats = draw(st.lists(_TOKEN, min_size=0 if port == 0 else 1, max_size=5))
    return MediaDescription(
        media=draw(_TOKEN), port=port, protocol=draw(st.sampled_from(
            ["RTP/AVP", "RTP/AVPF", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", "udp"])),
        formats=formats, port_count=draw(st.none() | st.integers(1, 8)),
        title=draw(st.none() | _TEXT), connections=draw(st.lists(_connections(), max_size=2)),
        bandwidths=draw(_BANDWIDTHS), encryption_key=draw(st.none() | _TEXT),
        attributes=draw(_ATTRIBUTES),
        extra_lines=draw(st.lists(st.builds(
            ExtraLine, st.sampled_from("dfghjlnqwxy"), _TEXT,
            st.sampled_from("mica"), st.integers(0, 3)), max_size=2)),
    )


@st.composite
def _sessions(draw: st.DrawFn) -> SessionDescription:
    return SessionDescription(
        origin=Origin(draw(_TOKEN), str(draw(_UINT)), draw(_UINT),
                      draw(st.sampled_from(["127.0.0.1", "2001:db8::1", "host.example"])),
                      "IN", draw(st.sampled_from(["IP4", "IP6"]))),
        session_name=draw(st.none() | _TEXT),
        information=draw(st.none() | _TEXT),
        uri=draw(st.none() | _TEXT),
        emails=draw(st.lists(_TEXT, max_size=2)),
        phones=draw(st.lists(_TEXT, max_size=2)),
        connection=draw(st.none() | _connections()),
        bandwidths=draw(_BANDWIDTHS),
        timings=draw(st.lists(st.builds(Timing, _UINT, _UINT, st.lists(_TEXT, max_size=2)),
                              max_size=2)),
        time_zones=draw(st.none() | _TEXT),
        encryption_key=draw(st.none() | _TEXT),
        attributes=draw(_ATTRIBUTES),
        media=draw(st.lists(_media(), max_size=3)),
        extra_lines=draw(st.lists(st.builds(
            ExtraLine, st.sampled_from("dfghjlnqwxy"), _TEXT,
            st.sampled_from("osctra"), st.integers(0, 3)), max_size=2)),
    )


def _without_extras(sdp: SessionDescription) -> bool:
    return not sdp.extra_lines and not any(m.extra_lines for m in sdp.media)


@settings(max_examples=150, deadline=None)
@given(_sessions())
def test_round_trip_property(sdp: SessionDescription) -> None:
    data = sdp.serialize()
    parsed = SessionDescription.parse(data)
    assert parsed.serialize() == data
    if _without_extras(sdp):
        assert parsed == sdp
    assert parsed.copy() == parsed
