"""The template language's syntax and evaluation rules, case by case, as the deployment
server's own suites pin them down (Octostache's usage, conditional, iteration, JSON,
calculation, parser and filter-syntax fixtures; Calamari's substitution fixture), each with
data of our own."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from services.builder.features.octostache import (
    Evaluator,
    FilterCall,
    ParseError,
    Substitution,
    TemplateError,
    Text,
    dotnet_double,
    parse,
    render,
)
from services.builder.features.variables import VariableSet


def evaluate(template: str, values: Mapping[str, str | None], *, halt: bool = True) -> str:
    return render(template, VariableSet(values), halt_on_error=halt)


def error_of(template: str, values: Mapping[str, str | None], *, halt: bool = True) -> str | None:
    return Evaluator(VariableSet(values)).evaluate(template, halt_on_error=halt).error


# --- substitution, escaping, names --------------------------------------------------------------

SHIP = {"Ship": "Nautilus", "Hull": "#{Ship}-II", "Deck": "#{Cabin | ToUpper}", "Cabin": "aft"}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("#{Ship}", "Nautilus"),
        ("#{SHIP} #{ship}", "Nautilus Nautilus"),
        ("#{Hull}", "Nautilus-II"),
        ("#{Deck}", "AFT"),
        ("#{Deck | ToLower}", "aft"),
        ("#{Ship|ToUpper}", "NAUTILUS"),
        ("#{ Ship }", "Nautilus"),
        ("#{Ship   |   ToUpper   }", "NAUTILUS"),
        ("##{Ship}", "#{Ship}"),
        ("###{Ship}", "#Nautilus"),
        ("####{Ship}", "###{Ship}"),
        ("a # b ## c ### d", "a # b ## c ### d"),
        ("######## even", "######## even"),
        ("##### odd#", "##### odd#"),
    ],
    ids=["plain", "any-case", "value-in-value", "filter-in-value", "filter-on-filtered",
         "no-spaces", "inner-space", "spaces-around-bar", "escaped", "hash-then-token",
         "four-hashes", "lone-hashes", "even-hashes", "odd-hashes"],
)  # fmt: skip
def test_substitution_and_escapes(template: str, expected: str) -> None:
    assert evaluate(template, SHIP) == expected


@pytest.mark.parametrize(
    ("name", "template"),
    [("Port Side Lamp", "#{Port Side Lamp}"), ("x/y", "#{x/y}"), ("x~y", "#{x~y}"),
     ("(paren)", "#{(paren)}"), ("a:b-c_d", "#{a:b-c_d}")],
)  # fmt: skip
def test_names_may_hold_spaces_and_awkward_characters(name: str, template: str) -> None:
    assert evaluate(template, {name: "lit"}) == "lit"


@pytest.mark.parametrize(
    ("template", "values", "expected", "error"),
    [
        ("#{Gone}", {}, "#{Gone}", "'#{Gone}'"),
        ("#{Ship}#{Gone}", {"Ship": "#{Hull}", "Hull": "h"}, "h#{Gone}", "'#{Gone}'"),
        ("#{ Gone  |  ToUpper }", {}, "#{Gone | ToUpper}", "'#{Gone | ToUpper}'"),
        ("#{each c in Crew}#{c.Rank}#{/each}", {"Crew[a].Name": "x", "Crew[b].Name": "y"},
         "#{c.Rank}#{c.Rank}", "'#{c.Rank}'"),
        ("#{Ship | NoSuchFilter 3}", {"Ship": "n"}, '#{Ship | NoSuchFilter "3"}',
         "'#{Ship | NoSuchFilter \"3\"}'"),
        ("#{Ship}", {"Ship": "#{Gone}"}, "#{Gone}", "'#{Gone}'"),
    ],
    ids=["undefined", "second-undefined", "written-back-normalised", "missing-property",
         "unknown-filter", "undefined-inside-a-value"],
)  # fmt: skip
def test_what_cannot_be_evaluated_is_written_back_and_reported(
    template: str, values: Mapping[str, str | None], expected: str, error: str
) -> None:
    assert evaluate(template, values) == expected
    assert (
        error_of(template, values) == f"The following tokens were unable to be evaluated: {error}"
    )


def test_a_variable_defined_with_no_value_is_empty_not_undefined() -> None:
    assert evaluate("[#{Nothing}]", {"Nothing": None}) == "[]"
    assert error_of("[#{Nothing}]", {"Nothing": None}) is None
    assert evaluate("#{if Nothing}y#{else}n#{/if}", {"Nothing": None}) == "n"


@pytest.mark.parametrize(
    "template",
    ["#{Ship", "#{Sh[ip}", "#{each c in Crew}", "#{ }", "#{}", "#{Ship.}", "x #{/if} y",
     "#{Ship | Format 0.0}", "#{Ship | Replace #{a} #{b}}"],
    ids=["unclosed", "unclosed-index", "unclosed-each", "blank", "empty", "trailing-dot",
         "closing-only", "dot-in-bare-argument", "space-after-nested-argument"],
)  # fmt: skip
def test_a_template_that_does_not_parse_is_left_as_written(template: str) -> None:
    values = {"Ship": "n", "Sh[ip]": "n", "Crew[a]": "x", "a": "b", "b": "c", "": "blank"}
    assert evaluate(template, values) == template
    error = error_of(template, values)
    assert error is not None and error.startswith("Parsing failure: unexpected '#'")
    assert Evaluator(VariableSet(values)).render(template, halt_on_error=True) == template


@pytest.mark.parametrize(
    ("template", "where"),
    [("#{Ship", "(Line 1, Column 1); recently consumed: "),
     ("deck one\nport #{Ship", "(Line 2, Column 6); recently consumed:  one\nport "),
     ("#{Ship} and #{Ship} then #{/if}", "(Line 1, Column 26); recently consumed: hip} then ")],
    ids=["at-start", "second-line", "after-good-tokens"],
)  # fmt: skip
def test_a_parse_error_names_where_parsing_stopped(template: str, where: str) -> None:
    """In the server's words: where the template stopped parsing (the start of the token
    that does not parse, not how far into it the parser looked) and the ten characters
    before it."""
    expected = f"Parsing failure: unexpected '#'; expected end of input {where}"
    assert error_of(template, {"Ship": "n"}) == expected


def test_substituting_in_files_keeps_what_does_not_parse_and_evaluates_the_rest() -> None:
    """As the server substitutes in files: a broken expression stays as written up to where
    it stops parsing, and every later expression is still evaluated."""
    template = "lamp #{Lamp} on #{deck\nlamp #{Lamp} on #{deck #{"
    values = {"Lamp": "lit"}
    assert evaluate(template, values, halt=False) == ("lamp lit on #{deck\nlamp lit on #{deck #{")
    assert evaluate(template, values) == template  # a whole template that does not parse
    script = 'f=function(s){return"#{"===s.slice(0,2)},u="#{Base.Url}",v="#{Hosts[b]}"'
    assert evaluate(script, {"Base.Url": "/app", "Hosts[b]": "h2"}, halt=False) == (
        'f=function(s){return"#{"===s.slice(0,2)},u="/app",v="h2"'
    )
    assert evaluate("stray #{/if} #{Lamp}", values, halt=False) == "stray #{/if} lit"


@pytest.mark.parametrize(
    ("template", "halt_fails", "continue_fails"),
    [("#{if a}x#{/if} lone#{/if}", True, False), ("#{a} ##{b}", False, False)],
    ids=["closing-without-opening", "clean"],
)
def test_the_two_parse_modes(template: str, halt_fails: bool, continue_fails: bool) -> None:
    for halt, fails in ((True, halt_fails), (False, continue_fails)):
        if fails:
            with pytest.raises(ParseError):
                parse(template, halt_on_error=halt)
        else:
            assert parse(template, halt_on_error=halt)


def test_in_files_a_malformed_block_stays_as_written_and_the_rest_is_evaluated() -> None:
    evaluator = Evaluator(VariableSet({"Lamp": "lit"}))
    assert evaluator.render('js("#{" + x); #{Lamp}') == 'js("#{" + x); lit'
    for template in ("#{if Lamp}open", "#{unless Lamp}x", "x#{/unless}"):
        assert evaluator.render(f"{template} #{{Lamp}}") == f"{template} lit"
    assert evaluator.render("#{each a in L}") == "#{each a in L}"


@pytest.mark.parametrize(
    ("template", "text", "missing"),
    [("#{each a in L}#{Lamp}", "#{each a in L}#{Lamp}", None),
     ("#{each a in L}x#{/each} #{each b in L}#{Lamp}", "x #{each b in L}#{Lamp}", None),
     ("x #{/each} #{Lamp}", "x #{/each} lit", None),
     ("#{if Lamp}open", "#{if Lamp}open", "'#{if Lamp}'"),
     ("#{Lamp | Replace", "#{Lamp | Replace", None)],
    ids=["unclosed-each", "second-unclosed", "closing-only", "unclosed-if", "unclosed-filter"],
)  # fmt: skip
def test_in_files_a_block_that_does_not_close_is_text_and_no_error(
    template: str, text: str, missing: str | None
) -> None:
    """The server's file substitution turns what does not parse into text and reports
    nothing for it (an unclosed ``#{each}`` keeps what follows it as written); only tokens
    it could not evaluate are named, and ``#{if Lamp`` alone is one: a variable "if Lamp"."""
    rendered = Evaluator(VariableSet({"Lamp": "lit", "L": "1"})).evaluate(template)
    expected_error = missing and f"The following tokens were unable to be evaluated: {missing}"
    assert (rendered.text, rendered.error) == (text, expected_error)


# --- cycles -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [{"Loop": "#{Loop}"}, {"Loop": "#{Twist}", "Twist": "#{Turn}", "Turn": "#{loop}"}],
    ids=["self", "three"],
)
def test_a_variable_that_refers_to_itself_is_an_error(values: Mapping[str, str | None]) -> None:
    with pytest.raises(TemplateError, match="self referencing loop"):
        evaluate("#{Loop}", values)


