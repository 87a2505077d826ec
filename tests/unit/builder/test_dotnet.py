""".NET configuration transforms (XDT) and configuration variables: the bytes the deployment
server's Microsoft.Web.XmlTransform and Calamari write for the same input, and what they
count as errors."""

from __future__ import annotations

import pytest

from services.builder.features.dotnet_config import replace_config_variables
from services.builder.features.xdt import TransformError, apply_transform

XDT = 'xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform"'
BOM = b"\xef\xbb\xbf"

SERVICE = (
    b'<?xml version="1.0"?>\n'
    b"<settings>\n"
    b"  <features>\n"
    b'    <flag id="alpha" on="no" />\n'
    b"    <flag id='beta' on='yes'/>\n"
    b"  </features>\n"
    b'  <storage mode="disk" path="/var/lib/x" />\n'
    b"</settings>\n"
)


def rules(body: str, root: str = "settings") -> bytes:
    return f"<{root} {XDT}>{body}</{root}>".encode()


def service_with(features: bytes = b"", storage: bytes = b"") -> bytes:
    """SERVICE as the server writes it back (``'`` quotes become ``"``), with its flag list
    and storage line replaced when given."""
    written = SERVICE.replace(b"<flag id='beta' on='yes'/>", b'<flag id="beta" on="yes"/>')
    if features:
        start = written.index(b"  <features>")
        end = written.index(b"  </features>\n") + len(b"  </features>\n")
        written = written[:start] + features + written[end:]
    if storage:
        written = written.replace(b'  <storage mode="disk" path="/var/lib/x" />\n', storage)
    return written


FLAGS = b'    <flag id="alpha" on="no" />\n    <flag id="beta" on="yes"/>\n'


@pytest.mark.parametrize(
    ("transform", "expected"),
    [
        pytest.param(
            rules('<features><flag id="beta" on="no" xdt:Locator="Match(id)" '
                  'xdt:Transform="SetAttributes(on)"/></features>'),
            service_with(b'  <features>\n    <flag id="alpha" on="no" />\n'
                         b'    <flag id="beta" on="no"/>\n  </features>\n'),
            id="match-locator-sets-one-attribute-and-requotes-the-file",
        ),
        pytest.param(
            rules('<storage cache="on" xdt:Transform="SetAttributes"/>'),
            service_with(storage=b'  <storage mode="disk" path="/var/lib/x" cache="on" />\n'),
            id="an-added-attribute-goes-last-and-the-space-before-slash-stays",
        ),
        pytest.param(
            rules('<storage xdt:Transform="RemoveAttributes(path)"/>'),
            service_with(storage=b'  <storage mode="disk" />\n'),
            id="remove-attributes",
        ),
        pytest.param(
            rules('<features><flag id="gamma" on="yes" xdt:Transform="Insert"/></features>'),
            service_with(b"  <features>\n" + FLAGS
                         + b'    <flag id="gamma" on="yes"/>\n  </features>\n'),
            id="insert-is-indented-like-its-siblings-before-the-end-tag",
        ),
        pytest.param(
            rules('<limits xdt:Transform="Insert"><cpu max="2"/><!-- c --><mem max="1g">'
                  "</mem></limits>"),
            service_with(storage=b'  <storage mode="disk" path="/var/lib/x" />\n'
                         b'  <limits>\n    <cpu max="2"/>\n    <!-- c -->\n'
                         b'    <mem max="1g">\n    </mem>\n  </limits>\n'),
            id="inserted-content-is-indented-one-step-further",
        ),
        pytest.param(
            rules("<features><flag id=\"first\" xdt:Transform=\"InsertBefore(flag[1])\"/>"
                  "</features>"),
            service_with(b'  <features>\n    <flag id="first"/>\n' + FLAGS + b"  </features>\n"),
            id="insert-before-a-path-relative-to-the-parent",
        ),
        pytest.param(
            rules('<marker xdt:Transform="InsertAfter(/settings/features)"/>'),
            service_with(storage=b'  <marker/>\n  <storage mode="disk" path="/var/lib/x" />\n'),
            id="insert-after-an-absolute-path",
        ),
        pytest.param(
            rules('<storage mode="memory" xdt:Transform="Replace"/>'),
            service_with(storage=b'  <storage mode="memory"/>\n'),
            id="replace",
        ),
        pytest.param(
            rules('<features><flag xdt:Transform="RemoveAll"/></features>'),
            service_with(b"  <features>\n  </features>\n"),
            id="remove-all-leaves-one-run-of-whitespace",
        ),
        pytest.param(
            rules("<features><flag xdt:Locator=\"Condition(@on='yes')\" xdt:Transform=\"Remove\"/>"
                  "</features>"),
            service_with(b'  <features>\n    <flag id="alpha" on="no" />\n  </features>\n'),
            id="condition-locator",
        ),
        pytest.param(
            rules("<features><flag on=\"maybe\" xdt:Locator=\"XPath(../flag[@id='alpha'])\" "
                  'xdt:Transform="SetAttributes"/></features>'),
            service_with(b'  <features>\n    <flag id="alpha" on="maybe" />\n'
                         b'    <flag id="beta" on="yes"/>\n  </features>\n'),
            id="a-relative-xpath-continues-the-elements-own-path",
        ),
        pytest.param(
            rules('<any xdt:Locator="XPath(//flag)" quiet="1" xdt:Transform="SetAttributes"/>'),
            service_with(b'  <features>\n    <flag id="alpha" on="no" quiet="1" />\n'
                         b'    <flag id="beta" on="yes" quiet="1"/>\n  </features>\n'),
            id="an-absolute-xpath-and-attribute-transforms-on-every-match",
        ),
        pytest.param(
            f'<settings {XDT} xdt:Transform="Remove"/>'.encode(),
            b'<?xml version="1.0"?>\n',
            id="removing-the-root-leaves-the-declaration",
        ),
        pytest.param(
            b'<settings><storage mode="tmpfs"/></settings>',
            service_with(),
            id="without-the-xdt-namespace-nothing-changes-but-the-writing",
        ),
        pytest.param(
            rules('<missing xdt:Transform="Remove" xdt:SupressWarnings="True"/>'),
            service_with(),
            id="suppressed-warnings-do-not-fail",
        ),
    ],
)  # fmt: skip
def test_transforms_write_what_the_server_writes(transform: bytes, expected: bytes) -> None:
    assert apply_transform(SERVICE, transform) == expected


