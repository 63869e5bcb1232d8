"""Opter's invoice XML, as its .NET ``XmlSerializer`` export writes it.

The shape follows XmlSerializer's conventions: the root element is named after
the class (``Invoice``), each property is an element named in PascalCase,
a list is a wrapper element holding one element per item named after the item's
class (``<Rows><InvoiceRow>...``), a null is an empty element with
``xsi:nil="true"``, decimals are written in the invariant culture (``1234.50``),
dates as ISO ``yyyy-MM-dd``, booleans as ``true``/``false`` and enumerations by
their member name (``CreditNote``; a VAT category by its code, ``<VatCode>AE</VatCode>``).
Computed totals are written too, so that a transform can use them; reading
(:mod:`worker.documents.opterreader`) derives them again. A row's ``VatCode`` and
``VatExemptionReason`` are those validation decided (:mod:`worker.documents.vat`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from enum import Enum, Flag
from functools import cache, cached_property
from keyword import iskeyword
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, cast, get_args, get_origin

from lxml import etree
from pydantic import BaseModel

from worker.documents.encodings import Encoding, encoding_named
from worker.documents.invoice import Invoice

XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"
NIL = f"{{{XSI}}}nil"
NSMAP = {"xsi": XSI, "xsd": XSD}


def pascal(name: str) -> str:
    """``total_excl_vat`` -> ``TotalExclVat``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def enum_member_name(value: Enum) -> str:
    """An enumeration's .NET member name: ``credit_note`` -> ``CreditNote``."""
    return pascal(str(value.value))


@cache
def _plan(model: type[BaseModel]) -> tuple[tuple[str, str], ...]:
    # Field order is the serialization order; computed fields come last, as properties do.
    names = [*model.model_fields, *model.model_computed_fields]
    return tuple((name, pascal(name)) for name in names)


