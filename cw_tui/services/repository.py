"""Queries over the store shared by the CLI, the app and the sync engine."""

from __future__ import annotations

# The effective mapping status of a line (rules/mapping.py, as SQL). Expects the aliases
# l = invoice_line, o = organization, f = offer, c = contract, co = organizations per company.
LINE_MAPPING_JOINS = """
    LEFT JOIN organization o ON o.platform_id = l.organization_id
    LEFT JOIN offer f ON f.platform_id = l.offer_id
    LEFT JOIN contract c ON c.platform_id = l.contract_id
    LEFT JOIN (
        SELECT company_id, COUNT(*) AS n FROM organization
        WHERE company_id IS NOT NULL GROUP BY company_id
    ) co ON co.company_id = COALESCE(l.override_company_id, o.company_id)
"""
LINE_MAPPING_STATUS = """
    CASE
        WHEN COALESCE(l.override_company_id, o.company_id) IS NULL
          OR COALESCE(l.override_product_id, f.product_id) IS NULL THEN 'unmapped'
        WHEN COALESCE(co.n, 1) > 1
          AND COALESCE(l.override_agreement_id, c.agreement_id) IS NULL THEN 'unmapped'
        WHEN COALESCE(o.excluded, 1) THEN 'excluded'
        ELSE 'mapped'
    END
"""
