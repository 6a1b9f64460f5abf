"""The migration report: plain data, Markdown, HTML, the runbook's estimates."""