def test_attributes_one_per_line_stay_so_and_the_encoding_follows_the_declaration() -> None:
    """Attributes each on their own line get a new one on its own line too; CR LF stays;
    a declaration naming utf-8 gets a byte order mark, as the server's writer adds one."""
    document = (
        b'<?xml version="1.0" encoding="utf-8"?>\r\n<jobs>\r\n'
        b'  <job name="nightly"\r\n       cron="0 2 * * *" />\r\n</jobs>\r\n'
    )
    transform = rules('<job enabled="false" xdt:Transform="SetAttributes"/>', root="jobs")
    assert apply_transform(document, transform) == BOM + (
        b'<?xml version="1.0" encoding="utf-8"?>\r\n<jobs>\r\n'
        b'  <job name="nightly"\r\n       cron="0 2 * * *"\r\n       enabled="false" />\r\n'
        b"</jobs>\r\n"
    )


def test_a_namespaced_document_is_matched_through_the_transforms_default_namespace() -> None:
    document = (
        b'<logs xmlns="urn:example:logs" xmlns:t="urn:example:types">\n'
        b'  <sink name="file"\n        t:kind="File" />\n</logs>'
    )
    transform = (
        b'<logs xmlns="urn:example:logs" xmlns:xdt="http://schemas.microsoft.com/XML-Document-'
        b'Transform"><sink name="file" path="out.log" xdt:Locator="Match(name)" '
        b'xdt:Transform="SetAttributes(path)"/><sink name="net" xdt:Transform="Insert"/></logs>'
    )
    assert apply_transform(document, transform) == (
        b'<logs xmlns="urn:example:logs" xmlns:t="urn:example:types">\n'
        b'  <sink name="file"\n        t:kind="File"\n        path="out.log" />\n'
        b'  <sink name="net"/>\n</logs>'
    )


def test_insert_goes_into_the_first_parent_the_locator_selects() -> None:
    """As the server's Insert: the first parent gets the copy, the others nothing."""
    document = b"<root><group/><group/></root>"
    transform = rules('<group><member xdt:Transform="Insert"/></group>', root="root")
    first, second = apply_transform(document, transform).split(b"</group>")[:2]
    assert b"<member" in first and b"<member" not in second


