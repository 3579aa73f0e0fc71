"""The Jinja2 sandbox prompt templates render in, with limits on what a render may build.

Jinja2's `ImmutableSandboxedEnvironment` stops a template reaching internals and changing
lists and dicts, but not building a huge value: `''|center(10**9)`, `'%.1000000000f' % 1`,
`s.replace('x', s)`, `s ~ s` in a loop or a loop in a loop each make a string of a gigabyte.
So every operation that can build a value is checked *before* it runs where its size is
known from its arguments (widths, precisions, repeat counts, replacements, joins), and its
result after; each result counts against a budget for the whole render; loops and calls
check a deadline. What a check refuses raises `TemplateLimit` (a `SecurityError`) naming
the limit. The render itself is streamed and stopped as soon as the output passes the cap
(`render_limited`), so memory stays a small multiple of the cap whatever the template does.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import operator
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import BuiltinMethodType, MethodType
from typing import Any, ClassVar

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)
from jinja2.utils import Namespace, generate_lorem_ipsum
from markupsafe import Markup

# The default limits (`prompts.max_chars`, `prompts.render_timeout_s`).
MAX_CHARS = 100_000
RENDER_TIMEOUT_S = 1.0
# Everything one render builds together (garbage included) may be this many times the cap.
WORK_FACTOR = 10
MAX_EXPONENT = 64
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?([a-zA-Z%])")
_FORMAT_SPEC = re.compile(r"^(?:.?[<>=^])?[+\- ]?z?#?0?(\d*)[,_]?(?:\.(\d+))?[a-zA-Z%]?$")


class TemplateLimit(SecurityError):
    """A render that would build more than the limits allow, or run longer."""


class Limits:
    """One render's cap, budget and deadline."""

    def __init__(self, max_chars: int, timeout_s: float | None):
        self.max_chars = max_chars
        self.budget = max_chars * WORK_FACTOR
        self.timeout_s = timeout_s
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s

    def tick(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TemplateLimit(
                f"rendering took longer than {self.timeout_s:g} s (prompts.render_timeout_s)"
            )

    def allow(self, size: int, what: str) -> None:
        """Refuse, before it is built, a value of `size` characters (or items)."""
        if size > self.max_chars:
            raise TemplateLimit(
                f"{what} would have {size} characters or more; the limit is {self.max_chars} "
                "(prompts.max_chars)"
            )

    def charge(self, value: Any, what: str) -> Any:
        """Check a value just built, and count it against the render's budget."""
        self.tick()
        size = measure(value, self.max_chars)
        self.allow(size, what)
        self.budget -= min(size, _shallow(value))
        if self.budget < 0:
            raise TemplateLimit(
                f"the template built more than {self.max_chars * WORK_FACTOR} characters in all "
                f"({WORK_FACTOR} x prompts.max_chars)"
            )
        return value


_current: contextvars.ContextVar[Limits | None] = contextvars.ContextVar("template_limits", default=None)


def limits() -> Limits:
    """The running render's limits; outside a render (the optimizer folding constants at
    load time) a fresh set with the default cap and no deadline."""
    return _current.get() or Limits(MAX_CHARS, None)


@contextlib.contextmanager
def limited(max_chars: int, timeout_s: float | None) -> Iterator[Limits]:
    token = _current.set(current := Limits(max_chars, timeout_s))
    try:
        yield current
    finally:
        _current.reset(token)


def render_limited(template: Any, context: Mapping[str, Any], max_chars: int, timeout_s: float) -> str:
    """Render chunk by chunk and stop as soon as the output passes `max_chars`."""
    with limited(max_chars, timeout_s) as current:
        chunks: list[str] = []
        total = 0
        for chunk in template.generate(context):
            total += len(chunk)
            current.allow(total, "the rendered prompt")
            current.tick()
            chunks.append(chunk)
        return "".join(chunks)


def measure(value: Any, cap: int) -> int:
    """About how many characters `str(value)` would have; counting stops past `cap`, so a
    list holding one string a million times costs as much to measure as the cap."""
    total = 0
    stack = [value]
    while stack and total <= cap:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() * 3 // 10 + 1  # decimal digits
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += 2 + len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, Namespace):
            stack.append(getattr(item, "_Namespace__attrs", {}))
        else:
            total += 1
    return total


def _shallow(value: Any) -> int:
    """What a value costs in memory by itself (a list's items are references)."""
    if isinstance(value, str | bytes | list | tuple | set | frozenset | dict):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() // 8
    return 1


# -- checks of the operations that build big values from small arguments -------------------


