"""Services: everything cw-tui does, without a screen. Nothing here imports textual."""
