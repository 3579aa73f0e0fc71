"""Typed settings: `chinwag.toml`, then `CHINWAG_SECTION__KEY` variables, then `--set`.

Every limit the server enforces is a named setting here with its default; the list with
explanations is `docs/configuration.md`. Later sources win: default < file < environment
< `--set`. Every value remembers where it came from (`Resolved.sources`), so that errors
name the file line and `chinwag config show` can say why a value is what it is.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from server.config.errors import line_of, split_validation_error, toml_key_lines
from server.errors import ConfigError

# A setting declared secret (`Annotated[str, SECRET]`) is masked wherever the config is
# shown (`server.config.view`): for a URL, only the password in it. A setting's name says
# nothing: `quotas.tokens_per_day` is no secret, and a name like `api_key_env` holds none.
SECRET = msgspec.Meta(extra={"secret": True})
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]


class Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every config section: unknown keys are errors, not silently ignored."""


class ServerSettings(Section):
    name: str = "chinwag"
    host: str = "127.0.0.1"
    port: Port = 8000
    # Empty means "the server's own origins" (see `effective_origins`).
    allowed_origins: list[str] = []
    public_url: str | None = None
    # Addresses or networks (`10.0.0.0/8`) whose X-Forwarded-For / -Proto are believed;
    # empty: none, every request's address is the socket's peer (see docs/security.md).
    trusted_proxies: list[str] = []
    # Seconds running turns get to finish on SIGTERM before they are checkpointed.
    shutdown_grace_s: float = 10.0


class StoreSettings(Section):
    path: str = "conversations/chinwag.db"
    # A `postgresql://` URL: the PostgreSQL store instead of SQLite at `path` (see
    # docs/scaling.md). Secret: it may hold a password.
    url: Annotated[str, SECRET] | None = None
    # PostgreSQL only: connections the process keeps, and how long one statement may take.
    pool_size: int = 10
    command_timeout_s: float = 30.0
    synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"
    busy_timeout_ms: int = 5000
    # How long the writer waits to gather more writes into one commit.
    group_commit_ms: float = 2.0
    group_commit_max: int = 256
    # `PRAGMA quick_check` at start-up: reads the whole file once to refuse a damaged one.
    quick_check: bool = True


class BusSettings(Section):
    # A `redis://` URL: what processes share while running (sessions' event logs, fan-out,
    # cancel and approve routing, node leases) goes through Redis instead of this process's
    # memory (see docs/scaling.md). Secret: it may hold a password.
    url: Annotated[str, SECRET] | None = None
    # Prefix of every Redis key and channel: several deployments may share one Redis.
    prefix: str = "chinwag"
    # How often a node renews its lease, and how long a lease outlives its last renewal:
    # a node silent for `lease_s` is dead, and another node ends the turns it ran.
    heartbeat_s: float = 1.0
    lease_s: float = 5.0
    # An answer left `streaming` with no live node holding its turn (say Redis lost its
    # data) is ended once it is older than this.
    orphan_after_s: float = 60.0


class LimitsSettings(Section):
    max_frame_bytes: int = 65536
    frames_per_window: int = 120
    frame_window_s: float = 60.0
    bad_frames_per_window: int = 10
    bad_frame_window_s: float = 60.0
    # Bytes of client frames per `frame_window_s` per connection (over it: close 4008).
    frame_bytes_per_window: int = 2 * 1024 * 1024
    max_text_chars: int = 32000
    # Outbound frames queued per socket before deltas are coalesced / the socket is closed.
    outbound_queue: int = 256
    # Shared across a user's connections (the `limits` library; 0 turns the limit off).
    # The built-in `local` user of the embedded default is not limited.
    turns_per_minute: int = 60
    # HTTP routes (slowapi), per API key, login or address; login attempts per address.
    http_per_minute: int = 300
    logins_per_minute: int = 10
    # Request bodies, bounded while they are read and before any parsing (413 past it):
    # `/auth/...` carries a name and a password, every other route at most the other.
    max_login_body_bytes: int = 4096
    max_body_bytes: int = 65536
    # Failed logins to one account within `login_failure_window_s`: from one address, and
    # from all addresses together (that lock spares addresses the account logged in from).
    login_failures_per_address: int = 5
    login_failures_per_account: int = 20
    login_failure_window_s: float = 900.0
    # Where those counters live: "memory://", or e.g. "redis://host:6379" for several processes.
    storage_uri: Annotated[str, SECRET] = "memory://"


