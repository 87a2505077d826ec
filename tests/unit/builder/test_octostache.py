"""Substitute Variables in Templates, as the deployment server evaluates them."""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable

import pytest

from services.builder.features import filters
from services.builder.features.octostache import (
    DEFAULT_OUTPUT_BUDGET,
    Budget,
    Evaluator,
    TemplateError,
    render,
)
from services.builder.features.octostache import parser as octostache_parser
from services.builder.features.variables import VariableSet


def run(template: str, **variables: str) -> str:
    return render(template, VariableSet({k.replace("__", "."): v for k, v in variables.items()}))


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello #{Name}!", "Hello World!"),
        ("#{name} #{NAME} #{nAmE}", "World World World"),
        ("#{Missing} stays", "#{Missing} stays"),
        ("#{Missing | ToUpper} stays", "#{Missing | ToUpper} stays"),
        ("##{Name} is literal", "#{Name} is literal"),
        ("no templates at all", "no templates at all"),
        ("unclosed #{Name", "unclosed #{Name"),
        ("#{ Name }", "World"),
        ("a#{Empty}b", "ab"),
    ],
)
def test_substitution(template: str, expected: str) -> None:
    assert run(template, Name="World", Empty="") == expected


def test_dotted_names_and_nested_values() -> None:
    variables = VariableSet(
        {
            "Octopus.Environment.Name": "Production",
            "Greeting": "Hello #{Octopus.Environment.Name}",
            "Outer": "[#{Greeting}]",
            "Half": "#{Undefined} here",
        }
    )
    assert render("#{Outer}", variables) == "[Hello Production]"
    assert render("#{Half}", variables) == "#{Undefined} here"


def test_a_cycle_is_an_error() -> None:
    with pytest.raises(TemplateError, match="self referencing loop"):
        run("#{A}", A="x#{B}", B="y#{a}")


def test_index_expressions() -> None:
    variables = VariableSet(
        {"UserName": "alice", "MyPassword[alice]": "pa55", "Endpoint[A].Address": "a.example"}
    )
    assert render("#{MyPassword[#{UserName}]}", variables) == "pa55"
    assert render("#{Endpoint[A].Address}", variables) == "a.example"
    assert render("#{MyPassword[#{Nobody}]}", variables) == "#{MyPassword[#{Nobody}]}"


def test_json_values_are_navigable() -> None:
    variables = VariableSet(
        {
            "Custom.MyJson": (
                '{"Sizes": [{"price": 1.5, "name": "small"}], "On": true, "Obj": {"a": 1}}'
            ),
            "Custom.MyJson.Obj.a": "explicit wins",
        }
    )
    assert render("#{Custom.MyJson.Sizes[0].price}", variables) == "1.5"
    assert render("#{Custom.MyJson.Obj.a}", variables) == "explicit wins"
    assert render("#{custom.myjson.On}", variables) == "True"  # variable names ignore case
    assert render("#{custom.myjson.on}", variables) == ""  # JSON properties do not
    assert render("#{Custom.MyJson.Sizes}", variables) == '[{"price":1.5,"name":"small"}]'
    assert render("#{Custom.MyJson.Sizes[5]}", variables) == ""  # past the end
    # ... and an empty value has no properties
    assert render("#{Custom.MyJson.Sizes[5].price}", variables) == "#{Custom.MyJson.Sizes[5].price}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", "yes"), ("True", "yes"), ("anything", "yes"), ("False", "no"), (" no ", "no"),
     ("0", "no"), (" 0", "yes"), ("  ", "yes"), ("", "no"), (None, "no")],
)  # fmt: skip
def test_if_truthiness(value: str | None, expected: str) -> None:
    """Falsy: undefined, empty, exactly "0", or False/No (trimmed, any case)."""
    variables = VariableSet({} if value is None else {"Flag": value})
    assert render("#{if Flag}yes#{else}no#{/if}", variables) == expected
    assert render("#{unless Flag}no#{else}yes#{/unless}", variables) == expected


