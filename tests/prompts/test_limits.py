"""Templates cannot build huge values or run for long: every way of building a big string
(filters, methods, operators, `~`, loops) is checked while it renders, the output is
streamed and stopped at `prompts.max_chars`, and a render stops at `prompts.render_timeout_s`.

Each attempt below would build at least a gigabyte without the checks; each must fail
fast, with a clear error, having allocated little memory."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError

from server.errors import Internal
from server.prompts.library import PromptLibrary
from server.prompts.sandbox import TemplateLimit
from tests.prompts.helpers import library, render

S = "{% set s = 'x' * 99999 %}"  # as big as one value may be
# Lists written out (not built with `*`) that hold 10**10 characters by reference.
NEST = S + (
    "{% set a = [s, s, s, s, s, s, s, s, s, s] %}{% set b = [a, a, a, a, a, a, a, a, a, a] %}"
    "{% set c = [b, b, b, b, b, b, b, b, b, b] %}{% set d = [c, c, c, c, c, c, c, c, c, c] %}"
)
GIGABYTE_ATTEMPTS = {
    "center filter": "{{ ''|center(10**9) }}",
    "center method": "{{ 'x'.center(10**9) }}",
    "ljust": "{{ 'x'.ljust(10**9) }}",
    "zfill": "{{ '1'.zfill(10**9) }}",
    "expandtabs": "{{ ('\\t' * 99999).expandtabs(99999) }}",
    "format filter width": "{{ '%1000000000s'|format('x') }}",
    "percent width": "{{ '%1000000000s' % 'x' }}",
    "percent precision": "{{ '%.1000000000f' % 1.0 }}",
    "percent star": "{{ '%*s' % (10**9, 'x') }}",
    "str.format width": "{{ '{:>1000000000}'.format('x') }}",
    "str.format nested precision": "{{ '{:.{p}f}'.format(1.0, p=10**9) }}",
    "replace method": S + "{{ s.replace('x', s) }}",
    "replace filter": S + "{{ s|replace('x', s) }}",
    "tilde doubling": "{% set ns = namespace(s='x' * 1000) %}{% for i in range(30) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "plus doubling": "{% set ns = namespace(s='x' * 1000) %}{% for i in range(30) %}"
    "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
    "loop in a loop": "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxxxx{% endfor %}{% endfor %}",
    "loop in a set block": "{% set big %}{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxxxx"
    "{% endfor %}{% endfor %}{% endset %}{{ big|length }}",
    "list times a number": S + "{{ ([s] * 99999)|length }}",
    "join filter": NEST + "{{ [d, d]|join }}",
    "join filter of strings": S + "{{ [s, s, s, s, s, s, s, s, s, s]|join(s) }}",
    "join method": S + "{{ ''.join([s, s, s, s, s, s, s, s, s, s]) }}",
    "a list printed": NEST + "{{ d }}",
    "a list as a string": NEST + "{{ d|string|length }}",
    "a list in a namespace": NEST + "{% set ns = namespace() %}{% set ns.d = d %}{{ ns }}",
    "a list formatted": NEST + "{{ '{}'.format(d)|length }}",
    "a list in a % format": NEST + "{{ ('%s' % [d])|length }}",
    "a list joined with ~": NEST + "{{ ('' ~ d)|length }}",
    "tojson": NEST + "{{ d|tojson|length }}",
    "indent": "{{ ('x\\n' * 50000)|indent(100000) }}",
    "wordwrap": S + "{{ s|wordwrap(1, true, s) }}",
    "map over center": "{{ (['x'] * 9999)|map('center', 99999)|list|length }}",
    "batch fill": "{{ [1]|batch(10**9, 'x')|list|length }}",
    "lipsum": "{{ lipsum(10**9) }}",
    "integer squaring": "{% set ns = namespace(n=10**64) %}{% for i in range(40) %}"
    "{% set ns.n = ns.n * ns.n %}{% endfor %}{{ ns.n > 0 }}",
    "macro output": "{% macro m() %}" + "x" * 10000 + "{% endmacro %}"
    "{% for i in range(100000) %}{{ m() }}{% endfor %}",
}


@pytest.mark.parametrize("source", GIGABYTE_ATTEMPTS.values(), ids=GIGABYTE_ATTEMPTS.keys())
def test_a_gigabyte_attempt_fails_fast_in_little_memory(tmp_path: Path, source: str) -> None:
    lib = library(tmp_path, t=source)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(TemplateLimit) as caught:
            lib.render("t", {})
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert message.startswith("t.md.j2:1: ")
    assert "prompts.max_chars" in message or "prompts.render_timeout_s" in message
    assert peak < 20_000_000, f"{peak / 1e6:.1f} MB allocated"
    assert elapsed < 5  # the render timeout is 1 s; the cap usually stops it in milliseconds


@pytest.mark.parametrize("source", [
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
], ids=["empty loops", "recursive macro"])
def test_a_render_that_runs_too_long_is_stopped(tmp_path: Path, source: str) -> None:
    (tmp_path / "t.md.j2").write_text(source)
    lib = PromptLibrary(tmp_path, render_timeout_s=0.2)
    lib.load()
    started = time.monotonic()
    with pytest.raises(TemplateLimit, match=r"longer than 0.2 s \(prompts.render_timeout_s\)"):
        lib.render("t", {})
    assert time.monotonic() - started < 5


def test_the_error_names_the_line(tmp_path: Path) -> None:
    lib = library(tmp_path, t="+++\ndescription = 'x'\n+++\nline one\n{{ 'y'.center(10**9) }}\n")
    with pytest.raises(TemplateLimit, match=r"^t\.md\.j2:5: center\(\) would have 1000000000 characters or more"):
        lib.render("t", {})


def test_the_output_cap_is_a_setting(tmp_path: Path) -> None:
    (tmp_path / "t.md.j2").write_text("{% for i in range(300) %}abcdefghij{% endfor %}")
    small = PromptLibrary(tmp_path, max_chars=1000)
    small.load()
    with pytest.raises(TemplateLimit, match="the limit is 1000"):
        small.render("t", {})
    roomy = PromptLibrary(tmp_path, max_chars=3000)
    roomy.load()
    assert roomy.render("t", {}) == "abcdefghij" * 300


def test_ordinary_templates_are_untouched(tmp_path: Path) -> None:
    source = (
        "{{ 'Hi'|center(10) }}|{{ '%05.1f' % 3.14159 }}|{{ '{:>6}'.format('ab') }}|{{ 'a-b'.replace('-', '+') }}|"
        "{{ ['x', 'y']|join(', ') }}|{{ 'q' ~ 1 ~ 'r' }}|{{ 'ab' * 3 }}|{{ [1, 2] + [3] }}|{{ 2 ** 10 }}|"
        "{% for t in tools %}{{ loop.index }}:{{ t.name }}{% if not loop.last %},{% endif %}{% endfor %}|"
        "{{ 'one two three'|wordwrap(7) }}|{{ 'a\nb'|indent(2) }}|{{ [1, 2, 3]|batch(2)|list }}|{{ tools|length }}"
    )
    lib = library(tmp_path, t=source)
    text = lib.render("t", {"tools": [{"name": "search"}, {"name": "export"}]})
    assert text == (
        "    Hi    |003.1|    ab|a+b|x, y|q1r|ababab|[1, 2, 3]|1024|1:search,2:export|"
        "one two\nthree|a\n  b|[[1, 2], [3]]|2"
    )


def test_a_limit_in_a_turn_is_an_internal_error(tmp_path: Path) -> None:
    lib = library(tmp_path, t="{{ ''|center(10**9) }}")
    with pytest.raises(Internal) as caught:
        render(lib, "t")
    assert isinstance(caught.value.__cause__, SecurityError)
