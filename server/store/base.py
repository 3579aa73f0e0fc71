"""The `Store` protocol: everything chinwag keeps, behind one interface.

Every method that reads or changes a conversation takes the calling `user_id` and scopes
its query to it: another user's ids are `NotFound`, never `Forbidden`, so that an id reveals
nothing. SQLite (`sqlite/`) is the embedded backend; PostgreSQL (`postgres/`) implements the
same protocol for several processes on one database (`server.store.open` picks one).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import msgspec

from server.protocol import Conversation, Message

# Every role a user can have; tools, policies and quotas name these.
ROLES = ("admin", "user", "bot")



class StoreOpenError(Exception):
    """The store cannot open its database (any backend); the message is one line for the
    operator, naming the database and what to do."""

class UserRecord(msgspec.Struct, kw_only=True):
    id: str
    name: str
    role: str  # one of ROLES


class Accepted(msgspec.Struct, kw_only=True):
    """What `accept_user_message` committed, or found already committed for that id."""

    conversation_id: str
    message_id: str
    turn_id: str
    # The assistant message reserved for the turn's answer, stored right after the user
    # message in the same commit: the answer's place in the conversation is fixed at `ack`.
    answer_id: str
    # False when (user, client_msg_id) was seen before: same ids, and no new turn.
    created: bool
    conversation_created: bool = False


class Restarted(msgspec.Struct, kw_only=True):
    """What `restart_answer` did: the answer now belongs to `turn_id`, streaming again."""

    conversation_id: str
    message_id: str
    turn_id: str
    chars: int  # length of the question's text, for routing rules
    # False when the answer was still streaming: its turn runs already, no new one starts.
    created: bool


class StreamingAnswer(msgspec.Struct, kw_only=True):
    """An answer still `streaming`, as `streaming_answers` lists it: enough to tell whose
    turn it is and to end it (`abandon_answer`)."""

    message_id: str
    turn_id: str
    user_id: str
    conversation_id: str
    created_at: str  # when its turn started (a regenerated answer: when it was restarted)


class RunRecord(msgspec.Struct, kw_only=True):
    """A running turn as the store remembers it (`save_run`), so that a turn interrupted
    by a crash, a deploy or a node's death can be continued from its answer's checkpoint."""

    turn_id: str
    user_id: str
    conversation_id: str
    answer_id: str  # the assistant message the turn writes
    model: str | None = None
    template: str | None = None
    variables: dict[str, Any] | None = None
    chars: int  # length of the question's text, for routing rules
    # How many times the run was claimed to be continued (`claim_run` counts them).
    attempts: int = 0
    created_at: str = ""  # filled in by the store when empty
    # What an OpenAI-compatible API turn carries beyond a socket turn (its client's context,
    # instructions, tools): a JSON object, stored as given (`server.turns.state.api_fields`
    # reads it). None for a socket turn.
    request: dict[str, Any] | None = None


class NewUserMessage(msgspec.Struct, kw_only=True):
    user_id: str
    client_msg_id: str
    text: str
    conversation_id: str | None = None  # None: open a new conversation
    # The message's blocks when not just its text (the results of tools the client ran);
    # `text` is then what routing rules measure.
    content: list[dict[str, Any]] | None = None
    # Settings of a new conversation (ignored when continuing one).
    model: str | None = None
    template: str | None = None
    variables: dict[str, str] | None = None
    # What the turn needs beyond the stored conversation to be continued after an
    # interruption (an API turn's context, instructions and tools, see `RunRecord.request`);
    # written into the run the accept commits. None for a socket turn.
    run_request: dict[str, Any] | None = None


class SearchHit(msgspec.Struct, kw_only=True):
    """One message found by `search_messages`, best first."""

    message_id: str
    conversation_id: str
    conversation_title: str
    role: str
    # A short extract around the matches, each match wrapped in the requested marks
    # (default `**` … `**`), with "…" where the text was cut.
    snippet: str
    created_at: str
    # Relevance (bm25, negated): higher is better; only comparable within one search.
    score: float


class AccountRecord(msgspec.Struct, kw_only=True):
    """A user as `chinwag users list` shows it (never the password hash)."""

    id: str
    name: str
    role: str
    created_at: str
    has_password: bool


class ApiKeyRecord(msgspec.Struct, kw_only=True):
    """An API key as listings show it: never the key, never its hash."""

    id: str
    user_id: str
    user_name: str
    name: str
    prefix: str
    created_at: str
    last_used_at: str | None = None
    revoked_at: str | None = None


class KeyCandidate(msgspec.Struct, kw_only=True):
    """An unrevoked key with a given prefix: the caller compares `key_hash` in fixed time."""

    id: str
    key_hash: str
    user: UserRecord


class AuditEntry(msgspec.Struct, kw_only=True):
    action: str  # "login", "login_failed", "logout", "key_created", "key_revoked", ...
    actor_id: str | None = None  # None: the operator's command line
    target: str | None = None
    details: dict[str, Any] = {}
    address: str | None = None
    at: str = ""  # filled in by the store when empty


class NewApproval(msgspec.Struct, kw_only=True):
    """A tool call that waits for its user's decision, as `create_approval` stores it."""

    call_id: str
    user_id: str
    turn_id: str
    conversation_id: str
    name: str  # the tool's
    args: dict[str, Any]
    timeout_s: float  # it expires this long after it is first stored


