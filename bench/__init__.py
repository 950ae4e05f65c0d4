"""The scale benchmark: the operator against N sessions on the local control plane with kwok nodes.

`python -m bench --help` (or `make bench BENCH_ARGS="..."`) lists every knob; docs/benchmarks.md
says what is measured and keeps the results of past runs.
"""
