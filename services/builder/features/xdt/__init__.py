""".NET configuration transforms (XDT), as the deployment server's Microsoft.Web.XmlTransform
applies them: ``Web.Release.config`` applied to ``Web.config``.

- ``document``: the documents read, with what lxml does not keep (start tags as written,
  the declaration, what surrounds the root);
- ``locators``: the XPath each transform element stands for, narrowed by ``xdt:Locator``;
- ``transforms``: ``xdt:Transform`` run on what the locators select (``apply_transform``);
- ``writer``: the transformed document written back as the server's writer writes it;
- ``growth``: what a transform may write into a document, and how deep it may nest;
- ``work``: what evaluating its XPath may cost (structured variables' selectors too).
"""

from services.builder.features.xdt.document import (
    Document,
    TransformError,
    XmlInvalid,
    clark_name,
    elements,
    is_cdata,
    qualified_name,
)
from services.builder.features.xdt.growth import MAX_GROWTH, NODE_COST
from services.builder.features.xdt.transforms import apply_transform
from services.builder.features.xdt.work import MAX_WORK, Work, WorkExceeded
from services.builder.features.xdt.writer import escape_net, top_level

__all__ = [
    "MAX_GROWTH",
    "MAX_WORK",
    "NODE_COST",
    "Document",
    "TransformError",
    "Work",
    "WorkExceeded",
    "XmlInvalid",
    "apply_transform",
    "clark_name",
    "elements",
    "escape_net",
    "is_cdata",
    "qualified_name",
    "top_level",
]
