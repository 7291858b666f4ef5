"""Benchmarks of cnn-search against KerasTuner and a hand-written Optuna search.

``run.py`` runs the search benchmark, ``overhead.py`` measures harness overhead,
throughput and pruning savings, ``report.py`` writes the report from their JSON.
"""