def test_comparisons() -> None:
    template = '#{if Env == "Production"}prod#{/if}#{if Env != "Production"}other#{/if}'
    assert run(template, Env="Production") == "prod"
    assert run(template, Env="Test") == "other"
    assert run("#{if Env == Target}same#{else}differ#{/if}", Env="a", Target="a") == "same"
    assert run('#{if Env | ToLower == "prod"}lower#{/if}', Env="PROD") == "lower"


def test_nested_blocks() -> None:
    template = "#{if A}a#{if B}b#{else}!b#{/if}#{/if}"
    assert run(template, A="1", B="0") == "a!b"


def test_each_over_groups_with_index_first_last() -> None:
    variables = VariableSet(
        {
            "Endpoint[A].Address": "a.example",
            "Endpoint[A].Port": "80",
            "Endpoint[B].Address": "b.example",
            "Endpoint[B].Port": "443",
        }
    )
    template = (
        "#{each e in Endpoint}"
        "#{Octopus.Template.Each.Index}:#{e}=#{e.Address}:#{e.Port}"
        "#{unless Octopus.Template.Each.Last},#{/unless}"
        "#{/each}"
    )
    assert render(template, variables) == "0:A=a.example:80,1:B=b.example:443"


def test_each_over_lists_and_json() -> None:
    assert run("#{each x in Hosts}[#{x}]#{/each}", Hosts="a, b,,c") == "[a][ b][][c]"
    sizes = '[{"name": "s", "price": 1}, {"name": "m", "price": 2}]'
    assert run("#{each x in Sizes}#{x.name}=#{x.price};#{/each}", Sizes=sizes) == "s=1;m=2;"
    assert run("#{each kv in Map}#{kv.Key}=#{kv.Value} #{/each}", Map='{"a": 1, "b": "x"}') == (
        "a=1 b=x "
    )
    assert run("#{each x in Nothing}never#{/each}") == ""
    first = "#{each x in L}#{if Octopus.Template.Each.First}first:#{/if}#{x} #{/each}"
    assert run(first, L="p,q") == "first:p q "


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("#{Name | ToUpper}", "MIXED CASE"),
        ("#{Name | ToLower}", "mixed case"),
        ('#{Name | ToUpper | Replace "CASE" "BOX"}', "MIXED BOX"),
        ("#{Padded | Trim}", "x"),
        ("#{Padded | Trim start}", "x  "),
        ("#{Name | Truncate 5}", "Mixed..."),
        ("#{Name | Substring 5}", "Mixed"),
        ("#{Name | Substring 6 4}", "Case"),
        ('#{Name | Replace "(\\w+) (\\w+)" "$2 $1"}', "Case Mixed"),
        ("#{Markup | HtmlEscape}", "&lt;a href=&quot;x&quot;&gt;"),
        ("#{Markup | XmlEscape}", "&lt;a href=&quot;x&quot;&gt;"),
        ("#{Quote | JsonEscape}", 'say \\"hi\\"\\n'),
        ("#{Quote | YamlDoubleQuoteEscape}", 'say \\"hi\\"\\n'),
        ("#{Single | YamlSingleQuoteEscape}", "it''s"),
        ("#{Name | ToBase64}", "TWl4ZWQgQ2FzZQ=="),
        ("#{Encoded | FromBase64}", "Mixed Case"),
        ("#{Name | StartsWith Mixed}", "true"),
        ("#{Name | Contains xyz}", "false"),
        ("#{Url | UriPart Host}", "example.com"),
        ("#{Url | UriPart Port}", "8443"),
        ("#{Space | UriDataEscape}", "a%20b%2Fc"),
        ("#{Version | VersionMajor}.#{Version | VersionMinor}", "1.2"),
        ("#{Version | VersionPreRelease}", "deployments-75"),
        ("#{Number | Format N2}", "1,234.50"),
        ('#{Number | Format "0.0"}', "1234.5"),
        ("#{Number | Format 0.0}", "#{Number | Format 0.0}"),  # a bare argument has no "."
        ("#{When | Format yyyy-MM-dd}", "2026-11-22"),
        ("#{Name | NoSuchFilter}", "#{Name | NoSuchFilter}"),
        ("#{Name | Truncate notanumber}", '#{Name | Truncate "notanumber"}'),
    ],
)
def test_filters(template: str, expected: str) -> None:
    variables = VariableSet(
        {
            "Name": "Mixed Case",
            "Padded": "  x  ",
            "Markup": '<a href="x">',
            "Notes": "**Release** notes\n\n- a",
            "Quote": 'say "hi"\n',
            "Single": "it's",
            "Encoded": "TWl4ZWQgQ2FzZQ==",
            "Url": "https://example.com:8443/path?q=1",
            "Space": "a b/c",
            "Version": "1.2.0-deployments-75",
            "Number": "1234.5",
            "When": "2026-11-22T10:30:00",
        }
    )
    assert render(template, variables) == expected