class SessionSettings(Section):
    ttl_s: float = 120.0
    replay_buffer: int = 4096
    # Bytes of events kept per session for resume (the oldest go first past it).
    replay_buffer_bytes: int = 1024 * 1024
    # Sessions one user may hold; past it the longest-detached one is forgotten.
    max_per_user: int = 32
    heartbeat_s: float = 20.0
    hello_timeout_s: float = 10.0


class TurnSettings(Section):
    concurrent: Literal["queue", "reject"] = "queue"
    deadline_s: float = 300.0
    checkpoint_s: float = 1.0
    # A turn cut off by a crash, a deploy or a node's death: "continue" it from its last
    # checkpoint (the model is asked for the rest), or "mark" its answer `incomplete`.
    # "continue" saves the answer before each batch of text is sent (see
    # server.turns.checkpoints): a write every `stream_checkpoint_ms` per streaming turn.
    on_interrupt: Literal["continue", "mark"] = "continue"
    # Past this many interruptions a turn fails instead: one that crashes the server must
    # not make it crash again on every start.
    max_interruptions: int = 3
    # With "continue": text is sent to clients only once it is stored, saved at most this
    # often (so a client never saw text a continued answer does not have).
    stream_checkpoint_ms: float = 50.0


class ModelSettings(Section):
    """One model a turn can be routed to."""

    provider: Literal["anthropic", "openai", "echo"]
    model_id: str = ""
    base_url: Annotated[str, SECRET] | None = None
    # Name of the environment variable holding the API key; never the key itself.
    api_key_env: str | None = None
    context_window: int = 200_000
    max_output_tokens: int = 4096
    price_input_per_mtok: float = 0.0
    price_output_per_mtok: float = 0.0
    timeout_s: float = 60.0
    connect_timeout_s: float = 5.0
    # Seconds without a stream event before the call counts as hung.
    idle_timeout_s: float = 30.0
    # This model's own `routing.first_token_timeout_s` (slow local or reasoning models).
    first_token_timeout_s: float | None = None


class RoutingRule(Section):
    """Pick `model` for a turn that matches every condition given (absent: any)."""

    model: str
    templates: list[str] = []
    roles: list[str] = []
    min_chars: int = 0
    max_chars: int | None = None

    def matches(self, *, template: str, role: str, chars: int) -> bool:
        return (
            (not self.templates or template in self.templates)
            and (not self.roles or role in self.roles)
            and chars >= self.min_chars
            and (self.max_chars is None or chars <= self.max_chars)
        )


class RoutingSettings(Section):
    # Checked in order when neither turn, conversation nor template names a model.
    rules: list[RoutingRule] = []
    default: str = "echo"
    fallback: list[str] = []
    max_retries: int = 2
    backoff_base_s: float = 0.25
    backoff_max_s: float = 4.0
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0
    # Seconds a model gets, over all its retries, to send the first text or tool call of a
    # call before the selector moves to the next candidate (not applied to the last one).
    first_token_timeout_s: float = 20.0


class EchoSettings(Section):
    delay_ms: float = 10.0


SHIPPED_PROMPTS = Path(__file__).resolve().parents[2] / "prompts"


class PromptSettings(Section):
    # Folder of `*.md.j2` templates; empty means the templates shipped with chinwag.
    dir: str = ""
    default_template: str = "system"
    # The longest system prompt a template may render, and the largest value it may build
    # on the way (characters); and the longest a render may take.
    max_chars: int = 100_000
    render_timeout_s: float = 1.0


class ToolsSettings(Section):
    max_rounds: int = 8
    timeout_s: float = 30.0
    approval_timeout_s: float = 120.0
    # Who may answer `approve`: "any" socket of the user, or only a "person" (a browser
    # login or the built-in local user), never a socket opened with an API key (a bot).
    approver: Literal["any", "person"] = "any"
    # Extra folders of `*.py` files whose @tool functions are loaded at start-up.
    folders: list[str] = []
    # Per tool: "allow" | "ask" | "deny", overriding the tool's own policy.
    policy: dict[str, Literal["allow", "ask", "deny"]] = {}
    # Per role, per tool: wins over `policy`; "deny" also refuses direct calls (forbidden).
    role_policy: dict[str, dict[str, Literal["allow", "ask", "deny"]]] = {}


