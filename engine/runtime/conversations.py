"""The conversations this process saved last, so an update does not read back what it just wrote.

Write-through: every change is still saved to storage with optimistic
versioning, exactly as before; the cache only replaces the read at the start
of the next update of the same user. That read is redundant while one
process handles a user — one poller per bot token, and per-user ordering
inside the process — and it costs a storage round trip per update.

When the assumption breaks (another instance saved the conversation first),
nothing is lost: the save fails with ConflictError exactly as without the
cache, the entry is dropped, and the next update reads storage again.

An entry is taken out while an update works on it and put back only when
its save succeeded, so a failed update never leaves a half-changed
conversation behind: the next read is storage's (the last saved state).
"""

from __future__ import annotations

from engine.storage import ConflictError, Conversation, Storage

# Conversations kept; the oldest is forgotten first (it is only a read saved, never data lost).
DEFAULT_SIZE = 10_000


class ConversationCache:
    def __init__(self, storage: Storage, size: int = DEFAULT_SIZE) -> None:
        self.storage = storage
        self.size = size
        self._entries: dict[tuple[int, int], Conversation] = {}

    async def load(self, chat_id: int, user_id: int) -> Conversation | None:
        """The conversation as last saved (taken out of the cache: save it to put it back)."""
        conversation = self._entries.pop((chat_id, user_id), None)
        if conversation is not None:
            return conversation
        return await self.storage.load_conversation(chat_id, user_id)

    async def save(self, conversation: Conversation, *, done_update_id: int | None = None) -> Conversation:
        """Save through to storage (see Storage.save_conversation); remember the saved version.

        The caller must not change `conversation` afterwards: the saved copy shares its data.
        """
        key = (conversation.chat_id, conversation.user_id)
        try:
            saved = await self.storage.save_conversation(conversation, done_update_id=done_update_id)
        except ConflictError:
            self._entries.pop(key, None)
            raise
        if self.size > 0:
            self._entries.pop(key, None)
            if len(self._entries) >= self.size:
                del self._entries[next(iter(self._entries))]  # the least recently saved
            self._entries[key] = saved
        return saved

    def forget(self, chat_id: int, user_id: int) -> None:
        self._entries.pop((chat_id, user_id), None)

    def __len__(self) -> int:
        return len(self._entries)
