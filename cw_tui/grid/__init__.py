"""The grid engine: one SQL-paged query over any source (search, sort, filter and count in
the database), and CSV export of what a grid shows."""
