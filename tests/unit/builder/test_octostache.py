"""Substitute Variables in Templates, as the deployment server evaluates them."""

from __future__ import annotations

import pytest

from services.builder.features.octostache import TemplateError, render
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
    with pytest.raises(TemplateError, match="cycle"):
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
            "Custom.MyJson.Sizes[0].name": "explicit wins",
        }
    )
    assert render("#{Custom.MyJson.Sizes[0].price}", variables) == "1.5"
    assert render("#{Custom.MyJson.Sizes[0].name}", variables) == "explicit wins"
    assert render("#{custom.myjson.on}", variables) == "True"
    assert render("#{Custom.MyJson.Obj}", variables) == '{"a":1}'
    assert render("#{Custom.MyJson.Sizes[5].price}", variables) == "#{Custom.MyJson.Sizes[5].price}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", "yes"), ("True", "yes"), ("anything", "yes"), ("False", "no"), (" no ", "no"),
     ("0", "no"), ("", "no"), (None, "no")],
)  # fmt: skip
def test_if_truthiness(value: str | None, expected: str) -> None:
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
    assert run("#{each x in Hosts}[#{x}]#{/each}", Hosts="a, b,c") == "[a][b][c]"
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
        (
            "#{Notes | MarkdownToHTML}",
            "<p><strong>Release</strong> notes</p>\n<ul>\n<li>a</li>\n</ul>\n",
        ),
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
        ("#{Number | Format 0.0}", "1234.5"),
        ("#{When | Format yyyy-MM-dd}", "2026-11-22"),
        ("#{Name | NoSuchFilter}", "#{Name | NoSuchFilter}"),
        ("#{Name | Truncate notanumber}", "#{Name | Truncate notanumber}"),
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
    assert run("#{calc (A + B) * 2 / 4}", A="1", B="3") == "2"
    assert run("#{calc Missing + 1}") == "#{calc Missing + 1}"
    assert run("#{calc 1 / 0}") == "#{calc 1 / 0}"


@pytest.mark.parametrize(
    "template",
    ["#{if A}never closed", "#{/if}", "#{else}", "#{each x in Y}open", "#{/each}",
     "#{if A}#{/each}", "#{each oops}#{/each}"],
)  # fmt: skip
def test_unbalanced_blocks_are_errors(template: str) -> None:
    with pytest.raises(TemplateError):
        run(template)
