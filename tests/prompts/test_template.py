"""The template language: what it renders, the line and column of what it refuses, and that no
template or value can reach Python objects, recurse, loop or print without bound."""

from __future__ import annotations

import pytest

from opsgate.prompts.errors import TemplateLimitError, TemplateRenderError, TemplateSyntaxError
from opsgate.prompts.template import Limits, Template


def render(source: str, **values: object) -> str:
    return Template(source).render_text(values)


def test_substitution_conditionals_and_loops() -> None:
    source = (
        "Hello {{ user.name }}!\n"
        "{% if tier == 'pro' %}\n"
        "Priority support.\n"
        "{% elif not tier %}\n"
        "No tier.\n"
        "{% else %}\n"
        "Tier {{ tier }}.\n"
        "{% endif %}\n"
        "{% for item in items %}\n"
        "{{ loop.index }}/{{ loop.length }} {{ item.title }}{% if loop.last %}.{% endif %}\n"
        "{% endfor %}\n"
    )
    items = [{"title": "printer"}, {"title": "screen"}]
    assert render(source, user={"name": "Ada"}, tier="pro", items=items) == (
        "Hello Ada!\nPriority support.\n1/2 printer\n2/2 screen.\n"
    )
    assert render(source, user={"name": "Bo"}, tier=None, items=[]) == "Hello Bo!\nNo tier.\n"
    assert render(source, user={"name": "Cy"}, tier="free", items=None) == (
        "Hello Cy!\nTier free.\n"
    )


def test_values_print_as_json_text() -> None:
    source = "{{ a }}|{{ b }}|{{ c }}|{{ d }}|{{ e }}|{{ f }}|{{ xs.1 }}"
    out = render(source, a=3, b=1.5, c=True, d=None, e={"k": [1]}, f=[1, "x"], xs=["p", "q"])
    assert out == '3|1.5|true||{"k":[1]}|[1,"x"]|q'


def test_conditions_and_or_not_and_json_equality() -> None:
    source = "{% if a and not b or c == 1 %}yes{% else %}no{% endif %}"
    assert render(source, a=True, b=False, c=0) == "yes"
    assert render(source, a=True, b=True, c=0) == "no"
    assert render(source, a=False, b=True, c=1) == "yes"
    assert render(source, a=False, b=True, c=True) == "no"  # true is not 1
    assert render("{% if x != 'a' %}diff{% endif %}", x="b") == "diff"
    assert render("{% if missing.key %}x{% else %}absent{% endif %}", missing={}) == "absent"


def test_whitespace_control_and_block_lines() -> None:
    assert render("a\n  {% if x %}\n  b\n  {% endif %}\nc", x=True) == "a\n  b\nc"
    assert render("{% if x %}yes{% endif %}\nnext", x=True) == "yes\nnext"  # among text: kept
    assert render("{% if x %}{% endif %}\nnext", x=True) == "\nnext"
    assert render("a   {{- x -}}   b", x="X") == "aXb"
    assert render("a\n{# a note #}\nb") == "a\nb"
    assert render("{% raw %}{{ not a tag }}{% endraw %}") == "{{ not a tag }}"


def test_values_are_inserted_as_text_never_parsed_again() -> None:
    t = Template("Ticket: {{ ticket }}")
    hostile = "{{ secret }} {% for x in y %}{% endfor %} {{ ''.__class__ }}"
    assert t.render_text({"ticket": hostile}) == f"Ticket: {hostile}"
    assert t.render({"ticket": hostile}) == [("Ticket: ", False), (hostile, True)]