def test_a_cycle_is_named_by_the_lookups_that_led_to_it() -> None:
    """The server's message: the symbol met again and the chain of lookups, outermost first,
    each as the template wrote it; no value is quoted."""
    values = {"Loop": "secret #{Twist}", "Twist": "#{turn | ToUpper}", "Turn": "#{LOOP}"}
    with pytest.raises(TemplateError) as caught:
        evaluate("#{Loop}", values)
    assert str(caught.value) == (
        'An attempt to parse the variable symbol "LOOP" appears to have resulted in a self '
        "referencing loop (Loop -> Twist -> turn -> LOOP). Ensure that recursive loops do "
        "not exist in the variable values."
    )


def test_a_variable_used_twice_is_not_a_cycle() -> None:
    assert evaluate("#{Pair}", {"Pair": "#{One}#{One}", "One": "1"}) == "11"


# --- indexes -----------------------------------------------------------------------------------

FLEET = {
    "Fleet[North Sea].Flag": "blue",
    "Fleet[South Sea].Flag": "red",
    "Fleet[].Flag": "none",
    "Current": "South Sea",
    "Fleet[North Sea].Port": "Bergen",
    "Pick": "#{Current}",
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("#{Fleet[North Sea].Flag}", "blue"),
        ("#{fleet[north sea].flag}", "blue"),
        ("#{Fleet[#{Current}].Flag}", "red"),
        ("#{Fleet[#{Pick}].Flag}", "red"),
        ("#{Fleet[#{Nowhere}].Flag}", "#{Fleet[#{Nowhere}].Flag}"),
        ("#{Fleet[].Flag}", "none"),
        ("#{Fleet[North Sea]}", "North Sea"),
        ("#{Fleet[ North Sea].Port}", "Bergen"),
    ],
    ids=["named", "any-case", "by-variable", "by-variable-in-variable", "by-undefined",
         "empty-index", "entry-is-its-key", "leading-space-dropped"],
)  # fmt: skip
def test_indexes(template: str, expected: str) -> None:
    assert evaluate(template, FLEET) == expected


