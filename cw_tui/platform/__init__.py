"""The Platform side: the export folder's files (format, checks), the importer that loads
them into the store, and the demo export generator."""