class McpServerSettings(Section):
    """One MCP server: a command run over stdio, or a streamable HTTP `url`."""

    command: str | None = None
    args: list[str] = []
    # The child's environment variables, each naming the variable of chinwag's own
    # environment that holds its value (secrets stay out of the file).
    env: dict[str, str] = {}
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = {}  # sent as written: nothing secret
    headers_env: dict[str, str] = {}  # header -> the environment variable holding its value
    policy: Literal["allow", "ask", "deny"] = "ask"  # for its tools, unless tools.policy says
    timeout_s: float | None = None  # one call; default tools.timeout_s
    connect_timeout_s: float = 10.0
    ping_s: float = 10.0  # how often a quiet server is asked whether it is still there
    enabled: bool = True


class McpSettings(Section):
    servers: dict[str, McpServerSettings] = {}
    reconnect_max_s: float = 30.0
    # How long start-up waits for the servers' first connection before serving anyway.
    startup_wait_s: float = 5.0


class LogSettings(Section):
    level: str = "info"
    format: Literal["auto", "json", "console"] = "auto"
    content: bool = False


class ReloadSettings(Section):
    # Watch `prompts.dir` and the config file, and apply valid changes without a restart.
    enabled: bool = True
    # Changes arriving within this many ms are applied together (editors write in bursts).
    debounce_ms: int = 300


class AuthSettings(Section):
    # False: credentials are required as soon as any user or API key exists (or the server
    # is bound to a non-loopback address); with none, everyone is the built-in `local` admin.
    required: bool = False
    # Name of the environment variable holding the cookie-signing secret; unset: a random
    # secret generated once and kept in the data folder (`secret.key`, mode 0600).
    secret_env: str | None = None
    cookie_name: str = "chinwag_session"
    # How long a browser login lasts (server-side; logout ends it sooner).
    login_ttl_s: float = 7 * 24 * 3600.0
    # How often the server looks for revoked keys and ended logins (also ones ended by
    # `chinwag keys revoke` in another process) to close their sockets.
    revocation_poll_s: float = 0.25


class QuotaSettings(Section):
    # Model tokens (input + output) per user per UTC day; 0 means no quota. The most
    # specific entry wins: `per_user` (by user name), then `per_role`, then `tokens_per_day`.
    tokens_per_day: int = 0
    per_role: dict[str, int] = {}
    per_user: dict[str, int] = {}


# weakref: so that `config_origin` can remember which file and `--set`s made a config.
class Config(Section, weakref=True):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    store: StoreSettings = msgspec.field(default_factory=StoreSettings)
    bus: BusSettings = msgspec.field(default_factory=BusSettings)
    limits: LimitsSettings = msgspec.field(default_factory=LimitsSettings)
    session: SessionSettings = msgspec.field(default_factory=SessionSettings)
    turns: TurnSettings = msgspec.field(default_factory=TurnSettings)
    models: dict[str, ModelSettings] = msgspec.field(default_factory=dict)
    routing: RoutingSettings = msgspec.field(default_factory=RoutingSettings)
    echo: EchoSettings = msgspec.field(default_factory=EchoSettings)
    prompts: PromptSettings = msgspec.field(default_factory=PromptSettings)
    tools: ToolsSettings = msgspec.field(default_factory=ToolsSettings)
    mcp: McpSettings = msgspec.field(default_factory=McpSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)
    reload: ReloadSettings = msgspec.field(default_factory=ReloadSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    quotas: QuotaSettings = msgspec.field(default_factory=QuotaSettings)

    def effective_origins(self, port: int | None = None) -> set[str]:
        """The origins a browser handshake may come from; `port` is the one actually bound
        (it differs from the configured one when that is 0)."""
        if self.server.allowed_origins:
            return set(self.server.allowed_origins)
        port = port or self.server.port
        origins = {f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://[::1]:{port}"}
        if self.server.public_url:
            origins.add(self.server.public_url.rstrip("/"))
        return origins

    def effective_hosts(self, port: int | None = None) -> set[str]:
        """The `Host` values the server answers to: those of `effective_origins`, so a page
        served under a name of its own (DNS rebinding) is refused like a foreign origin.
        A default port may also be spelt out (`app.example.com:443`)."""
        hosts: set[str] = set()
        for origin in self.effective_origins(port):
            scheme, _, rest = origin.lower().partition("://")
            host = rest.split("/", 1)[0]
            hosts.add(host)
            if ":" not in host.rpartition("]")[2] and scheme in DEFAULT_PORTS:
                hosts.add(f"{host}:{DEFAULT_PORTS[scheme]}")
        return hosts

    def host_allowed(self, host: str, port: int | None = None) -> bool:
        """Whether a request's `Host` names this server: one of `effective_hosts`, or a
        loopback name on any port (an `ssh -L` tunnel or a local forwarder; no page can
        rebind those, as they are resolved without DNS)."""
        host = host.lower()
        name = host.rsplit(":", 1)[0] if host.rpartition("]")[2].count(":") == 1 else host
        return name in LOOPBACK_NAMES or host in self.effective_hosts(port)


DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})