def test_a_star_index_picks_an_entry() -> None:
    assert evaluate("#{Fleet[*].Flag}", FLEET) in ("blue", "red", "none")


# --- conditionals ------------------------------------------------------------------------------

BRIDGE = {"Lit": "true", "Dark": "false", "Word": "aye", "Echo": "aye", "Say": "spoken"}


@pytest.mark.parametrize(
    "template",
    ["#{if Lit}#{Say}#{/if}", "#{ if Lit}#{Say}#{/if}", "#{   if Lit}#{Say}#{/if}",
     "#{if Lit }#{Say}#{/if}", "#{ if Lit   }#{Say}#{/if}", "#{if    Lit}#{Say}#{/if}",
     "#{if Lit}#{ Say}#{/if}", "#{if Lit}#{Say  }#{/if}", '#{if Lit  == "true"}#{Say}#{/if}',
     '#{if Lit   != "false"}#{Say}#{/if}', "#{IF Lit}#{Say}#{/if}",
     "#{unless Dark}#{Say}#{/unless}", "#{if Word == Echo}#{Say}#{/if}",
     '#{if Word == "aye"}#{Say}#{/if}', '#{if Word != "nay"}#{Say}#{/if}',
     '#{if Lit}#{if Word=="aye"}#{Say}#{/if}#{/if}', "#{if Lit}#{Say}#{else}no#{/if}",
     "#{if Dark}no#{else}#{Say}#{/if}", '#{if Dark}no#{else}#{if Word == "aye"}#{Say}#{/if}#{/if}',
     '#{if Word | ToUpper == "AYE"}#{Say}#{/if}', "#{if Word | StartsWith a}#{Say}#{/if}",
     '#{if Quote == \\"two words\\"}#{Say}#{/if}', "#{unless Dark}#{Say}#{else}no#{/unless}"],
)  # fmt: skip
def test_conditionals_choose(template: str) -> None:
    assert evaluate(template, BRIDGE | {"Quote": "two words"}) == "spoken"


