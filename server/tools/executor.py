"""Running tools: policy, validation, approval, timeout, and errors turned into results.

A tool that fails never raises into the turn or the socket: the model gets an error result
and the client a `tool.output` with `ok: false`. Direct calls from a client (`tool` frame)
skip approval (the client asked for it) but not the role check.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from server.config.live import LiveConfig, as_live
from server.config.settings import Config, ToolsSettings
from server.errors import BadRequest, ChinwagError, Conflict, Forbidden, NotFound, validation_parts
from server.store.base import Store, UserRecord
from server.tools.approvals import Approvals

if TYPE_CHECKING:
    from server.bus.base import CallDirectory
from server.tools.capabilities import ServerStatus, ServerView, SettingsView, UserData
from server.tools.context import ToolContext
from server.tools.decorator import Policy, ToolHandler
from server.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from server.observability.metrics import Metrics

log = structlog.get_logger("chinwag.tools")


class ToolOutcome(msgspec.Struct):
    ok: bool
    result: Any = None
    error: str | None = None
    # Not run: the call waits for a decision the client sends in its next request (the
    # Responses API's approval requests), so the turn ends without its result.
    pending: bool = False

    def as_block(self, call_id: str) -> dict[str, Any]:
        """The `tool_result` content block the model gets back."""
        if self.ok:
            content = self.result if isinstance(self.result, str) else msgspec.json.encode(self.result).decode()
        else:
            content = f"error: {self.error}"
        return {"type": "tool_result", "tool_use_id": call_id, "content": content, "is_error": not self.ok}


def policy_of(settings: ToolsSettings, handler: ToolHandler, role: str) -> Policy:
    """A tool's policy for a role: `tools.role_policy`, then the tool's roles, then
    `tools.policy`, then the tool's own (an MCP server's tools: the server's)."""
    role_rules = settings.role_policy.get(role, {})
    if handler.name in role_rules:
        return role_rules[handler.name]
    if role not in handler.roles:
        return "deny"
    return settings.policy.get(handler.name, handler.policy)


def new_call_id() -> str:
    return "tc_" + secrets.token_urlsafe(9).replace("-", "_")


Report = Callable[[UserRecord | None], ServerStatus]


