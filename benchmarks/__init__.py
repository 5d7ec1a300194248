"""Benchmarks B1-B5 of the batch engine (issues 4 and 14): the SDK side by side with baselines.

Benchmarks are not tests: each one measures the SDK and its baseline in one run against a
simulator in a separate process and prints ratios with the raw numbers and the command.
``python -m benchmarks`` runs all of them (each in a fresh process), ``python -m benchmarks
b3`` one. Figures measured on the project's machine are in ``benchmarks/RESULTS.md``.
"""