@pytest.mark.parametrize(
    ("template", "expected"),
    [('#{if Word == "AYE"}same#{else}differ#{/if}', "differ"),
     ("#{if Gone == Missing}both-empty#{/if}", "both-empty"),
     ('#{if Gone == ""}empty#{/if}', "empty"),
     ("#{if Gone}x#{else}undefined-is-false#{/if}", "undefined-is-false")],
    ids=["case-sensitive", "undefined-sides-are-empty", "undefined-equals-empty", "truthy"],
)  # fmt: skip
def test_conditional_comparisons(template: str, expected: str) -> None:
    assert evaluate(template, BRIDGE) == expected


@pytest.mark.parametrize(
    ("sea", "expected"),
    [("North", "cold"), ("Red", "warm"), ("CORAL", "reef"), ("Dead", "salt")],
)
def test_elseif_chains_conditions(sea: str, expected: str) -> None:
    template = (
        '#{if Sea == "North"}cold#{elseif Sea == "Red"}warm'
        '#{ elseif  Sea | ToLower == "coral" }reef#{else}salt#{/if}'
    )
    assert evaluate(template, {"Sea": sea}) == expected


def test_elseif_without_else_writes_nothing_when_no_condition_holds() -> None:
    assert evaluate("[#{if A}a#{elseif B}b#{/if}]", {"A": "no", "B": "0"}) == "[]"


@pytest.mark.parametrize(
    ("template", "expected"),
    [("#{unless Word | NoSuchFilter}quiet#{/unless}",
      "#{if Word | NoSuchFilter}#{else}quiet#{/if}"),
     ("#{unless Word | NoSuchFilter}quiet#{else}loud#{/unless}",
      "#{if Word | NoSuchFilter}loud#{else}quiet#{/if}"),
     ('#{if Word | NoSuchFilter == "aye"}yes#{/if}',
      '#{if Word | NoSuchFilter == "aye" }yes#{/if}'),
     ("#{if Word == Echo | NoSuchFilter}yes#{else}no#{/if}",
      "#{if Word == Echo | NoSuchFilter }yes#{else}no#{/if}")],
    ids=["unless", "unless-else", "literal", "symbol"],
)  # fmt: skip
def test_a_condition_that_cannot_be_evaluated_is_written_back_as_the_server_keeps_it(
    template: str, expected: str
) -> None:
    """The whole block is written back; an ``#{unless}`` as the ``#{if}`` with swapped
    branches the server holds it as, ``#{else}`` only when there is an else branch."""
    assert evaluate(template, BRIDGE) == expected
    assert error_of(template, BRIDGE) is not None


