"""Registrar bindings: upsert by binding key, remove, list live ones, expire."""

from __future__ import annotations

from datetime import datetime, timedelta

from boomerang.store import Registration, Store


def _binding(now: datetime, **changes: object) -> Registration:
    fields: dict[str, object] = {
        "extension": "101", "contact_uri": "sip:101@192.0.2.10:5062;transport=udp",
        "transport": "udp", "source_host": "198.51.100.7", "source_port": 40112,
        "expires_at": now + timedelta(seconds=3600), "call_id": "reg-1@phone", "cseq": 1,
        "user_agent": "Yealink T46U", "q": 0.8, "path": ("<sip:edge.example.com;lr>",),
    }
    fields.update(changes)
    return Registration(**fields)  # type: ignore[arg-type]


async def test_upsert_stores_every_field_and_lists_it(store: Store, now: datetime) -> None:
    stored = await store.registrations.upsert(_binding(now, updated_at=now))
    assert stored == _binding(now, updated_at=now)
    assert await store.registrations.list_for("101", now) == [stored]
    assert await store.registrations.list_for("102", now) == []


async def test_reregistering_the_same_contact_replaces_the_binding(
    store: Store, now: datetime
) -> None:
    await store.registrations.upsert(_binding(now))
    refreshed = _binding(now, cseq=2, expires_at=now + timedelta(seconds=7200),
                         source_port=40999, user_agent="Yealink T46U 66.86")
    await store.registrations.upsert(refreshed)
    found = await store.registrations.list_for("101", now)
    assert [(b.cseq, b.source_port, b.expires_at) for b in found] == [
        (2, 40999, now + timedelta(seconds=7200))]


async def test_rfc5626_bindings_are_keyed_by_instance_and_reg_id(
    store: Store, now: datetime
) -> None:
    instance = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"
    await store.registrations.upsert(_binding(now, instance_id=instance, reg_id=1))
    await store.registrations.upsert(_binding(now, instance_id=instance, reg_id=2,
                                              contact_uri="sip:101@192.0.2.10:5063"))
    # Same flow, new contact address (the phone moved): replaces reg-id 1.
    await store.registrations.upsert(_binding(now, instance_id=instance, reg_id=1,
                                              contact_uri="sip:101@203.0.113.5:5062"))
    found = await store.registrations.list_for("101", now)
    assert sorted((b.reg_id, b.contact_uri) for b in found) == [
        (1, "sip:101@203.0.113.5:5062"), (2, "sip:101@192.0.2.10:5063")]


async def test_list_for_orders_by_q_and_hides_expired_bindings(
    store: Store, now: datetime
) -> None:
    await store.registrations.upsert(_binding(now, contact_uri="sip:low@a", q=0.1))
    await store.registrations.upsert(_binding(now, contact_uri="sip:default@a", q=None))
    await store.registrations.upsert(_binding(now, contact_uri="sip:gone@a",
                                              expires_at=now - timedelta(seconds=1)))
    found = await store.registrations.list_for("101", now)
    assert [b.contact_uri for b in found] == ["sip:default@a", "sip:low@a"]


async def test_remove_and_remove_all(store: Store, now: datetime) -> None:
    first = await store.registrations.upsert(_binding(now, contact_uri="sip:a@a"))
    await store.registrations.upsert(_binding(now, contact_uri="sip:b@b"))
    await store.registrations.upsert(_binding(now, extension="102"))
    assert await store.registrations.remove("101", first.binding_key)
    assert not await store.registrations.remove("101", first.binding_key)
    assert [b.contact_uri for b in await store.registrations.list_for("101", now)] == ["sip:b@b"]
    assert await store.registrations.remove_all("101") == 1
    assert [b.extension for b in await store.registrations.list_all(now)] == ["102"]


async def test_expire_deletes_only_bindings_past_their_expiry(
    store: Store, now: datetime
) -> None:
    await store.registrations.upsert(_binding(now, contact_uri="sip:old@a",
                                              expires_at=now - timedelta(seconds=5)))
    await store.registrations.upsert(_binding(now, contact_uri="sip:edge@a", expires_at=now))
    await store.registrations.upsert(_binding(now, contact_uri="sip:live@a"))
    assert await store.registrations.expire(now) == 2
    assert await store.registrations.expire(now) == 0
    assert [b.contact_uri for b in await store.registrations.list_all(now)] == ["sip:live@a"]
