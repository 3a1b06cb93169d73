"""The report layer: rendering a run folder as HTML, Markdown or PDF, grades and run diffs.
Imports only labrunner.execution and below (in practice, records)."""
