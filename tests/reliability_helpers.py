"""The reliability run: simulated users throw every kind of input at a bot and each update is checked.

Used by tests/test_reliability.py. One :class:`ReliabilityRun` drives several
users at once over one :class:`BotUnderTest`. Each user is a task that sends
one update at a time and waits until the runtime has finished handling it
before sending the next, so everything that appears in the user's chat in
between belongs to that update. Users run concurrently, so the runtime sees
interleaved traffic from all of them.

Per update the run checks:

* it got a visible answer: a bot message sent or edited in the user's chat,
  plus the callback answer for a press, or the ``answerPreCheckoutQuery``
  for a pre-checkout query (updates without a user need no answer);
* what the engine said where that can be known from outside (a stale or
  malformed press is called out of date, a current one is not; commands land
  in their state);
* the conversation in storage is in a real state of the project, and its
  screen belongs to that state;
* apologies are attributed: to a Telegram failure injected into that very
  update (expected), to a known open issue, or reported as a bug;
* Telegram refused none of the update's calls, except the failures injected
  into it, rate limits (429, waited out) and 403s while the user has blocked
  the bot (a press then still gets its callback answer, and nothing else is
  attempted).

At the end: every ERROR log record is accounted for, the fake Telegram had no
internal error, the inbox holds no unfinished update, and the ledger adds up
(every hold settled; balance = credits - captures).

Every random choice comes from ``random.Random(f"{seed}:{user}")``, so a run
replays the same inputs as long as the bot answers the same way; the seed is
printed with every failure.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import string
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from engine.language.callback_data import decode, encode
from engine.language.model import Project
from engine.runtime.texts import SYSTEM_TEXTS
from engine.testing.fake_telegram import (
    CallbackRecord,
    Charge,
    ChatMessage,
    FakeTelegram,
    Invoice,
    Media,
    PreCheckoutRecord,
)
from engine.testing.harness import BotUnderTest
from engine.testing.user_client import UserClient

# ----------------------------------------------------------------- fake Telegram


class ChaosTelegram(FakeTelegram):
    """The strict fake, plus failures armed for one chat: the next matching call of that chat fails.

    ``fail_next`` of the plain fake hits whichever chat calls next; arming per
    chat keeps a failure inside the update that asked for it, so a run is
    reproducible and an apology can be traced to its cause.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.armed: dict[int, tuple[str, int, int | None]] = {}  # chat -> (method, code, retry_after)
        self.fired: dict[int, list[str]] = {}  # chat -> "method:code" that were failed on purpose

    def arm(self, chat_id: int, method: str, code: int, retry_after: int | None = None) -> None:
        self.armed[chat_id] = (method, code, retry_after)

    def disarm(self, chat_id: int) -> list[str]:
        self.armed.pop(chat_id, None)
        return self.fired.pop(chat_id, [])

    async def call(self, method: str, params: dict[str, Any], files: Any = None) -> tuple[int, dict[str, Any]]:
        chat_id = self._chat_of_call(method, params)
        armed = self.armed.get(chat_id) if chat_id is not None else None
        if armed is not None and armed[0].lower() == method.lower():
            del self.armed[chat_id]
            name, code, retry_after = armed
            self.fired.setdefault(chat_id, []).append(f"{name}:{code}")
            if code == 429:
                self.fail_next(method, retry_after=retry_after or 1)
            else:
                self.fail_next(method, error_code=code, description=_DESCRIPTIONS[code])
            # super().call takes the failure before its first await: no other call can steal it.
        return await super().call(method, params, files)

    def _chat_of_call(self, method: str, params: dict[str, Any]) -> int | None:
        try:
            name = method.lower()
            if name == "answercallbackquery":
                record = self.callback_queries.get(str(params.get("callback_query_id")))
                return record.chat_id if record else None
            if name == "answerprecheckoutquery":
                pre = self.pre_checkouts.get(str(params.get("pre_checkout_query_id")))
                return pre.chat_id if pre else None
            if name == "refundstarpayment":
                return int(params["user_id"])
            if "chat_id" in params:
                return int(params["chat_id"])
        except (KeyError, TypeError, ValueError):
            return None
        return None


_DESCRIPTIONS = {500: "Internal Server Error", 502: "Bad Gateway"}

# What a failure injected into one update may cost it: Telegram failing a call for
# real leaves the runtime an apology at most (5xx) or a wait (429).
INJECTABLE = [
    ("sendMessage", 500), ("sendMessage", 502), ("sendPhoto", 500), ("editMessageText", 500),
    ("answerCallbackQuery", 500), ("sendMessage", 429), ("editMessageText", 429),
    ("answerCallbackQuery", 429), ("answerPreCheckoutQuery", 500),
]

# ----------------------------------------------------------------- log capture


class Records(logging.Handler):
    """Every WARNING and above, from every logger, while the run lasts."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> "Records":
        root = logging.getLogger()
        self._level = root.level
        root.addHandler(self)
        if root.level > logging.WARNING or root.level == logging.NOTSET:
            root.setLevel(logging.WARNING)
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._level)


def describe(record: logging.LogRecord) -> str:
    text = f"{record.levelname} {record.name}: {record.getMessage()}"
    if record.exc_info and record.exc_info[1] is not None:
        text += f" [{type(record.exc_info[1]).__name__}: {record.exc_info[1]}]"
    return text


def template(record: logging.LogRecord) -> str:
    """A log record's message without its arguments, for counting kinds of records."""
    return f"{record.levelname} {record.name}: {record.msg}"


# ----------------------------------------------------------------- the steps

# Engine notices the checks recognise, in every locale.
STALE = {v for v in SYSTEM_TEXTS["stale_button"].values()}
APOLOGY = re.compile(r"(?:Reference|Код): (\w+)")
UNREADABLE_PREFIX = "Sorry, I could not read that message."