def bad(body: str) -> bytes:
    return rules(body)


@pytest.mark.parametrize(
    ("transform", "message"),
    [
        pytest.param(bad("<features><flag xdt:Locator=\"Condition(@id='none')\" "
                         'xdt:Transform="SetAttributes" on="x"/></features>'),
                     "No element in the source document matches", id="locator-matches-nothing"),
        pytest.param(bad('<features><flag xdt:Locator="Match(id)" xdt:Transform="Remove"/>'
                         "</features>"),
                     "No attribute 'id' exists", id="match-attribute-missing-on-the-rule"),
        pytest.param(bad('<features><flag xdt:Transform="Replace"/></features>'),
                     "applies to the first only", id="replace-selects-several"),
        pytest.param(bad('<features><flag xdt:Transform="Remove"/></features>'),
                     "applies to the first only", id="remove-selects-several"),
        pytest.param(bad('<nowhere><x xdt:Transform="Insert"/></nowhere>'),
                     "matches '/settings/nowhere'", id="insert-without-a-parent"),
        pytest.param(bad('<features><x xdt:Transform="InsertAfter(flag[9])"/></features>'),
                     "matches 'flag[9]'", id="insert-after-nothing"),
        pytest.param(bad('<features><x xdt:Transform="InsertBefore"/></features>'),
                     "requires an XPath argument", id="insert-before-without-argument"),
        pytest.param(bad('<features><x xdt:Transform="Insert(now)"/></features>'),
                     "does not expect arguments", id="insert-with-arguments"),
        pytest.param(bad('<storage xdt:Transform="SetAttributes"/>'),
                     "No attributes found to set", id="set-attributes-with-nothing"),
        pytest.param(bad('<storage xdt:Transform="RemoveAttributes(owner)"/>'),
                     "Argument 'owner' did not match", id="remove-a-missing-attribute"),
        pytest.param(bad('<storage xdt:Transform="Explode"/>'),
                     "unknown xdt:Transform", id="unknown-transform"),
        pytest.param(bad('<storage xdt:Locator="Near(x)" xdt:Transform="Remove"/>'),
                     "unknown xdt:Locator", id="unknown-locator"),
        pytest.param(bad("<xdt:Magic/>"), "Unknown tag", id="unknown-xdt-element"),
        pytest.param(bad('<xdt:Import assembly="Evil" namespace="Evil"/>'),
                     "not supported", id="import-loads-code"),
        pytest.param(bad('<storage xdt:Transform="Remove("/>'),
                     "must contain only a type name", id="transform-syntax"),
        pytest.param(bad('<storage xdt:Locator="Condition([[[)" xdt:Transform="Remove"/>'),
                     "invalid XPath", id="invalid-xpath"),
        pytest.param(bad("<features><flag xdt:Locator=\"Condition(@id='a,b')\" "
                         'xdt:Transform="Remove"/></features>'),
                     "requires exactly 1 arguments", id="condition-comma-outside-parentheses"),
        pytest.param(bad('<storage xdt:Transform="Remove" xdt:SupressWarnings="maybe"/>'),
                     "is not true or false", id="suppress-warnings-not-boolean"),
        pytest.param(b"<settings><open></settings>", "not well-formed", id="malformed-transform"),
    ],
)  # fmt: skip
def test_what_the_server_counts_as_an_error_fails(transform: bytes, message: str) -> None:
    with pytest.raises(TransformError, match=message.replace("[", r"\[").replace("(", r"\(")):
        apply_transform(SERVICE, transform)


@pytest.mark.parametrize(
    "target",
    [b"<a>&nbsp;</a>", b"<a><b></a>", b""],
    ids=["undefined-entity", "malformed", "empty"],
)
def test_a_target_that_is_not_xml_fails(target: bytes) -> None:
    with pytest.raises(TransformError, match="not well-formed"):
        apply_transform(target, rules("", root="a"))


SHOP = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b"<configuration>\n"
    b"  <appSettings>\n"
    b"    <add key='Greeting' value='hi'/>\n"
    b'    <add key="Mode" value="dev" />\n'
    b"  </appSettings>\n"
    b"  <connectionStrings>\n"
    b'    <add name="Orders" />\n'
    b"  </connectionStrings>\n"
    b"  <applicationSettings>\n"
    b"    <Shop.Settings>\n"
    b'      <setting name="Pages" serializeAs="String"><value>10<unit/></value></setting>\n'
    b'      <setting name="Theme" serializeAs="String" />\n'
    b"    </Shop.Settings>\n"
    b"  </applicationSettings>\n"
    b"</configuration>\n"
)


