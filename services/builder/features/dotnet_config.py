""".NET configuration variables: in ``*.config`` files, ``appSettings/add[@key]`` takes the
variable of that name as its ``value``, ``connectionStrings/add[@name]`` as its
``connectionString``, and ``applicationSettings//setting[@name]`` as its ``<value>``
(created when missing). Names compare case-insensitively."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from lxml import etree

from services.builder.features.xdt import elements, parse_xml, serialize

Lookup = Callable[[str], "str | None"]


def replace_config_variables(
    content: bytes, names: Iterable[str], lookup: Lookup
) -> tuple[bytes, list[str]]:
    """The file with matching settings replaced, and the names that replaced something."""
    wanted = {name.lower(): name for name in names}
    tree = parse_xml(content)
    replaced: list[str] = []

    def value_of(key: str | None) -> tuple[str, str] | None:
        name = None if key is None else wanted.get(key.lower())
        value = None if name is None else lookup(name)
        return None if name is None or value is None else (name, value)

    for add in elements(tree, "//*[local-name()='appSettings']/*[local-name()='add']"):
        found = value_of(add.get("key"))
        if found is not None:
            add.set("value", found[1])
            replaced.append(found[0])
    for add in elements(tree, "//*[local-name()='connectionStrings']/*[local-name()='add']"):
        found = value_of(add.get("name"))
        if found is not None:
            add.set("connectionString", found[1])
            replaced.append(found[0])
    for setting in elements(
        tree, "//*[local-name()='applicationSettings']//*[local-name()='setting']"
    ):
        found = value_of(setting.get("name"))
        if found is not None:
            values = [c for c in setting if etree.QName(c).localname == "value"]
            element = values[0] if values else etree.SubElement(setting, "value")
            element.text = found[1]
            replaced.append(found[0])
    if not replaced:
        return content, []
    return serialize(tree, content), replaced