def test_else_is_only_the_exact_keyword() -> None:
    """``#{ else }`` is a variable called "else", which stays in the chosen branch."""
    assert evaluate("#{if Lit}a#{ else }b#{/if}", BRIDGE) == "a#{else}b"


# --- the null filter -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "text", "null"),
    [("#{ | null}", "", True), ("#{Word | null}", "", True),
     ("#{if Dark}#{Say}#{else}#{ | null }#{/if}", "", True),
     ("#{if Lit}#{Say}#{else}#{ | null }#{/if}", "spoken", False),
     ("[#{ | null}]", "[#{ | null}]", False), ("#{Nullish}", "#{ | null}", False)],
    ids=["alone", "of-a-value", "chosen-branch", "other-branch", "among-text", "in-a-value"],
)  # fmt: skip
def test_a_template_of_only_the_null_filter_has_no_value(
    template: str, text: str, null: bool
) -> None:
    """``| null`` has no answer: written back like a missing token, yet not one (no error);
    a template that writes nothing else has no value at all (the server's null)."""
    rendered = Evaluator(VariableSet(BRIDGE | {"Nullish": "#{ | null}"})).evaluate(template)
    assert (rendered.text, rendered.null, rendered.error) == (text, null, None)


def test_the_null_filter_is_known_by_its_exact_name() -> None:
    """The server compares the name as written: ``| Null`` is a token it could not evaluate."""
    rendered = Evaluator(VariableSet(BRIDGE)).evaluate("#{ | Null}")
    assert (rendered.text, rendered.null) == ("#{ | Null}", False)
    assert rendered.error == "The following tokens were unable to be evaluated: '#{ | Null}'"


# --- repetition --------------------------------------------------------------------------------

CARGO = {
    "Hold[Fore].Crate": "tea",
    "Hold[Fore].Tags": "dry,light",
    "Hold[Aft].Crate": "salt",
    "Hold[Aft].Tags": "heavy",
    "Hold[].Crate": "#{Spare}",
    "Hold[].Tags": "misc",
    "Spare": "rope",
    "Berth[x]": "7",
    "Berth[y]": "9",
    "Bunk[x].Name": "Ann",
    "Bunk[y].Name": "Bo",
    "Key[p]": "key-p",
    "Key[p].Serial": "S1",
    "Odd[z]": "v",
    "Odd[z].Key": "chosen",
    "Pier": "A,B,C",
    "Gauges": "[1.5,2,true,null]",
    "Manifest": '{"rum": {"casks": 3}, "gin": "2"}',
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("#{each h in Hold}#{h}=#{h.Crate};#{/each}", "Fore=tea;Aft=salt;=rope;"),
        ("#{  each   h   in   Hold  }#{ h }#{/each}", "ForeAft"),
        ("#{each h in Hold}#{each t in h.Tags}#{h.Crate}:#{t} #{/each}#{/each}",
         "tea:dry tea:light salt:heavy rope:misc "),
        ("#{each b in Berth}[#{b}|#{b.Key}]#{/each}", "[7|x][9|y]"),
        ("#{each b in Bunk}[#{b}|#{b.Key}|#{b.Name}]#{/each}", "[x|x|Ann][y|y|Bo]"),
        ("#{each k in Key}#{k}/#{k.Key}/#{k.Serial}#{/each}", "key-p/p/S1"),
        ("#{each o in Odd}#{o.Key}#{/each} #{Odd[z].Key}", "chosen chosen"),
        ("#{Berth[x].Key}|#{Bunk[y].Key}|#{Pier.Key}", "x|y|#{Pier.Key}"),
        ("#{each p in Pier}#{p}#{Octopus.Template.Each.Index}#{if Octopus.Template.Each.First}^"
         "#{/if}#{unless Octopus.Template.Each.Last},#{/unless}#{/each}", "A0^,B1,C2"),
        ("#{each g in Gauges}<#{g}>#{/each}", "<1.5><2><True><>"),
        ("#{each m in Manifest}#{m}=#{m.Value} #{m.Key}:#{m.Value.casks};#{/each}",
         'rum={"casks":3} rum:3;gin=2 gin:2;'),
        ("#{each x in Nowhere}never#{/each}done", "done"),
        ("#{each a in Pier}#{each b in Pier}#{Octopus.Template.Each.Index}#{/each}|#{/each}",
         "012|012|012|"),
    ],
    ids=["groups", "spaces", "nested", "direct-values-and-keys", "sub-properties-and-keys",
         "value-key-and-property", "own-key-wins", "key-outside-a-loop",
         "comma-list-with-specials", "json-array", "json-object", "undefined",
         "inner-index-shadows-outer"],
)  # fmt: skip
def test_repetition(template: str, expected: str) -> None:
    assert evaluate(template, CARGO) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("a, b", "[a][ b]"), ("a,,b", "[a][][b]"), ("", "[]"), ("solo", "[solo]")],
    ids=["spaces-kept", "empty-part-kept", "empty-value-once", "one"],
)
def test_a_comma_list_splits_on_every_comma(value: str, expected: str) -> None:
    assert evaluate("#{each x in List}[#{x}]#{/each}", {"List": value}) == expected


