"""opsgate's benchmark suite: `python -m bench [gateway|choices|profile]`.

Every benchmark starts its servers as subprocesses on free loopback ports, drives them from a
load generator in its own process (`wrk` when installed, else `bench.client`), compares against
the direct upstream in the same run, and quotes medians and ratios (see docs/benchmarks.md).
"""
