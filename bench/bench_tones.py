"""Cost per packet of sending the dial tone to N streams (sans-I/O part only).

For each of N streams: take the next precomputed PCMU frame
(``TonePlayer.next_frame``) and build its RTP packet (``RtpSender.packet``),
in rounds of 20 ms, as the pacing loop will. Prints microseconds per packet
and the share of one core that N streams need at 50 packets/s each.

    python bench/bench_tones.py [--streams 1000] [--seconds 2]
"""

from __future__ import annotations

import argparse
import gc
import time

from boomerang.media.codecs import PCMA, PCMU
from boomerang.media.rtp import RtpPacket
from boomerang.media.stream import RtpSender
from boomerang.media.tones import ToneBank, tone_plan


def run(streams: int, seconds: float) -> None:
    bank = ToneBank()
    started = time.perf_counter()
    for country in ("pl", "uk", "us"):
        for codec in (PCMU, PCMA):
            bank.frames(tone_plan(country).dial, codec)
    render_ms = (time.perf_counter() - started) * 1000
    dial = tone_plan("pl").dial
    players = [bank.player(dial, PCMU) for _ in range(streams)]
    senders = [RtpSender(ssrc=i + 1, payload_type=0, timestamp_step=160,
                         initial_sequence_number=i, initial_timestamp=i * 7)
               for i in range(streams)]
    pairs = list(zip(players, senders, strict=True))
    rounds = max(1, int(seconds * 50))
    gc.collect()
    started = time.perf_counter()
    packets = 0
    for _ in range(rounds):
        for player, sender in pairs:
            sender.packet(player.next_frame())
        packets += streams
    elapsed = time.perf_counter() - started
    per_packet_us = elapsed / packets * 1e6
    # The general-purpose serializer, for comparison.
    frame = players[0].next_frame()
    started = time.perf_counter()
    for i in range(20_000):
        RtpPacket(payload_type=0, sequence_number=i & 0xFFFF, timestamp=i * 160, ssrc=1,
                  payload=frame).serialize()
    serialize_us = (time.perf_counter() - started) / 20_000 * 1e6
    core_share = per_packet_us * 50 * streams / 1e6
    print(f"rendering 6 dial tones (3 plans x PCMU/PCMA): {render_ms:.1f} ms once per process")
    print(f"{streams} dial-tone streams, {packets} packets: "
          f"{per_packet_us:.2f} us/packet (next_frame + RTP header)")
    print(f"RtpPacket(...).serialize() alone: {serialize_us:.2f} us/packet")
    print(f"{streams} streams x 50 packets/s = {core_share:.1%} of one core "
          f"(before the socket send); one core fits ~{int(1e6 / per_packet_us / 50)} streams")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=2.0, help="media time to produce")
    arguments = parser.parse_args()
    run(arguments.streams, arguments.seconds)


if __name__ == "__main__":
    main()