# Open issues the run knows about: (exception type name, what it is). An apology whose
# logged exception is one of these is listed in the report instead of failing the run.
KNOWN_APOLOGIES = {
    "ChargeUnavailable": "generate.run charges credits but no wallet/ledger is configured (ledger in progress)",
}
# ERROR records that are not failures: (logger, start of the message) -> why.
KNOWN_ERRORS = {
    ("integrations.kie.actions", "kie.generate is not available"): "demo kie.generate is a stub (always fails)",
}
UNREADABLE_LOG = ("engine.runtime.app", "update %s cannot be read")  # fine for the updates made unreadable


@dataclass
class Step:
    user: int
    n: int
    kind: str  # what was sent, e.g. "text:emoji", "press:current", "raw:unknown_type"
    detail: str  # enough to reproduce by hand
    expects: str = "answer"  # answer | press | pre_checkout | payment | unreadable | nothing
    update_id: int | None = None
    key: Any = None  # the runtime's ordering key of the update
    query: CallbackRecord | None = None
    pre_checkout: PreCheckoutRecord | None = None
    charge: Charge | None = None
    stale: bool | None = None  # for presses: must the engine call it out of date?
    lands_in: str | None = None  # the state the conversation must be in afterwards
    armed: str | None = None  # a Telegram failure armed for this update ("method:code")
    fired: list[str] = field(default_factory=list)
    state_before: str | None = None
    state_after: str | None = None
    answers: list[str] = field(default_factory=list)
    apologies: list[str] = field(default_factory=list)  # reference codes
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # known, listed in the report, not failures
    seconds: float = 0.0
    events_from: int = 0  # index of the chat's first event after this update was sent
    requests_from: int = 0  # index of the first Bot API request after this update was sent
    rejected: list[str] = field(default_factory=list)  # "method:code" of this chat's failed calls meanwhile
    blocked: bool = False  # the user had blocked the bot when sending this update

    def __str__(self) -> str:
        armed = f" armed={self.armed}{'(fired)' if self.fired else ''}" if self.armed else ""
        return (f"user#{self.user} step {self.n} update {self.update_id} {self.kind} {self.detail[:160]!r}"
                f"{armed} state {self.state_before} -> {self.state_after}; answers {self.answers[:4]}")


# ----------------------------------------------------------------- inputs

WORDS = ["hello", "menu", "cat", "draw a red fox", "Привет", "generate", "yes", "no", "42", "help me",
         "🎨", "ok", "Ann", "Bob the builder", "x"]
