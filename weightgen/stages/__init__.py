"""The stages of a run: each takes a Workspace, reads and writes its artifacts (cli -> stages -> library)."""
