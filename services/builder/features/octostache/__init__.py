"""Substitute Variables in Templates: the deployment server's template language (Octostache).

``#{Name}`` is replaced by the variable's value (names are case-insensitive, values may hold
templates themselves, a cycle is an error); ``##{`` writes a literal ``#{``; an expression
that cannot be evaluated (an undefined variable, an unknown filter, a filter whose arguments
do not fit) is left as the server writes it back and named in ``Rendered.error``. Also
``#{Name[#{Key}]}`` indexes, ``#{Json.Path[0].field}`` navigation into JSON values,
``#{if}``/``#{elseif}``/``#{else}``/``#{unless}`` with ``==`` and ``!=`` (either side a
variable, a filter chain or a quoted literal), ``#{each x in Items}`` (over
``Items[Key].Prop`` groups, JSON arrays and objects, or comma-separated values) with
``Octopus.Template.Each.Index|First|Last``, ``#{calc}``, and filters after ``|``
(``features.filters``).

The grammar is the server's, rule for rule, so what does not parse is what the server cannot
parse. A template that does not parse is handled as the server does in one of its two modes:
``halt_on_error`` (how it evaluates a variable's value, and ``VariableDictionary.Evaluate``)
leaves the whole template as written, with the server's parse error in ``Rendered.error``;
otherwise (how it substitutes in files) the part that does not parse is kept as text and the
rest is evaluated, and that is no error: a block opened and never closed, or closed and never
opened, is text like any other. ``#{... | null}`` alone makes a result with no value
(``Rendered.null``), as the server's ``null`` filter does.

Templates and variables are the tenant's, so evaluation has a Budget: characters produced
(every intermediate value, so a template that doubles itself at each level fails long before
its result exists) and steps (expressions, loop items, variables scanned: work that produces
nothing). Nesting, of blocks and expressions and of variables in variables, is bounded too,
and so are JSON values (as deep as the server reads them). An Evaluator also notes which
sensitive variables a rendering read, directly, through a filter or through another
variable, so that text bound for the image config can refuse them.
"""

from services.builder.features.octostache.budget import (
    DEFAULT_OUTPUT_BUDGET,
    DEFAULT_STEP_BUDGET,
    MAX_DEPTH,
    MAX_NESTING,
    Budget,
    ParseError,
    TemplateError,
)
from services.builder.features.octostache.dotnet_numbers import (
    dotnet_double,
    dotnet_parse_double,
    dotnet_parse_int,
)
from services.builder.features.octostache.evaluator import Evaluator, Rendered, render
from services.builder.features.octostache.parser import parse
from services.builder.features.octostache.syntax import FilterCall, Node, Substitution, Text

__all__ = [
    "DEFAULT_OUTPUT_BUDGET",
    "DEFAULT_STEP_BUDGET",
    "MAX_DEPTH",
    "MAX_NESTING",
    "Budget",
    "Evaluator",
    "FilterCall",
    "Node",
    "ParseError",
    "Rendered",
    "Substitution",
    "TemplateError",
    "Text",
    "dotnet_double",
    "dotnet_parse_double",
    "dotnet_parse_int",
    "parse",
    "render",
]