def test_a_variable_referring_to_a_loop_item_is_read_where_it_is_defined() -> None:
    """A value is evaluated where the variable was found: a global one cannot see a loop's
    item, an item's own value can see the globals."""
    values = {"Echo": "[#{p}]", "Pier": "A", "Dock[1]": "#{Echo}"}
    assert evaluate("#{each p in Pier}#{Echo}#{/each}", values) == "[#{p}]"
    assert evaluate("#{each d in Dock}#{d}#{/each}", values) == "[#{p}]"


# --- JSON values -------------------------------------------------------------------------------

CHART = {
    "Chart": '{"Bay": "Biscay", "Depth": {"Max": 4735, "Unit": "m"}, '
    '"Buoys": [{"Id": "b1"}, {"Id": "b2"}], "Lit": true, "Gap": null, "Ratio": 1.0}',
    "Chart.Bay": "overridden",
    "Loose": "{Name: 'single', Count: 2, /* note */ List: [1, 2, ], }",
    "Broken": "{Name: bare}",
    "Tides": "[3,1,4]",
    "Key": "Bay",
    "Built": '{#{Key}: "#{Spare}"}',
    "Spare": "rope",
    "Self": '{Label: "#{Self.Size}", Size: 12}',
    "Number": "42",
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("#{Chart.Bay}", "overridden"),
        ("#{Chart[Depth][Max]}", "4735"),
        ("#{Chart.Depth.Unit}", "m"),
        ("#{Chart.Depth}", '{"Max":4735,"Unit":"m"}'),
        ("#{Chart.Buoys[1].Id}", "b2"),
        ("#{Chart.Lit}", "True"),
        ("#{Chart.Gap}|#{Chart.Nothing}|#{Chart.depth}", "||"),
        ("#{Chart.Ratio}", "1"),
        ("#{Tides[2]}|#{Tides[3]}", "4|"),
        ("#{Tides[x]}", "#{Tides[x]}"),
        ("#{Loose.Name}/#{Loose.Count}/#{Loose.List[1]}", "single/2/2"),
        ("#{Broken.Name}", "#{Broken.Name}"),
        ("#{Built.Bay}|#{Built[#{Key}]}", "rope|rope"),
        ("#{Self.Label}", "12"),
        ("#{Number.Anything}", "42"),
        ("#{Chart.Gap | ToUpper}", ""),
    ],
    ids=["explicit-variable-wins", "brackets", "dots", "object-as-compact-json", "array",
         "boolean", "null-missing-and-case-are-empty", "double-as-dotnet-writes-it",
         "past-the-end-is-empty", "non-number-index-is-undefined", "lenient-json",
         "invalid-json-is-undefined", "json-built-from-variables", "refers-to-own-property",
         "a-plain-value-is-every-property", "null-through-a-filter"],
)  # fmt: skip
def test_json_values(template: str, expected: str) -> None:
    assert evaluate(template, CHART) == expected


