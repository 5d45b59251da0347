"""The results store: typed, hashed records (records), the per-run store (runs), the
analyses' records (analyses), the leaderboard CSV tables (table), locks, atomic writes,
path checks, and the store's own verification (verification). Imports no attack library."""