@pytest.mark.parametrize(
    ("content", "values", "expected"),
    [
        pytest.param(
            SHOP,
            {"GREETING": 'a&b "c" <d>', "mode": None, "Orders": "Server=db;Pwd=x",
             "pages": "25", "theme": "dark"},
            BOM + b'<?xml version="1.0" encoding="utf-8"?>\n<configuration>\n'
            b"  <appSettings>\n"
            b'    <add key="Greeting" value="a&amp;b &quot;c&quot; &lt;d&gt;" />\n'
            b'    <add key="Mode" value="" />\n'
            b"  </appSettings>\n  <connectionStrings>\n"
            b'    <add name="Orders" connectionString="Server=db;Pwd=x" />\n'
            b"  </connectionStrings>\n  <applicationSettings>\n    <Shop.Settings>\n"
            b'      <setting name="Pages" serializeAs="String"><value>25</value></setting>\n'
            b'      <setting name="Theme" serializeAs="String"><value>dark</value></setting>\n'
            b"    </Shop.Settings>\n  </applicationSettings>\n</configuration>\n",
            id="names-ignore-case-a-valueless-variable-empties-missing-parts-are-added",
        ),
        pytest.param(
            b'<configuration><appSettings><add key="K"/></appSettings><applicationSettings>'
            b'<S><setting name="T"/></S></applicationSettings></configuration>',
            {"k": "v", "t": "w"},
            BOM + b'<configuration>\n  <appSettings>\n    <add key="K" value="v" />\n'
            b"  </appSettings>\n  <applicationSettings>\n    <S>\n"
            b'      <setting name="T">\n        <value>w</value>\n      </setting>\n'
            b"    </S>\n  </applicationSettings>\n</configuration>",
            id="a-file-without-whitespace-is-indented-and-keeps-no-declaration",
        ),
        pytest.param(
            b'<c xmlns="urn:cfg">\r\n  <appSettings>\r\n    <add key="K" value="1"/>\r\n'
            b"  </appSettings>\r\n  <applicationSettings><s><setting name=\"T\"/></s>"
            b"</applicationSettings>\r\n</c>",
            {"K": "one\ntwo", "T": "one\ntwo"},
            BOM + b'<c xmlns="urn:cfg">\n  <appSettings>\n'
            b'    <add key="K" value="one&#xA;two" />\n  </appSettings>\n'
            b'  <applicationSettings><s><setting name="T"><value xmlns="">one\ntwo</value>'
            b"</setting></s></applicationSettings>\n</c>",
            id="lines-end-lf-as-the-linux-writer-ends-them-and-a-new-value-is-in-no-namespace",
        ),
        pytest.param(
            b'<?xml version="1.0" standalone="yes"?><!-- top --><c><appSettings>'
            b'<add key="K" value=""/></appSettings></c>',
            {"K": "v"},
            BOM + b'<?xml version="1.0" encoding="utf-8" standalone="yes"?>\n<!-- top -->\n'
            b'<c>\n  <appSettings>\n    <add key="K" value="v" />\n  </appSettings>\n</c>',
            id="standalone-kept-in-the-rewritten-declaration",
        ),
    ],
)  # fmt: skip
def test_configuration_variables_write_what_the_server_writes(
    content: bytes, values: dict[str, str | None], expected: bytes
) -> None:
    updated, names = replace_config_variables(content, values, values.get)
    assert updated == expected
    assert sorted(names) == sorted(values)


def test_a_file_without_matching_settings_is_left_as_it_is() -> None:
    updated, names = replace_config_variables(SHOP, ["Unrelated"], lambda name: "x")
    assert updated == SHOP and names == []


def test_a_config_that_is_not_xml_fails() -> None:
    with pytest.raises(TransformError, match="Entity 'nbsp' not defined"):
        replace_config_variables(b"<a>&nbsp;</a>", ["a"], lambda name: "x")


