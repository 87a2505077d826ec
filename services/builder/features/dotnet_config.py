""".NET configuration variables: in ``*.config`` files, ``appSettings/add[@key]`` takes the
variable of that name as its ``value``, ``connectionStrings/add[@name]`` as its
``connectionString``, and ``applicationSettings//setting[@name]`` as its ``<value>``
(created when missing). Names compare case-insensitively.

A value is written into every setting that names its variable, so what the values add to a
file is counted against a growth allowance as they are written (a large value and many
settings naming it would otherwise make a file of any size)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from lxml import etree

from services.builder.features.xdt import (
    MAX_GROWTH,
    NODE_COST,
    TransformError,
    elements,
    parse_xml,
    serialize,
)

Lookup = Callable[[str], "str | None"]


def replace_config_variables(
    content: bytes, names: Iterable[str], lookup: Lookup, *, max_growth: int = MAX_GROWTH
) -> tuple[bytes, list[str]]:
    """The file with matching settings replaced, and the names that replaced something;
    TransformError when the values would add more than ``max_growth`` bytes to it."""
    wanted = {name.lower(): name for name in names}
    tree = parse_xml(content)
    replaced: list[str] = []
    left = max_growth

    def value_of(key: str | None, cost: int = 0) -> tuple[str, str] | None:
        nonlocal left
        name = None if key is None else wanted.get(key.lower())
        value = None if name is None else lookup(name)
        if name is None or value is None:
            return None
        left -= len(value) + cost
        if left < 0:
            raise TransformError(
                f"the variables' values would add more than {max_growth} bytes to the file "
                "(a large value in many settings?)"
            )
        return name, value

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
        values = [c for c in setting if etree.QName(c).localname == "value"]
        found = value_of(setting.get("name"), 0 if values else NODE_COST)
        if found is not None:
            element = values[0] if values else etree.SubElement(setting, "value")
            element.text = found[1]
            replaced.append(found[0])
    if not replaced:
        return content, []
    return serialize(tree, content), replaced
