"""The `cw-tui` command (SPEC §11). Exit codes: 0 ok, 1 partial failure, 2 usage,
configuration or input error. Every subcommand is a thin layer over the services and the
sync core: `parser` reads the command line, `commands` and `sync_commands` call the core,
`render` and `plan_output` print (Rich for people, JSON exact with --json)."""

from cw_tui.cli.main import main

__all__ = ["main"]
