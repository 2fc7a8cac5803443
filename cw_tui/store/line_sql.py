"""Queries over the store shared by the CLI, the app and the sync engine."""

from __future__ import annotations

# The effective mapping status of a line (rules/mapping.py, as SQL). Expects the aliases
# l = invoice_line, o = organization, f = offer, c = contract. Every line has its
# organization, offer and contract (a load writes them together), so these are inner joins:
# SQLite may then start from any of them, e.g. walk organizations by name to sort lines.
LINE_MAPPING_JOINS = """
    JOIN organization o ON o.platform_id = l.organization_id
    JOIN offer f ON f.platform_id = l.offer_id
    JOIN contract c ON c.platform_id = l.contract_id
"""
# Rule 5's count of organizations on the company is a correlated subquery: it runs (on the
# organization.company_id index) only for mapped lines without an agreement.
LINE_MAPPING_STATUS = """
    CASE
        WHEN COALESCE(l.override_company_id, o.company_id) IS NULL
          OR COALESCE(l.override_product_id, f.product_id) IS NULL THEN 'unmapped'
        WHEN COALESCE(l.override_agreement_id, c.agreement_id) IS NULL
          AND (SELECT COUNT(*) FROM organization o2
               WHERE o2.company_id = COALESCE(l.override_company_id, o.company_id)) > 1 THEN 'unmapped'
        WHEN o.excluded THEN 'excluded'
        ELSE 'mapped'
    END
"""
