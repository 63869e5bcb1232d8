"""One tenant's registers (customers, products, accounting objects) and how the seven send
options act on them. A customer created or updated from an invoice keeps the e-invoice address
and operator the invoice carries.

A send is planned first and applied only once it is accepted: a refused invoice changes
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sandbox.envelope import Options
from sandbox.finvoice import Buyer, EInvoiceAddress, Facts, Problem


@dataclass(frozen=True)
class Customer:
    name: str
    address: dict[str, str] | None
    vat_number: str | None
    einvoice: EInvoiceAddress | None = None

    @classmethod
    def from_buyer(cls, buyer: Buyer, einvoice: EInvoiceAddress | None = None) -> Customer:
        return cls(
            name=buyer.name, address=buyer.address, vat_number=buyer.vat_number, einvoice=einvoice
        )

    def updated(self, buyer: Buyer, einvoice: EInvoiceAddress | None = None) -> Customer:
        """The details the invoice carries replace the known ones; the others are kept."""
        return replace(
            self,
            name=buyer.name or self.name,
            address=buyer.address if buyer.address is not None else self.address,
            vat_number=buyer.vat_number if buyer.vat_number is not None else self.vat_number,
            einvoice=einvoice if einvoice is not None else self.einvoice,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "vatNumber": self.vat_number,
            "eInvoice": self.einvoice.as_json() if self.einvoice is not None else None,
        }


@dataclass(frozen=True)
class Product:
    name: str | None
    unit_price: str | None

    def updated(self, name: str | None, unit_price: str | None) -> Product:
        return Product(name=name or self.name, unit_price=unit_price or self.unit_price)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "unitPrice": self.unit_price}


@dataclass
class Changes:
    """What an accepted invoice writes into the registers."""

    customers: dict[str, Customer] = field(default_factory=dict)
    products: dict[str, Product] = field(default_factory=dict)
    codings: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class Registers:
    customers: dict[str, Customer] = field(default_factory=dict)
    products: dict[str, Product] = field(default_factory=dict)
    codings: set[tuple[str, str]] = field(default_factory=set)
    """Accounting objects as (kind, value): kind is ``account`` or ``dimension``."""

    def plan(self, facts: Facts, options: Options) -> tuple[Changes, list[Problem]]:
        """The changes ``facts`` make under ``options``, or the problems that forbid them."""
        changes = Changes()
        problems: list[Problem] = []
        buyer = facts.buyer
        if buyer is not None:
            known = self.customers.get(buyer.key)
            if known is None:
                if options.create_customer:
                    changes.customers[buyer.key] = Customer.from_buyer(buyer, facts.einvoice)
                else:
                    problems.append(
                        Problem(
                            buyer.path,
                            f"customer {buyer.key!r} is unknown and createCustomer is false",
                        )
                    )
            elif options.update_customer:
                changes.customers[buyer.key] = known.updated(buyer, facts.einvoice)
        for article in facts.articles:
            current = changes.products.get(article.identifier) or self.products.get(
                article.identifier
            )
            if current is None:
                if options.create_product:
                    changes.products[article.identifier] = Product(article.name, article.unit_price)
                else:
                    problems.append(
                        Problem(
                            article.path,
                            f"product {article.identifier!r} is unknown and createProduct is false",
                        )
                    )
            elif options.update_product:
                changes.products[article.identifier] = current.updated(
                    article.name, article.unit_price
                )
        for coding in facts.codings:
            key = (coding.kind, coding.value)
            if key in self.codings or key in changes.codings:
                continue
            if options.create_accounting_objects:
                changes.codings.add(key)
            else:
                problems.append(
                    Problem(
                        coding.path,
                        f"{coding.kind} {coding.value!r} is unknown "
                        "and createAccountingObjects is false",
                    )
                )
        return changes, problems

    def apply(self, changes: Changes) -> None:
        self.customers.update(changes.customers)
        self.products.update(changes.products)
        self.codings.update(changes.codings)

    def as_json(self) -> dict[str, Any]:
        return {
            "customers": {key: c.as_json() for key, c in sorted(self.customers.items())},
            "products": {key: p.as_json() for key, p in sorted(self.products.items())},
            "accountingObjects": {
                "accounts": sorted(v for kind, v in self.codings if kind == "account"),
                "dimensions": sorted(v for kind, v in self.codings if kind == "dimension"),
            },
        }


__all__ = ["Changes", "Customer", "Product", "Registers"]
