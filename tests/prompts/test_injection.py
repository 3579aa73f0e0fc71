"""Template injection is inert: what users send is data, never template source.

User text, titles, variables and tool output reach the rendered system prompt or the model
literally. A template (written by an operator) that reaches for internals is stopped by the
sandbox with `SecurityError` instead of running.
"""

from __future__ import annotations

import time

import pytest
from jinja2.exceptions import SecurityError

from server.config.settings import SHIPPED_PROMPTS
from server.prompts.library import PromptError, PromptLibrary
from server.protocol import Message
from server.turns.history_budget import build_context
from tests.prompts.helpers import Conversation, Tool, User, library, render

PAYLOADS = [
    "{{7*7}}",
    "{{ 7*'7' }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ config }}{{ self }}{{ request }}",
    "{% for x in range(10**9) %}x{% endfor %}",
    "{% raw %}{{ 1 }}{% endraw %}",
    "{{ lipsum.__globals__['os'] }}",
    "{% include '/etc/passwd' %}",
    "${7*7} #{7*7} <%= 7*7 %>",
    "{#",
    "{{",
]
# Strings that only evaluation of a payload could produce.
EVALUATED = ["49", "7777777", "<class", "function", "uid=", "root:"]

SHIPPED = PromptLibrary(SHIPPED_PROMPTS)
SHIPPED.load()


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("template", SHIPPED.names())
def test_titles_names_variables_and_tool_descriptions_render_literally(template, payload):
    started = time.monotonic()
    variables = {name: payload for name, spec in SHIPPED.get(template).meta.variables.items()
                 if spec.type == "str"}
    text = render(
        SHIPPED, template,
        user=User(name=payload),
        conversation=Conversation(title=payload),
        tools=[Tool("search", payload)],
        turn_variables=variables,
    )
    assert payload in text
    for evaluated in EVALUATED:
        assert evaluated not in text
    assert time.monotonic() - started < 1  # nothing looped over range(10**9)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_variable_is_rendered_verbatim(tmp_path, payload):
    lib = library(tmp_path, t="+++\n[variables]\nv = {}\n+++\n[{{ v }}]")
    assert render(lib, "t", turn_variables={"v": payload}) == f"[{payload}]"
    assert render(lib, "t", conversation_variables={"v": payload}) == f"[{payload}]"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_user_text_and_tool_output_reach_the_model_verbatim(payload):
    history = [
        Message(id="1", conversation_id="c", role="user", status="complete", created_at="",
                content=[{"type": "text", "text": payload}]),
        Message(id="2", conversation_id="c", role="assistant", status="complete", created_at="",
                content=[{"type": "tool_use", "id": "t1", "name": "search", "input": {"q": payload}}]),
        Message(id="3", conversation_id="c", role="tool", status="complete", created_at="",
                content=[{"type": "tool_result", "tool_use_id": "t1", "content": payload}]),
    ]
    window = build_context(history, budget=10_000)
    assert [m.content for m in window.messages] == [history[0].content, history[1].content, history[2].content]


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ joiner.__init__.__globals__['os'] }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ user.__class__ }}",
    "{{ now.__class__.__init__.__globals__ }}",
    "{{ '{0.__class__}'.format(user) }}",
    "{{ tools.append(1) or tools }}",
    "{{ 2 ** 100000 }}",
    "{{ 'a' * 10 ** 9 }}",
])
def test_a_template_trying_to_escape_the_sandbox_raises_security_error(tmp_path, source):
    lib = library(tmp_path, t=source)
    context = {"user": {"name": "x"}, "now": Conversation(), "tools": []}
    with pytest.raises(SecurityError):
        lib.render("t", context)


def test_a_template_looping_forever_is_stopped(tmp_path):
    lib = library(tmp_path, t="{% for x in range(10**9) %}x{% endfor %}")
    started = time.monotonic()
    with pytest.raises((PromptError, OverflowError)):
        lib.render("t", {})
    assert time.monotonic() - started < 1


def test_security_error_in_a_turn_is_an_internal_error_not_output(tmp_path):
    from server.errors import Internal

    lib = library(tmp_path, t="{{ cycler.__init__.__globals__ }}")
    with pytest.raises(Internal) as caught:
        render(lib, "t")
    assert isinstance(caught.value.__cause__, SecurityError)
