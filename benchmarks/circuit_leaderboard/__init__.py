"""Helpers of ``benchmarks/bench_circuits.py`` (the circuit leaderboard): the method registry
(:mod:`circuit_leaderboard.methods`) and the scoring and tables (:mod:`circuit_leaderboard.scoring`)."""
