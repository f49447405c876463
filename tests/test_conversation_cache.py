"""The engine's conversation cache: skips re-reading what it saved, never hides another writer's save."""

from __future__ import annotations

import pytest

from engine.runtime.conversations import ConversationCache
from engine.storage import ConflictError, Conversation, open_storage


class Counting:
    """A storage that counts conversation reads."""

    def __init__(self, storage) -> None:
        self.storage = storage
        self.loads = 0

    async def load_conversation(self, chat_id: int, user_id: int):
        self.loads += 1
        return await self.storage.load_conversation(chat_id, user_id)

    async def save_conversation(self, conversation, *, done_update_id=None):
        return await self.storage.save_conversation(conversation, done_update_id=done_update_id)


@pytest.fixture
async def store():
    storage = open_storage("sqlite://:memory:")
    await storage.migrate()
    yield storage
    await storage.close()


def fresh(**changes) -> Conversation:
    return Conversation(**{"chat_id": 1, "user_id": 2, "state": "main.menu", "data": {}, "screen": None,
                           "locale": "en", **changes})


async def test_what_was_saved_is_not_read_back(store):
    counting = Counting(store)
    cache = ConversationCache(counting)
    assert await cache.load(1, 2) is None
    await cache.save(fresh(data={"n": 1}), done_update_id=10)
    for n in range(2, 5):
        conversation = await cache.load(1, 2)
        assert conversation.data == {"n": n - 1}
        conversation.data["n"] = n
        await cache.save(conversation, done_update_id=10 + n)
    assert counting.loads == 1  # only the first, before anything was saved
    stored = await store.load_conversation(1, 2)
    assert (stored.data, stored.version) == ({"n": 4}, 4)  # write-through: storage has every save
    assert await store.inbox_pending() == []


async def test_an_update_that_did_not_save_leaves_no_trace(store):
    counting = Counting(store)
    cache = ConversationCache(counting)
    await cache.save(fresh(data={"n": 1}))
    conversation = await cache.load(1, 2)
    conversation.data["n"] = "half-done"  # the update fails here and never saves
    again = await cache.load(1, 2)
    assert again.data == {"n": 1} and counting.loads == 1  # read from storage: the last saved state


async def test_another_writer_is_detected_and_then_read(store):
    counting = Counting(store)
    cache = ConversationCache(counting)
    await cache.save(fresh(data={"who": "us"}))
    theirs = await store.load_conversation(1, 2)
    theirs.data = {"who": "them"}
    await store.save_conversation(theirs)  # another instance saves version 2
    stale = await cache.load(1, 2)  # still our version 1: nothing read
    assert stale.version == 1 and counting.loads == 0
    stale.data = {"who": "us again"}
    with pytest.raises(ConflictError):
        await cache.save(stale)  # refused, exactly as without the cache
    current = await cache.load(1, 2)
    assert (current.data, current.version, counting.loads) == ({"who": "them"}, 2, 1)
    current.data["who"] = "us, on top of them"
    assert (await cache.save(current)).version == 3


async def test_the_cache_is_bounded(store):
    cache = ConversationCache(store, size=3)
    for user in range(10):
        await cache.save(fresh(user_id=user))
    assert len(cache) == 3
    assert {key[1] for key in cache._entries} == {7, 8, 9}  # the most recently saved stay
    off = ConversationCache(store, size=0)
    await off.save(await off.load(1, 9))
    assert len(off) == 0