def test_an_added_attribute_that_would_pass_column_160_starts_a_new_line() -> None:
    """The server's writer breaks a written attribute onto a new line, indented one step
    past the element, when it would end past column 160."""
    long = "x" * 150
    transform = rules(
        f'<features><flag id="wide" note="{long}" xdt:Transform="Insert"/></features>'
    )
    assert apply_transform(SERVICE, transform) == service_with(
        b"  <features>\n" + FLAGS
        + f'    <flag id="wide"\n      note="{long}"/>\n  </features>\n'.encode()
    )  # fmt: skip


def test_a_transform_may_not_nest_the_document_past_the_depth_limit() -> None:
    """Each document alone is within libxml2's depth; a transform inserting one into the
    other's deepest element is refused before the result is written."""
    document = b"<r>" + b"<n>" * 200 + b"</n>" * 200 + b"</r>"
    chain = "<m>" * 210 + "</m>" * 210
    transform = f'<r {XDT}><deep xdt:Locator="XPath(//n[not(n)])"><c xdt:Transform="Insert">'
    transform += f"{chain}</c></deep></r>"
    with pytest.raises(TransformError, match="over 400 deep"):
        apply_transform(document, transform.encode())


@pytest.mark.parametrize(
    ("document", "transform", "expected"),
    [
        pytest.param(
            b"<box><note><![CDATA[a < b & c]]></note></box>",
            f'<box {XDT}><tag xdt:Transform="Insert"/></box>'.encode(),
            b"<box><note><![CDATA[a < b & c]]></note>\t<tag/></box>",
            id="a-cdata-section-is-written-back-as-a-cdata-section",
        ),
        pytest.param(
            b"<box>\n  <old/>\n</box>",
            f'<box {XDT}><script xdt:Transform="Insert"><![CDATA[if (a<b) go();]]>'
            f"</script></box>".encode(),
            b"<box>\n  <old/>\n  <script><![CDATA[if (a<b) go();]]>\n  </script>\n</box>",
            id="an-inserted-cdata-section-is-kept-and-is-not-text-to-the-formatter",
        ),
        pytest.param(
            b"<box>\r\n  <one/>\n  <two/>\r\n</box>",
            f'<box {XDT}><three xdt:Transform="Insert"/></box>'.encode(),
            b"<box>\r\n  <one/>\n  <two/>\n  <three/>\r\n</box>",
            id="mixed-line-ends-are-kept-and-an-insert-takes-the-indent-before-it",
        ),
        pytest.param(
            b"<box>\r\n  <one>x\r\ny</one>\r\n</box>",
            f'<box {XDT}><one xdt:Transform="SetAttributes" k="v"/></box>'.encode(),
            b'<box>\r\n  <one k="v">x\r\ny</one>\r\n</box>',
            id="a-line-end-inside-text-is-kept-as-written",
        ),
        pytest.param(
            b"<crew><team/><team/></crew>",
            f'<crew {XDT}><team><member xdt:Transform="Insert"/></team></crew>'.encode(),
            b"<crew><team>\t\t<member/>\t</team><team/></crew>",
            id="with-no-whitespace-to-copy-the-formatter-indents-with-tabs-and-no-line-breaks",
        ),
        pytest.param(
            b'<crew><team size="2"/></crew>',
            f'<crew {XDT} xmlns:ops="urn:ops"><team ops:lead="kim" '
            f'xdt:Transform="SetAttributes"/></crew>'.encode(),
            b'<crew><team size="2" ops:lead="kim" xmlns:ops="urn:ops"/></crew>',
            id="an-added-prefixed-attribute-keeps-its-prefix-and-is-declared-after-the-others",
        ),
        pytest.param(
            b'<crew xmlns:o="urn:ops"><team o:lead="ann" size="2"/></crew>',
            f'<crew {XDT} xmlns:ops="urn:ops"><team ops:lead="kim" '
            f'xdt:Transform="SetAttributes"/></crew>'.encode(),
            b'<crew xmlns:o="urn:ops"><team size="2" ops:lead="kim" xmlns:ops="urn:ops"/></crew>',
            id="an-attribute-under-another-prefix-is-replaced-by-one-appended-at-the-end",
        ),
        pytest.param(
            b'<crew xmlns:ops="urn:ops"><team ops:lead="ann" size="2"/></crew>',
            f'<crew {XDT} xmlns:ops="urn:ops"><team ops:lead="kim" '
            f'xdt:Transform="SetAttributes"/></crew>'.encode(),
            b'<crew xmlns:ops="urn:ops"><team ops:lead="kim" size="2"/></crew>',
            id="an-attribute-of-the-same-qualified-name-takes-the-value-in-place",
        ),
        pytest.param(
            b"<crew><team/></crew>",
            f'<crew {XDT} xmlns:a="urn:a" xmlns:b="urn:b"><a:kit b:size="9" '
            f'xdt:Transform="Insert"/></crew>'.encode(),
            b'<crew><team/>\t<a:kit b:size="9" xmlns:b="urn:b" xmlns:a="urn:a"/></crew>',
            id="namespaces-the-writer-must-declare-come-last-declared-first",
        ),
    ],
)  # fmt: skip
def test_transforms_keep_what_the_server_reader_keeps(
    document: bytes, transform: bytes, expected: bytes
) -> None:
    assert apply_transform(document, transform) == expected