ENV_PREFIX = "CHINWAG_"

# The offline model every server has, so that it runs with no API key at all.
ECHO_MODEL = ModelSettings(provider="echo", model_id="echo", context_window=32_000)


DEFAULT_SOURCE = "default"


class Resolved(msgspec.Struct):
    """The effective config and, for every key set anywhere, where its value came from:
    `"chinwag.toml:12"`, `"environment variable CHINWAG_SERVER__PORT"` or `"--set"`."""

    config: Config
    sources: dict[str, str]

    def source_of(self, key: str) -> str:
        return self.sources.get(key, DEFAULT_SOURCE)


class ConfigOrigin(msgspec.Struct, frozen=True):
    """How a config was made, so that hot reload can make it again from the same inputs."""

    path: str | None
    overrides: tuple[str, ...]


_ORIGINS: dict[int, ConfigOrigin] = {}


def config_origin(config: Config) -> ConfigOrigin | None:
    """The file and `--set`s a config was loaded from (None for one built in code)."""
    return _ORIGINS.get(id(config))


def load_config(
    path: str | Path | None = None,
    *,
    environ: dict[str, str] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> Config:
    """Build the effective config: defaults, then file, then environment, then `--set`."""
    return resolve_config(path, environ=environ, overrides=overrides).config


def resolve_config(
    path: str | Path | None = None,
    *,
    environ: dict[str, str] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> Resolved:
    """Like `load_config`, also saying where each value came from. Raises `ConfigError`
    naming the key's full dotted name and its source (for a file: `path:line`)."""
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}
    lines: dict[str, int] = {}
    if path is not None:
        text = _read_text(Path(path))
        raw = _parse_toml(text, str(path))
        lines = toml_key_lines(text)
        for key in _leaf_keys(raw):
            sources[key] = f"{path}:{line_of(lines, key)}"
    env = os.environ if environ is None else environ
    for name, value in sorted(env.items()):
        if name.startswith(ENV_PREFIX) and "__" in name:
            key = name[len(ENV_PREFIX):].lower().replace("__", ".")
            _assign(raw, sources, key, _parse_scalar(value), f"environment variable {name}")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(item, "expected key=value", "--set")
        _assign(raw, sources, key.strip(), _parse_scalar(value.strip()), "--set")
    config = _convert(raw, lambda key: _locate(sources, key, path, lines))
    _remember(config, ConfigOrigin(str(path) if path is not None else None, tuple(overrides)))
    return Resolved(config=config, sources=sources)


def _remember(config: Config, origin: ConfigOrigin) -> None:
    key = id(config)
    _ORIGINS[key] = origin
    weakref.finalize(config, _ORIGINS.pop, key, None)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"cannot read: {exc}") from None