def test_now_date_needs_no_variable() -> None:
    assert len(run("#{ | NowDateUtc yyyy}")) == 4


def test_calc() -> None:
    assert run("#{calc Count + 1}", Count="41") == "42"
    assert run("#{calc ({A} + {B}) * 2 / 4}", A="1", B="3") == "2"
    assert run("#{calc Missing + 1}") == "#{Missing+1}"  # written back without "calc"
    assert run("#{calc 1 / 0}") == "∞"


@pytest.mark.parametrize(
    "template",
    ["#{if A}never closed", "#{/if}", "#{else}", "#{each x in Y}open", "#{/each}",
     "#{if A}#{/each}", "#{each oops}#{/each}"],
)  # fmt: skip
def test_unbalanced_blocks_are_written_as_they_are(template: str) -> None:
    """The server echoes a block it cannot read as written, in files as in values."""
    assert Evaluator(VariableSet({"A": "1"})).render(template) == template
    assert run(template, A="1") == template


# --- budgets and limits: templates and variables are the tenant's ----------------------------


def doubling(first: str, levels: int) -> VariableSet:
    """A0 = ``first``; each A<i> is A<i-1> twice, so A<levels> is 2**levels times A0."""
    values = {"A0": first}
    for level in range(1, levels + 1):
        values[f"A{level}"] = f"#{{A{level - 1}}}#{{A{level - 1}}}"
    return VariableSet(values)