def test_removing_the_root_is_logged_and_what_is_left_is_written() -> None:
    """The server saves a document whose root a transform removed, logging that it is no
    longer valid; the build does the same instead of failing."""
    lines: list[str] = []
    transform = f'<settings {XDT} xdt:Transform="Remove"/>'.encode()
    assert apply_transform(SERVICE, transform, log=lines.append) == b'<?xml version="1.0"?>\n'
    assert any("no longer has a root element" in line for line in lines)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            b'<!DOCTYPE c [<!ENTITY org "Acme &amp; Co">]>\n<c>\n  <appSettings>\n'
            b'    <add key="K" value="1"/>\n    <add key="Owner" value="&org;"/>\n'
            b"  </appSettings>\n  <about>&org;</about>\n</c>",
            BOM + b'<!DOCTYPE c [<!ENTITY org "Acme &amp; Co">]>\n<c>\n  <appSettings>\n'
            b'    <add key="K" value="v" />\n    <add key="Owner" value="Acme &amp; Co" />\n'
            b"  </appSettings>\n  <about>Acme &amp; Co</about>\n</c>",
            id="the-dtds-entities-are-expanded-as-the-servers-reader-expands-them",
        ),
        pytest.param(
            b'<c><appSettings><add key="K" value="1"/></appSettings>'
            b"<script><![CDATA[a < b]]></script></c>",
            BOM + b'<c>\n  <appSettings>\n    <add key="K" value="v" />\n  </appSettings>\n'
            b"  <script><![CDATA[a < b]]></script>\n</c>",
            id="a-cdata-section-is-kept-and-counts-as-text-to-the-indenting-writer",
        ),
    ],
)  # fmt: skip
def test_configuration_variables_read_as_the_server_reads(content: bytes, expected: bytes) -> None:
    updated, _ = replace_config_variables(content, ["K"], lambda name: "v")
    assert updated == expected


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(
            b'<!DOCTYPE c [<!ENTITY host SYSTEM "file:///etc/hostname">]>'
            b'<c><appSettings><add key="K" value="&host;"/></appSettings></c>',
            id="an-external-entity-is-never-read",
        ),
        pytest.param(
            b'<!DOCTYPE c [<!ENTITY a "aaaaaaaaaa">'
            + b"".join(
                b"<!ENTITY %s \"%s\">" % (b"a" * (n + 2), (b"&" + b"a" * (n + 1) + b";") * 10)
                for n in range(8)
            )
            + b']><c><appSettings><add key="K" value="&aaaaaaaaa;"/></appSettings></c>',
            id="an-entity-that-expands-without-bound-is-refused",
        ),
    ],
)  # fmt: skip
def test_configuration_variables_refuse_entities_that_are_unsafe(content: bytes) -> None:
    with pytest.raises(TransformError, match="not well-formed"):
        replace_config_variables(content, ["K"], lambda name: "v")


@pytest.mark.parametrize("value", ["bell\x07", "nul\x00", "half\ud800"])
def test_a_value_xml_cannot_hold_is_a_transform_error_naming_the_variable(value: str) -> None:
    """The server's XmlWriter refuses such a character; the error names the variable and
    never quotes its value."""
    config = (
        b'<configuration><appSettings><add key="Token" value="x"/></appSettings></configuration>'
    )
    with pytest.raises(TransformError) as caught:
        replace_config_variables(config, ["Token"], lambda name: value)
    assert "Token" in str(caught.value) and value not in str(caught.value)