def _parse_toml(text: str, path: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib says "... (at line 3, column 7)": keep its position in the source.
        where = re.search(r"at line (\d+)", str(exc))
        source = f"{path}:{where[1]}" if where else path
        raise ConfigError("config", f"not valid TOML: {exc}", source) from None


def with_changes(config: Config, changes: dict[str, str], source: str) -> Config:
    """`config` with some settings changed, each value read as TOML would read it; the
    result is validated like a file would be (unknown key, wrong type: ConfigError)."""
    raw = msgspec.to_builtins(config)
    for key, text in changes.items():
        _assign(raw, {}, key, _parse_scalar(text), source)
    return _convert(raw, lambda key: source)


def _leaf_keys(raw: dict[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, value in raw.items():
        key = f"{prefix}{name}"
        keys.extend(_leaf_keys(value, key + ".") if isinstance(value, dict) and value else [key])
    return keys


def _key_parts(dotted: str) -> list[str]:
    """A key as TOML reads it: `tools.policy."time.convert_time"` is three parts, the
    last with a dot in it (an MCP server's tool)."""
    try:
        node: Any = tomllib.loads(f"{dotted} = 0")
    except tomllib.TOMLDecodeError:
        return dotted.split(".")
    parts: list[str] = []
    while isinstance(node, dict) and len(node) == 1:
        ((key, node),) = node.items()
        parts.append(key)
    return parts


def _assign(raw: dict[str, Any], sources: dict[str, str], dotted: str, value: Any, source: str) -> None:
    parts = _key_parts(dotted)
    node = raw
    for index, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(".".join(parts[: index + 1]), "is a value, not a section", source)
        node = child
    node[parts[-1]] = value
    for key in [k for k in sources if k.startswith(dotted + ".")]:
        del sources[key]  # a whole table replaced by this value
    for key in _leaf_keys({dotted: value}) if isinstance(value, dict) else [dotted]:
        sources[key] = source


def _parse_scalar(text: str) -> Any:
    """Read a value the way TOML would (numbers, booleans, arrays, quoted strings), else text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _convert(raw: dict[str, Any], where: Callable[[str], str]) -> Config:
    """Validate; `where(key)` says where a failing key was set."""
    try:
        config = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        key, message = split_validation_error(str(exc))
        if "*" in key.split("."):  # msgspec writes a dict key as `[...]`: find which
            key, message = _name_dict_key(raw, key, message)
        raise ConfigError(key, message, where(key)) from None
    _check_references(config, where)
    _check_proxies(config, where)
    _check_variable_names(config, where)
    _check_no_negative(config, where)
    _check_bus(config, where)
    _check_mcp(config, where)
    return config


MCP_SERVER_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]|_(?!_))*$")


def _check_mcp(config: Config, where: Callable[[str], str]) -> None:
    for name, server in config.mcp.servers.items():
        key = f"mcp.servers.{name}"
        if not MCP_SERVER_NAME.match(name) or len(name) > 32:
            raise ConfigError(key, "a server name is up to 32 lowercase letters, digits, - or single _", where(key))
        if (server.command is None) == (server.url is None):
            raise ConfigError(key, "needs exactly one of command (stdio) or url (streamable HTTP)", where(key))
        if server.url is not None and not server.url.startswith(("http://", "https://")):
            raise ConfigError(f"{key}.url", "must be an http:// or https:// URL", where(f"{key}.url"))
        if server.command is not None and not server.command.strip():
            raise ConfigError(f"{key}.command", "is empty", where(f"{key}.command"))


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def _check_bus(config: Config, where: Callable[[str], str]) -> None:
    bus = config.bus
    if bus.url is not None and not bus.url.startswith(REDIS_SCHEMES):
        raise ConfigError(
            "bus.url", "must be a redis://, rediss:// or unix:// URL (or be left out for one process)",
            where("bus.url"),
        )
    if bus.heartbeat_s <= 0 or bus.lease_s < 2 * bus.heartbeat_s:
        # One late renewal must not make a live node look dead to the others.
        raise ConfigError(
            "bus.lease_s",
            f"must be at least twice bus.heartbeat_s ({bus.heartbeat_s:g}), which must be above 0;"
            f" it is {bus.lease_s:g}",
            where("bus.lease_s"),
        )
    if not bus.prefix or any(c.isspace() for c in bus.prefix):
        raise ConfigError("bus.prefix", "must be a non-empty name without spaces", where("bus.prefix"))


def _check_no_negative(config: Config, where: Callable[[str], str]) -> None:
    """No setting is a negative number: sizes, counts, rates, prices and times are 0 or more
    (0 meaning "off" or "none" where a setting says so), so `-5` is a typo to name, not a
    value to start on."""

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for name, child in value.items():
                walk(child, f"{key}.{name}" if key else str(name))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise ConfigError(key, f"must be 0 or more, not {value:g}", where(key))

    walk(msgspec.to_builtins(config), "")


# What `api_key_env` and `auth.secret_env` take: the *name* of an environment variable.
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check_variable_names(config: Config, where: Callable[[str], str]) -> None:
    """Refuse a key pasted where its variable's name belongs (the message never repeats it)."""
    named = {
        f"models.{name}.api_key_env": (model.api_key_env, "API key", "ANTHROPIC_API_KEY")
        for name, model in config.models.items()
    }
    named["auth.secret_env"] = (config.auth.secret_env, "cookie-signing secret", "CHINWAG_SECRET")
    for key, (value, what, example) in named.items():
        if value is not None and _looks_like_a_secret(value):
            raise ConfigError(
                key,
                f"takes the name of the environment variable that holds the {what} (like"
                f" {example}), not the value itself; put the value in that variable",
                where(key),
            )


def _looks_like_a_secret(value: str) -> bool:
    """Not a variable name (`sk-ant-...`), or a long run of letters and digits without an
    underscore, as random keys are and variable names are not."""
    if not _VARIABLE_NAME.fullmatch(value):
        return True
    return len(value) >= 20 and "_" not in value and any(c.isdigit() for c in value)


def _check_proxies(config: Config, where: Callable[[str], str]) -> None:
    key = "server.trusted_proxies"
    for entry in config.server.trusted_proxies:
        try:
            ipaddress.ip_network(entry)  # strict, as uvicorn reads it: 10.0.0.0/8, not 10.0.0.1/8
        except ValueError as exc:
            raise ConfigError(
                key, f"{entry!r} is not an IP address or network (like 10.0.0.0/8): {exc}", where(key)
            ) from None


def _name_dict_key(raw: dict[str, Any], key: str, message: str) -> tuple[str, str]:
    """Validate the table's entries one at a time to put the failing entry's name in `key`."""
    parts = key.split(".")
    star = parts.index("*")
    table: Any = raw
    for part in parts[:star]:
        table = table.get(part) if isinstance(table, dict) else None
    for name, value in (table or {}).items() if isinstance(table, dict) else ():
        trial: dict[str, Any] = {name: value}
        for part in reversed(parts[:star]):
            trial = {part: trial}
        try:
            msgspec.convert(trial, Config)
        except msgspec.ValidationError as exc:
            found, found_message = split_validation_error(str(exc))
            return found.replace("*", name, 1), found_message
    return key, message


def _locate(sources: dict[str, str], key: str, path: Any, lines: dict[str, int]) -> str:
    """Where the value at `key` (or the nearest table around it) was set; for the file,
    the line of the key itself, or of the nearest table header or key around it."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        for name, source in sources.items():
            if name == prefix or name.startswith(prefix + "."):
                from_file = path is not None and source.startswith(f"{path}:")
                return f"{path}:{line_of(lines, key)}" if from_file else source
    return DEFAULT_SOURCE


def _check_references(config: Config, where: Callable[[str], str]) -> None:
    known = set(config.models) | {"echo"}
    if config.routing.default not in known:
        raise ConfigError(
            "routing.default", f"no model named {config.routing.default!r}",
            where("routing.default"),
        )
    for name in config.routing.fallback:
        if name not in known:
            raise ConfigError(
                "routing.fallback", f"no model named {name!r}", where("routing.fallback")
            )
    for index, rule in enumerate(config.routing.rules):
        if rule.model not in known:
            key = f"routing.rules.{index}.model"
            raise ConfigError(key, f"no model named {rule.model!r}", where("routing.rules"))


def prompts_dir(settings: PromptSettings) -> Path:
    return Path(settings.dir) if settings.dir else SHIPPED_PROMPTS
