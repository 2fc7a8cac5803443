"""cw-tui: post cloud-marketplace invoice lines into ConnectWise Manage as Agreement Additions."""

__version__ = "0.1.0"
