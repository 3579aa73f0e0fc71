"""Templates: the shipped ones render; front matter, variables and load errors."""

from __future__ import annotations

import pytest

from server.config.settings import SHIPPED_PROMPTS
from server.errors import BadRequest
from server.prompts.library import PromptError, PromptLibrary
from tests.prompts.helpers import Conversation, Tool, User, library, render

SHIPPED = PromptLibrary(SHIPPED_PROMPTS)
SHIPPED.load(require="system")


def test_the_three_templates_are_shipped():
    assert SHIPPED.names() == ["concise", "system", "tools"]
    assert all(SHIPPED.get(n).meta.description for n in SHIPPED.names())


@pytest.mark.parametrize("name", SHIPPED.names())
def test_every_shipped_template_renders_with_its_defaults(name):
    text = render(SHIPPED, name, tools=[Tool("search", "Full-text search")])
    assert "Ann" in text and "chinwag" in text
    assert "search" in text
    assert "{{" not in text and "{%" not in text


@pytest.mark.parametrize("name", SHIPPED.names())
def test_every_shipped_template_renders_with_every_variable_given(name):
    template = SHIPPED.get(name)
    given = {"str": "calm", "int": "5", "float": "0.5", "bool": "false"}
    variables = {v: given[spec.type] for v, spec in template.meta.variables.items()}
    text = render(SHIPPED, name, turn_variables=variables, conversation=Conversation(None), tools=[])
    if "str" in {s.type for s in template.meta.variables.values()}:
        assert "calm" in text
    if "int" in {s.type for s in template.meta.variables.values()}:
        assert "5" in text


def test_shipped_variables_show_up():
    assert "a calm assistant" in render(SHIPPED, "system", turn_variables={"tone": "calm"})
    assert "at most 1 sentence," in render(SHIPPED, "concise", turn_variables={"max_sentences": "1"})
    assert "wait for" not in render(SHIPPED, "tools", turn_variables={"confirm_changes": "false"})
    assert "wait for" in render(SHIPPED, "tools")


def test_builtin_variables(tmp_path):
    lib = library(tmp_path, t=(
        "{{ user.id }}|{{ user.name }}|{{ user.role }}|{{ conversation.id }}|{{ conversation.title }}|"
        "{{ today }}|{{ now.year }}|{{ model }}|{{ server_name }}|"
        "{% for t in tools %}{{ t.name }}={{ t.description }};{% endfor %}|{{ variables }}"
    ))
    text = render(lib, "t", user=User("Bo", "u9", "admin"), conversation=Conversation("T", "c9"),
                  model="claude", tools=[Tool("a", "A"), Tool("b", "B")])
    assert text == "u9|Bo|admin|c9|T|2030-01-02|2030|claude|chinwag|a=A;b=B;|{}"


VARS = """+++
[variables]
audience = { description = "required: no default" }
tone = { default = "plain" }
count = { type = "int", default = 2 }
+++
{{ audience }}/{{ tone }}/{{ count + 1 }}"""


def test_turn_overrides_conversation_overrides_defaults(tmp_path):
    lib = library(tmp_path, v=VARS)
    assert render(lib, "v", conversation_variables={"audience": "kids"}) == "kids/plain/3"
    text = render(lib, "v", conversation_variables={"audience": "kids", "tone": "warm"},
                  turn_variables={"tone": "dry", "count": "10"})
    assert text == "kids/dry/11"


def test_missing_variable_is_bad_request_naming_it(tmp_path):
    lib = library(tmp_path, v=VARS)
    with pytest.raises(BadRequest) as caught:
        render(lib, "v", turn_variables={"tone": "x"})
    assert "'audience'" in caught.value.message
    assert caught.value.details["missing"] == ["audience"]


def test_undeclared_turn_variable_is_bad_request_naming_it(tmp_path):
    lib = library(tmp_path, v=VARS)
    with pytest.raises(BadRequest) as caught:
        render(lib, "v", turn_variables={"audience": "x", "colour": "red", "size": "9"})
    assert "'colour'" in caught.value.message and "'size'" in caught.value.message
    assert caught.value.details["unknown"] == ["colour", "size"]


def test_undeclared_conversation_variables_are_ignored(tmp_path):
    """They may belong to another template the conversation used before."""
    lib = library(tmp_path, v=VARS)
    assert render(lib, "v", conversation_variables={"audience": "a", "other": "b"}) == "a/plain/3"


def test_ill_typed_variable_is_bad_request(tmp_path):
    lib = library(tmp_path, v=VARS)
    with pytest.raises(BadRequest) as caught:
        render(lib, "v", turn_variables={"audience": "a", "count": "many"})
    assert "'count'" in caught.value.message and "int" in caught.value.message


def test_unknown_template_is_bad_request(tmp_path):
    with pytest.raises(BadRequest):
        render(library(tmp_path, v=VARS), "nope")


def test_model_hint_and_tools_filter(tmp_path):
    lib = library(tmp_path, t='+++\nmodel = "fast"\ntools = ["search"]\n+++\nx', u="y")
    assert lib.get("t").meta.model == "fast"
    assert lib.get("t").meta.tools == ["search"]
    assert lib.get("u").meta.tools is None  # every tool the role may use


@pytest.mark.parametrize(("text", "where"), [
    ("+++\ndescription = 'x'\n+++\nline one\n{% if %}\n", "t.md.j2:5"),
    ("+++\ndescription = \n+++\nx", "t.md.j2:2"),
    ("+++\ndescription = 'x'\ncolour = 'red'\n+++\nx", "t.md.j2:3"),
    ("+++\n[variables]\nn = { type = 'int', default = 'two' }\n+++\n{{ n }}", "t.md.j2:3"),
    ("+++\n[variables]\nn = { type = 'number' }\n+++\n{{ n }}", "t.md.j2:3"),
    ("+++\ndescription = 'never closed'\nhello\n", "t.md.j2:1"),
    ("+++\n+++\nfine\n{{ typo }}\n", "t.md.j2:4"),
    ("+++\n[variables]\nuser = {}\n+++\n{{ user }}", "'user'"),
])
def test_load_errors_name_file_and_line(tmp_path, text, where):
    (tmp_path / "t.md.j2").write_text(text)
    with pytest.raises(PromptError) as caught:
        PromptLibrary(tmp_path).load()
    assert where in str(caught.value)


def test_a_failed_load_keeps_the_previous_set(tmp_path):
    lib = library(tmp_path, a="A")
    (tmp_path / "b.md.j2").write_text("{% endif %}")
    with pytest.raises(PromptError):
        lib.load()
    assert lib.names() == ["a"]
    (tmp_path / "b.md.j2").write_text("B")
    lib.load()
    assert lib.names() == ["a", "b"]


def test_load_requires_the_default_template(tmp_path):
    lib = library(tmp_path, a="A")
    with pytest.raises(PromptError, match="system"):
        lib.load(require="system")
    with pytest.raises(PromptError, match="not found"):
        PromptLibrary(tmp_path / "missing").load()


def test_a_template_failing_at_render_time_is_internal(tmp_path):
    from server.errors import Internal

    lib = library(tmp_path, t="{{ user.nickname }}")
    with pytest.raises(Internal):
        render(lib, "t")