def _percent(fmt: Any, values: Any) -> None:
    """`'%1000000000s' % x`, `'%.1000000000f' % 1`, `'%*s' % (10**9, x)`."""
    if not isinstance(fmt, str):
        return
    current = limits()
    starred = False
    for width, precision, _kind in _PERCENT_SPEC.findall(fmt):
        starred = starred or "*" in (width, precision)
        for number in (width, precision):
            if number.isdigit():
                current.allow(int(number), "a % format's width or precision")
    if starred:
        for value in values if isinstance(values, tuple) else (values,):
            if isinstance(value, int):
                current.allow(abs(value), "a % format's width or precision")


def _format_spec(spec: str) -> None:
    found = _FORMAT_SPEC.match(spec)
    for number in found.groups() if found else re.findall(r"\d+", spec):
        if number:
            limits().allow(int(number), "a format's width or precision")


def _replaced(value: Any, old: Any, new: Any, count: Any = None) -> None:
    if not isinstance(value, str) or not isinstance(new, str):
        return
    old = str(old)
    times = value.count(old) if old else len(value) + 1
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    limits().allow(len(value) + times * max(len(new) - len(old), 0), "replace()")


def _joined(separator: Any, items: Any) -> None:
    if isinstance(items, list | tuple):
        cap = limits().max_chars
        size = len(str(separator)) * max(len(items) - 1, 0)
        for item in items:
            if size > cap:
                break
            size += measure(item, cap)
        limits().allow(size, "join()")


def _width(what: str) -> Callable[..., None]:
    def check(value: Any, width: Any = 0, *rest: Any, **kwargs: Any) -> None:
        if isinstance(width, int):
            limits().allow(width, what)

    return check


def _indented(s: Any, width: Any = 4, *rest: Any, **kwargs: Any) -> None:
    pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    lines = str(s).count("\n") + 1
    limits().allow(len(str(s)) + pad * lines, "indent")


def _wrapped(s: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, *rest: Any,
             **kwargs: Any) -> None:
    text, glue = str(s), "\n" if wrapstring is None else str(wrapstring)
    steps = len(text) // max(width if isinstance(width, int) else 1, 1) + 1
    limits().allow(len(text) + steps * len(glue), "wordwrap")


def _counted(what: str) -> Callable[..., None]:
    def check(value: Any, count: Any = 1, *rest: Any, **kwargs: Any) -> None:
        if isinstance(count, int):
            limits().allow(count, what)

    return check


def _lorem(n: Any = 5, html: Any = True, min: Any = 20, max: Any = 100) -> None:
    if isinstance(n, int) and isinstance(max, int):
        limits().allow(n * max * 12, "lipsum()")


# Filters that build a value much bigger than their arguments, and how to size it first.
FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "center": _width("center"),
    "format": lambda value, *args, **kwargs: _percent(value, kwargs or args),
    "replace": _replaced,
    "indent": _indented,
    "wordwrap": _wrapped,
    "join": lambda value, d="", attribute=None: _joined(d, value),
    "batch": _counted("batch"),
    "slice": _counted("slice"),
}
# The same for methods of `str`, by name.
METHOD_CHECKS: dict[str, Callable[..., None]] = {
    "center": _width("center()"),
    "ljust": _width("ljust()"),
    "rjust": _width("rjust()"),
    "zfill": _width("zfill()"),
    "expandtabs": lambda s, tabsize=8: limits().allow(
        len(s) + s.count("\t") * (tabsize if isinstance(tabsize, int) else 0), "expandtabs()"
    ),
    "replace": _replaced,
    "join": _joined,
}


def _check_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    check = FILTER_CHECKS.get(name)
    # A filter marked pass_context / pass_eval_context / pass_environment gets that first.
    skip = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        current = limits()
        current.tick()
        values = args[skip:]
        for value in values[:1]:
            current.allow(measure(value, current.max_chars), f"the value given to |{name}")
        if check is not None:
            check(*values, **kwargs)
        return current.charge(function(*args, **kwargs), f"|{name}")

    return checked


def _paced(items: Iterable[Any], chars: int) -> Iterator[Any]:
    """A loop's items, with the deadline checked and the loop body's own text counted for
    each one (so a loop inside a loop that only writes literal text is stopped too)."""
    current = limits()
    for item in items:
        current.tick()
        if chars:
            current.budget -= chars
            if current.budget < 0:
                current.charge("", "a loop")  # raises, naming the budget
        yield item


class _CheckedFields:
    def format_field(self, value: Any, format_spec: str) -> Any:
        _format_spec(format_spec)
        current = limits()
        current.allow(measure(value, current.max_chars), "a formatted value")
        return super().format_field(value, format_spec)  # type: ignore[misc]


