"""A local ConnectWise Manage sandbox for the demo, the tests and the benchmarks."""

MEDIA_TYPE = "application/vnd.connectwise.com+json; version=2025.1"  # the Content-Type of ConnectWise's answers
