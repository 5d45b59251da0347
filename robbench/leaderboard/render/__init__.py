"""Rendering leaderboard tables: Markdown, plots, the HTML page (templates/), the findings."""
