"""Mapping (SPEC §5): Organizations, Products and Invoices, each one SQL-paged grid. One module
per tab's actions (organizations, products, invoices), editing shared by the tabs, the cells
the grids draw, Best Practices, and the screen that composes them."""

from cw_tui.screens.mapping.base import PeriodSelect
from cw_tui.screens.mapping.best_practices import BEST_PRACTICES, BestPractices
from cw_tui.screens.mapping.cells import (
    agreement_cell,
    amount,
    click_to_select,
    dated,
    error_reason,
    mapping_badge,
    psa_status,
    status_dot,
)
from cw_tui.screens.mapping.screen import MappingScreen

__all__ = ["BEST_PRACTICES", "BestPractices", "MappingScreen", "PeriodSelect", "agreement_cell", "amount",
           "click_to_select", "dated", "error_reason", "mapping_badge", "psa_status", "status_dot"]
