"""A local ConnectWise Manage sandbox for the demo, the tests and the benchmarks."""