class ToolExecutor:
    """Runs tools with exactly what they may reach: `store` only through the caller's
    scoped `UserData`, `apply_config` only through an admin's `SettingsView`, `report` (the
    server's state for one user, or server-wide for None) only through `ServerView`."""

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        config: Config | LiveConfig,
        store: Store,
        metrics: Metrics,
        apply_config: Callable[[Config], list[str]],
        report: Report,
        calls: CallDirectory | None = None,
    ):
        self.registry = registry
        self._live = as_live(config)
        self.store = store
        self.metrics = metrics
        self._apply_config = apply_config
        self._report = report
        # Waiting calls are kept in the store: a decision counts once, from any tab or node.
        self.approvals = Approvals(store, calls)

    @property
    def config(self) -> Config:
        return self._live.current

    # -- who may use what ----------------------------------------------------------------

    def policy_for(self, handler: ToolHandler, role: str) -> Policy:
        return policy_of(self.config.tools, handler, role)

    def available(self, role: str, only: list[str] | None = None) -> list[ToolHandler]:
        """Tools this role may use (not denied), limited to `only` when a template says so;
        not those of an MCP server that is down (`available` False)."""
        return [
            handler
            for name, handler in sorted(self.registry.tools.items())
            if (only is None or name in only) and self.policy_for(handler, role) != "deny"
            and getattr(handler, "available", True)
        ]

    def describe_for(self, role: str) -> list[dict[str, Any]]:
        return [{**h.describe(), "policy": self.policy_for(h, role)} for h in self.available(role)]

    # -- calls ---------------------------------------------------------------------------

    async def call_direct(
        self, user: UserRecord, name: str, args: dict[str, Any], conversation_id: str | None
    ) -> ToolOutcome:
        """A client's own call: unknown → NotFound, bad args → BadRequest, role → Forbidden."""
        handler = self.registry.get(name)
        if handler is None:
            raise NotFound(f"unknown tool {name!r}")
        if self.policy_for(handler, user.role) == "deny":
            raise Forbidden(f"role {user.role!r} may not use tool {name!r}")
        arguments = _validate(handler, args)
        if conversation_id is not None:
            await self.store.get_conversation(user.id, conversation_id)
        return await self._run(handler, arguments, user, conversation_id, new_call_id())

    async def call_for_model(
        self,
        user: UserRecord,
        conversation_id: str,
        call_id: str,
        name: str,
        args: dict[str, Any],
        on_call: Any,
        *,
        turn_id: str = "",
        ask_later: bool = False,
    ) -> ToolOutcome:
        """A call the model asked for (in turn `turn_id`). `on_call(needs_approval)`
        publishes `tool.call`; a call that asks is stored as waiting before that. With
        `ask_later` such a call is only stored: it comes back `pending`, to be decided in
        the client's next request and run then (`run_approved`)."""
        handler = self.registry.get(name)
        if handler is None:
            on_call(False)
            self._count("(unknown)", "unknown_tool")  # not the name: the model may invent many
            return ToolOutcome(ok=False, error=f"there is no tool named {name!r}")
        policy = self.policy_for(handler, user.role)
        if policy == "deny":
            on_call(False)
            self._count(name, "denied")
            return ToolOutcome(ok=False, error=f"tool {name!r} is not allowed here")
        try:
            arguments = _validate(handler, args)
        except BadRequest as exc:
            on_call(policy == "ask")
            self._count(name, "invalid_args")
            return ToolOutcome(ok=False, error=f"invalid arguments: {exc.message} at {exc.details['path']}")
        if policy == "ask" and ask_later:
            await self.approvals.request(
                user.id, call_id, self.config.tools.approval_timeout_s,
                turn_id=turn_id, conversation_id=conversation_id, name=name, args=args,
            )
            on_call(True)
            return ToolOutcome(ok=False, pending=True)
        if policy == "ask":
            refused = await self._approval(user, conversation_id, turn_id, call_id, name, args, on_call)
            if refused is not None:
                return refused
        else:
            on_call(False)
        return await self._run(handler, arguments, user, conversation_id, call_id)

    async def run_approved(self, user: UserRecord, call_id: str) -> ToolOutcome:
        """Run a call stored by `ask_later` once its user decided: allowed (and not run
        before) → its result; denied or timed out → the error result the model gets.
        NotFound for a call that never waited, Conflict for one still undecided or run."""
        record = await self.store.get_approval(user.id, call_id)
        if record is None:
            raise NotFound(f"no tool call {call_id!r} waits for approval")
        if record.decision is None:
            raise Conflict(f"tool call {call_id!r} is still waiting for its decision")
        if record.decision != "allow":
            reason = "the user denied this call" if record.decision == "deny" else "approval timed out"
            return ToolOutcome(ok=False, error=reason)
        handler = self.registry.get(record.name)
        if handler is None or self.policy_for(handler, user.role) == "deny":
            return ToolOutcome(ok=False, error=f"tool {record.name!r} is not allowed here")
        if not await self.store.take_approval(user.id, call_id):
            raise Conflict(f"tool call {call_id!r} was approved and has run already")
        try:
            arguments = _validate(handler, record.args)
        except BadRequest as exc:
            return ToolOutcome(ok=False, error=f"invalid arguments: {exc.message}")
        return await self._run(handler, arguments, user, record.conversation_id, call_id)

    async def _approval(
        self,
        user: UserRecord,
        conversation_id: str,
        turn_id: str,
        call_id: str,
        name: str,
        args: dict[str, Any],
        on_call: Any,
    ) -> ToolOutcome | None:
        """Wait for the user's decision on the call: None when allowed, else the result
        the model gets. The call is stored as waiting before `tool.call` is published, so
        an `approve` that follows the event at once finds it."""
        announced: list[bool] = []

        def announce() -> None:
            announced.append(True)
            on_call(True)

        try:
            decision = await self.approvals.wait(
                user.id, call_id, self.config.tools.approval_timeout_s,
                turn_id=turn_id, conversation_id=conversation_id, name=name, args=args,
                announce=announce,
            )
        except ChinwagError as exc:  # the store could not keep it: nobody could approve it
            if not announced:
                on_call(True)
            log.warning("approval_failed", tool=name, call_id=call_id, error=exc.message)
            self._count(name, "approval_timeout")
            return ToolOutcome(ok=False, error=f"the call could not wait for approval: {exc.message}")
        if decision == "allow":
            return None
        log.info("tool_denied", tool=name, call_id=call_id, reason=decision)
        self._count(name, "rejected" if decision == "deny" else "approval_timeout")
        reason = "the user denied this call" if decision == "deny" else "approval timed out"
        return ToolOutcome(ok=False, error=reason)

    async def _run(
        self,
        handler: ToolHandler,
        arguments: msgspec.Struct,
        user: UserRecord,
        conversation_id: str | None,
        call_id: str,
    ) -> ToolOutcome:
        ctx = ToolContext(
            user=user,
            conversation_id=conversation_id,
            call_id=call_id,
            log=log.bind(tool=handler.name, call_id=call_id),
            data=UserData(self.store, user),
            settings=SettingsView(self._live, user, self._apply_config),
            server=ServerView(self._report, self.store.ping, user),
        )
        timeout = handler.timeout_s or self.config.tools.timeout_s
        kind = "error"
        try:
            async with asyncio.timeout(timeout):
                result = await handler(ctx, arguments)
            outcome = ToolOutcome(ok=True, result=msgspec.to_builtins(result))
            kind = "ok"
        except TimeoutError:
            outcome = ToolOutcome(ok=False, error=f"timed out after {timeout:g} s")
            kind = "timeout"
        except ChinwagError as exc:
            outcome = ToolOutcome(ok=False, error=exc.message)
        except Exception as exc:  # a plugin's bug is the model's error result, not ours
            log.exception("tool_crashed", tool=handler.name)
            outcome = ToolOutcome(ok=False, error=f"{type(exc).__name__}: {exc}")
        log.info("tool_called", tool=handler.name, call_id=call_id, ok=outcome.ok, outcome=kind)
        self._count(handler.name, kind)
        return outcome

    def _count(self, tool: str, outcome: str) -> None:
        self.metrics.tool_calls.labels(tool, outcome).inc()


def _validate(handler: ToolHandler, args: dict[str, Any]) -> msgspec.Struct:
    try:
        return handler.validate(args)
    except msgspec.ValidationError as exc:
        message, where = validation_parts(str(exc))
        path = "$.args" + where.removeprefix("$")
        # A missing or unknown field: point at the field itself, not at its object.
        field = re.search(r"(?:missing required|unknown) field `([^`]+)`", message)
        if field:
            path += f".{field[1]}"
        raise BadRequest(message, details={"path": path}) from None