def peak_memory(action: Callable[[], object]) -> tuple[float, int]:
    """(seconds, peak bytes allocated) while ``action`` runs (and raises TemplateError)."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(TemplateError, match="output budget"):
            action()
        return time.monotonic() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_exponential_template_fails_early_within_the_output_budget() -> None:
    """#{A24} would be 160 MB; the budget counts every value made on the way and stops the
    evaluation long before, without holding more than the budget in memory."""
    variables = doubling("0123456789", 24)
    seconds, peak = peak_memory(lambda: render("#{A24}", variables))
    assert seconds < 2
    assert peak < 1.5 * DEFAULT_OUTPUT_BUDGET
    small = Budget(characters=1_000_000)
    seconds, peak = peak_memory(lambda: Evaluator(variables, small).render("#{A24}"))
    assert seconds < 1 and peak < 4_000_000


def test_a_megabyte_a_step_blow_up_fails_early() -> None:
    variables = doubling("x" * 1_000_000, 12)
    seconds, peak = peak_memory(lambda: render("#{A12}", variables))
    assert seconds < 2 and peak < 1.5 * DEFAULT_OUTPUT_BUDGET


def test_a_variable_used_many_times_is_rendered_once() -> None:
    """2**30 uses of an empty value produce nothing, yet would take hours one by one."""
    assert render("[#{A30}]", doubling("", 30)) == "[]"
    assert render("#{A3}", doubling("ab", 3)) == "ab" * 8


def test_work_that_produces_nothing_is_bounded_by_steps() -> None:
    variables = VariableSet({"Items": ",".join(["x"] * 5000)})
    evaluator = Evaluator(variables, Budget(steps=1000))
    with pytest.raises(TemplateError, match="step budget"):
        evaluator.render('#{each i in Items}#{if i == "y"}never#{/if}#{/each}')
    assert Evaluator(variables).render("#{each i in Items}#{/each}") == ""


def test_reading_a_large_value_again_and_again_is_charged() -> None:
    """A 1 MB value tested in a loop of 1000 items reads a gigabyte: the budget stops it."""
    variables = VariableSet({"Big": "x" * 1_000_000, "Items": ",".join(["i"] * 1000)})
    for body in ("#{if Big}#{/if}", "#{Big | Contains y}", '#{if Big == "y"}#{/if}'):
        with pytest.raises(TemplateError, match="output budget"):
            render("#{each i in Items}" + body + "#{/each}", variables)


def test_binding_thousands_of_variables_needs_no_full_parse_of_plain_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each evaluator binds every name; names of plain steps are read without the full
    parser, so a large variable set bound again and again stays cheap."""
    full_parses: list[str] = []
    original = octostache_parser.Parser

    def counting(text: str, *args: object, **kwargs: object) -> object:
        full_parses.append(text)
        return original(text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(octostache_parser, "Parser", counting)
    names = {f"Fleet.Ship[hull {n}].Deck[{n}]": str(n) for n in range(5000)}
    for _ in range(3):
        assert render("#{Fleet.Ship[hull 4999].Deck[4999]}", VariableSet(names)) == "4999"
    assert not any(text in names for text in full_parses)


@pytest.mark.parametrize(
    ("name", "template"),
    [("Dock[ east ].Crane", "#{Dock[east ].Crane}"), ("Dock[].Crane", "#{Dock[].Crane}"),
     ("Dock[a[1]].Crane", "#{Dock[a[1]].Crane}"), ("Dock Yard.Crane", "#{Dock Yard.Crane}"),
     ("Dock.Crane.", "#{Dock.Crane}")],
    ids=["index-leading-space-dropped", "empty-index", "nested-index", "spaced-name",
         "read-as-far-as-it-parses"],
)  # fmt: skip
def test_variable_names_bind_as_the_server_parses_them(name: str, template: str) -> None:
    assert render(template, VariableSet({name: "found"})) == "found"


def test_a_large_json_object_is_looked_into_by_index() -> None:
    document = json.dumps({f"Key{n}": n for n in range(50_000)})
    variables = VariableSet({"Doc": document, "Items": ",".join(["i"] * 2000)})
    started = time.monotonic()
    rendered = render("#{each i in Items}#{Doc.Key49999}#{/each}", variables)
    assert rendered == "49999" * 2000 and time.monotonic() - started < 2


@pytest.mark.parametrize(
    "values",
    [{"A": "#{A}"}, {"A": "x#{b}", "B": "#{A | ToUpper}"},
     {f"V{n}": f"#{{V{n + 1}}}" for n in range(500)},
     {f"V{n}": f"#{{if T}}#{{V{n + 1}}}#{{/if}}" for n in range(500)} | {"T": "1"}],
    ids=["self", "cycle", "chain", "chain-in-blocks"],
)  # fmt: skip
def test_self_reference_and_deep_variables_are_template_errors(values: dict[str, str]) -> None:
    first = next(iter(values))
    with pytest.raises(TemplateError) as caught:
        Evaluator(VariableSet(values)).render(f"#{{{first}}}")
    assert not isinstance(caught.value.__cause__, RecursionError) or "deep" in str(caught.value)


def test_json_deeper_than_the_server_reads_is_not_json() -> None:
    variables = VariableSet({"J": "[" * 100_000 + "]" * 100_000, "K": "[" * 64 + "7" + "]" * 64})
    assert render("#{J[0]}", variables) == "#{J[0]}"
    assert render("#{K[0]}", variables) == "[" * 63 + "7" + "]" * 63


@pytest.mark.parametrize(
    "template",
    ["#{if A}" * 5000 + "#{/if}" * 5000, "#{A[" * 5000 + "#{B}" + "]}" * 5000,
     "#{each x in A}" * 100 + "#{/each}" * 100, "#{A[" + "[" * 5000 + "]" * 5000 + "]}"],
    ids=["blocks", "expressions", "loops", "brackets"],
)  # fmt: skip
def test_deep_nesting_is_a_template_error(template: str) -> None:
    with pytest.raises(TemplateError, match="nest"):
        run(template, A="1")


def test_arithmetic_that_nests_too_deeply_is_left_as_written() -> None:
    deep = "#{calc " + "(" * 5000 + "1" + ")" * 5000 + "}"
    assert run(deep) == deep
    assert run("#{calc " + "-" * 5000 + "1}") == "#{" + "-" * 5000 + "1}"  # a variable name
    assert run("#{calc Huge * 10}", Huge="9" * 400) == "∞"  # as a double overflows
    assert run("#{calc (1 + 2) * 3}") == "9"


def test_a_condition_with_much_white_space_is_parsed_in_linear_time() -> None:
    started = time.monotonic()
    assert run("#{if A" + " " * 200_000 + "}yes#{/if}", A="1") == "yes"
    assert run("#{if A" + " " * 200_000 + "== B}same#{/if}", A="1", B="1") == "same"
    assert time.monotonic() - started < 1


def test_filters_that_would_grow_without_bound_are_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(filters, "MAX_RESULT", 10_000)
    with pytest.raises(TemplateError, match="output budget"):
        run('#{X | Replace "" "0123456789"}', X="y" * 2000)
    assert run('#{X | Replace "" "-"}', X="ab") == "-a-b-"
    assert run("#{N | Format N100000000}", N="1") == '#{N | Format "N100000000"}'
    assert run("#{N | Format N99}", N="1") == "1." + "0" * 99


# --- which sensitive variables a rendering read -------------------------------------------


def secrets() -> VariableSet:
    return VariableSet(
        {
            "Public": "host=db;#{Password}",
            "Plain": "nothing secret",
            "Names": "#{Plain}",
            "Settings": "#{Config}",
        },
        {"Password": "hunter2!", "Config": '{"Key": "k-123", "List": ["a", "b"]}'},
    )


@pytest.mark.parametrize(
    ("template", "read"),
    [
        ("#{Password}", {"Password"}),
        ("#{password | ToBase64}", {"Password"}),
        ("#{Password | Substring 0 3}", {"Password"}),
        ("#{Public}", {"Password"}),
        ('#{if Password == "x"}x#{/if}', {"Password"}),
        ("#{unless Password}#{else}set#{/unless}", {"Password"}),
        ("#{each c in Config.List}#{c}#{/each}", {"Config"}),
        ("#{Config.Key}", {"Config"}),
        ("#{Settings.Key}", {"Config"}),
        ("#{calc Password + 1}", {"Password"}),
        ("#{Password | NoSuchFilter}", {"Password"}),
        ("#{Plain} #{Names} #{Undefined}", set()),
        ("no templates", set()),
    ],
)
def test_the_sensitive_variables_read_are_reported(template: str, read: set[str]) -> None:
    assert Evaluator(secrets()).evaluate(template).sensitive == read


def test_a_value_rendered_once_still_reports_what_it_read() -> None:
    evaluator = Evaluator(secrets())
    assert evaluator.evaluate("#{Public}").sensitive == {"Password"}
    assert evaluator.evaluate("#{Public}#{Plain}").sensitive == {"Password"}
    assert evaluator.evaluate("#{Plain}").sensitive == set()


def test_an_error_in_a_sensitive_value_does_not_quote_it() -> None:
    """A value that does not parse is used as written; tokens it leaves unevaluated are
    named in the error, except inside a sensitive value."""
    variables = VariableSet(
        {"Public": "#{each oops}#{/each}", "Open": "p#{Undefined}"}, {"Secret": "s3#{x y}cr3t"}
    )
    evaluator = Evaluator(variables)
    secret = evaluator.evaluate("#{Secret}")
    assert secret.text == "s3#{x y}cr3t"
    assert secret.error is not None and "Secret" in secret.error and "x y" not in secret.error
    assert evaluator.render("#{Public}") == "#{each oops}#{/each}"
    assert evaluator.evaluate("#{Open}").error == (
        "The following tokens were unable to be evaluated: '#{Undefined}'"
    )