@pytest.mark.parametrize(
    ("value", "template", "expected"),
    [('{"Sailed": "1805-10-21T11:45:00"}', "#{Log.Sailed}", "10/21/1805 11:45:00"),
     ('{"Sailed": "1805-10-21T11:45:00.25Z"}', "#{Log.Sailed}", "10/21/1805 11:45:00"),
     ('{"Sailed": "1805-10-21T11:45:00+01:30"}', "#{Log.Sailed}", "10/21/1805 10:15:00"),
     ('{"Sailed": "/Date(-5364662400000)/"}', "#{Log.Sailed}", "01/01/1800 00:00:00"),
     ('{"Sailed": "1805-10-21 11:45:00"}', "#{Log.Sailed}", "1805-10-21 11:45:00"),
     ('{"Sailed": "1805-02-30T11:45:00"}', "#{Log.Sailed}", "1805-02-30T11:45:00"),
     ('{"Sailed": "1805-10-21T24:00:00"}', "#{Log.Sailed}", "10/22/1805 00:00:00"),
     ('["1805-10-21T11:45:00", "x"]', "#{each d in Log}#{d};#{/each}", "10/21/1805 11:45:00;x;"),
     ('{"In": {"At": "1805-10-21T11:45:00.5000000"}}', "#{Log.In}",
      '{"At":"1805-10-21T11:45:00.5"}'),
     ('{"In": ["1805-10-21T11:45:00+01:00"]}', "#{Log.In}", '["1805-10-21T10:45:00+00:00"]')],
    ids=["iso", "fraction-and-utc", "offset-to-local-utc", "ms-date", "space-is-not-iso",
         "no-such-day", "hour-24", "each", "json-trims-fraction", "json-local-offset"],
)  # fmt: skip
def test_json_dates_read_as_the_server_reads_them(value: str, template: str, expected: str) -> None:
    """A string that is a date is read as one: as text in the invariant culture, as JSON in
    ISO 8601 (the server's clock taken to be UTC)."""
    assert evaluate(template, {"Log": value}) == expected


def test_conditions_with_escaped_quotes_inside_json() -> None:
    assert evaluate('{"Sea":"#{if Sea == \\"North Sea\\"}cold#{/if}"}', {"Sea": "North Sea"}) == (
        '{"Sea":"cold"}'
    )


# --- #{calc} -----------------------------------------------------------------------------------

GAUGE = {"P": "6", "Q": "8", "Port/Side": "10", "Half-Mast": "12", "Word": "six"}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("4+5", "9"), ("9-4", "5"), ("4*5", "20"), ("9/2", "4.5"), ("2*3+4*5", "26"),
        ("2*(3+4)*5", "70"), ("P+1", "7"), ("P+Q", "14"), ("{Q}-3", "5"), ("3-Q", "-5"),
        ("(Q*2)-1", "15"), ("1-(Q*2)", "-15"), ("{Q}/16", "0.5"), ("1/3", dotnet_double(1 / 3)),
        ("0.1*Q", dotnet_double(0.1 * 8)), ("{Half-Mast}-2", "10"), ("{Port/Side}-2", "8"),
        ("9%4", "1"), ("8%8", "0"), ("3%8", "3"), ("Q%P", "2"), ("{Q}%3", "2"),
        ("1+9%4", "2"), ("9%4+1", "2"), ("11%4*3", "9"), ("11*3%4", "1"), ("(P+3)%4", "1"),
        ("30%({Q}-1)", "2"), ("1 + 2", "3"), ("1/0", "∞"), ("0-1/0", "-∞"), ("0/0", "NaN"),
        ("6.5%2", "#{6.5%2}"), ("6%1.5", "#{6%1.5}"), ("6%0", "#{6%0}"), ("R+1", "#{R+1}"),
        ("Word*2", "#{Word*2}"), ("Q-1", "#{Q-1}"), ("Q/2", "#{Q/2}"), ("{R}%(2)", "#{R%2}"),
    ],
)  # fmt: skip
def test_calc(expression: str, expected: str) -> None:
    assert evaluate("#{calc " + expression + "}", GAUGE) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [(5.0, "5"), (-0.25, "-0.25"), (1e15, "1E+15"), (123456789012345.0, "123456789012345"),
     (0.0001, "0.0001"), (0.00001, "1E-05"), (1.5e300, "1.5E+300")],
)  # fmt: skip
def test_numbers_are_written_as_dotnet_writes_doubles(value: float, text: str) -> None:
    assert dotnet_double(value) == text