def _text(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return enum_member_name(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ROOT_OPEN = "<Invoice" + "".join(f' xmlns:{p}="{uri}"' for p, uri in NSMAP.items()) + ">"


def _escaped(text: str) -> str:
    if "&" in text or "<" in text or ">" in text:
        return text.translate(_ESCAPES)
    return text


def _text_of(value: Any) -> str:
    return _escaped(_text(value))


def _element(tag: str, value: Any) -> str:
    """One element of any value: the rules every writer follows.

    A text is escaped, a decimal written in full (``1000``, never ``1E+3``), a null is
    nil, a list holds one element per item named after its class, a model holds its
    elements, anything else is its text (:func:`_text`)."""
    kind = type(value)
    if kind is str:
        return f"<{tag}>{_escaped(value)}</{tag}>"
    if kind is Decimal:
        return f"<{tag}>{value:f}</{tag}>"
    if value is None:
        return f'<{tag} xsi:nil="true"/>'
    if kind is list:
        return f"<{tag}>{''.join([_item(item) for item in value])}</{tag}>"
    if isinstance(value, BaseModel):
        return _writer(type(value), f"<{tag}>", f"</{tag}>")(value)
    return f"<{tag}>{_text_of(value)}</{tag}>"


def _item(value: Any) -> str:
    # Only a model has a writer; another item fails on its missing fields.
    kind: type[BaseModel] = type(value)
    return _writer(kind, f"<{kind.__name__}>", f"</{kind.__name__}>")(value)


def _elements(model: BaseModel) -> str:
    """A model's elements by :func:`_element` alone, field by field."""
    return "".join([_element(tag, getattr(model, attr)) for attr, tag in _plan(type(model))])


# A model's writer is a function compiled from its fields on first use: each field read
# once, its element written by a branch for each class its type names (exactly what
# _element writes for such a value), and the whole model as one f-string. A value of
# any other class goes to _element; a required field holding one makes the writer
# write the model by _elements instead.

_Writer = Callable[[Any], str]
_Fast = tuple[str, list[str], bool]
"""A field's fast path: its condition on the value ``v``, the lines setting the field's
variable, and whether that is the text of the element (else the whole element)."""
_building: set[type[BaseModel]] = set()
_compiling = threading.RLock()


def _kinds(annotation: Any) -> tuple[bool, list[Any]]:
    """Whether ``annotation`` admits None, and the classes it names (``list[X]`` as is)."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    origin = get_origin(annotation)
    if origin is Union or origin is UnionType:
        nullable = False
        kinds: list[Any] = []
        for arm in get_args(annotation):
            arm_nullable, arm_kinds = _kinds(arm)
            nullable, kinds = nullable or arm_nullable, kinds + arm_kinds
        return nullable, kinds
    if origin is Literal:
        return False, [str] if all(type(arg) is str for arg in get_args(annotation)) else []
    if annotation is None or annotation is NoneType:
        return True, []
    return False, [annotation]


def _fast(kind: Any, tag: str, var: str, constant: Callable[[Any], str]) -> _Fast | None:
    """The fast path of a value of class ``kind`` in element ``tag``, if it has one."""
    if kind is str:
        escape = 'v.translate(_ESCAPES) if "&" in v or "<" in v or ">" in v else v'
        return "type(v) is str", [f"{var} = {escape}"], True
    if kind is Decimal:
        # str() writes what format "f" does unless it uses an exponent (then it has an E),
        # and is twice as fast.
        lines = [f"{var} = _str(v)", f'if "E" in {var}:', f'    {var} = format(v, "f")']
        return "type(v) is _Decimal", lines, True
    if kind is date:
        return "type(v) is _date", [f"{var} = v.isoformat()"], True
    if isinstance(kind, type) and issubclass(kind, Enum) and not issubclass(kind, Flag | Decimal):
        texts = {member: _text_of(member) for member in kind}
        lines = [
            f"{var} = {constant(texts)}.get(v)",
            f"if {var} is None:",
            f"    {var} = _text_of(v)",
        ]
        return f"type(v) is {constant(kind)}", lines, True
    if isinstance(kind, type) and issubclass(kind, BaseModel) and kind not in _building:
        write = constant(_writer(kind, f"<{tag}>", f"</{tag}>"))
        return f"type(v) is {constant(kind)}", [f"{var} = {write}(v)"], False
    if get_origin(kind) is list and get_args(kind):
        item = get_args(kind)[0]
        if isinstance(item, type) and issubclass(item, BaseModel) and item not in _building:
            name = item.__name__
            write = constant(_writer(item, f"<{name}>", f"</{name}>"))
            each = f"{write}(i) if type(i) is {constant(item)} else _item(i)"
            return "type(v) is list", [f"{var} = _join([{each} for i in v])"], True
    return None


def _cached(model: type[BaseModel], attr: str) -> Callable[[Any], Any] | None:
    """The function of a computed field that is a :class:`functools.cached_property`."""
    for klass in model.__mro__:
        if attr in vars(klass):
            found = vars(klass)[attr]
            if type(found) is cached_property and found.attrname == attr:
                return found.func
            return None
    return None


def _read(model: type[BaseModel], attr: str, constant: Callable[[Any], str]) -> list[str]:
    """The lines setting ``v`` to the field's value, as ``getattr`` reads it."""
    compute = _cached(model, attr)
    if compute is not None:
        # What the cached property does, without the lock it takes (Python 3.11) to
        # compute a value: it holds the value in the instance's __dict__.
        return [
            "    try:",
            f"        v = m.__dict__[{attr!r}]",
            "    except KeyError:",
            f"        v = m.__dict__[{attr!r}] = {constant(compute)}(m)",
        ]
    if attr.isidentifier() and not iskeyword(attr):
        return [f"    v = m.{attr}"]
    return [f"    v = getattr(m, {attr!r})"]


def _field(
    model: type[BaseModel],
    index: int,
    attr: str,
    tag: str,
    annotation: Any,
    constant: Callable[[Any], str],
) -> tuple[list[str], list[str]]:
    """The lines writing one field, and the fragments of the f-string it adds."""
    var = f"e{index}"
    nullable, kinds = _kinds(annotation)
    lines = _read(model, attr, constant)
    fast = [found for found in (_fast(kind, tag, var, constant) for kind in kinds) if found]
    if fast and not nullable and len(kinds) == 1:
        test, code, text = fast[0]
        lines += [f"    if not ({test}):", "        return _slow(m)"]
        lines += [f"    {line}" for line in code]
        value = f"f'{{{var}}}'"
        return lines, [repr(f"<{tag}>"), value, repr(f"</{tag}>")] if text else [value]
    nil_element = f'<{tag} xsi:nil="true"/>'
    nil = [f"{var} = {nil_element!r}"]
    branches = [("v is None", nil)] if nullable else []
    for test, code, text in fast:
        wrap = [f"{var} = ({f'<{tag}>'!r} f'{{{var}}}' {f'</{tag}>'!r})"] if text else []
        branches.append((test, code + wrap))
    if not nullable:
        branches.append(("v is None", nil))
    for number, (test, code) in enumerate(branches):
        lines.append(f"    {'elif' if number else 'if'} {test}:")
        lines += [f"        {line}" for line in code]
    fallback = f"{var} = _element({tag!r}, v)"
    lines += ["    else:", f"        {fallback}"] if branches else [f"    {fallback}"]
    return lines, [f"f'{{{var}}}'"]


def _compile(model: type[BaseModel], open_tag: str, close_tag: str) -> _Writer:
    """The writer of a model's element between ``open_tag`` and ``close_tag``.

    Its source is built from the model's field names (identifiers) and literals written
    with repr(); every other constant is a name in its namespace."""
    fields = {name: info.annotation for name, info in model.model_fields.items()}
    computed = {name: info.return_type for name, info in model.model_computed_fields.items()}
    annotations = {**fields, **computed}

    def slow(instance: BaseModel) -> str:
        return f"{open_tag}{_elements(instance)}{close_tag}"

    names: dict[str, Any] = {
        "_Decimal": Decimal,
        "_date": date,
        "_str": str,
        "_ESCAPES": _ESCAPES,
        "_element": _element,
        "_item": _item,
        "_text_of": _text_of,
        "_join": "".join,
        "_slow": slow,
    }

    def constant(value: Any) -> str:
        name = f"_c{len(names)}"
        names[name] = value
        return name

    lines = ["def write(m):"]
    fragments = [repr(open_tag)]
    for index, (attr, tag) in enumerate(_plan(model)):
        code, parts = _field(model, index, attr, tag, annotations.get(attr), constant)
        lines += code
        fragments += parts
    fragments.append(repr(close_tag))
    lines.append(f"    return ({' '.join(fragments)})")
    source = compile("\n".join(lines), f"<Opter XML writer of {model.__name__}>", "exec")
    exec(source, names)  # noqa: S102 (the source is made above, of names and literals)
    return cast(_Writer, names["write"])


@cache
def _writer(model: type[BaseModel], open_tag: str, close_tag: str) -> _Writer:
    """A model's writer (:func:`_compile`), compiled on first use, those of its parts first."""
    with _compiling:
        _building.add(model)
        try:
            return _compile(model, open_tag, close_tag)
        finally:
            _building.discard(model)


def invoice_xml(invoice: Invoice) -> bytes:
    """The invoice as compact Opter XML in UTF-8, without a declaration.

    Written directly as text (the model refuses characters XML cannot carry) by a
    function compiled once per model from its fields, which is several times faster
    than building the tree element by element.
    """
    return _writer(type(invoice), _ROOT_OPEN, "</Invoice>")(invoice).encode()


def invoice_element(invoice: Invoice) -> etree._Element:
    """The invoice as an Opter XML element tree (the input of a transform)."""
    return etree.fromstring(invoice_xml(invoice))


def serialize_invoice(invoice: Invoice, *, encoding: Encoding = "UTF-8") -> bytes:
    """The invoice as one Opter XML document, in UTF-8 or ISO-8859-15."""
    encoding = encoding_named(encoding)
    document = etree.tostring(
        invoice_element(invoice), xml_declaration=True, encoding=encoding, pretty_print=True
    )
    return cast(bytes, document)


__all__ = [
    "NIL",
    "NSMAP",
    "XSD",
    "XSI",
    "enum_member_name",
    "invoice_element",
    "invoice_xml",
    "pascal",
    "serialize_invoice",
]