class _Formatter(_CheckedFields, SandboxedFormatter):
    pass


class _EscapeFormatter(_CheckedFields, SandboxedEscapeFormatter):
    pass


class _Generator(CodeGenerator):
    """`a ~ b` is compiled to a checked join instead of a plain one."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        volatile = "context.eval_ctx.volatile" if frame.eval_ctx.volatile else repr(bool(frame.eval_ctx.autoescape))
        self.write(f"environment.checked_concat({volatile}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with the size, budget and time checks described above."""

    code_generator_class = _Generator
    intercepted_binops = frozenset({"**", "*", "%", "+"})
    _OPERATORS: ClassVar[dict[str, Callable[[Any, Any], Any]]] = {"**": operator.pow, "*": operator.mul, "%": operator.mod, "+": operator.add}

    def __init__(self, **options: Any):
        super().__init__(finalize=self._finalize_output, **options)
        self.filters = {name: _check_filter(name, f) for name, f in self.filters.items()}
        self.globals["lipsum"] = generate_lorem_ipsum  # sized in `call`
        self.paced = _paced

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        current = limits()
        current.tick()
        if op == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise TemplateLimit(f"** with an exponent above {MAX_EXPONENT} is not allowed in a template")
        if op == "*":
            sizes = [measure(v, current.max_chars) if isinstance(v, str | list | tuple) else v for v in (left, right)]
            if any(isinstance(v, str | list | tuple) for v in (left, right)) and all(
                isinstance(s, int) for s in sizes
            ):
                current.allow(abs(sizes[0] * sizes[1]), f"{type(left).__name__} * {type(right).__name__}")
        if op == "%":
            _percent(left, right)
            current.allow(measure(right, current.max_chars), "the values of a % format")
        return current.charge(self._OPERATORS[op](left, right), f"the result of {op}")

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        current = limits()
        current.tick()
        for value in (*args, *kwargs.values()):
            current.allow(measure(value, current.max_chars), "an argument")
        name = getattr(obj, "__name__", "")
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str) and name in METHOD_CHECKS:
            METHOD_CHECKS[name](owner, *args, **kwargs)
        elif obj is generate_lorem_ipsum:
            _lorem(*args, **kwargs)
        result = super().call(context, obj, *args, **kwargs)
        return current.charge(result, f"{name or 'the call'}()")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja2's own `str.format` wrapper, with each field's width and precision checked."""
        if not isinstance(value, MethodType | BuiltinMethodType) or value.__name__ not in ("format", "format_map"):
            return None
        f_self = getattr(value, "__self__", None)
        if not isinstance(f_self, str):
            return None
        formatter: SandboxedFormatter = (
            _EscapeFormatter(self, escape=f_self.escape) if isinstance(f_self, Markup) else _Formatter(self)
        )
        is_format_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument and no keywords")
                return type(f_self)(formatter.vformat(f_self, (), args[0]))
            return type(f_self)(formatter.vformat(f_self, args, kwargs))

        return functools.update_wrapper(wrapper, value)

    def checked_concat(self, markup: bool, values: tuple[Any, ...]) -> str:
        current = limits()
        current.allow(sum(measure(v, current.max_chars) for v in values), "~")
        joined = Markup("").join(values) if markup else "".join(map(str, values))
        return current.charge(joined, "~")

    def _finalize_output(self, value: Any) -> Any:
        current = limits()
        current.tick()
        current.allow(measure(value, current.max_chars), "an output value")
        return value

    def pace_loops(self, tree: nodes.Template) -> nodes.Template:
        """Route every `for` loop's items through `paced`: a deadline check per item, and the
        literal text its body writes counted per item."""
        for loop in tree.find_all(nodes.For):
            chars = sum(len(data.data) for data in _own_data(loop.body))
            loop.iter = nodes.Call(
                nodes.EnvironmentAttribute("paced"), [loop.iter, nodes.Const(chars)], [], None, None,
                lineno=loop.lineno,
            )
        return tree


def _own_data(body: list[nodes.Node]) -> Iterator[nodes.TemplateData]:
    """The literal text in a loop body, not counting the bodies of loops nested in it."""
    for node in body:
        if isinstance(node, nodes.TemplateData):
            yield node
        elif not isinstance(node, nodes.For):
            yield from _own_data(list(node.iter_child_nodes()))


__all__ = ["MAX_CHARS", "RENDER_TIMEOUT_S", "Sandbox", "TemplateLimit", "limited", "render_limited"]