class ApprovalRecord(msgspec.Struct, kw_only=True):
    """A stored approval: the exact call, whose it is, until when it may be decided, and
    (once decided) how, when and by what credential."""

    call_id: str
    user_id: str
    turn_id: str
    conversation_id: str
    name: str
    args: dict[str, Any]
    created_at: str
    expires_at: str
    decision: str | None = None  # None until decided: "allow", "deny" or "timeout"
    decided_at: str | None = None
    # What decided it: "login:ID", "key:ID", "local", "user:ID"; None for a timeout.
    decided_by: str | None = None
    # When the waiting turn took an `allow` and went on to run the call (`take_approval`):
    # None means the call has not run, so a continued turn may wait on it again.
    taken_at: str | None = None


class ResponseRecord(msgspec.Struct, kw_only=True):
    """A Responses-API response: the turn it ran as, and what its request asked."""

    turn_id: str
    user_id: str
    conversation_id: str
    question_id: str  # the user message of the turn
    answer_id: str  # the assistant message of the turn
    created_at: str  # set by the store when saved (as messages' `created_at`); ignored on input
    request: dict[str, Any]  # a JSON object, stored as given


class Store(Protocol):
    async def open(self) -> None:
        """Create or migrate the schema and start the writer."""

    async def close(self) -> None:
        """Flush queued writes and close every connection."""

    async def recover(self) -> int:
        """At start-up: mark messages left `streaming` by a crash `incomplete`. Returns count."""

    async def abandon_answer(self, message_id: str, *, turn_id: str | None = None) -> Message | None:
        """End one answer whose turn nobody runs any more (its node died): if it is an
        assistant message still `streaming` (and, when `turn_id` is given, still that
        turn's), mark it `incomplete` with the content checkpointed so far and return it.
        None when it is not streaming (finished, cancelled, abandoned already), belongs to
        another turn now (regenerated since it was listed) or does not exist.

        Atomic: of several concurrent calls for one answer, exactly one gets the message.
        Against the turn's own writes, the same rule as after `recover()`: a later
        `checkpoint_message` changes nothing, a later `finish_message` wins (its final
        content and status replace `incomplete`), and after `finish_message` this returns
        None and changes nothing. Neither ever makes the answer `streaming` again; only
        `restart_answer` (a new turn) does, which is what `turn_id` guards against."""

    async def streaming_answers(
        self, *, created_before: str, limit: int = 1000
    ) -> list[StreamingAnswer]:
        """Assistant messages still `streaming` whose `created_at` is before
        `created_before` (an RFC 3339 time), oldest first, at most `limit`: the answers a
        surviving node checks for a dead owner. Cheap enough to run every few seconds on
        every node (an index holds only the streaming messages). BadRequest for a time that
        is not RFC 3339."""

    # -- runs: the turns running now, remembered so that an interrupted one can continue

    async def save_run(self, run: RunRecord) -> None:
        """Remember a turn (accept and restart do it for theirs in the same commit); a run
        with the same `turn_id` is replaced, and the runs of earlier turns of the same
        answer are forgotten (a regenerate). NotFound when `answer_id` is not a message of
        that user's conversation."""

    async def end_run(self, turn_id: str) -> None:
        """Forget a run (its answer was committed); nothing happens for an unknown one."""

    async def claim_run(self, turn_id: str) -> tuple[RunRecord, Message] | None:
        """Take a run to continue it: when it exists and its answer is still `streaming`
        and still its turn's, count one more attempt and return the run (with the new
        count) and the answer as checkpointed. Otherwise None. Atomic: each of several
        claims counts once, one after the other. Who may claim is decided before (the one
        process starting, or the one node that released a dead node's turns)."""

    async def interrupted_runs(self, *, limit: int = 1000) -> list[RunRecord]:
        """The runs whose answer is still `streaming` under their turn, oldest first, at
        most `limit`: what a starting process continues."""

    async def ping(self) -> None:
        """Raise if the store cannot answer a trivial query (readiness)."""

    async def write_problem(self) -> str | None:
        """None if writes work now. After a write failed because of the disk or the file
        (full, read-only, damaged), why writing still fails; readiness reports it."""

    async def ensure_user(self, user: UserRecord) -> None:
        """Insert the user, or update the name and role of the one with that id."""

    async def get_user(self, user_id: str) -> UserRecord | None:
        """The user with that id, or None."""

    async def accept_user_message(self, new: NewUserMessage) -> Accepted:
        """Commit a user message once per (user, client_msg_id), creating its conversation
        when `conversation_id` is None, and reserve its answer: an empty assistant message
        with status `streaming` right after it (see `Accepted.answer_id`), and its turn's
        run (see `save_run`), so that a crash at any point after the `ack` leaves a turn to
        continue. Committed before it returns (the `ack` depends on it). Raises NotFound
        for a conversation the user does not own."""

    async def restart_answer(self, user_id: str, conversation_id: str, message_id: str) -> Restarted:
        """Empty the newest answer of a conversation and mark it `streaming` again, for a
        new turn that answers the same question (regenerate), with the new turn's run. An
        answer still streaming is
        left alone (`created` False). NotFound for another user's conversation or message;
        Conflict when it is not the conversation's newest message."""

    async def get_conversation(self, user_id: str, conversation_id: str) -> Conversation: ...

    async def list_conversations(
        self, user_id: str, *, before: str | None, limit: int, query: str | None
    ) -> tuple[list[Conversation], bool]:
        """Newest-updated first; `before` is a conversation id from a previous page."""

    async def update_conversation(
        self, user_id: str, conversation_id: str, changes: dict[str, Any]
    ) -> Conversation:
        """`changes` holds any of title, model, template, variables."""

    async def delete_conversation(self, user_id: str, conversation_id: str) -> None: ...

    async def history(
        self, user_id: str, conversation_id: str, *, before: str | None, limit: int
    ) -> tuple[list[Message], bool]:
        """The `limit` messages before `before` (or the newest), oldest first; has_more."""

    async def context_messages(self, user_id: str, conversation_id: str) -> list[Message]:
        """Every message of the conversation, oldest first, for building a prompt."""

    async def checkpoint_message(self, message_id: str, content: list[dict[str, Any]]) -> None:
        """Save a streaming message's partial content (about once a second, never per token)."""

    async def finish_message(
        self,
        message_id: str,
        *,
        content: list[dict[str, Any]],
        status: str,
        model: str | None = None,
        usage: dict[str, int] | None = None,
        cost: float | None = None,
        ends_run: str | None = None,
    ) -> Message:
        """Final content and status of an assistant (or tool) message; with `ends_run`,
        that turn's run is deleted in the same commit (the turn is over: nothing to
        continue), which spares the turn a write of its own."""

    async def get_message(self, user_id: str, message_id: str) -> Message | None:
        """One message of this user, as `history` returns it; None when there is no such
        message or it is another user's."""

    async def turn_exists(self, user_id: str, turn_id: str) -> bool:
        """Whether this user has a message of that turn (cancelling an ended turn is fine)."""

    async def search_messages(
        self,
        user_id: str,
        query: str,
        *,
        conversation_id: str | None = None,
        role: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 20,
        marks: tuple[str, str] = ("**", "**"),
    ) -> list[SearchHit]:
        """Full-text search over this user's messages, best match first.

        `query` is plain words (any text is safe: it is never parsed as query syntax); a word
        ending in `*` matches as a prefix. `since` / `until` are RFC 3339 times bounding
        `created_at` (since inclusive, until exclusive). An empty query finds nothing.
        Raises NotFound for a `conversation_id` the user does not own."""

    async def import_conversation(
        self, user_id: str, conversation: dict[str, Any], messages: list[dict[str, Any]]
    ) -> str:
        """Store a copy of an exported conversation for `user_id`; returns its new id."""

    # -- accounts: users, API keys, browser logins, audit log, usage (see store/accounts.py)

    async def shared_secret(self, name: str) -> bytes | None:
        """A secret every process of the deployment shares, made by the first to ask; None
        where the store has no place for one (SQLite: `auth.cookies` keeps it in a file)."""

    async def auth_configured(self) -> bool:
        """Whether any user other than the built-in `local` one, or any API key, exists."""

    async def create_user(self, name: str, role: str, password_hash: str | None) -> UserRecord:
        """A new user; Conflict if the name is taken (or is `local`)."""

    async def list_users(self) -> list[AccountRecord]: ...

    async def user_credentials(self, name: str) -> tuple[UserRecord, str | None] | None:
        """The user with that name and their password hash; None if there is none."""

    async def create_api_key(self, user_name: str, label: str, key_hash: str, prefix: str) -> ApiKeyRecord:
        """Store a key's hash for the named user (NotFound if there is no such user)."""

    async def list_api_keys(self, user_name: str | None = None) -> list[ApiKeyRecord]: ...

    async def revoke_api_key(self, id_or_prefix: str) -> ApiKeyRecord:
        """Revoke by id or prefix: NotFound if none, Conflict if a prefix names several."""

    async def api_key_candidates(self, prefix: str) -> list[KeyCandidate]: ...

    async def touch_api_key(self, key_id: str) -> None:
        """Record that the key was just used."""

    async def live_api_keys(self, key_ids: list[str]) -> set[str]:
        """Which of `key_ids` still exist unrevoked."""

    async def create_login(
        self, user_id: str, *, ttl_s: float, address: str | None, user_agent: str | None
    ) -> str:
        """A new browser login session; returns its id (what the signed cookie names)."""

    async def login_user(self, login_id: str) -> UserRecord | None:
        """The user of a login that has neither ended nor expired; else None."""

    async def end_login(self, login_id: str) -> bool:
        """End a login (logout); False if it had already ended or does not exist."""

    async def live_logins(self, login_ids: list[str]) -> set[str]:
        """Which of `login_ids` have neither ended nor expired."""

    async def logged_in_from(self, user_id: str, address: str) -> bool:
        """Whether the user ever logged in from `address` (ended and expired logins count)."""

    async def write_audit(self, entry: AuditEntry) -> None: ...

    async def audit_entries(self, *, action: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest entries first."""

    async def tokens_used(self, user_id: str, since: str, until: str) -> int:
        """Model tokens (input + output) of the user's messages created in [since, until)."""

    async def message_accepted(self, user_id: str, client_msg_id: str) -> bool:
        """Whether a user message with that client_msg_id is already stored (a resend)."""

    # -- approvals: tool calls waiting for their user's yes or no (see tools/approvals.py)

    async def create_approval(self, new: NewApproval) -> ApprovalRecord:
        """Store a call as waiting for a decision, expiring `new.timeout_s` from now.
        Idempotent: when `call_id` is stored already (a continued turn waits again on the
        same call), that record is returned unchanged, decided or not, with its first
        `expires_at`. NotFound when the conversation is not the user's."""

    async def decide_approval(
        self, user_id: str, call_id: str, decision: Literal["allow", "deny"], decided_by: str
    ) -> ApprovalRecord | None:
        """Record the decision, at most once: only for an approval of this user, not decided
        and not expired; returns it decided. None otherwise (decided already, another
        user's, unknown or expired). Atomic: of concurrent calls, exactly one wins."""

    async def get_approval(self, user_id: str, call_id: str) -> ApprovalRecord | None:
        """The user's approval with that call id, decided or not; None for anyone else's."""

    async def pending_approvals(self, user_id: str, conversation_id: str) -> list[ApprovalRecord]:
        """The conversation's approvals neither decided nor expired, oldest first; empty
        for a conversation that is not the user's."""

    async def expire_approvals(self, now: str) -> int:
        """Mark every undecided approval whose `expires_at` is not after `now` (RFC 3339)
        `timeout`; returns how many. BadRequest for a time that is not RFC 3339."""

    async def take_approval(self, user_id: str, call_id: str) -> bool:
        """Record that the turn took the `allow` and runs the call now: True the first time
        for an allowed call of this user, False otherwise (taken already, not allowed, not
        theirs). Atomic: of concurrent takes, exactly one gets True."""

    # -- responses: what each OpenAI Responses-API request asked, kept with its turn

    async def save_response(self, record: ResponseRecord) -> ResponseRecord:
        """Store `record` (its `created_at` set to now) and return what is stored.
        Idempotent: when its `turn_id` is stored already (a retried request), that record
        is returned unchanged. NotFound when the conversation is not the user's."""

    async def get_response(self, user_id: str, turn_id: str) -> ResponseRecord | None:
        """The user's response of that turn; None for anyone else's or an unknown one."""

    async def delete_response(self, user_id: str, turn_id: str) -> bool:
        """Delete the user's response of that turn together with the turn: every message of
        this user with that `turn_id` (and their search entries), the turn's run, and the
        conversation when no message is left in it. One transaction. False when the user
        has no response of that turn (nothing is deleted)."""