@pytest.mark.parametrize(
    ("source", "line", "column", "says"),
    [
        ("Hi {{ name", 1, 4, "never closed"),
        ("a\nb\n  {% if x %}\nc", 3, 6, "never closed"),
        ("{% for x in %}", 1, 13, "ends too early"),
        ("one\n{% endfor %}", 2, 4, "does not close"),
        ("{% else %}", 1, 4, "outside"),
        ("{% include 'other' %}", 1, 4, "unknown tag"),
        ("{% macro m() %}{% endmacro %}", 1, 4, "unknown tag"),
        ("{% set x = 1 %}", 1, 4, "unknown tag"),
        ("{% import 'os' as os %}", 1, 4, "unknown tag"),
        ("{{ x | upper }}", 1, 6, "unexpected character '|'"),
        ("{{ x() }}", 1, 5, "unexpected character '('"),
        ("{{ x[0] }}", 1, 5, "unexpected character '['"),
        ("{{ 'literal' }}", 1, 4, "expected a variable name"),
        ("{{ ''.__class__ }}", 1, 4, "expected a variable name"),
        ("{{ x.__class__.__mro__ }}", 1, 4, "names starting with '_'"),
        ("{{ _private }}", 1, 4, "names starting with '_'"),
        ("{{ lipsum.__globals__ }}", 1, 4, "names starting with '_'"),
        ("{{ cycler.__init__.__globals__.os }}", 1, 4, "names starting with '_'"),
        ("{{ x }} {{ y z }}", 1, 14, "unexpected 'z'"),
        ("{% raw %}never closed", 1, 1, "never closed"),
    ],
)
def test_syntax_errors_name_line_and_column(source: str, line: int, column: int, says: str) -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        Template(source)
    assert (info.value.line, info.value.column) == (line, column), info.value.message
    assert says in info.value.message
    assert info.value.status == 400


def test_attribute_lookup_reads_json_keys_only() -> None:
    """Dotted paths read dict keys and list indexes of the values sent: a Python attribute of a
    str, dict or list (`upper`, `items`, `format`) is just a missing key."""
    for name in ("upper", "format", "items", "keys", "append", "mro"):
        assert render(f"{{% if v.{name} %}}leak{{% endif %}}", v="text") == ""
        assert render(f"{{% if v.{name} %}}leak{{% endif %}}", v={"a": 1}) == ""
        with pytest.raises(TemplateRenderError):
            render(f"{{{{ v.{name} }}}}", v=[1, 2])


def test_missing_values_are_errors_when_printed() -> None:
    with pytest.raises(TemplateRenderError) as info:
        render("line one\n  {{ user.email }}", user={"name": "x"})
    assert "user.email" in info.value.message and "line 2, column 6" in info.value.message
    assert info.value.param == "variables.user"
    with pytest.raises(TemplateRenderError, match="not a list"):
        render("{% for x in s %}{% endfor %}", s="abc")


def test_deep_nesting_is_refused_at_parse_time() -> None:
    with pytest.raises(TemplateSyntaxError, match="nest at most"):
        Template("{% if x %}" * 40 + "{% endif %}" * 40)
    with pytest.raises(TemplateSyntaxError, match="at most"):
        Template("{{ " + ".".join(["a"] * 40) + " }}")


def test_nested_loops_are_bounded() -> None:
    bomb = Template(
        "{% for a in xs %}{% for b in xs %}{% for c in xs %}.{% endfor %}{% endfor %}{% endfor %}"
    )
    with pytest.raises(TemplateLimitError, match="iterations"):
        bomb.render({"xs": list(range(1000))})


def test_output_is_bounded() -> None:
    t = Template("{% for x in xs %}{{ big }}{% endfor %}")
    with pytest.raises(TemplateLimitError, match="characters"):
        t.render({"xs": list(range(100)), "big": "x" * 100_000})
    small = Limits(output_chars=10)
    with pytest.raises(TemplateLimitError):
        Template("{{ v }}").render({"v": "x" * 11}, small)


def test_steps_are_bounded() -> None:
    t = Template("{% for x in xs %}{% if x %}a{% endif %}{% if x %}b{% endif %}{% endfor %}")
    with pytest.raises(TemplateLimitError, match="steps"):
        t.render({"xs": [1] * 5000}, Limits(steps=1000))


def test_static_templates_render_without_walking() -> None:
    t = Template("You are a helpful assistant.")
    assert t.static == "You are a helpful assistant."
    assert t.variables == {}
    assert t.render({}) == [("You are a helpful assistant.", False)]


def test_variables_used_skip_loop_variables() -> None:
    t = Template("{% for m in history %}{{ m.role }}{{ loop.index }}{% endfor %}{{ name }}")
    assert sorted(t.variables) == ["history", "name"]
