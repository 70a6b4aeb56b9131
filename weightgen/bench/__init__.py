"""The benchmark's methods, statistics, summaries, image metrics, dashboard and reports."""