# --- filter expressions ------------------------------------------------------------------------


def options_of(template: str) -> list[str]:
    """The arguments of the template's first filter, each a text or ``#{...}``."""
    (node,) = parse(template)
    assert isinstance(node, Substitution) and isinstance(node.expression, FilterCall)
    return [
        option.text if isinstance(option, Text) else "sub" for option in node.expression.options
    ]


@pytest.mark.parametrize(
    ("template", "options"),
    [
        ("#{V | F a b}", ["a", "b"]),
        ('#{V | F "two words" "x\'y"}', ["two words", "x'y"]),
        ('#{V | F \\"a # b\\" \\"c\\"}', ["a # b", "c"]),
        ("#{V | F #{A}#{B}}", ["sub", "sub"]),
        ('#{V | F " " #{A} " " tail}', [" ", "sub", " ", "tail"]),
        ("#{V | F 3/2 //}", ["3/2", "//"]),
        ('#{V | F "<|>" 7}', ["<|>", "7"]),
        ("#{V|F}", []),
        ("#{ | F x}", ["x"]),
    ],
    ids=["bare", "quoted", "escaped-quotes", "substitutions", "mixed", "slashes",
         "bar-inside-quotes", "none", "no-input"],
)  # fmt: skip
def test_filter_arguments_are_tokenized_as_the_server_does(
    template: str, options: list[str]
) -> None:
    assert options_of(template) == options


def test_filters_chain_left_to_right_and_arguments_are_evaluated() -> None:
    values = {"V": "Mixed", "Pat": "x", "With": "ed"}
    assert evaluate("#{V | ToUpper | ToLower}", values) == "mixed"
    assert evaluate("#{V | Replace #{With}#{Pat}}", values) == "Mixx"
    # a quoted argument may not hold "#": the expression does not parse
    assert evaluate('#{V | Replace "i" "#{Pat}"}', values) == '#{V | Replace "i" "#{Pat}"}'
    assert evaluate('#{V | Replace "i" \\"#{Pat}\\"}', values) == "M#{Pat}xed"


@pytest.mark.parametrize(
    ("template", "written"),
    [("#{Gone | ToUpper}", None), ("#{Gone.Deep | HtmlEscape}", None), ("#{V | NoSuchThing}", None),
     ("#{V | NoSuchThing 6}", '#{V | NoSuchThing "6"}'),
     ("#{V | Truncate notanumber}", '#{V | Truncate "notanumber"}'),
     ('#{V | Match "a" "b"}', None), ("#{V | Match a b}", '#{V | Match "a" "b"}')],
)  # fmt: skip
def test_a_filter_without_an_answer_writes_the_expression_back(
    template: str, written: str | None
) -> None:
    """As the server writes it back: each option in quotes, however it was written."""
    assert evaluate(template, {"V": "value"}) == (written or template)


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("#{Vault | FromBase64}", id="not-base64"),
        pytest.param("#{Vault | VersionMajor}", id="not-a-version"),
    ],
)
def test_a_filter_that_throws_fails_the_evaluation_without_quoting_its_input(
    template: str,
) -> None:
    """Where Octostache's function throws, the server's substitution fails: an error, not
    the expression written back. The error names the filter, never the value it read."""
    with pytest.raises(TemplateError) as caught:
        evaluate(template, {"Vault": "hunter 2 %%"})
    assert "hunter" not in str(caught.value) and "filter" in str(caught.value)