EMOJI = ["🎨", "🔥", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇦", "🏳️‍🌈", "😀", "🦊", "❤️", "🧑🏿‍🚀", "🫠", "🀄"]
RTL = ["مرحبا بالعالم", "שלום עולם", "\u202eevil\u202c", "سلام 123 abc", "\u200fשלום\u200e", "ابحث عن صورة قطة"]
ZERO_WIDTH = ["\u200b", "\u200b\u200c\u200d\ufeff", "a\u200bb", "\u2060\u2060", "\u200d", "\u00ad", "\u180e",
              "\u034f"]
TRICKY = ["{balance}", "{user.id}", "{{", "}}", "}", "{", "{input.text}", "{0}", "%s %d %%", "<b>bold</b> &amp;",
          "*bold* _it_ `code` [x](http://y)", "\\", "'; DROP TABLE conversations; --", "null", "None", "{}",
          "[]", "\ttab", "line\nbreak\n\n", "   spaced   ", "ẞ\u0301\u0302\u0303", "𝕳𝖊𝖑𝖑𝖔", "/", "//",
          "/ start", " /start", "\n/start", "\\/start", "@flowgram_test_bot", "+100000", "https://example.com",
          "\x7f", "\u2028\u2029"]
COMMANDS = ["/start", "/help", "/cancel", "/paysupport", "/unknown", "/skip", "/START", "/Help",
            "/start@flowgram_test_bot", "/help@flowgram_test_bot", "/start ref42", "/start  many   args here",
            "/cancel@flowgram_test_bot now", "/start@other_bot", "/paysupport@flowgram_test_bot",
            "/start\nnewline args", "/start\targs", "/start@", "/_", "/x" + "y" * 40, "/пуск", "/start" + "😀" * 3,
            "/skip@flowgram_test_bot"]
BOT_USERNAME = "flowgram_test_bot"


def landing(project: Project, state: str) -> str | None:
    """Where entering `state` ends: through action states whose every outcome goes to one place; None if unsure."""
    for _ in range(10):
        action = project.states[state].action
        if action is None:
            return state
        targets = {reaction.to for reaction in action.outcomes.values()}
        if len(targets) != 1 or None in targets:
            return None
        state = targets.pop()  # type: ignore[assignment]
        if "." not in state:
            return None  # a flow-local name: not worth resolving here
    return None


def command_target(project: Project, text: str) -> str | None:
    """The state a global command must land in, by Telegram's reading of the text (the bot_command entity)."""
    match = re.match(r"^(/[A-Za-z0-9_]+)(?:@([A-Za-z0-9_]+))?(?=\s|$)", text)
    if match is None or project.bot is None:
        return None
    if match.group(2) is not None and match.group(2).lower() != BOT_USERNAME:
        return None  # addressed to another bot: no claim either way
    command = project.bot.commands.get(match.group(1).lower())
    if command is None or command.reaction.to is None:
        return None
    return landing(project, command.reaction.to)


def random_text(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["words", "emoji", "rtl", "zero_width", "long", "boundary", "tricky", "mixed", "name"])
    if kind == "words":
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))
    elif kind == "emoji":
        text = "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 40)))
    elif kind == "rtl":
        text = rng.choice(RTL) + rng.choice(["", " ", " 🎨", "\u200b"])
    elif kind == "zero_width":
        text = "".join(rng.choice(ZERO_WIDTH) for _ in range(rng.randint(1, 5)))
    elif kind == "long":  # over Telegram's 4096 (a client would split it; the bot must cope anyway)
        unit = rng.choice(["a", "я", "😀", "ab ", "\u200b"])
        text = unit * (rng.randint(4097, 5200) // len(unit) + 1)
    elif kind == "boundary":  # just under/over the flows' limits (name 2..32, prompt 1000)
        size = rng.choice([1, 2, 31, 32, 33, 999, 1000, 1001, 4096])
        text = "".join(rng.choice(string.ascii_letters + "é😀") for _ in range(size))
    elif kind == "tricky":
        text = rng.choice(TRICKY)
    elif kind == "mixed":
        pool = WORDS + EMOJI + RTL + ZERO_WIDTH + TRICKY
        text = "".join(rng.choice(pool) for _ in range(rng.randint(2, 8)))
    else:
        text = rng.choice(["Ann", "Bo", "Mary-Jane", "李小龙", "O'Brien", "Zoë", "X Æ A-12", "a" * 32, "a" * 33])
    return kind, text


def random_callback_data(rng: random.Random, project: Project) -> tuple[str, str | None]:
    """Callback data the runtime never produced (or that it must reject)."""
    kind = rng.choice(["bytes", "ascii", "unicode", "empty", "none", "long", "near_miss", "colons"])
    if kind == "bytes":
        data: str | None = bytes(rng.randrange(256) for _ in range(rng.randint(1, 80))).decode("latin-1")
    elif kind == "ascii":
        data = "".join(rng.choice(string.printable) for _ in range(rng.randint(1, 64)))
    elif kind == "unicode":
        data = "".join(chr(rng.choice([rng.randint(0x20, 0xD7FF), rng.randint(0xE000, 0x10FFFF)]))
                       for _ in range(rng.randint(1, 30)))
    elif kind == "empty":
        data = ""
    elif kind == "none":
        data = None  # a game button's query carries no data
    elif kind == "long":
        data = "".join(rng.choice(string.ascii_letters + ":.") for _ in range(rng.randint(65, 300)))
    elif kind == "near_miss":  # almost our format
        state = rng.choice(list(project.states))
        version = project.flow_of(state).version
        data = rng.choice([
            f"{version}:{state}:b0.0x", f"{version.upper()}:{state}:b0.0", f"{version}:{state.upper()}:b0.0",
            f"{version}:{state}:b999.0", f"{version}:{state}:", f"{version}::b0.0", f":{state}:b0.0",
            f"{version}:{state}:i", f"{version}:{state}:p-1", f"{version}:{state}:b0.0\n",
            f"{version}:{state}:b0.0:extra", f"{version}:{state}:i123456", f" {version}:{state}:b0.0",
        ])
    else:
        data = ":".join("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(0, 8)))
                        for _ in range(rng.randint(2, 6)))
    return kind, data


# ----------------------------------------------------------------- the run


class PollingStopped(AssertionError):
    """The runtime's polling loop ended: the bot no longer receives anything."""


@dataclass
class SimUser:
    index: int
    client: UserClient
    rng: random.Random
    steps: list[Step] = field(default_factory=list)


@dataclass
class Profile:
    first_name: str
    language_code: str | None
    last_name: str | None = None
    username: str | None = None


PROFILES = [
    Profile("Ann", "en", username="ann"),
    Profile("Борис", "ru", last_name="Иванов"),
    Profile("😀🎨", "de"),
    Profile("سارة", None, last_name="\u202eRTL"),
    Profile("Zero\u200bWidth", "en"),
    Profile("{balance} <b>", "ru"),
    Profile("x" * 64, "pt-br", username="x" * 32),
    Profile("李", ""),
]


class ReliabilityRun:
    """Drive ``users`` simulated users, ``steps`` updates each, against a running BotUnderTest."""

    def __init__(self, bot: BotUnderTest, *, seed: int, users: int, steps: int, budget: float,
                 failure_rate: float = 0.02, step_timeout: float = 15.0, first_user_id: int = 7_000_001) -> None:
        assert isinstance(bot.telegram, ChaosTelegram), "run the bot on a ChaosTelegram"
        self.bot = bot
        self.tg: ChaosTelegram = bot.telegram
        self.project = bot.project
        self.seed = seed
        self.steps_per_user = steps
        self.budget = budget
        self.failure_rate = failure_rate
        self.step_timeout = step_timeout
        self.users = [
            SimUser(i, bot.user(first_user_id + i, PROFILES[i % len(PROFILES)].first_name,
                                last_name=PROFILES[i % len(PROFILES)].last_name,
                                username=PROFILES[i % len(PROFILES)].username,
                                language_code=PROFILES[i % len(PROFILES)].language_code),
                    random.Random(f"{seed}:{i}"))
            for i in range(users)
        ]
        self.by_chat = {u.client.chat_id: u for u in self.users}
        self.started = 0.0
        self.elapsed = 0.0
        self.out_of_time = False
        self.orphans: list[int] = []  # updates without a user (no answer expected)
        self.versions = {name: project_flow.version for name, project_flow in self.project.flows.items()}

    # ---------------------------------------------------------------- driving
    async def run(self) -> None:
        # Half the users have credits, so the paid step runs (hold, the demo's stub fails, release);
        # the others have none and get the insufficient-funds branch.
        self.credits = {u.client.user_id: (0 if u.index % 2 else u.rng.randint(5, 60)) for u in self.users}
        for user_id, amount in self.credits.items():
            if amount:
                await self.bot.storage.ledger_credit(user_id, amount, key=f"reliability-{user_id}", reason="test")
        self.started = time.monotonic()
        try:
            await asyncio.gather(*(self._drive(user) for user in self.users))
        finally:
            self.elapsed = time.monotonic() - self.started

    async def _drive(self, user: SimUser) -> None:
        for n in range(self.steps_per_user):
            if time.monotonic() - self.started > self.budget:
                self.out_of_time = True
                return
            step = await self._send(user, n)
            user.steps.append(step)
            began = time.monotonic()
            await self._finish(user, step)
            step.seconds = time.monotonic() - began
            await self._check(user, step)

    @property
    def steps(self) -> list[Step]:
        return [step for user in self.users for step in user.steps]

    # --------------------------------------------------------------- sending
    async def _send(self, user: SimUser, n: int) -> Step:
        rng = user.rng
        client = user.client
        conversation = await self.bot.storage.load_conversation(client.chat_id, client.user_id)
        roll = rng.random()
        chat = self.tg._chats[client.chat_id]
        before = len(chat.events)
        step = Step(user.index, n, "", "", state_before=conversation.state if conversation else None,
                    events_from=before, requests_from=len(self.tg.requests))
        if roll < self.failure_rate:
            method, code = rng.choice(INJECTABLE)
            self.tg.arm(client.chat_id, method, code, retry_after=1 if code == 429 else None)
            step.armed = f"{method}:{code}"
        roll = rng.random()
        if not chat.started and (roll < 0.36 or 0.74 <= roll < 0.94):
            # Nothing to press or pay before the bot ever wrote: say something instead.
            roll = rng.uniform(0.36, 0.74)
        if roll < 0.005:
            await self._press_while_blocked(user, step, conversation)
        elif roll < 0.36:
            await self._press_current(user, step, conversation)
        elif roll < 0.50:
            kind, text = random_text(rng)
            step.kind, step.detail = f"text:{kind}", text
            await client.send_text(text)
        elif roll < 0.62:
            text = rng.choice(COMMANDS)
            step.kind, step.detail, step.lands_in = "command", text, command_target(self.project, text)
            await client.send_command(text)
        elif roll < 0.74:
            await self._media(user, step)
        elif roll < 0.82:
            await self._press_stale(user, step, conversation)
        elif roll < 0.88:
            kind, data = random_callback_data(rng, self.project)
            step.kind, step.detail, step.expects, step.stale = f"press:malformed:{kind}", repr(data), "press", True
            step.query = await client.click_data(data, message=client.last_message)
        elif roll < 0.91:
            await self._press_lost_message(user, step)
        elif roll < 0.94:
            self._pre_checkout(user, step)
        elif roll < 0.96:
            self._successful_payment(user, step)
        else:
            self._garbage(user, step)
        if step.update_id is None:
            step.update_id = self.tg.updates[-1]["update_id"]
        if step.key is None:
            step.key = (client.chat_id, client.user_id)
        return step

    async def _press_current(self, user: SimUser, step: Step, conversation: Any) -> None:
        """Press a button the conversation shows now (as recorded in storage), or the latest one visible."""
        client, rng = user.client, user.rng
        chat = self.tg._chats[client.chat_id]
        current_ids = (conversation.screen or {}).get("message_ids", []) if conversation else []
        if conversation is not None and (conversation.screen or {}).get("state") != conversation.state:
            current_ids = []
        candidates = [chat.messages[i] for i in current_ids if i in chat.messages and _callback_buttons(chat.messages[i])]
        if candidates:
            message = rng.choice(candidates)
            button = rng.choice(_callback_buttons(message))
            step.kind, step.stale = "press:current", False
            ref = decode(button.callback_data)
            if ref is not None and ref.kind == "page":
                step.stale = None  # a page of a list: answered, maybe with the same screen
        else:  # nothing recorded as current: press what the user sees last
            visible = [m for m in client.bot_messages if _callback_buttons(m)]
            if not visible:
                step.kind, step.detail = "command", "/start"
                step.lands_in = command_target(self.project, "/start")
                await client.send_command("start")
                return
            message = visible[-1]
            button = rng.choice(_callback_buttons(message))
            step.kind = "press:latest"
        step.detail = f"{button.text!r} {button.callback_data} on #{message.message_id}"
        step.expects = "press"
        step.query = await client.click_data(button.callback_data, message=message)

    async def _press_while_blocked(self, user: SimUser, step: Step, conversation: Any) -> None:
        """The user blocked the bot and presses one of its buttons: nothing can be sent back but the answer."""
        await user.client.block()
        step.blocked = True
        self.tg.disarm(user.client.chat_id)  # one fault at a time: blocked is this update's failure
        step.armed = None
        await self._press_current(user, step, conversation)
        step.kind = "press:while_blocked"
        step.expects = "blocked"
        step.stale = None

    async def _press_stale(self, user: SimUser, step: Step, conversation: Any) -> None:
        """Data from an old screen, another version, or a state that does not exist."""
        client, rng = user.client, user.rng
        chat = self.tg._chats[client.chat_id]
        current = set((conversation.screen or {}).get("message_ids", [])) if conversation else set()
        old = [m for m in client.bot_messages if m.message_id not in current and _callback_buttons(m)]
        step.expects, step.stale = "press", True
        choice = rng.random()
        if old and choice < 0.5:
            message = rng.choice(old)
            button = rng.choice(_callback_buttons(message))
            step.kind, step.detail = "press:stale:old_message", f"{button.callback_data} on #{message.message_id}"
            step.query = await client.click_data(button.callback_data, message=message)
            return
        target = rng.choice([chat.messages[i] for i in current if i in chat.messages] or [None])
        state = rng.choice(list(self.project.states))
        version = self.project.flow_of(state).version
        variant = rng.choice(["other_version", "other_state", "unknown_state", "item_out_of_range", "other_chat"])
        if variant == "other_version":
            forged = "".join(rng.choice("0123456789abcdef") for _ in range(6))
            if forged == version:
                forged = "ffffff" if version != "ffffff" else "000000"
            ref = rng.choice(["b0.0", "b1.0", "i0", "p1"])
            data = encode(forged, conversation.state if conversation else state, ref)
        elif variant == "other_state":
            others = [s for s in self.project.states if not conversation or s != conversation.state]
            state = rng.choice(others)
            data = encode(self.project.flow_of(state).version, state, "b0.0")
        elif variant == "unknown_state":
            data = encode(version, "main.no_such_state", "b0.0")
        # Not generated: a page ref ("p0") with the right version on a list screen. The engine re-renders the
        # page already shown and Telegram refuses the edit (400 "message is not modified"), which the outbox
        # counts as answered; the shipped list has one page, so only forged data gets there (see the report).
        elif variant == "item_out_of_range":
            state = conversation.state if conversation else state
            data = encode(self.project.flow_of(state).version, state, rng.choice(["i7", "i99999", "b9.9", "b0.7"]))
        else:  # a real button of another user's current screen
            others = [u for u in self.users if u is not user and u.client.bot_messages]
            source = rng.choice(others).client.bot_messages[-1] if others else None
            buttons = _callback_buttons(source) if source else []
            data = rng.choice(buttons).callback_data if buttons else encode(version, state, "b0.0")
            # pressed on a message id of *this* chat that is current: the data must still be judged
            step.kind = "press:stale:other_users_button"
            step.stale = None  # it may well be the same state and button as ours: then it is not stale
        if not step.kind:
            step.kind = f"press:stale:{variant}"
        step.detail = f"{data} on #{target.message_id if target else None}"
        step.query = await client.click_data(data, message=target)

    async def _press_lost_message(self, user: SimUser, step: Step) -> None:
        """A press whose message Telegram no longer shows (deleted/too old) or an inline message."""
        client, rng = user.client, user.rng
        chat = self.tg._chats[client.chat_id]
        buttons = [b for m in client.bot_messages for b in _callback_buttons(m)]
        data = rng.choice(buttons).callback_data if buttons else "abc"
        step.expects, step.stale = "press", True
        if rng.random() < 0.5:
            message_id = rng.choice([0, 999_999, chat.next_message_id + 5])
            step.kind, step.detail = "press:inaccessible_message", f"{data} on #{message_id}"
            step.query = await client.click_data(data, message=message_id)
            return
        # An inline-mode button: no message at all, only inline_message_id.
        query_id = f"{client.chat_id}i{len(self.tg.callback_queries):08d}"
        record = CallbackRecord(query_id, client.chat_id, data, None, asyncio.get_running_loop().time())
        self.tg.callback_queries[query_id] = record
        step.kind, step.detail, step.query = "press:inline_message", data, record
        self.tg.inject_update({"callback_query": {"id": query_id, "from": client.user, "inline_message_id": "AAAB1234",
                                                  "chat_instance": "42", "data": data}})

    async def _media(self, user: SimUser, step: Step) -> None:
        client, rng = user.client, user.rng
        kind = rng.choice(["photo", "photo_caption", "document", "voice", "video", "audio", "sticker", "location",
                           "contact", "animation", "dice", "poll", "venue", "caption_command"])
        step.kind, step.detail = f"media:{kind}", kind
        if kind == "photo":
            await client.send_photo()
        elif kind == "photo_caption":
            _, caption = random_text(rng)
            step.detail = caption
            await client.send_photo(caption=caption[:1024])
        elif kind == "caption_command":
            await client.send_document(caption="/start")
        elif kind == "document":
            await client.send_document(file_name=rng.choice(["a.pdf", "x.zip", "имя файла.txt", "😀.png"]))
        elif kind == "voice":
            await client.send_voice()
        elif kind == "video":
            await client.send_video()
        elif kind == "audio":
            await client.send_audio()
        elif kind == "sticker":
            await client.send_sticker(rng.choice(EMOJI))
        elif kind == "location":
            await client.send_location(rng.uniform(-90, 90), rng.uniform(-180, 180))
        elif kind == "contact":
            await client.send_contact("+" + "".join(rng.choice(string.digits) for _ in range(11)))
        elif kind == "animation":  # a GIF carries `document` too
            f = self.tg.add_file("animation", None, size=3000, file_name="cat.gif.mp4")
            doc = {"file_id": f.file_id, "file_unique_id": f.file_unique_id, "file_name": "cat.gif.mp4"}
            self.tg._user_message(self.tg._chats[client.chat_id], media=Media("animation", f),
                                  extra={"document": doc})
        elif kind == "dice":
            self.tg._user_message(self.tg._chats[client.chat_id], extra={"dice": {"emoji": "🎲", "value": 4}})
        elif kind == "poll":
            poll = {"id": "p1", "question": "?", "options": [{"persistent_id": "0", "text": "a", "voter_count": 0}], "total_voter_count": 0,
                    "is_closed": False, "is_anonymous": True, "type": "regular", "allows_multiple_answers": False,
                    "allows_revoting": False, "members_only": False}
            self.tg._user_message(self.tg._chats[client.chat_id], extra={"poll": poll})
        else:
            venue = {"location": {"latitude": 1.0, "longitude": 2.0}, "title": "Café", "address": "Street 1"}
            self.tg._user_message(self.tg._chats[client.chat_id],
                                  extra={"venue": venue, "location": venue["location"]})

    def _pre_checkout(self, user: SimUser, step: Step) -> None:
        """A pre_checkout_query for an invoice this bot never sent (the demo sells nothing)."""
        client, rng = user.client, user.rng
        payload = rng.choice(["order-1", "", "x" * 128, "😀", '{"sku": 1}', "\u200b"])
        invoice = Invoice("Credits", "100 credits", payload or "-", "XTR", [{"label": "x", "amount": rng.randint(1, 2500)}])
        query_id = f"pcq{client.chat_id}r{len(self.tg.pre_checkouts):06d}"
        record = PreCheckoutRecord(query_id, client.chat_id, client.user_id, invoice,
                                   asyncio.get_running_loop().time())
        self.tg.pre_checkouts[query_id] = record  # so the bot's answer is for a query Telegram knows
        step.kind, step.detail, step.expects, step.pre_checkout = "raw:pre_checkout_query", payload, "pre_checkout", record
        step.update_id = self.tg.inject_update({"pre_checkout_query": {
            "id": query_id, "from": client.user, "currency": "XTR", "total_amount": invoice.total_amount,
            "invoice_payload": invoice.payload}})

    def _successful_payment(self, user: SimUser, step: Step) -> None:
        """A payment the bot cannot match to an invoice: it must refund it and say so."""
        client, rng = user.client, user.rng
        charge = Charge(f"stxRELIABILITY{client.chat_id}x{len(self.tg.charges)}", client.user_id, client.chat_id,
                        rng.randint(1, 2500), "XTR", rng.choice(["order-1", "stale-invoice", "😀"]), int(time.time()))
        self.tg.charges[charge.charge_id] = charge
        step.kind, step.detail, step.expects, step.charge = "raw:successful_payment", charge.charge_id, "payment", charge
        self.tg._user_message(self.tg._chats[client.chat_id], extra={"successful_payment": {
            "currency": charge.currency, "total_amount": charge.amount, "invoice_payload": charge.payload,
            "telegram_payment_charge_id": charge.charge_id, "provider_payment_charge_id": ""}})

    def _garbage(self, user: SimUser, step: Step) -> None:
        """Updates of kinds the bot did not ask for, does not know, or cannot parse."""
        client, rng = user.client, user.rng
        chat = {"id": client.chat_id, "type": "private", "first_name": client.user["first_name"]}
        kind = rng.choice(["unknown_type", "unknown_type_list", "edited_message", "my_chat_member", "poll_answer",
                           "unreadable_message", "unreadable_callback", "message_without_from", "message_extra_fields",
                           "empty_update"])
        step.kind = f"raw:{kind}"
        if kind == "unknown_type":
            update: dict[str, Any] = {"future_update_kind": {"from": client.user, "chat": chat, "x": 1}}
            step.expects, step.key = "nothing", None
        elif kind == "unknown_type_list":
            update = {"another_new_kind": [1, 2, {"a": None}]}
            step.expects, step.key = "nothing", None
        elif kind == "edited_message":  # not in allowed_updates: Telegram never delivers it
            update = {"edited_message": {"message_id": 1, "date": 0, "edit_date": 1, "chat": chat, "from": client.user,
                                         "text": "edited"}}
            step.expects = "nothing"
        elif kind == "my_chat_member":
            update = {"my_chat_member": {"chat": chat, "from": client.user, "date": 0,
                                         "old_chat_member": {"status": "member", "user": self.tg.bot_user},
                                         "new_chat_member": {"status": "member", "user": self.tg.bot_user}}}
            step.expects = "nothing"
        elif kind == "poll_answer":
            update = {"poll_answer": {"poll_id": "1", "user": client.user, "option_ids": [0]}}
            step.expects = "nothing"
        elif kind == "unreadable_message":  # a known type aiogram cannot validate
            update = {"message": {"chat": {"id": client.chat_id}, "text": rng.choice([5, None, ["x"], {"a": 1}])}}
            step.expects = "unreadable"
        elif kind == "unreadable_callback":
            update = {"callback_query": {"id": 17, "from": {"id": client.user_id}, "data": ["x"]}}
            step.expects = "unreadable"
        elif kind == "message_without_from":  # e.g. a channel-like post in the private chat
            update = {"message": {"message_id": 10**6 + step.n, "date": 0, "chat": chat, "text": "/start"}}
            step.expects, step.key = "nothing", None
        elif kind == "message_extra_fields":  # fields from a newer Bot API version
            update = {"message": {"message_id": 10**6 + step.n, "date": 0, "chat": chat, "from": client.user,
                                  "text": "hello from the future", "brand_new_field": {"nested": [1, 2]},
                                  "another_one": True}}
            step.expects = "answer"
        else:
            update = {}
            step.expects, step.key = "nothing", None
        step.detail = repr(update)[:200]
        if kind.startswith(("unreadable", "message")):
            self.tg._chats[client.chat_id].started = True  # the user wrote: Telegram lets the bot answer now
        step.update_id = self.tg.inject_update(update)
        if step.key is None or step.expects in ("nothing", "unreadable"):
            step.key = ("update", step.update_id)

    # --------------------------------------------------------------- waiting
    async def _finish(self, user: SimUser, step: Step) -> None:
        """Wait until the runtime took the update from Telegram and handled it completely."""
        runtime = self.bot.runtime
        assert runtime is not None
        deadline = time.monotonic() + self.step_timeout
        keys = {step.key, (user.client.chat_id, user.client.user_id)}
        while True:
            polling = self.bot._polling
            if polling is not None and polling.done():
                error = polling.exception() if not polling.cancelled() else None
                raise PollingStopped(f"polling stopped while handling {step}: {error!r}") from error
            pending = any(u["update_id"] == step.update_id for u in self.tg._pending)
            busy = any(runtime.queue.pending(key) for key in keys)
            if not pending and not busy and not runtime._side_tasks:
                break
            if time.monotonic() > deadline:
                step.problems.append(f"not handled within {self.step_timeout:g}s "
                                     f"(still with Telegram: {pending}, queued: {busy})")
                break
            await asyncio.sleep(0.002)
        step.fired = self.tg.disarm(user.client.chat_id)
        for call in self.tg.requests[step.requests_from:]:
            if not call.ok and self.tg._chat_of_call(call.method, call.params) == user.client.chat_id:
                step.rejected.append(f"{call.method}:{call.error_code}")
        if step.blocked:
            await user.client.unblock()

    # -------------------------------------------------------------- checking
    async def _check(self, user: SimUser, step: Step) -> None:
        client = user.client
        chat = self.tg._chats[client.chat_id]
        events = chat.events[step.events_from:]
        shown = [e for e in events if e.kind in ("message", "edit") and e.message is not None and e.message.from_bot]
        for event in shown:
            content = event.message.content or f"[{event.message.media_kind}]"  # type: ignore[union-attr]
            step.answers.append(("edit: " if event.kind == "edit" else "") + content)
            if event.kind == "message":
                match = APOLOGY.search(content)
                if match:
                    step.apologies.append(match.group(1))
        conversation = await self.bot.storage.load_conversation(client.chat_id, client.user_id)
        step.state_after = conversation.state if conversation else None
        failed_on_purpose = any(not f.endswith(":429") for f in step.fired)
        # Telegram refused a call of this update: fine when injected, a rate limit, or the user blocked the bot.
        unexplained = Counter(step.rejected) - Counter(step.fired)
        for label in unexplained.elements():
            if label.endswith(":429") or (step.blocked and label.endswith(":403")):
                continue
            step.problems.append(f"Telegram rejected {label}")

        # A visible answer for every update that has someone to answer.
        if step.expects in ("answer", "press", "payment", "unreadable") and not shown:
            step.problems.append("no visible answer (no message sent or edited)")
        if step.expects == "press" and step.query is not None and step.query.answer is None:
            if "answerCallbackQuery:500" not in step.fired:
                step.problems.append("the button press was not answered (spinner left running)")
        if step.expects == "pre_checkout" and step.pre_checkout is not None:
            if step.pre_checkout.ok is None and "answerPreCheckoutQuery:500" not in step.fired:
                step.problems.append("the pre_checkout_query was not answered")
            elif step.pre_checkout.ok:
                step.problems.append("a pre_checkout_query for an invoice the bot never sent was accepted")
        if step.expects == "payment" and step.charge is not None and not step.charge.refunded and not failed_on_purpose:
            step.problems.append("an unmatched payment was not refunded")
        if step.expects == "unreadable" and not any(a.startswith(UNREADABLE_PREFIX) for a in step.answers):
            if failed_on_purpose and not shown:
                step.problems.remove("no visible answer (no message sent or edited)")
                step.notes.append("the unreadable notice is sent once: a Telegram 5xx on it leaves the user without it")
            else:
                step.problems.append("an unreadable update was not answered with the unreadable notice")
        if step.expects == "blocked" and step.query is not None and step.query.answer is None:
            step.problems.append("a press from a user who blocked the bot was not answered (answers still work)")
        if step.expects == "nothing" and shown:
            step.problems.append(f"an update without anyone to answer produced messages: {step.answers[:3]}")

        # What was said, where it can be known.
        if step.query is not None and step.query.answer is not None and not step.apologies:
            notice = step.query.answer.text
            if step.stale is True and notice not in STALE:
                step.problems.append(f"a stale/malformed press was not called out of date (answer {notice!r})")
            if step.stale is False and notice in STALE:
                step.problems.append("a press on a current button was called out of date")
        if step.stale is True and step.state_before is not None and step.state_after != step.state_before:
            step.problems.append("a stale/malformed press changed the state")
        if step.lands_in is not None and not step.apologies and step.state_after != step.lands_in:
            step.problems.append(f"command {step.detail!r} must land in {step.lands_in}, not {step.state_after}")

        # Storage always holds a real state, and a screen of that state.
        if conversation is not None:
            if conversation.state not in self.project.states:
                step.problems.append(f"conversation saved in {conversation.state!r}, not a state of the project")
            screen_state = (conversation.screen or {}).get("state")
            if conversation.screen is not None and screen_state != conversation.state:
                step.problems.append(f"the saved screen belongs to {screen_state}, the conversation is in "
                                     f"{conversation.state}: its buttons are all stale")
        elif step.expects in ("answer", "press") and not step.apologies and not failed_on_purpose:
            step.problems.append("no conversation was saved after an answered update")
        if failed_on_purpose and not step.fired:
            pass  # armed but the update never made that call: nothing to attribute

    # -------------------------------------------------------------- the report
    async def verdict(self, records: list[logging.LogRecord]) -> "Verdict":
        return await Verdict.build(self, records)


def _callback_buttons(message: ChatMessage | None) -> list[Any]:
    if message is None or message.deleted:
        return []
    return [b for row in message.buttons for b in row if b.kind == "callback_data" and b.callback_data is not None]


@dataclass
class Verdict:
    failures: list[str]
    known: list[str]
    summary: str

    @classmethod
    async def build(cls, run: ReliabilityRun, records: list[logging.LogRecord]) -> "Verdict":
        failures: list[str] = []
        known: list[str] = []
        steps = run.steps
        by_code: dict[str, list[logging.LogRecord]] = {}
        for record in records:
            by_code.setdefault(getattr(record, "correlation_id", "-"), []).append(record)

        # Steps: problems, and every apology explained.
        explained_codes: set[str] = set()
        for step in steps:
            for problem in step.problems:
                failures.append(f"{step}: {problem}")
            for code in step.apologies:
                errors = [r for r in by_code.get(code, []) if r.exc_info and r.exc_info[1] is not None]
                causes = {type(r.exc_info[1]).__name__ for r in errors}  # type: ignore[index]
                known_cause = next((KNOWN_APOLOGIES[c] for c in causes if c in KNOWN_APOLOGIES), None)
                if step.fired and any(not f.endswith(":429") for f in step.fired):
                    explained_codes.add(code)
                elif known_cause is not None:
                    explained_codes.add(code)
                    known.append(f"{step.kind} in {step.state_before}: apology ({known_cause})")
                else:
                    detail = "; ".join(describe(r) for r in errors) or "no exception logged under this code"
                    failures.append(f"{step}: apologized without an injected Telegram failure: {detail}")
                    explained_codes.add(code)

        # Every ERROR record accounted for.
        unreadable = {step.update_id for step in steps if step.expects == "unreadable"}
        for record in records:
            if record.levelno < logging.ERROR:
                continue
            code = getattr(record, "correlation_id", "-")
            if code in explained_codes:
                continue
            if (record.name, str(record.msg)[:len(UNREADABLE_LOG[1])]) == UNREADABLE_LOG and record.args \
                    and record.args[0] in unreadable:  # type: ignore[index]
                continue
            why = next((w for (name, part), w in KNOWN_ERRORS.items()
                        if record.name == name and part in str(record.msg)), None)
            if why is not None:
                continue
            failures.append(f"unexplained ERROR log [{code}]: {describe(record)}")

        # The fake Telegram: no internal errors, nothing rejected that was not injected.
        for exc in run.tg.internal_errors:
            failures.append(f"the fake Telegram failed internally: {exc!r}")
        injected = Counter(f for step in steps for f in step.fired)
        rejected = Counter(f"{c.method}:{c.error_code}" for c in run.tg.errors())
        ours = set(run.by_chat)
        for call in run.tg.errors():  # per-update attribution covers the users' chats; anything else is here
            if run.tg._chat_of_call(call.method, call.params) not in ours and call.error_code != 429:
                failures.append(f"Telegram rejected {call.method}:{call.error_code} outside the users' chats: "
                                f"{call.description} {str(call.params)[:160]}")
        for step in steps:
            for note in step.notes:
                known.append(f"{step.kind}: {note}")

        # Money: every hold settled, and the balance is exactly what was credited minus what was captured.
        captured_total = 0
        for user_id in run.credits:
            entries = await run.bot.storage.ledger_entries(user_id, limit=100_000)
            total = Counter()
            holds: dict[str, set[str]] = {}
            for entry in entries:
                total[entry.kind] += entry.amount
                if entry.kind in ("hold", "capture", "release"):
                    holds.setdefault(entry.key, set()).add(entry.kind)
            balance = await run.bot.storage.ledger_balance(user_id)
            captured_total += total["capture"]
            if balance != total["credit"] - total["capture"]:
                failures.append(f"user {user_id}: balance {balance}, but credited {total['credit']} "
                                f"and captured {total['capture']}")
            open_holds = [key for key, kinds in holds.items() if kinds == {"hold"}]
            if open_holds:
                failures.append(f"user {user_id}: holds never captured nor released: {open_holds[:5]}")

        # The inbox: everything accepted was finished.
        pending = await run.bot.storage.inbox_pending(limit=1000)
        if pending:
            failures.append(f"{len(pending)} update(s) left unfinished in the inbox: "
                            f"{[p.update_id for p in pending[:10]]}")

        if run.out_of_time:
            known.append(f"time budget of {run.budget:g}s reached: the run stopped early")

        kinds = Counter(step.kind.split(":")[0] + (":" + step.kind.split(":")[1] if ":" in step.kind else "")
                        for step in steps)
        states = Counter(step.state_after for step in steps)
        warnings = Counter(template(r) for r in records if r.levelno == logging.WARNING)
        slowest = max(steps, key=lambda s: s.seconds, default=None)
        summary = "\n".join([
            f"seed {run.seed}: {len(steps)} updates from {len(run.users)} concurrent users in {run.elapsed:.1f}s "
            f"({len(steps) / max(run.elapsed, 1e-9):.0f}/s); storage {run.bot.storage.backend}",
            f"injected Telegram failures fired: {dict(injected)}; all rejected calls: {dict(rejected)}",
            f"credits captured: {captured_total}",
            f"apologies: {sum(len(s.apologies) for s in steps)}, answers: {sum(len(s.answers) for s in steps)}, "
            f"slowest update {slowest.seconds:.2f}s ({slowest.kind})" if slowest else "",
            "inputs: " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())),
            "states after: " + ", ".join(f"{k}={v}" for k, v in sorted(states.items(), key=str)),
            "warnings: " + "; ".join(f"{v}x {k}" for k, v in warnings.most_common()),
        ])
        return cls(failures, sorted(set(known)), summary)

    def report(self, seed: int) -> str:
        lines = [self.summary]
        if self.known:
            lines.append("known issues seen:")
            lines += [f"  - {k}" for k in self.known]
        if self.failures:
            lines.append(f"{len(self.failures)} failure(s); reproduce with FLOWGRAM_RELIABILITY_SEED={seed}:")
            lines += [f"  - {f}" for f in self.failures[:60]]
            if len(self.failures) > 60:
                lines.append(f"  ... and {len(self.failures) - 60} more")
        return "\n".join(lines)
